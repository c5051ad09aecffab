"""CUDA checks (opt in: `pytest -m gpu`): the same library code gives the same answers on a GPU as on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import load_or_skip

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_resolve_device_cuda() -> None:
    from tailorkit.core.device import describe_device, resolve_device

    dev = resolve_device("cuda")
    assert dev.type == "cuda" and "cuda:" in describe_device(dev)
    assert resolve_device("auto").type == "cuda"


def test_efficientnet_cuda_matches_cpu() -> None:
    from tailorkit.assets import efficientnet_lite0_weights, opencv_photo
    from tailorkit.nets import load_efficientnet_lite0, preprocess

    load_or_skip(efficientnet_lite0_weights)
    batch = preprocess([load_or_skip(opencv_photo, name) for name in ("apple.jpg", "baboon.jpg")])
    cpu = load_efficientnet_lite0(device=torch.device("cpu"))
    gpu = load_efficientnet_lite0(device=torch.device("cuda"))
    with torch.inference_mode():
        logits_cpu = cpu(batch)
        logits_gpu = gpu(batch.cuda()).cpu()
        stages = gpu.stages(batch.cuda())
    assert all(s.device.type == "cuda" for s in stages)
    assert torch.equal(logits_cpu.argmax(-1), logits_gpu.argmax(-1))
    assert torch.allclose(logits_cpu.softmax(-1), logits_gpu.softmax(-1), atol=2e-3)


def test_train_on_cuda_matches_cpu_trajectory() -> None:
    from tailorkit.core.seeding import torch_generator
    from tailorkit.core.train import TrainConfig, train

    gen = torch_generator(0, "data")
    x = torch.randn(256, 8, generator=gen)
    y = x @ torch.randn(8, 1, generator=gen)
    data = list(zip(x, y, strict=True))

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])

    config = TrainConfig(steps=30, lr=0.05, batch_size=32, seed=1, optimizer="sgd")
    results = {}
    for name in ("cpu", "cuda"):
        model = nn.Linear(8, 1)
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        result = train(model, loss_fn, data, config, device=torch.device(name), progress=False)
        assert next(model.parameters()).device.type == name
        results[name] = (result.losses, model.weight.detach().cpu())
    assert results["cuda"][0][-1] < 0.2 * results["cuda"][0][0]
    assert torch.allclose(results["cpu"][1], results["cuda"][1], atol=1e-4)
