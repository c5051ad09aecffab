from __future__ import annotations

import math

import pytest
import torch

from tailorkit.adapters.tasks import TaskMeter, delta_m, task_loss

# The published table of the Polyhistor benchmark (as MTLoRA reports it): semseg, parts, saliency mIoU (higher
# is better), normals rmse (lower), printed delta_m. MTL full FT is the one row that does not recompute.
SINGLE = {"seg": 67.21, "parts": 61.93, "sal": 62.35, "normals": 17.97}
LOWER = {"seg": False, "parts": False, "sal": False, "normals": True}
TABLE = {
    "decoders_only": ((65.09, 53.48, 57.46, 20.69), -9.95),
    "adapter": ((69.21, 57.38, 61.28, 18.83), -2.71),
    "bitfit": ((68.57, 55.99, 60.64, 19.42), -4.60),
    "vpt_shallow": ((62.96, 52.27, 58.31, 20.90), -11.18),
    "vpt_deep": ((64.35, 52.54, 58.15, 21.07), -10.85),
    "compacter": ((68.08, 56.41, 60.08, 19.22), -4.55),
    "compacter++": ((67.26, 55.69, 59.47, 19.54), -5.84),
    "lora": ((70.12, 57.73, 61.90, 18.96), -2.17),
    "vl_adapter": ((70.21, 59.15, 62.29, 19.26), -1.83),
    "hyperformer": ((71.43, 60.73, 65.54, 17.77), 2.64),
    "polyhistor": ((70.87, 59.54, 65.47, 17.47), 2.34),
    "mtlora_r16": ((68.19, 58.99, 64.48, 17.03), 1.35),
    "tadformer_r64": ((70.82, 60.45, 65.88, 16.48), 4.24),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_delta_m_recomputes_the_published_table(name: str) -> None:
    values, printed = TABLE[name]
    got = delta_m(dict(zip(SINGLE, values, strict=True)), SINGLE, LOWER)
    assert abs(got - printed) <= 0.02, (name, got, printed)


def test_delta_m_mtl_full_ft_is_the_known_misprint() -> None:
    got = delta_m(dict(zip(SINGLE, (67.56, 60.24, 65.21, 16.64), strict=True)), SINGLE, LOWER)
    assert abs(got - 2.45) <= 0.02 and abs(got - 2.23) > 0.1  # notes: recomputes to +2.45, printed +2.23


def test_delta_m_identity_and_errors() -> None:
    assert delta_m(SINGLE, SINGLE, LOWER) == 0.0
    with pytest.raises(ValueError, match="same metric names"):
        delta_m({"seg": 1.0}, SINGLE, LOWER)
    with pytest.raises(ValueError, match="undefined"):
        delta_m({"a": 1.0}, {"a": 0.0}, {"a": False})


def test_meters_on_exact_and_wrong_predictions() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 8, 8), generator=gen)
    labels[0, 0, 0] = 255
    logits = torch.nn.functional.one_hot(labels.clamp(max=3), 4).permute(0, 3, 1, 2).float()
    meter = TaskMeter("semseg", 4)
    meter.update(logits, labels)
    assert meter.compute()["semseg_miou"] == pytest.approx(100.0)
    wrong = TaskMeter("parts", 4)
    wrong.update(logits.roll(1, dims=1), labels)
    assert wrong.compute()["parts_miou"] == pytest.approx(0.0)

    sal = (torch.rand(2, 8, 8, generator=gen) > 0.5).float()
    meter = TaskMeter("saliency")
    meter.update((sal * 20 - 10).unsqueeze(1), sal)
    out = meter.compute()
    assert out["sal_miou"] == pytest.approx(100.0) and out["sal_maxf"] == pytest.approx(100.0)

    normals = torch.nn.functional.normalize(torch.randn(2, 8, 8, 3, generator=gen), dim=-1)
    meter = TaskMeter("normals")
    meter.update(3 * normals.permute(0, 3, 1, 2), normals)  # the scale does not matter: predictions are normalised
    assert meter.compute()["normals_mean"] == pytest.approx(0.0, abs=0.1)
    meter = TaskMeter("normals")
    meter.update(-normals.permute(0, 3, 1, 2), normals)
    assert meter.compute()["normals_mean"] == pytest.approx(180.0, abs=0.1)


def test_losses_ignore_labels_and_empty_batches() -> None:
    pred = torch.randn(2, 4, 8, 8, requires_grad=True)
    target = torch.full((2, 8, 8), 255)
    loss = task_loss("parts", pred, target)
    assert loss.item() == 0.0 and not math.isnan(loss.item())
    loss.backward()
    target[0, 0, 0] = 2
    manual = torch.nn.functional.cross_entropy(pred[0, :, 0, 0][None], torch.tensor([2]))
    assert task_loss("parts", pred, target).item() == pytest.approx(manual.item(), rel=1e-5)
    # balanced BCE: positives weighted by the negatives' share
    logits, y = torch.zeros(1, 1, 2, 2), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    assert task_loss("saliency", logits, y).item() == pytest.approx(math.log(2) * (0.75 * 1 + 0.25 * 3) / 4)
    with pytest.raises(ValueError, match="unknown task"):
        task_loss("depthx", logits, y)
