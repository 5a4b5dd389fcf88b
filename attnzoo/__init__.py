"""attnzoo: efficient attention mechanisms compared honestly — one registry, one harness, one recipe."""

from attnzoo.zoo import (
    Capabilities,
    VariantError,
    create_attention,
    list_variants,
    register_variant,
    variant_info,
)

__version__ = "0.1.0"
__all__ = ["Capabilities", "VariantError", "create_attention", "list_variants", "register_variant", "variant_info"]
