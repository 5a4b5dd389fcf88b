"""attnzoo: efficient attention mechanisms compared honestly — one registry, one harness, one recipe.

What a user needs to build, register and check a variant, and to read a run's results, is importable from here."""

from attnzoo.zoo import (
    Capabilities,
    VariantError,
    create_attention,
    list_variants,
    register_variant,
    variant_info,
)
from attnzoo.zoo.base import ProjectedAttention
from attnzoo.zoo.params import SamplingParams, VariantParams

__version__ = "0.1.0"


def results(*runs: str, prefer: str = "error"):  # -> pandas.DataFrame (pandas is imported when called)
    """The rows of one or more run directories as one pandas DataFrame, as `attnzoo leaderboard` reads them: one
    row per measurement (a cell that measured nothing has one row with its status), the latest row of each
    measurement, with columns `run` (index into `runs`) and `setting` (the variant setting, named as every
    leaderboard table names it) added to what `results.jsonl` holds: variant, label, parameters, benchmark,
    seq_len, metric, pass, input, value, unit, status, error, extra (per-benchmark detail, e.g. a time's
    repetitions), seed, task and the environment. A cell in two runs is an error unless `prefer` is "first" or
    "last". For example ``results("runs/quick").query("metric == 'time'").pivot_table("value", "setting",
    "seq_len")``."""
    from attnzoo.leaderboards.sources import frame, load_run

    return frame([load_run(run) for run in runs], prefer)


__all__ = [
    "Capabilities",
    "ProjectedAttention",
    "SamplingParams",
    "VariantError",
    "VariantParams",
    "create_attention",
    "list_variants",
    "register_variant",
    "results",
    "variant_info",
]
