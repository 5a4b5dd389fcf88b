"""The variant registry: a name -> Variant spec (data) -> a validated, constructed attention layer.

Modelled on timm's `register_model` / `create_model` / `list_models`. Third-party variants arrive through the
entry-point group ``attnzoo.variants`` (loaded only when a name is not found or the whole list is asked for)
or as a ``"package.module:Name"`` reference wherever a variant name is accepted.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points, packages_distributions, version
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from attnzoo.zoo.params import VariantParams, describe_field, format_validation_error

ENTRY_POINT_GROUP = "attnzoo.variants"


class VariantError(ValueError):
    """Base class of every registry error; the message says what to do next."""


class UnknownVariantError(VariantError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DuplicateVariantError(VariantError):
    pass


class ParameterError(VariantError, TypeError):
    pass


class UnavailableVariantError(VariantError, RuntimeError):
    pass


@dataclass(frozen=True)
class Capabilities:
    """What a variant can do. Tests and the harness read these instead of special-casing names."""

    key_padding_mask: bool = True  # accepts mask (B, n); False means it refuses one with an error
    causal: bool = False  # has a `causal` parameter that masks future keys
    needs_max_seq_len: bool = False  # must know the maximum length at construction
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    approximates_softmax: bool = False  # exposes attend(q, k, v, mask) approximating softmax attention
    exact: bool = False  # attend() equals softmax attention up to rounding
    # A padded batch gives, at real positions, exactly the outputs of each sequence run alone.
    padding_equivalent: bool = True
    stochastic: bool = False  # draws random samples; takes a `seed` parameter


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    fix: str = ""

    def __str__(self) -> str:
        return "available" if self.ok else f"{self.reason} ({self.fix})" if self.fix else self.reason


AVAILABLE = Availability(True)


@dataclass(frozen=True)
class Variant:
    """Everything known about one attention variant, as data."""

    name: str
    factory: Callable[..., torch.nn.Module]
    description: str
    source: str
    family: str = "other"
    cost: str = ""
    params: type[BaseModel] = VariantParams
    capabilities: Capabilities = field(default_factory=Capabilities)
    deviations: tuple[str, ...] = ()
    availability: Callable[[], Availability] = lambda: AVAILABLE
    plugin: str | None = None  # distribution/entry point it came from, None for built-ins
    origin: Any = None  # the class or function holding the variant's code (default: factory)
    # Parameters the conformance checks build it with (their inputs are 40 tokens long), where its defaults would
    # leave nothing to approximate at that length (e.g. one hash bucket covering everything).
    check_params: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> Availability:
        return self.availability()

    @property
    def code_version(self) -> str:
        """The distribution and version that ship the variant's code, plus a hash of its source file, so that a
        result measured with other code never passes for this one."""
        return code_version(self.origin or self.factory)

    def cannot_run(self, device_type: str, dtype: str, dtype_field: str = "") -> str | None:
        """Why it cannot run on this device type or dtype (from its capabilities), or None; `dtype_field` names
        where the dtype was asked for (e.g. "layer.dtype")."""
        caps = self.capabilities
        if device_type not in caps.devices:
            return f"{self.name} runs on {', '.join(caps.devices)}, not {device_type}"
        if dtype not in caps.dtypes:
            return (
                f"{self.name} supports {', '.join(caps.dtypes)}, not {dtype_field + ' ' if dtype_field else ''}{dtype}"
            )
        return None

    def parameter_table(self) -> list[dict[str, str]]:
        return [describe_field(name, f) for name, f in self.params.model_fields.items()]

    def validate_params(self, params: dict[str, Any]) -> BaseModel:
        try:
            return self.params.model_validate(params)
        except ValidationError as err:
            raise ParameterError(format_validation_error(self.name, self.params, err)) from None


_REGISTRY: dict[str, Variant] = {}
_PLUGIN_ERRORS: dict[str, str] = {}  # entry-point name -> error text of a plugin that failed to load
_plugins_loaded = False
_loading_plugin: str | None = None  # the entry point being imported, so its registrations are attributed to it


def register_variant(
    name: str,
    *,
    description: str,
    source: str,
    family: str = "other",
    cost: str = "",
    params: type[BaseModel] = VariantParams,
    capabilities: Capabilities | None = None,
    deviations: tuple[str, ...] | list[str] = (),
    availability: Callable[[], Availability] | None = None,
    check_params: dict[str, Any] | None = None,
) -> Callable[[Callable[..., torch.nn.Module]], Callable[..., torch.nn.Module]]:
    """Register an attention variant. Decorates an nn.Module class (or a factory function) that is called
    as ``factory(dim=, heads=, max_seq_len=, **validated_params)`` and returns a module whose
    ``forward(x, mask=None)`` maps (B, n, dim) to (B, n, dim)."""

    def decorator(factory: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        if name in _REGISTRY:
            raise DuplicateVariantError(
                f"variant {name!r} is already registered (by {_REGISTRY[name].factory.__module__}); pick another name"
            )
        _REGISTRY[name] = Variant(
            name=name,
            factory=factory,
            description=description,
            source=source,
            family=family,
            cost=cost,
            params=params,
            capabilities=capabilities or Capabilities(),
            deviations=tuple(deviations),
            availability=availability or (lambda: AVAILABLE),
            plugin=_loading_plugin,
            check_params=dict(check_params or {}),
        )
        return factory

    return decorator


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return packages_distributions()


@functools.cache
def code_version(obj: Any) -> str:
    try:
        source = open(inspect.getsourcefile(obj) or "", "rb").read()  # noqa: SIM115
    except (TypeError, OSError):
        source = b""
    digest = hashlib.sha256(source).hexdigest()[:12]
    dists = _distributions().get(obj.__module__.split(".")[0], [])
    return f"{dists[0]}=={version(dists[0])}+{digest}" if dists else digest


def unregister_variant(name: str) -> None:
    """Remove a variant (for tests and interactive sessions)."""
    _REGISTRY.pop(name, None)


def _load_plugins() -> None:
    """Import every entry point of the group once. A broken plugin is recorded, never raised."""
    global _plugins_loaded, _loading_plugin
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        before = set(_REGISTRY)
        _loading_plugin = f"{ep.name} ({ep.value})"
        try:
            obj = ep.load()
            if ep.name not in _REGISTRY and set(_REGISTRY) == before and _is_module_class(obj):
                _REGISTRY[ep.name] = _adhoc_variant(ep.name, obj, plugin=_loading_plugin)
        except Exception as err:  # noqa: BLE001 - a plugin may fail in any way; report it by name
            _PLUGIN_ERRORS[ep.name] = f"{type(err).__name__}: {err}"
        finally:
            _loading_plugin = None


def reload_plugins() -> None:
    """Forget which entry points were loaded (after installing a plugin in a running session)."""
    global _plugins_loaded
    _plugins_loaded = False
    _PLUGIN_ERRORS.clear()


def plugin_errors() -> dict[str, str]:
    _load_plugins()
    return dict(_PLUGIN_ERRORS)


def _is_module_class(obj: Any) -> bool:
    return inspect.isclass(obj) and issubclass(obj, torch.nn.Module)


def _adhoc_variant(name: str, cls: type[torch.nn.Module], plugin: str | None = None) -> Variant:
    """A spec for an undecorated nn.Module class: its constructor validates its own keyword arguments."""
    doc = (inspect.getdoc(cls) or "").strip().splitlines()
    takes_max_len = "max_seq_len" in inspect.signature(cls).parameters

    def factory(dim: int, heads: int, max_seq_len: int | None = None, **params: Any) -> torch.nn.Module:
        extra = {"max_seq_len": max_seq_len} if takes_max_len else {}
        return cls(dim=dim, heads=heads, **extra, **params)

    return Variant(
        name=name,
        factory=factory,
        description=doc[0] if doc else f"{cls.__module__}.{cls.__qualname__}",
        source=f"{cls.__module__}.{cls.__qualname__}",
        params=_passthrough_params(cls),
        plugin=plugin,
        origin=cls,
    )


def _passthrough_params(cls: type) -> type[BaseModel]:
    """A schema that accepts the constructor's own keyword parameters (beyond dim, heads, max_seq_len)."""
    sig = inspect.signature(cls)
    names = {
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in {"dim", "heads", "max_seq_len"}
    }
    annotations = {n: Any for n in names}
    # Parameters without a default stay required: pydantic reports them missing instead of passing None.
    defaults = {n: sig.parameters[n].default for n in names if sig.parameters[n].default is not inspect.Parameter.empty}
    return type(
        f"{cls.__name__}Params",
        (BaseModel,),
        {"__annotations__": annotations, **defaults, "model_config": ConfigDict(extra="forbid")},
    )


