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
__all__ = [
    "Capabilities",
    "ProjectedAttention",
    "SamplingParams",
    "VariantError",
    "VariantParams",
    "create_attention",
    "list_variants",
    "register_variant",
    "variant_info",
]
