"""Validation errors told without what was validated: field paths and error kinds only.

Pydantic's messages and inputs may echo values, and a path may hold a name the *writer* chose
(an unknown field named after a document number, a password written without its key in a
secret file): only the names ``known`` holds are echoed, anything else is ``<unknown>``.
The one home of this rule for events (ingest's DLQ details, the device SDK, flight logs) and
for files (secret files, the device registry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

UNKNOWN = "<unknown>"


def field_names(model: type[BaseModel]) -> frozenset[str]:
    """The field names (and aliases) of ``model`` and of every model its fields hold, also
    inside containers (``list[M]``, ``dict[str, M]``, ``M | None``)."""
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def walk(m: type[BaseModel]) -> None:
        if m in seen:
            return
        seen.add(m)
        for name, info in m.model_fields.items():
            names.add(info.alias or name)
            for nested in _models_in(info.annotation):
                walk(nested)

    walk(model)
    return frozenset(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


Known = frozenset[str] | Callable[[str], bool]  # names that may be echoed, or a test of one


def describe(exc: ValidationError, known: Known, *, limit: int | None = None) -> str:
    """``path: error type`` per error (at most ``limit``, then how many more), ``;``-joined."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    shown = errors if limit is None else errors[:limit]
    parts = [f"{path(err['loc'], known)}: {err['type']}" for err in shown]
    more = len(errors) - len(shown)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def path(loc: tuple[int | str, ...], known: Known) -> str:
    """A location as ``a.0.b``; a name not ``known`` is ``<unknown>``; the root ``<root>``."""
    echo = known.__contains__ if isinstance(known, frozenset) else known
    text = ".".join(str(p) if isinstance(p, int) else p if echo(p) else UNKNOWN for p in loc)
    return text or "<root>"