def _resolve_reference(ref: str) -> Variant:
    """``"package.module:Name"``: a registered class/factory, or any nn.Module class."""
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UnknownVariantError(f"cannot import {module_name!r} for variant {ref!r}: {err}") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise UnknownVariantError(f"module {module_name!r} has no attribute {attr!r} (variant {ref!r})")
    for spec in _REGISTRY.values():
        if spec.factory is obj:
            return spec
    if _is_module_class(obj):
        return _adhoc_variant(ref, obj)
    raise UnknownVariantError(
        f"{ref!r} is neither a registered variant nor a torch.nn.Module class; decorate it with "
        "@attnzoo.register_variant or point at an nn.Module subclass"
    )


def variant_info(name: str) -> Variant:
    """The spec of a variant by name (or ``module:Name`` reference). Raises UnknownVariantError with close
    matches when there is no such variant."""
    if ":" in name:
        return _resolve_reference(name)
    if name not in _REGISTRY:
        _load_plugins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _PLUGIN_ERRORS:
        raise UnknownVariantError(f"variant plugin {name!r} failed to load: {_PLUGIN_ERRORS[name]}")
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownVariantError(
        f"unknown attention variant {name!r}{hint} (registered: {', '.join(sorted(_REGISTRY))}; "
        "`attnzoo list` shows them all)"
    )


