"""Per-method options (issue 23): each registered method declares its own frozen options dataclass; PatchConfig holds
the shared settings plus `options`, which the method's dataclass checks; an option the method lacks is refused.

The regression test pins the patch against digests produced by the code before the split (commit 5d6ddbd, flat
PatchConfig with 22 fields), for the same configs written in the earlier flat form: the numbers did not change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from tailorkit.core.config import ConfigError, from_dict, load_config, to_dict
from tailorkit.patching import (
    METHODS,
    DareOptions,
    MagnitudeOptions,
    MaskOnlyOptions,
    ModelTailorOptions,
    PatchConfig,
    TiesOptions,
    tailor,
)
from tests.conftest import same_float_path_or_skip
from tests.patching._models import perturb, tiny_bert, token_batches

DOCS = Path(__file__).resolve().parents[2] / "docs" / "patching.md"

# sha256 (first 16 hex digits) of the patched state and masks, from the code before options were per method.
OLD_DIGESTS = {
    "bert {}": "262adf51791aa16e",
    'bert {"compensation_sign": 1}': "32b7164296724871",
    'bert {"alpha": 0.5}': "6b8f677115475a60",
    'bert {"sensitivity": "delta"}': "57fb6d0803ecf68f",
    'bert {"scope": "global"}': "a8c2f4c816dcc616",
    'bert {"block_size": 8, "normalization": "none"}': "2c265b440c056a62",
    'bert {"density": 0.3, "percdamp": 0.1}': "0413f0eb57e03d33",
    'bert {"compensate": false}': "b832b9afbd896289",
    'bert {"method": "mask_only"}': "b832b9afbd896289",
    'bert {"alpha": 0.5, "method": "mask_only", "sensitivity": "delta"}': "e43a4222f9049f9f",
    'bert {"method": "magnitude", "topk_scope": "global"}': "df198d2985892d67",
    'bert {"method": "random", "seed": 4, "topk_scope": "global"}': "c4a5fb2a8a1b035b",
    'bert {"dare_rescale": false, "density": 0.3, "method": "dare", "seed": 1}': "b44674bb41f26180",
    'bert {"density": 0.2, "lam": 0.5, "method": "ties", "topk_scope": "global"}': "0721077e6706bbd6",
    'bert {"lam": 0.25, "method": "wise_ft"}': "d7fb4189cb521404",
    'multi {"combine": "overlap_average"}': "0e247a7d48c2e71d",
    'multi {"combine": "joint"}': "91805a1209d74cab",
    'multi {"combine": "joint", "method": "mask_only"}': "3e8ab6dcf362218e",
    'multi {"density": 1.0, "lam": 0.5, "method": "task_arithmetic"}': "d54ecd4f5c1d65cf",
}


def _digest(result) -> str:
    h = hashlib.sha256()
    for k in sorted(result.state):
        h.update(k.encode())
        h.update(result.state[k].detach().contiguous().cpu().numpy().tobytes())
    for k in sorted(result.masks):
        h.update(k.encode())
        h.update(result.masks[k].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _nested(flat: dict) -> PatchConfig:
    """The same settings written the new way: shared fields plus `options`."""
    shared = {f.name for f in dataclasses.fields(PatchConfig)}
    options = {("rescale" if k == "dare_rescale" else k): v for k, v in flat.items() if k not in shared}
    return PatchConfig(**{k: v for k, v in flat.items() if k in shared}, options=options)


def test_patches_are_bit_identical_to_the_flat_config_code() -> None:
    same_float_path_or_skip()  # the digests are of one machine's float path
    bert = tiny_bert()
    ft = perturb(bert, 1, only="layer.1")
    calib = token_batches(4)
    fts = [perturb(bert, 1, only="layer.1"), perturb(bert, 5, only="layer.")]
    cal2 = [token_batches(3, seed=1), token_batches(3, seed=2)]
    for key, expected in OLD_DIGESTS.items():
        kind, text = key.split(" ", 1)
        flat = json.loads(text)
        config = from_dict(PatchConfig, flat)  # the earlier flat form, lifted into `options`
        assert config == _nested(flat), key
        if kind == "bert":
            result = tailor(bert, ft, calib, config, progress=False)
        else:
            result = tailor(bert, fts, cal2, config, progress=False)
        assert _digest(result) == expected, key


def test_every_method_declares_frozen_options_with_defaults() -> None:
    for name, spec in METHODS.items():
        assert dataclasses.is_dataclass(spec.options) and spec.options.__dataclass_params__.frozen, name
        config = PatchConfig(method=name)
        assert type(config.options) is spec.options
        assert config.options_as(spec.options) == spec.options()
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.options.__setattr__("x", 1)
    assert METHODS.get("model_tailor").calibrated and METHODS.get("mask_only").calibrated
    assert not any(spec.calibrated for name, spec in METHODS.items() if name not in ("model_tailor", "mask_only"))


@pytest.mark.parametrize(
    ("method", "option", "allowed"),
    [
        ("magnitude", "alpha", "topk_scope"),
        ("random", "lam", "topk_scope"),
        ("dare", "topk_scope", "rescale"),
        ("ties", "compensation_sign", "lam, topk_scope"),
        ("wise_ft", "dare_rescale", "lam"),
        ("task_arithmetic", "combine", "lam"),
        ("mask_only", "compensate", "alpha, sensitivity"),
        ("model_tailor", "lam", "alpha, sensitivity"),
    ],
)
def test_an_option_of_another_method_is_refused_in_one_line(method: str, option: str, allowed: str) -> None:
    for data in ({"method": method, option: "1"}, {"method": method, "options": {option: "1"}}):
        with pytest.raises(ConfigError) as err:
            from_dict(PatchConfig, data)
        message = str(err.value)
        assert "\n" not in message
        assert repr(option) in message
        assert repr(method) in message and allowed in message


def test_unknown_options_and_mismatched_dataclasses_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"option 'nonsense' is not an option of method 'ties'; its options: lam"):
        PatchConfig(method="ties", options={"nonsense": 1})
    with pytest.raises(ConfigError, match=r"method 'ties' takes TiesOptions .* got MagnitudeOptions"):
        PatchConfig(method="ties", options=MagnitudeOptions())
    with pytest.raises(ConfigError, match=r"method 'mask_only' takes MaskOnlyOptions .* got ModelTailorOptions"):
        PatchConfig(method="mask_only", options=ModelTailorOptions())
    # changing the method keeps no stale options: the old method's dataclass is refused
    with pytest.raises(ConfigError, match="takes DareOptions"):
        dataclasses.replace(PatchConfig(), method="dare")
    assert dataclasses.replace(PatchConfig(), method="dare", options=None).options == DareOptions()
    with pytest.raises(ConfigError, match=r"options\.alpha: expected a number"):
        PatchConfig(options={"alpha": "high"})
    with pytest.raises(ConfigError, match=r"alpha: expected a number in \[0, 1\]"):
        PatchConfig(options={"alpha": 2})
    with pytest.raises(ValueError, match="compensation_sign"):
        ModelTailorOptions(compensation_sign=0)
    with pytest.raises(ConfigError, match="set twice"):
        from_dict(PatchConfig, {"alpha": 0.5, "options": {"alpha": 0.4}})
    with pytest.raises(ValueError, match="unknown patching method 'nope'"):
        PatchConfig(method="nope")
    with pytest.raises(TypeError, match="has TiesOptions, not DareOptions"):
        PatchConfig(method="ties").options_as(DareOptions)


def test_files_and_overrides_flat_or_nested(tmp_path: Path) -> None:
    flat = tmp_path / "flat.yaml"
    flat.write_text("method: model_tailor\ndensity: 0.2\nalpha: 0.5\nscope: layer\n")
    nested = tmp_path / "nested.toml"
    nested.write_text('method = "model_tailor"\ndensity = 0.2\n[options]\nalpha = 0.5\nscope = "layer"\n')
    a = load_config(PatchConfig, flat)
    b = load_config(PatchConfig, nested)
    c = load_config(PatchConfig, None, ["density=0.2", "alpha=0.5", "options.scope=layer"])
    assert a == b == c == PatchConfig(density=0.2, options=ModelTailorOptions(alpha=0.5, scope="layer"))
    # the file's flat option does not fit the method an override picks: refused, naming both
    with pytest.raises(ConfigError, match="option 'alpha' is not an option of method 'magnitude'"):
        load_config(PatchConfig, flat, ["method=magnitude"])
    assert load_config(PatchConfig, None, ["method=dare", "dare_rescale=false"]).options == DareOptions(rescale=False)
    assert load_config(PatchConfig, None, ["method=ties", "lam=0.5"]).options == TiesOptions(lam=0.5)
    # what a manifest records reads back as the same config
    config = PatchConfig(method="mask_only", options={"sensitivity": "delta"})
    assert from_dict(PatchConfig, to_dict(config)) == config
    assert type(config.options) is MaskOnlyOptions


def test_docs_list_every_methods_options() -> None:
    """docs/patching.md's "Method options" table lists each option with exactly the methods that have it."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### Method options") :]
    section = section[: section.index("\n#")]
    documented = set()
    for line in section.splitlines():
        m = re.match(r"\| `(\w+)` \| ([\w, ]+) \| ", line)
        if m:
            documented |= {(method.strip(), m.group(1)) for method in m.group(2).split(",")}
    declared = {(name, f.name) for name, spec in METHODS.items() for f in dataclasses.fields(spec.options)}
    assert documented == declared


def test_joint_mask_only_uses_no_compensation(bert_pair) -> None:
    """mask_only is Model Tailor's selection with compensate=False, whatever the combine."""
    base, ft, calib = bert_pair
    mask = tailor(base, ft, calib, PatchConfig(method="mask_only", density=0.2), progress=False)
    plain = tailor(base, ft, calib, PatchConfig(density=0.2, options={"compensate": False}), progress=False)
    assert all(torch.equal(mask.state[k], plain.state[k]) for k in mask.state)
