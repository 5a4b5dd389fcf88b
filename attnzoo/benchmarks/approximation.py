"""The approximation benchmark: relative Frobenius error of a variant's kernel against exact softmax attention
on the same q, k, v.

Inputs:
- ``gaussian``: q, k, v with i.i.d. standard normal entries.
- ``text``: q, k, v projected from byte embeddings of real English text (the documentation text Python ships in
  ``pydoc_data.topics``), with sinusoidal positions: repeated bytes make the structured, low-rank inputs that
  real sequences have. Embeddings and projections are random (seeded), not trained.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from pydantic import Field

from attnzoo.harness.benchmark import Benchmark, Section, register_benchmark
from attnzoo.harness.records import Cell, Measurement
from attnzoo.leaderboards import plots
from attnzoo.leaderboards.headline import best_of
from attnzoo.leaderboards.tables import image_lines, variant_table
from attnzoo.zoo import create_attention, variant_info


@cache
def english_bytes() -> bytes:
    """Real English text available wherever Python is: the documentation topics in pydoc_data."""
    from pydoc_data.topics import topics

    return " ".join(topics[key] for key in sorted(topics)).encode()


def text_embeddings(batch: int, n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, n, dim): random byte embeddings of n consecutive bytes of English text, plus sinusoidal positions."""
    corpus = english_bytes()
    starts = torch.randint(0, len(corpus) - n, (batch,), generator=generator).tolist()
    ids = torch.tensor([list(corpus[s : s + n]) for s in starts])
    embedding = torch.randn(256, dim, generator=generator)
    position = torch.arange(n)[:, None] / torch.pow(10_000, torch.arange(0, dim, 2) / dim)[None, :]
    return embedding[ids] + torch.cat([position.sin(), position.cos()], dim=-1)


def text_qkv(batch: int, heads: int, n: int, dim: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    x = text_embeddings(batch, n, dim, generator)
    projections = torch.randn(3, dim, dim, generator=generator) / math.sqrt(dim)
    return tuple((x @ w).unflatten(-1, (heads, dim // heads)).transpose(1, 2) for w in projections)


def gaussian_qkv(batch: int, heads: int, n: int, dim: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(batch, heads, n, dim // heads, generator=generator) for _ in range(3))


INPUTS = {"gaussian": gaussian_qkv, "text": text_qkv}


def exact_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(p)) v in float64: the reference every variant is compared with."""
    q, k, v = q.double(), k.double(), v.double()
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v


def _why_no_error(spec) -> str:
    if spec.origin is not None and hasattr(spec.origin, "attend"):
        return (
            f"{spec.name} is a plain nn.Module class named in the suite, and such a class cannot declare "
            "capabilities, so its attend() is not known to approximate softmax attention; register it with "
            "@attnzoo.register_variant(..., capabilities=attnzoo.Capabilities(approximates_softmax=True)) "
            "(or an entry point) and name the registered variant"
        )
    return f"{spec.name} is not a softmax approximation (its capabilities say so), so it has no approximation error"


class Approximation(Section):
    inputs: list[Literal["gaussian", "text"]] = Field(["gaussian", "text"], min_length=1)
    seeds: int = Field(3, ge=1, description="independent draws of inputs and samples, averaged")


@dataclass
class Error:
    """A setting's headline error: at the longest length measured, on real-text inputs where there are some."""

    run: int | None = None
    error: float | None = None
    at: str = ""
    note: str = ""  # why there is none (exact, or not an approximation)


@register_benchmark("approximation")
class ApproximationBenchmark(Benchmark):
    section = Approximation
    per_length = True

    def run(self, cell: Cell, **_: object) -> list[Measurement]:
        spec = variant_info(cell.variant)
        if not spec.capabilities.approximates_softmax:
            return [Measurement("rel_error", status="unsupported", error=_why_no_error(spec))]
        layer_cfg, section = cell.layer, cell.config.section
        b, h, dim, n = layer_cfg["batch"], layer_cfg["heads"], layer_cfg["dim"], cell.seq_len
        out = []
        for kind in section.inputs:
            errors = []
            for seed in range(section.seeds):
                generator = torch.Generator().manual_seed(seed)
                q, k, v = INPUTS[kind](b, h, n, dim, generator)
                torch.manual_seed(seed)
                params = {"seed": seed, **cell.params} if spec.capabilities.stochastic else cell.params
                layer = create_attention(cell.variant, dim, h, max_seq_len=n, **params).eval()
                with torch.no_grad():
                    approx = layer.attend(q, k, v).double()
                exact = exact_attention(q, k, v)
                errors.append(float((approx - exact).norm() / exact.norm()))
            extra = {"std": statistics.pstdev(errors), "seeds": len(errors)}
            out.append(Measurement("rel_error", statistics.fmean(errors), "ratio", input=kind, extra=extra))
        return out

    def tables(self, df: pd.DataFrame, view) -> list[str]:
        h = view.h
        out = ["", f"{h} Relative error vs exact softmax attention (mean ± std over seeds)"]
        for kind in df["input"].dropna().unique():
            part = df[(df["input"] == kind) | (df["status"] != "ok")]
            part = part.assign(
                value=[
                    (v, e.get("std", 0.0)) if s == "ok" else v
                    for v, e, s in zip(part["value"], part["extra"], part["status"], strict=True)
                ]
            )
            out += [
                "",
                f"{h}# {kind} inputs",
                "",
                variant_table(part, lambda t: f"{t[0]:.3g} ± {t[1]:.2g}", slope=False),
            ]
        reasons = df[df["status"] == "unsupported"].drop_duplicates("label")
        if len(reasons):
            out += ["", *(f"- {r.label}: unsupported — {r.error}." for r in reasons.itertuples())]
        return out + [line for name in view.figures for line in image_lines(name)]

    def figures(self, df: pd.DataFrame, run, out: Path, stem: str) -> list[str]:
        return plots.approximation(df, out, stem)

    def headline(self, setting: str, mine: pd.DataFrame, everything: pd.DataFrame, board) -> Error:
        variant = board.variant_of[setting]
        if _exact(variant):
            return Error(note="exact")
        ok = mine[mine["status"] == "ok"]
        if ok.empty:
            unsupported = (mine["status"] == "unsupported").any()
            return Error(note="n/a: not a softmax approximation" if unsupported else "")
        inputs = list(dict.fromkeys(ok["input"]))
        kind = "text" if "text" in inputs else inputs[0]
        pick = ok[ok["input"] == kind].sort_values(["seq_len", "run"]).iloc[-1]
        return Error(int(pick["run"]), float(pick["value"]), f"{kind}, n={int(pick['seq_len'])}")

    def headline_columns(self, rows: list, board) -> list[tuple[str, dict[str, str], str]]:
        errors = {r.setting: r.values[self.name] for r in rows if self.name in r.values}
        if not any(e.error is not None or e.note for e in errors.values()):
            return []
        best = best_of({k: e.error for k, e in errors.items()}, higher=False)
        cells = {
            k: e.note if e.error is None else f"**{e.error:.3g} ({e.at})**" if k in best else f"{e.error:.3g} ({e.at})"
            for k, e in errors.items()
        }
        note = (
            "Approx. error: ‖approx − exact‖ / ‖exact‖ at the longest length measured, mean over seeds, on real-text "
            "inputs where measured."
        )
        return [("approx. error", cells, note)]

    def record(self, values: Error) -> dict:
        return {"error": values.error, "error_at": values.at, "error_note": values.note}


def _exact(variant: str) -> bool:
    try:
        return variant_info(variant).capabilities.exact
    except Exception:  # noqa: BLE001 - a plugin that is not installed here
        return False