def list_variants(pattern: str | None = None, *, available_only: bool = False) -> list[str]:
    """Registered variant names, sorted, optionally filtered by a glob such as ``"*former"``."""
    _load_plugins()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if available_only:
        names = [n for n in names if _REGISTRY[n].available.ok]
    return names


def create_attention(name: str, dim: int, heads: int, max_seq_len: int | None = None, **params: Any) -> torch.nn.Module:
    """Build a variant's layer: ``forward(x, mask=None)``, x (B, n, dim), mask bool (B, n), True = real token.

    Every parameter is validated against the variant's schema before construction."""
    spec = variant_info(name)
    availability = spec.available
    if not availability.ok:
        raise UnavailableVariantError(f"variant {spec.name!r} is unavailable here: {availability}")
    if not isinstance(dim, int) or not isinstance(heads, int) or dim <= 0 or heads <= 0 or dim % heads:
        raise ParameterError(
            f"{spec.name}: dim ({dim!r}) must be a positive multiple of heads ({heads!r}), both integers"
        )
    if max_seq_len is not None and (not isinstance(max_seq_len, int) or max_seq_len <= 0):
        raise ParameterError(f"{spec.name}: max_seq_len must be a positive integer or None, got {max_seq_len!r}")
    if spec.capabilities.needs_max_seq_len and max_seq_len is None:
        raise ParameterError(f"{spec.name}: needs max_seq_len at construction (its parameters depend on it)")
    validated = spec.validate_params(params)
    return spec.factory(dim=dim, heads=heads, max_seq_len=max_seq_len, **dict(validated))
