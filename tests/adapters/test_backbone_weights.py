"""Users' own weights for the shape-only backbones (ViT, Swin) load strictly from safetensors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from tailorkit.adapters.backbones import build_backbone, load_backbone_weights
from tailorkit.adapters.runner import build_model
from tailorkit.cli.main import main
from tailorkit.core.config import save_config
from tailorkit.core.errors import InputError

from .conftest import tiny_config

VIT = {"image_size": 32, "vit_dim": 32, "vit_depth": 2, "vit_patch": 8}


def _users_vit_weights(path):  # type: ignore[no-untyped-def]
    """A "trained" ViT: the slot backbone of another seed, every tensor perturbed, saved as safetensors."""
    donor = build_backbone("vit", seed=123, **VIT)
    state = {k: (v + 0.01 * torch.randn_like(v)).contiguous() for k, v in donor.state_dict().items()}
    save_file(state, str(path))
    return state


def test_users_vit_weights_load_strictly_and_exactly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = _users_vit_weights(tmp_path / "vit.safetensors")
    vit = build_backbone("vit", weights=str(tmp_path / "vit.safetensors"), **VIT)
    own = vit.state_dict()
    assert set(own) == set(state)
    assert all(torch.equal(own[k], state[k]) for k in state)
    assert not any(
        torch.equal(own[k], v) for k, v in build_backbone("vit", **VIT).state_dict().items() if v.numel() > 1
    )
    # through a run's config, as `tailorkit adapters train` builds it
    cfg = tiny_config("vmt", backbone="vit")
    model = build_model(replace(cfg, backbone=replace(cfg.backbone, weights=str(tmp_path / "vit.safetensors"))))
    assert all(torch.equal(model.encoder.backbone.state_dict()[k], state[k]) for k in state)


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_a_mismatched_file_is_a_one_line_error(tmp_path, change: str) -> None:  # type: ignore[no-untyped-def]
    state = build_backbone("vit", **VIT).state_dict()
    state = {k: v.clone().contiguous() for k, v in state.items()}
    if change == "missing":
        del state["blocks.1.mlp.fc2.weight"]
        message = "missing key 'blocks.1.mlp.fc2.weight'"
    elif change == "extra":
        state["head.weight"] = torch.zeros(3)
        message = "unexpected key 'head.weight'"
    else:
        state["pos_embed"] = torch.zeros(1, 4, 32)
        message = r"'pos_embed' has shape \(1, 4, 32\), ViT expects \(1, 16, 32\)"
    path = tmp_path / "vit.safetensors"
    save_file(state, str(path))
    target = build_backbone("vit", **VIT)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(InputError, match=message) as err:
        load_backbone_weights(target, path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # nothing half-loaded


def test_cli_reports_bad_weights_with_exit_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    cfg = tiny_config("vmt", backbone="vit")
    save_config(cfg, tmp_path / "run.yaml")
    rc = main(
        [
            "adapters",
            "train",
            str(tmp_path / "run.yaml"),
            "--out",
            str(tmp_path / "run"),
            f"backbone.weights={tmp_path / 'broken.safetensors'}",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "backbone.weights" in err and "\n" not in err
    assert not (tmp_path / "run" / "manifest.json").exists()
