from __future__ import annotations

import shutil

import pytest
import torch

from tailorkit.continual import runner
from tailorkit.continual.data import make_benchmark
from tailorkit.continual.methods.cppf import init_prototypes
from tailorkit.continual.runner import load_phase_checkpoint, run_continual
from tailorkit.core.seeding import torch_generator

from .conftest import tiny_config


def test_phase_bookkeeping_and_no_label_leakage(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.Tensor] = []
    real_train = runner.train

    def spy(model, loss_fn, dataset, config, **kwargs):  # type: ignore[no-untyped-def]
        assert isinstance(dataset, runner._Images) and not hasattr(dataset, "labels")
        item = dataset[0]
        assert isinstance(item, torch.Tensor) and item.dtype == torch.uint8  # an image, nothing else
        seen.append(dataset.images)
        return real_train(model, loss_fn, dataset, config, **kwargs)

    monkeypatch.setattr(runner, "train", spy)
    for name in ("finetune", "joint"):
        seen.clear()
        config = tiny_config(name)
        bench = make_benchmark(config.data, config.seed, config.order)
        result = run_continual(config, benchmark=bench)
        assert len(seen) == 3
        for t, images in enumerate(seen):
            classes = bench.phases[t] if name == "finetune" else bench.seen(t)
            assert torch.equal(images, bench.train.subset(classes).images)
        assert [len(row) for row in result.linear] == [1, 2, 3] == [len(row) for row in result.knn]
        assert all(0 <= a <= 1 for a in result.seen_linear + result.seen_knn)
        assert set(result.metrics()) == {
            "final_acc_linear",
            "aia_linear",
            "forgetting_linear",
            "final_acc_knn",
            "aia_knn",
            "forgetting_knn",
            "train_seconds",
        }


def test_same_seed_same_metrics() -> None:
    a = run_continual(tiny_config("cassle"))
    b = run_continual(tiny_config("cassle"))
    assert a.linear == b.linear and a.knn == b.knn


@pytest.mark.parametrize(("strategy", "ssl"), [("cppf", "simclr"), ("cassle", "byol")])
def test_resume_reproduces_metrics(tmp_path, strategy: str, ssl: str) -> None:  # type: ignore[no-untyped-def]
    config = tiny_config(strategy, ssl=ssl)
    whole = run_continual(config, out_dir=tmp_path / "whole")
    part = run_continual(config, out_dir=tmp_path / "part", stop_after_phase=0)
    assert len(part.linear) == 1
    resumed = run_continual(config, out_dir=tmp_path / "part")
    assert resumed.linear == whole.linear and resumed.knn == whole.knn
    # an interrupted phase: its evaluation checkpoint is gone, its training checkpoint remains
    (tmp_path / "part" / "phase2.pt").unlink()
    again = run_continual(config, out_dir=tmp_path / "part")
    assert again.linear == whole.linear
    # a phase whose training never started reruns from the previous phase's state
    shutil.rmtree(tmp_path / "part")
    run_continual(config, out_dir=tmp_path / "part", stop_after_phase=1)
    for path in (tmp_path / "part").glob("phase2*"):
        path.unlink()
    assert run_continual(config, out_dir=tmp_path / "part").knn == whole.knn


def test_resume_refuses_other_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run_continual(tiny_config("finetune"), out_dir=tmp_path, stop_after_phase=0)
    with pytest.raises(ValueError, match="different settings"):
        run_continual(tiny_config("cassle"), out_dir=tmp_path)


def test_reserved_prototypes_stay_fixed_until_their_phase(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tiny_config("cppf")
    run_continual(config, out_dir=tmp_path)
    k, total, dim = 2, 6, config.model.proj_dim
    init = init_prototypes(total, dim, "orthogonal", torch_generator(config.seed, "cppf-prototypes"))
    after = [load_phase_checkpoint(tmp_path / f"phase{t}.pt")["carry"]["prototypes"] for t in range(3)]
    for t, protos in enumerate(after):
        learned, reserved = slice(t * k, (t + 1) * k), slice((t + 1) * k, total)
        assert torch.equal(protos[reserved], init[reserved]), f"phase {t}: reserved prototypes moved"
        assert not torch.allclose(protos[learned], init[learned]), f"phase {t}: current prototypes did not learn"
        for s in range(t):  # earlier slices frozen since their phase
            assert torch.equal(protos[s * k : (s + 1) * k], after[s][s * k : (s + 1) * k])


def test_methods_reduce_to_fine_tuning() -> None:
    """CPPF with every module off, and CaSSLe / PFR with weight 0, train exactly like fine-tuning."""
    import dataclasses

    ft = run_continual(tiny_config("finetune"))
    off = run_continual(tiny_config("cppf", pc=False, esr=False, mtd_past=False, mtd_present=False))
    assert off.linear == ft.linear and off.knn == ft.knn
    for name, weight in (("cassle", "lambda_distill"), ("pfr", "lambda_pfr")):
        config = tiny_config(name)
        config = dataclasses.replace(config, strategy=dataclasses.replace(config.strategy, **{weight: 0.0}))
        assert run_continual(config).knn == ft.knn
    assert run_continual(tiny_config("cassle")).knn != ft.knn  # and the distillation term does change training
