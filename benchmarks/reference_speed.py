"""Each zoo variant timed side by side with its reference implementation, in one process, on identical inputs.

References: the `linformer`, `performer-pytorch`, `nystrom-attention` and `local-attention` packages (pip), and the
authors' released code from checkouts you point at (nothing of it is part of attnzoo):

    python benchmarks/reference_speed.py [--n 1024 4096 16384] [--rounds 5] [--threads 1]
        [--informer2020 PATH]    # github zhouhaoyi/Informer2020 (the repository root)
        [--skeinformer PATH]     # github pkuzengqi/Skeinformer, its src/ directory
        [--skyformer PATH]       # github pkuzengqi/Skyformer, its src/ directory
        [--bigbird PATH]         # the same src/ directory: its BigBird (Hugging Face's block-sparse attention;
                                 # needs the `transformers` package)
        [--nystromformer PATH]   # github mlpen/Nystromformer, its LRA/code/ directory (also its linear attention)
        [--cosformer PATH]       # github OpenNLPLab/cosFormer (the repository root)
        [--transformer-ls PATH]  # github wxie9/S3Attention, its lra/ directory
        [--only TEXT]            # only the pairs whose title contains TEXT

Rounds interleave the two sides in a shuffled order; each round times both with torch.utils.benchmark and takes
reference time / our time, so > 1 means ours is faster. Printed: the median ratio over rounds with a
distribution-free interval, forward and forward+backward (gradients to q, k, v or to the layer input). Run it
alone on the machine.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
from collections.abc import Callable

import torch
from torch.utils.benchmark import Timer

import attnzoo
from attnzoo.harness.measure import keep_freed_memory
from attnzoo.stats import median_interval

B, H, P = 1, 2, 32
DIM = H * P
Fn = Callable[..., torch.Tensor]


def checkout(path: str, module: str):
    """Import `module` from the user's checkout; Informer2020 and Skeinformer both name their package `models`,
    so each import starts from a clean slate."""
    for name in [m for m in sys.modules if m.split(".")[0] in ("models", "utils")]:
        del sys.modules[name]
    sys.path.insert(0, path)
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(path)


def informer2020(path: str) -> Callable[[int], Fn]:
    ProbAttention = checkout(path, "models.attn").ProbAttention  # noqa: N806 (the authors' class)

    def make(n: int) -> Fn:
        layer = ProbAttention(mask_flag=False, factor=5, attention_dropout=0.0)
        return lambda q, k, v: layer(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), None)[0]

    return make


def skeinformer(path: str) -> Callable[[int], Fn]:
    SkeinAttention = checkout(path, "models.attention_skeinformer").SkeinAttention  # noqa: N806

    def make(n: int) -> Fn:
        config = {"device": "cpu", "max_seq_len": n, "accumulation": 1, "sampling_factor": 1, "nb_features": 256,
                  "head_dim": P, "sketched_kernel": "kernel_RS_SM", "no_projection": False}  # fmt: skip
        layer, mask = SkeinAttention(config), torch.ones(B, n)
        return lambda q, k, v: layer(q, k, v, mask)

    return make


def nystromformer(path: str) -> Callable[[int], Fn]:
    NystromAttention = checkout(path, "attention_nystrom").NystromAttention  # noqa: N806

    def make(n: int) -> Fn:
        config = {"head_dim": P, "num_head": H, "num_landmarks": 64, "seq_len": n}
        layer, mask = NystromAttention(config), torch.ones(B, n)
        return lambda q, k, v: layer(q, k, v, mask)

    return make


def skyformer(path: str) -> Callable[[int], Fn]:
    Skyformer = checkout(path, "models.attention_skyformer").Skyformer  # noqa: N806

    def make(n: int) -> Fn:
        config = {"device": "cpu", "max_seq_len": n, "accumulation": 1, "sampling_factor": 4, "nb_features": 128,
                  "head_dim": P, "sketched_kernel": "kernel_RS_RBF", "no_projection": False}  # fmt: skip
        layer, mask = Skyformer(config), torch.ones(B, n)
        return lambda q, k, v: layer(q, k, v, mask)

    return make


def bigbird(path: str) -> Callable[[int], Fn]:
    """The Skyformer harness's BigBirdAttention (Hugging Face's block-sparse attention) at our defaults: blocks of
    64, 3 random blocks, drawing its own random plan on every call as ours does."""
    BigBird = checkout(path, "models.attention_bigbird").BigBirdAttention  # noqa: N806

    def make(n: int) -> Fn:
        layer = BigBird({"max_seq_len": n, "num_head": H, "num_random_blocks": 3, "block_size": 64, "head_dim": P})
        mask = torch.ones(B, n)
        return lambda q, k, v: layer(q, k, v, mask)

    return make


def lra_linear(path: str) -> Callable[[int], Fn]:
    LinearAttention = checkout(path, "attention_linear").LinearAttention  # noqa: N806

    def make(n: int) -> Fn:
        layer, mask = LinearAttention({}), torch.ones(B, n)
        return lambda q, k, v: layer(q, k, v, mask)

    return make


def cosformer(path: str) -> Callable[[int], Fn]:
    """The release's module takes (n, B, dim) inputs and projects them itself: compared as a layer."""
    CosformerAttention = checkout(path, "cosformer").CosformerAttention  # noqa: N806
    return lambda n: (lambda f: lambda x: f(x.transpose(0, 1)).transpose(0, 1))(CosformerAttention(DIM, H))


