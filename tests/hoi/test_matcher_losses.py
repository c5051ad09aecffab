from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.hoi.boxes import xyxy_to_cxcywh
from tailorkit.hoi.losses import SetCriterion, focal_verb_loss
from tailorkit.hoi.matcher import HungarianMatcher, hungarian


def test_hungarian_hand_built_costs() -> None:
    cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    rows, cols = hungarian(cost)
    assert rows.tolist() == [0, 1, 2]
    assert cols.tolist() == [1, 0, 2]  # total 1 + 2 + 2 = 5; the greedy row minimum (0 at (1, 1)) would give 6
    assert cost[rows, cols].sum() == 5
    rows, cols = hungarian(np.array([[5.0, 1.0], [0.0, 9.0], [2.0, 2.0]]))  # 3 queries, 2 targets
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]
    with pytest.raises(ValueError, match="finite"):
        hungarian(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        hungarian(np.zeros(3))


def _perfect_outputs(targets: dict[str, torch.Tensor], perm: list[int], q: int, c: int) -> dict[str, torch.Tensor]:
    """Predictions that reproduce the targets in query slots `perm` and are "no pair" elsewhere."""
    v = targets["verb_labels"].shape[1]
    logits = torch.full((1, q, c + 1), -10.0)
    logits[0, :, c] = 10.0
    verbs = torch.full((1, q, v), -10.0)
    sub = torch.full((1, q, 4), 0.5)
    obj = torch.full((1, q, 4), 0.5)
    for k, slot in enumerate(perm):
        logits[0, slot] = -10.0
        logits[0, slot, targets["obj_labels"][k]] = 10.0
        verbs[0, slot] = targets["verb_labels"][k] * 20 - 10
        sub[0, slot] = targets["sub_boxes"][k]
        obj[0, slot] = targets["obj_boxes"][k]
    return {"pred_obj_logits": logits, "pred_verb_logits": verbs, "pred_sub_boxes": sub, "pred_obj_boxes": obj}


def _targets() -> dict[str, torch.Tensor]:
    return {
        "obj_labels": torch.tensor([1, 2]),
        "verb_labels": torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
        "sub_boxes": xyxy_to_cxcywh(torch.tensor([[0.1, 0.1, 0.4, 0.9], [0.6, 0.1, 0.9, 0.9]])),
        "obj_boxes": xyxy_to_cxcywh(torch.tensor([[0.4, 0.4, 0.6, 0.6], [0.7, 0.0, 0.8, 0.2]])),
    }


def test_matcher_recovers_the_permutation() -> None:
    t = _targets()
    out = _perfect_outputs(t, [3, 0], q=5, c=3)
    ((rows, cols),) = HungarianMatcher()(out, [t])
    assert dict(zip(cols.tolist(), rows.tolist(), strict=True)) == {0: 3, 1: 0}


def test_matcher_with_an_image_without_pairs() -> None:
    t = _targets()
    empty = {k: v[:0] for k, v in t.items()}
    out = _perfect_outputs(t, [1, 2], q=4, c=3)
    both = {k: torch.cat([v, v]) for k, v in out.items()}
    first, second = HungarianMatcher()(both, [t, empty])
    assert sorted(first[0].tolist()) == [1, 2] and second[0].numel() == 0


def test_losses_vanish_for_perfect_boxes_and_are_positive_otherwise() -> None:
    t = _targets()
    out = _perfect_outputs(t, [2, 4], q=5, c=3)
    crit = SetCriterion(num_obj_classes=3)
    terms = crit.loss_terms(out, [t])
    assert terms["bbox"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["giou"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["obj_ce"].item() < 1e-3 and terms["verb"].item() < 1e-3
    shifted = dict(out, pred_sub_boxes=out["pred_sub_boxes"] + 0.05)
    assert crit.loss_terms(shifted, [t])["bbox"].item() == pytest.approx(2 * 4 * 0.05 / 2, rel=1e-4)


def test_focal_verb_loss_hand_value() -> None:
    # one positive with p = 0.5 and one negative with p = 0.5: (log 2 * 0.25) * 2 / 1 positive
    loss = focal_verb_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(2 * 0.25 * np.log(2), rel=1e-5)


def test_aux_outputs_add_their_losses() -> None:
    t = _targets()
    out = _perfect_outputs(t, [0, 1], q=3, c=3)
    bad = dict(out, pred_sub_boxes=out["pred_sub_boxes"] * 0 + 0.3)
    crit = SetCriterion(num_obj_classes=3)
    alone = crit.loss_terms(dict(out), [t])["bbox"]
    with_aux = crit.loss_terms({**out, "aux_outputs": [bad]}, [t])["bbox"]
    assert with_aux.item() > alone.item() + 0.1
