"""Which torch device a command runs on."""

from __future__ import annotations

import torch

from priorsep.errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU; asking for a missing one is an error.

    Accepts "cuda:N" for one GPU of several.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device cuda asked for, but no CUDA device is available")
    if name == "mps" and not mps_available():
        raise UsageError("device mps asked for, but Apple's MPS backend is not available")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r}; use {', '.join(DEVICES)}")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use {', '.join(DEVICES)}") from None
