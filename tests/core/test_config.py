from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tailorkit.core.config import ConfigError, load_config, parse_overrides, save_config, to_dict


@dataclass(frozen=True)
class Model:
    width: int = 32
    activation: Literal["relu", "gelu"] = "relu"


@dataclass(frozen=True)
class Experiment:
    lr: float = 1e-3
    steps: int = 100
    name: str = "run"
    use_amp: bool = False
    layers: tuple[int, ...] = (1, 2)
    limit: int | None = None
    model: Model = field(default_factory=Model)

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"steps: expected a positive integer, got {self.steps}")


def test_defaults_file_and_overrides_stack(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("lr: 0.01\nmodel:\n  width: 64\n")
    cfg = load_config(Experiment, path, ["steps=5", "--model.activation=gelu", "layers=3,4,5", "use_amp=yes"])
    assert cfg == Experiment(lr=0.01, steps=5, use_amp=True, layers=(3, 4, 5), model=Model(64, "gelu"))


def test_toml_file_and_none(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('name = "t"\nlimit = 7\n[model]\nwidth = 8\n')
    assert load_config(Experiment, path) == Experiment(name="t", limit=7, model=Model(8))
    assert load_config(Experiment, path, ["limit=none"]).limit is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stpes=3"], "unknown config key 'stpes'; valid keys: lr, steps"),
        (["model.depth=3"], "unknown config key 'model.depth'"),
        (["steps=three"], "steps: expected an integer, got 'three'"),
        (["use_amp=maybe"], "use_amp: expected true or false"),
        (["model.activation=tanh"], "model.activation: expected one of 'relu', 'gelu'"),
        (["steps=0"], "steps: expected a positive integer, got 0"),
        (["lr"], "expected key=value"),
    ],
)
def test_bad_settings_name_the_problem(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(Experiment, None, overrides)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Experiment, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="could not be parsed"):
        load_config(Experiment, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Experiment, listy)
    ini = tmp_path / "x.ini"
    ini.write_text("a=1")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.toml"):
        load_config(Experiment, ini)


def test_save_load_round_trip(tmp_path: Path) -> None:
    cfg = Experiment(lr=0.5, layers=(9,), limit=3, model=Model(16, "gelu"))
    path = save_config(cfg, tmp_path / "cfg.yaml")
    assert load_config(Experiment, path) == cfg
    assert to_dict(cfg)["model"] == {"width": 16, "activation": "gelu"}


def test_parse_overrides_nesting_conflict() -> None:
    assert parse_overrides(["a.b=1", "a.c=2", "d=x=y"]) == {"a": {"b": "1", "c": "2"}, "d": "x=y"}
    with pytest.raises(ConfigError, match="both as a value and as a section"):
        parse_overrides(["a=1", "a.b=2"])


def test_shared_validators_name_the_setting_and_the_expected_form() -> None:
    from tailorkit.core.config import check_int_at_least, check_number_at_least

    check_int_at_least("steps", 3, 1)
    check_number_at_least("lr", 0.0)
    for bad in (0, True, 2.0, "3"):
        with pytest.raises(ValueError, match=r"steps: expected an int >= 1, got"):
            check_int_at_least("steps", bad, 1)
    for bad in (-1e-9, float("nan"), float("inf"), False, "1"):
        with pytest.raises(ValueError, match=r"lr: expected a finite number >= 0, got"):
            check_number_at_least("lr", bad)


def test_options_as_returns_the_method_options_and_refuses_another_class() -> None:
    from dataclasses import dataclass

    from tailorkit.core.config import options_as

    @dataclass(frozen=True)
    class A:
        x: int = 1

    @dataclass(frozen=True)
    class B(A):
        pass

    assert options_as("m", A(2), A).x == 2
    with pytest.raises(TypeError, match="method 'm' has A, not B"):
        options_as("m", A(), B)
    with pytest.raises(TypeError, match="has B, not A"):  # exact class: a subclass is another method's options
        options_as("m", B(), A)
