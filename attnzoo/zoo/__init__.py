"""The registry and every built-in attention variant behind the one interface."""

# Importing the modules registers the built-in variants.
from attnzoo.zoo import (  # noqa: F401
    bigbird,
    cosformer,
    exact,
    informer,
    linear,
    linformer,
    local,
    nystromformer,
    performer,
    reformer,
    s3attention,
    skeinformer,
    skyformer,
    transformer_ls,
)
from attnzoo.zoo.registry import (
    Availability,
    Capabilities,
    DuplicateVariantError,
    ParameterError,
    UnavailableVariantError,
    UnknownVariantError,
    Variant,
    VariantError,
    create_attention,
    list_variants,
    plugin_errors,
    register_variant,
    variant_info,
)

__all__ = [
    "Availability",
    "Capabilities",
    "DuplicateVariantError",
    "ParameterError",
    "UnavailableVariantError",
    "UnknownVariantError",
    "Variant",
    "VariantError",
    "create_attention",
    "list_variants",
    "plugin_errors",
    "register_variant",
    "variant_info",
]
