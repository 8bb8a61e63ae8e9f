"""Choosing the torch device after the command line is parsed."""

from __future__ import annotations

import re

import torch

from melodex.constants import ACCEPTED_DEVICES, DEVICE_PATTERN
from melodex.errors import DeviceError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as asked.

    Raises DeviceError for any other name (``mps``, ``meta``, ``gpu``: Melodex runs on the CPU
    or CUDA only), for cuda without a CUDA GPU, and for cuda:N beyond the GPUs present.
    """
    name = str(name or "auto").strip().lower()
    if not re.match(DEVICE_PATTERN, name):
        raise DeviceError(f"--device {name}: not a device Melodex runs on; choose from {ACCEPTED_DEVICES}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} was asked for, but torch sees no CUDA GPU on this machine")
        count = torch.cuda.device_count()
        if ":" in name and int(name.split(":")[1]) >= count:
            raise DeviceError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    return torch.device(name)
