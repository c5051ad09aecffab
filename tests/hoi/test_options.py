"""Per-variant options (issue 23, item 2): each variant's own frozen dataclass; unknown or unused options are errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tailorkit.cli.main import main
from tailorkit.hoi.config import (
    VARIANT_OPTIONS,
    VARIANTS,
    CascadeOptions,
    HODNOptions,
    ModelConfig,
    SingleOptions,
    variant_options,
)
from tailorkit.hoi.methods import METHODS, build_model

from .conftest import tiny_config


def test_every_variant_has_its_options_and_they_mirror_model_config() -> None:
    assert set(VARIANT_OPTIONS) == set(VARIANTS) == set(METHODS.names())
    flat = {f.name: f for f in dataclasses.fields(ModelConfig)}
    for cls in VARIANT_OPTIONS.values():
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        for f in dataclasses.fields(cls):
            assert f.name in flat, f"{cls.__name__}.{f.name} is not a ModelConfig field"
            assert f.default == flat[f.name].default, f"{cls.__name__}.{f.name}: default differs from ModelConfig's"


def test_unknown_options_are_errors() -> None:
    with pytest.raises(ValueError, match=r"variant 'hodn': unknown options \['dec_layers'\]; expected some of"):
        variant_options("hodn", dec_layers=2)
    with pytest.raises(ValueError, match="variant: expected one of"):
        variant_options("qpic")
    assert variant_options("cascade", pair_layers=3) == CascadeOptions(pair_layers=3, inter_layers=2)


@pytest.mark.parametrize(
    ("variant", "setting", "owners"),
    [
        ("single", {"link": "object"}, "hodn"),
        ("single", {"inter_layers": 3}, "cascade and hodn and cascade_deep and single_deep"),
        ("hodn", {"dec_layers": 2}, "single"),
        ("cascade", {"sg_obj": False}, "hodn"),
    ],
)
def test_unused_options_are_errors(variant: str, setting: dict[str, object], owners: str) -> None:
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"{name}: an option of variant {owners}, unused by variant '{variant}'"):
        ModelConfig(variant=variant, **setting)  # type: ignore[arg-type]


def test_options_are_what_the_variant_reads() -> None:
    assert ModelConfig(variant="cascade", inter_layers=3).options() == CascadeOptions(inter_layers=3)
    assert ModelConfig(variant="hodn", link="pair", sg_obj=False).options() == HODNOptions(link="pair", sg_obj=False)
    with pytest.raises(TypeError, match="has SingleOptions, not HODNOptions"):
        ModelConfig(variant="single").options_as(HODNOptions)
    for variant, decoders in (("single", ["decoder"]), ("cascade", ["pair_decoder", "inter_decoder"])):
        cfg = tiny_config(variant).model
        model = build_model(cfg, 4, 5)
        assert model.options == cfg.options()  # type: ignore[comparison-overlap]
        assert [len(getattr(model, d).layers) for d in decoders] == (
            [cfg.options().dec_layers] if variant == "single" else [2, 2]
        )
    hodn = build_model(dataclasses.replace(tiny_config("hodn").model, human_layers=1, inter_layers=3), 4, 5)
    assert [len(hodn.human_decoder.layers), len(hodn.object_decoder.layers), len(hodn.inter_decoder.layers)] == [
        1,
        2,
        3,
    ]
    assert isinstance(hodn.options, HODNOptions) and not isinstance(hodn.options, SingleOptions)


def test_cli_refuses_an_unused_option_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model: {variant: hodn, backbone: tiny, freeze_backbone: false, d_model: 16, heads: 2}\n")
    out = tmp_path / "run"
    assert main(["hoi", "train", str(cfg), "--out", str(out), "model.variant=single", "model.link=object"]) == 2
    err = capsys.readouterr().err
    assert "link: an option of variant hodn, unused by variant 'single'" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
