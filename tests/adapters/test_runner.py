from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from tailorkit.adapters.config import BackboneConfig, DataConfig
from tailorkit.adapters.data import read_pascal_context
from tailorkit.adapters.runner import build_model, evaluate, load_run, make_data, save_run, train_model
from tailorkit.cli.main import main
from tailorkit.core.config import save_config

from .conftest import tiny_config


def test_tiny_end_to_end_run_lowers_the_loss() -> None:
    cfg = tiny_config("vmt")
    cfg = replace(cfg, optim=replace(cfg.optim, steps=25, lr=3e-3, warmup_steps=2), data=replace(cfg.data, n_train=8))
    train, _ = make_data(cfg)
    model = build_model(cfg)
    history = train_model(model, train, cfg)["loss"]
    assert np.mean(history[-5:]) < 0.8 * np.mean(history[:5])


def test_save_load_round_trip_and_backbone_check(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config("vmt_lite")
    train, test = make_data(cfg)
    model = build_model(cfg)
    train_model(model, train, cfg)
    save_run(model, cfg, tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["backbone"]["name"] == "vit" and manifest["method"] == "vmt_lite"
    # only trainable tensors (and decoder BN statistics) are saved, never the frozen backbone
    assert not any(name.startswith("encoder.backbone.") for name in manifest["tensors"])
    loaded, _ = load_run(tmp_path / "run")
    x = test.images[:4]
    with torch.no_grad():
        a, b = model.eval()(x), loaded(x)
    for task in a:
        torch.testing.assert_close(a[task], b[task])
    assert evaluate(model, test) == evaluate(loaded, test)
    # a different backbone (another seed of the random ViT) is refused
    manifest["config"]["seed"] = 1
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="backbone mismatch"):
        load_run(tmp_path / "run")


def _fixture(root, size: int = 20) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    (root / "ImageSets" / "Context").mkdir(parents=True)
    (root / "ImageSets" / "Context" / "train.txt").write_text("2008_000001\n2008_000002\n")
    for folder in ("JPEGImages", "semseg/pascal-context", "human_parts", "sal_distill", "normals_distill"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for image_id in ("2008_000001", "2008_000002"):
        Image.fromarray(rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{image_id}.jpg"
        )
        sem = np.zeros((size, size + 4), np.uint8)
        sem[:, : size // 2] = 15
        Image.fromarray(sem).save(root / "semseg/pascal-context" / f"{image_id}.png")
        Image.fromarray(np.full((size, size + 4), 255, np.uint8)).save(root / "human_parts" / f"{image_id}.png")
        Image.fromarray(((sem > 0) * 255).astype(np.uint8)).save(root / "sal_distill" / f"{image_id}.png")
        normals = np.zeros((size, size + 4, 3), np.uint8)
        normals[:, :, 2] = 255  # n = (-1, -1, 1) before renormalisation
        normals[0, 0] = 0  # unlabelled pixel
        Image.fromarray(normals).save(root / "normals_distill" / f"{image_id}.png")


def test_pascal_context_reader_on_a_tiny_fixture(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _fixture(tmp_path)
    data = read_pascal_context(tmp_path, "train", ("semseg", "parts", "saliency", "normals"), 32)
    assert data.images.shape == (2, 3, 32, 32) and data.n_classes == {"semseg": 21, "parts": 7}
    assert set(data.targets["semseg"].unique().tolist()) == {0, 15}
    assert (data.targets["parts"] == 255).all()
    torch.testing.assert_close(data.targets["saliency"], (data.targets["semseg"] > 0).float())
    n = data.targets["normals"]
    assert torch.allclose(n[0, 16, 16], torch.tensor([-1.0, -1.0, 1.0]) / 3**0.5)
    assert n[0, 0, 0].abs().sum() == 0
    with pytest.raises(ValueError, match="id list"):
        read_pascal_context(tmp_path, "val", ("semseg",), 32)
    with pytest.raises(ValueError, match="expected names"):
        read_pascal_context(tmp_path, "train", ("depth",), 32)


def test_cli_train_then_eval(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config("per_task_lora")
    save_config(cfg, tmp_path / "run.yaml")
    out = tmp_path / "run"
    assert main(["adapters", "train", str(tmp_path / "run.yaml"), "--out", str(out), "optim.steps=2"]) == 0
    printed = capsys.readouterr().out
    assert "semseg_miou" in printed and (out / "trainable.safetensors").is_file()
    assert main(["adapters", "eval", str(out)]) == 0
    assert "semseg_miou" in capsys.readouterr().out
    assert main(["adapters", "train", str(tmp_path / "run.yaml"), "method.r=zero"]) == 2
    assert main(["adapters", "eval", str(tmp_path)]) == 2


def test_data_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        DataConfig(image_size=48)
    with pytest.raises(ValueError, match="expected names"):
        DataConfig(tasks=("semseg", "albedo"))
    with pytest.raises(ValueError):
        BackboneConfig(vit_dim=0)
