"""Parameter schemas of the variants: pydantic models, strict, closed, with bounds in the field metadata.

Errors are rewritten into one line per problem that names the variant, the parameter, what was wrong and
what is allowed, with a "did you mean" for misspelt names.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

_BOUND_SYMBOLS = {at.Ge: ("≥", "ge"), at.Gt: (">", "gt"), at.Le: ("≤", "le"), at.Lt: ("<", "lt")}


class VariantParams(BaseModel):
    """Base of every variant's parameter schema: unknown names and wrong types are errors, never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SamplingParams(VariantParams):
    """Parameters shared by variants that draw random samples."""

    seed: int | None = Field(None, description="seed of the layer's own generator; None draws from torch's global RNG")


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is Literal:  # a choice: list what may be chosen
        return " | ".join(str(a) for a in get_args(annotation))
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")


def describe_field(name: str, f: FieldInfo) -> dict[str, str]:
    bounds = [
        f"{symbol} {getattr(m, attr)}"
        for m in f.metadata
        for kind, (symbol, attr) in _BOUND_SYMBOLS.items()
        if isinstance(m, kind)
    ]
    default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
    return {
        "name": name,
        "type": _type_name(f.annotation),
        "default": default,
        "bounds": ", ".join(bounds),
        "description": f.description or "",
    }


def allowed_summary(params: type[BaseModel]) -> str:
    rows = [describe_field(n, f) for n, f in params.model_fields.items()]
    if not rows:
        return "it takes no parameters"
    parts = [
        f"{r['name']} ({r['type']}{' ' + r['bounds'] if r['bounds'] else ''}, default {r['default']})" for r in rows
    ]
    return "allowed: " + "; ".join(parts)


def format_validation_error(variant: str, params: type[BaseModel], err: ValidationError) -> str:
    lines = []
    fields = list(params.model_fields)
    for e in err.errors():
        name = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        if not name:  # a check across parameters (a model validator): its message says it all
            lines.append(f"{variant}: {message}")
        elif e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"{variant}: unknown parameter {name!r}{hint}")
        elif e["type"] == "missing":
            lines.append(f"{variant}: required parameter {name!r} is missing")
        else:
            lines.append(f"{variant}: parameter {name!r} = {e.get('input')!r}: {message}")
    return "\n".join(lines) + f"\n{variant}: {allowed_summary(params)}"
