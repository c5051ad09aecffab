"""Device choice: `--device auto|cpu|cuda[:N]`.

Library code never hard-codes a device: it takes one from the caller (or from the tensors it is given). This module
turns the user's string into a torch.device and fails clearly when CUDA is asked for but absent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn "auto" | "cpu" | "cuda" | "cuda:N" | torch.device | None into a torch.device.

    "auto" (and None) picks CUDA when available, else CPU. Asking for CUDA on a machine without it raises
    ValueError instead of failing later inside a kernel.
    """
    import torch  # lazily: the CLI parser imports this module for DEVICE_CHOICES

    if isinstance(spec, torch.device):
        dev = spec
    elif spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif isinstance(spec, str) and (spec == "cpu" or spec == "cuda" or spec.startswith("cuda:")):
        try:
            dev = torch.device(spec)
        except RuntimeError as err:
            raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {spec!r}") from err
    else:
        raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {spec!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return dev


def describe_device(device: torch.device) -> str:
    """A short human label: "cpu" or "cuda:0 (NVIDIA H100 ...)"."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type
