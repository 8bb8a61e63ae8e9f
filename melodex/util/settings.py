"""Reading saved settings (a checkpoint's or a cache's JSON) back into their dataclasses."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def known_fields(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    """A copy of ``data`` after checking that every key is a field of dataclass ``cls``.

    Raises ValueError naming the unknown keys (``"unknown {what}: [...]"``): settings written
    by a newer Melodex are refused, never silently dropped. Missing keys take the defaults.
    """
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what}: {sorted(unknown)}")
    return dict(data)
