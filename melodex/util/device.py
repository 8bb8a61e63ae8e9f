"""Choosing the torch device after the command line is parsed."""

from __future__ import annotations

import torch

from melodex.errors import DeviceError


def resolve_device(name: str | None = "auto"):
    """``"auto"`` -> cuda when available else cpu; ``"cuda"`` without a GPU is a DeviceError.

    Accepts any torch device string (``"cuda:1"``) too.
    """

    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"--device {name} was asked for, but torch sees no CUDA GPU on this machine")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {name!r}: {exc}") from None
