"""Per-method options (issue 23): each method's own dataclass, and every earlier flat form still read the same way:
config files and overrides, run manifests written before (every flat key listed), the bench's variant strings and
the committed bench JSON documents."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from tailorkit.adapters.bench import AdaptersBenchConfig, variant_options
from tailorkit.adapters.config import LEGACY_FLAT_DEFAULTS, MethodConfig, TrainConfig
from tailorkit.adapters.methods import METHODS, LoRAOptions, NoOptions, VMTLiteOptions, VMTOptions
from tailorkit.adapters.selection import parse_variant
from tailorkit.core.config import ConfigError, from_dict, load_config, to_dict

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def _old_dump(name: str, **changed: object) -> dict[str, object]:
    """The `method` section a run manifest held before issue 23: the flat MethodConfig, every key."""
    flat = {k: list(v) if isinstance(v, tuple) else v for k, v in LEGACY_FLAT_DEFAULTS.items()}
    return {"name": name, **flat, **changed}


def test_every_method_declares_a_frozen_options_class() -> None:
    assert len(METHODS) == 11
    for name, method in METHODS.items():
        assert method.options.__dataclass_params__.frozen, name  # type: ignore[attr-defined]
        assert type(MethodConfig(name).options) is method.options
    # no method reads another's options: the union of the old flat config is split, not copied
    assert {f.name for f in fields(LoRAOptions)} == {"lora_rank", "lora_alpha", "lora_targets"}
    assert not {"scale", "learn_scale"} & {f.name for f in fields(VMTLiteOptions)}
    assert METHODS.get("bitfit").options is NoOptions


def test_an_old_run_manifest_reads_as_the_same_method() -> None:
    # what to_dict wrote for a vmt_lite run at r = 4 with lowrank_up, and for a bitfit run (r etc. never read)
    lite = from_dict(TrainConfig, {"method": _old_dump("vmt_lite", r=4, task_module="lowrank_up")}).method
    assert lite.options == VMTLiteOptions(r=4, task_module="lowrank_up")
    assert from_dict(TrainConfig, {"method": _old_dump("bitfit")}).method.options == NoOptions()
    lora = from_dict(TrainConfig, {"method": _old_dump("per_task_lora", lora_rank=2)}).method
    assert lora.options == LoRAOptions(lora_rank=2)
    # an option the method never read, at a value other than the old default, was silently ignored: now an error
    with pytest.raises(ConfigError, match="option 'r' is not an option of adapters method 'bitfit'") as err:
        from_dict(TrainConfig, {"method": _old_dump("bitfit", r=4)})
    assert "its options: none" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="option 'share_mode' is not an option of adapters method 'vmt'"):
        from_dict(TrainConfig, {"method": _old_dump("vmt", share_mode="transpose")})


def test_flat_and_nested_forms_from_files_and_overrides(tmp_path: Path) -> None:
    flat = tmp_path / "flat.yaml"
    flat.write_text("method: {name: vmt, r: 4, task_module: lowrank_up}\n")
    nested = tmp_path / "nested.toml"
    nested.write_text('[method]\nname = "vmt"\n[method.options]\nr = 4\ntask_module = "lowrank_up"\n')
    want = MethodConfig("vmt", VMTOptions(r=4, task_module="lowrank_up"))
    assert load_config(TrainConfig, flat).method == want == load_config(TrainConfig, nested).method
    assert load_config(TrainConfig, None, ["method.r=4", "method.task_module=lowrank_up"]).method == want
    assert (
        load_config(TrainConfig, None, ["method.options.r=4", "method.options.task_module=lowrank_up"]).method == want
    )
    # written back, a config is in the nested form and reads back equal
    config = load_config(TrainConfig, flat)
    assert to_dict(config)["method"] == {"name": "vmt", "options": to_dict(want.options)}
    assert from_dict(TrainConfig, to_dict(config)) == config
    with pytest.raises(ConfigError, match="option 'r' is set twice"):
        load_config(TrainConfig, flat, ["method.options.r=2"])
    with pytest.raises(ConfigError, match="unknown adapters method 'nope'; expected one of"):
        load_config(TrainConfig, None, ["method.name=nope"])


@pytest.mark.parametrize("path", sorted(RESULTS.glob("adapters-*.json")), ids=lambda p: p.name)
def test_committed_bench_documents_read_back_with_the_same_variant_rows(path: Path) -> None:
    doc = json.loads(path.read_text())
    config = from_dict(AdaptersBenchConfig, doc["config"])  # what `tailorkit reproduce --check` does first
    base = MethodConfig("vmt", {"r": config.r})
    rows = {r["method"]: r for r in doc["rows"] if r["params"].get("kind") == "accuracy"}
    for spec in config.variants:
        name, method = parse_variant(spec, base)
        assert rows[name]["params"]["method"] == method.name
        assert variant_options(base, method) == rows[name]["params"]["options"]


def test_with_method_carries_only_shared_options() -> None:
    vmt = MethodConfig("vmt", {"r": 4, "task_module": "linear"})
    assert vmt.with_method("per_task_adapter").options.r == 4
    assert vmt.with_method("vmt_lite").options == VMTLiteOptions(r=4, task_module="linear")
    assert vmt.with_method("bitfit").options == NoOptions()
    with pytest.raises(TypeError, match="has VMTOptions, not LoRAOptions"):
        vmt.options_as(LoRAOptions)
