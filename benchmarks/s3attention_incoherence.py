"""Does S3Attention's smoother lower the incoherence mu of the token matrix, as the paper claims?

Inputs are real English text (the documentation text Python ships in pydoc_data), as byte embeddings plus
sinusoidal positions (dim 64, random embedding table); mu is measured at rank 32, as in the paper's Table 14, for
the input X, the Fourier convolution's output, and the whole smoother's output, with the layer at initialisation.

    python benchmarks/s3attention_incoherence.py [--n 1024] [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics

import torch

import attnzoo
from attnzoo.benchmarks.approximation import text_embeddings
from attnzoo.zoo.s3attention import incoherence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"input X": [], "Fourier conv output": [], "smoother output": []}
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        layer = attnzoo.create_attention("s3attention", 64, 2, max_seq_len=args.n).eval()
        x = text_embeddings(1, args.n, 64, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            results["input X"].append(incoherence(x[0], args.rank))
            results["Fourier conv output"].append(incoherence(layer.smoother.fourier(x)[0], args.rank))
            results["smoother output"].append(incoherence(layer.smoother(x)[0], args.rank))
    print(f"mu at rank {args.rank}, n={args.n}, text byte embeddings, {args.seeds} seeds, layer at init")
    for name, values in results.items():
        print(f"  {name:22s} {statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f}")


if __name__ == "__main__":
    main()
