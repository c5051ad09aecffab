"""Mismatched states are refused with the first offending names, for in-memory states and checkpoint headers."""

from __future__ import annotations

import pytest
import torch

from tailorkit.patching.engine import PatchError, check_compatible


def _state() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2)}


def test_names_shapes_dtypes_and_nonfinite_are_refused() -> None:
    check_compatible(_state(), [_state()])  # identical layouts pass
    with pytest.raises(PatchError, match=r"missing in fine-tuned: a\.bias.*not in pretrained: b\.bias"):
        check_compatible(_state(), [{"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(2)}])
    with pytest.raises(PatchError, match=r"a\.weight: pretrained \(2, 3\) float32 vs fine-tuned \(3, 2\) float32"):
        check_compatible(_state(), [{"a.weight": torch.zeros(3, 2), "a.bias": torch.zeros(2)}])
    with pytest.raises(PatchError, match=r"vs fine-tuned #1 \(2,\) float64"):
        check_compatible(_state(), [_state(), {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2).double()}])
    bad = _state()
    bad["a.bias"][0] = float("nan")
    with pytest.raises(PatchError, match=r"'a\.bias' contains NaN or Inf"):
        check_compatible(_state(), [bad])