def transformer_ls(path: str) -> Callable[[int], Fn]:
    """The release's layer at our defaults (w = 16, r = 32), compared as layers."""
    import types

    AttentionLS = checkout(path, "attention_transformer_ls").AttentionLS  # noqa: N806

    def make(n: int) -> Fn:
        config = types.SimpleNamespace(pooling_mode="mean", cls_token=False, num_head=H, head_dim=P,
                                       num_landmarks=32, max_seq_len=n, transformer_dim=DIM, attention_dropout=0.0,
                                       window_size=16, fp32_attn=False, conv_kernel_size=-1)  # fmt: skip
        layer, mask = AttentionLS(config), torch.ones(B, n)
        return lambda x: layer(x, mask)

    return make


def ours(name: str, **params) -> Callable[[int], Fn]:
    def make(n: int) -> Fn:
        layer = attnzoo.create_attention(name, DIM, H, max_seq_len=n, **params)
        return layer.attend

    return make


def our_layer(name: str, **params) -> Callable[[int], Fn]:
    return lambda n: attnzoo.create_attention(name, DIM, H, max_seq_len=n, **params)


def package_layers() -> list[tuple[str, Callable, Callable, str]]:
    """(title, ours, reference, input kind) for the pip packages that are installed."""
    pairs = []
    try:
        from nystrom_attention import NystromAttention

        ref = lambda n: NystromAttention(DIM, dim_head=P, heads=H, num_landmarks=64, residual=False)  # noqa: E731
        pairs.append(("nystromformer layer vs nystrom-attention", our_layer("nystromformer"), ref, "x"))
    except ImportError:
        print("nystrom-attention not installed (pip install nystrom-attention): skipped", file=sys.stderr)
    from linformer import LinformerSelfAttention
    from performer_pytorch import FastAttention

    linformer = lambda n: LinformerSelfAttention(DIM, seq_len=n, k=256, heads=H)  # noqa: E731
    pairs.append(("linformer layer vs linformer", our_layer("linformer"), linformer, "x"))
    performer = lambda n: (lambda f: lambda q, k, v: f(q, k, v))(FastAttention(P))  # noqa: E731
    pairs.append(("performer vs performer-pytorch FastAttention", ours("performer"), performer, "qkv"))
    try:
        from local_attention import LocalAttention

        for causal in (False, True):
            ref = lambda n, c=causal: LocalAttention(64, causal=c, autopad=True, use_rotary_pos_emb=False)  # noqa: E731
            title = f"local{' causal' if causal else ''} vs local-attention"
            pairs.append((title, ours("local", causal=causal), ref, "qkv"))
    except ImportError:
        print("local-attention not installed (pip install local-attention): skipped", file=sys.stderr)
    return pairs


def inputs(kind: str, n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    shapes = [(B, n, DIM)] if kind == "x" else [(B, H, n, P)] * 3
    return [torch.randn(*s, generator=g).requires_grad_() for s in shapes]


def call(fn: Fn, args: list[torch.Tensor], backward: bool) -> Callable[[], None]:
    def run() -> None:
        if not backward:
            with torch.no_grad():
                fn(*args)
            return
        for a in args:
            a.grad = None
        fn(*args).sum().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=0.3)
    parser.add_argument("--informer2020")
    parser.add_argument("--skeinformer")
    parser.add_argument("--nystromformer")
    parser.add_argument("--skyformer")
    parser.add_argument("--bigbird")
    parser.add_argument("--cosformer")
    parser.add_argument("--transformer-ls")
    parser.add_argument("--only", help="time only the pairs whose title contains this text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the harness's timing workers do: time compute, not the kernel zeroing pages

    pairs = []
    if args.informer2020:
        pairs.append(
            ("informer vs Informer2020 ProbAttention", ours("informer"), informer2020(args.informer2020), "qkv")
        )
    if args.skeinformer:
        pairs.append(("skeinformer vs SkeinAttention", ours("skeinformer"), skeinformer(args.skeinformer), "qkv"))
    if args.nystromformer:
        title = "nystromformer vs LRA NystromAttention"
        pairs.append((title, ours("nystromformer"), nystromformer(args.nystromformer), "qkv"))
        pairs.append(("linear (lra-code) vs LRA LinearAttention", ours("linear", form="lra-code"),
                      lra_linear(args.nystromformer), "qkv"))  # fmt: skip
    if args.skyformer:
        pairs.append(("skyformer vs Skyformer", ours("skyformer"), skyformer(args.skyformer), "qkv"))
    if args.bigbird:
        pairs.append(("bigbird vs Skyformer harness BigBird", ours("bigbird"), bigbird(args.bigbird), "qkv"))
    if args.transformer_ls:
        title = "transformer-ls layer vs AttentionLS"
        pairs.append((title, our_layer("transformer-ls"), transformer_ls(args.transformer_ls), "x"))
    if args.cosformer:
        pairs.append(("cosformer layer vs CosformerAttention", our_layer("cosformer"), cosformer(args.cosformer), "x"))
    pairs += package_layers()
    pairs = [pair for pair in pairs if args.only is None or args.only in pair[0]]

    header = [f"n={n} {p}" for n in args.n for p in ("fwd", "fwd+bwd")]
    print(f"reference time / our time ({args.threads} thread(s), B={B}, H={H}, p={P}; > 1: ours is faster)\n")
    print("| pair | " + " | ".join(header) + " |\n|" + "---|" * (len(header) + 1))
    shuffle = random.Random(0)
    for title, make_ours, make_ref, kind in pairs:
        cells = []
        for n in args.n:
            torch.manual_seed(0)
            mine, theirs = make_ours(n), make_ref(n)
            for backward in (False, True):
                sides = {"ours": call(mine, inputs(kind, n), backward), "ref": call(theirs, inputs(kind, n), backward)}
                ratios = []
                for _ in range(args.rounds):
                    times = {}
                    for side in shuffle.sample(list(sides), 2):
                        timer = Timer("f()", globals={"f": sides[side]}, num_threads=args.threads)
                        times[side] = timer.blocked_autorange(min_run_time=args.min_run_time).median
                    ratios.append(times["ref"] / times["ours"])
                iv = median_interval(ratios)
                cells.append(f"{iv.median:.2f} ({iv.low:.2f}–{iv.high:.2f})")
        print(f"| {title} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
