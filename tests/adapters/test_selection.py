"""Choosing on validation scenes: disjoint scene streams, early stopping, the tuned reference and variants in the
bench (tiny settings; the bench runs here take seconds)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from tailorkit.adapters import data as data_module
from tailorkit.adapters import selection
from tailorkit.adapters.config import MethodConfig
from tailorkit.adapters.data import SCENE_STREAMS, make_data, make_split, scene_seed
from tailorkit.adapters.methods import LoRAOptions, VMTOptions
from tailorkit.adapters.runner import build_model, train_model
from tailorkit.adapters.selection import EarlyStopping, fit_with_early_stopping, parse_variant, validation_loss
from tailorkit.cli.main import main
from tailorkit.core.results import load_bench

from .conftest import tiny_config
from .test_bench import TINY


def test_scene_streams_are_disjoint_across_every_pair_of_run_seeds() -> None:
    seeds = range(-20, 2100)
    streams = {split: {scene_seed(s, split) for s in seeds} for split in SCENE_STREAMS}
    for a in SCENE_STREAMS:
        for b in SCENE_STREAMS:
            if a != b:
                assert not streams[a] & streams[b], (a, b)
    # train and test are the streams make_data always used (1000 s and 1000 s + 1): the default data is unchanged
    assert scene_seed(7, "train") == 7000 and scene_seed(7, "test") == 7001
    with pytest.raises(ValueError, match="split: expected one of train, test, val, tune"):
        scene_seed(0, "holdout")


def test_val_scenes_are_new_scenes_and_make_data_is_unchanged() -> None:
    cfg = tiny_config()
    train, test = make_data(cfg)
    assert torch.equal(train.images, make_split(cfg, "train").images)
    assert torch.equal(test.images, make_split(cfg, "test").images)
    val, tune = make_split(cfg, "val"), make_split(cfg, "tune")
    assert len(val) == len(tune) == cfg.data.n_test
    for other in (train, test, tune):
        assert not any(torch.equal(v, o) for v in val.images for o in other.images)


def test_early_stopping_keeps_the_best_validation_checkpoint_of_a_toy_curve() -> None:
    curve = [(25, 5.0), (50, 3.0), (75, 2.5), (100, 2.6), (125, 1.9), (150, 1.9), (175, float("nan")), (200, 3.0)]
    stopper = EarlyStopping()
    news = [stopper.update(step, loss, {"w": torch.tensor([float(step)])}) for step, loss in curve]
    assert stopper.best_step == 125 and stopper.best_loss == 1.9  # the tie at 150 and the NaN do not replace it
    assert stopper.best_state is not None and float(stopper.best_state["w"]) == 125.0
    assert news == [True, True, True, False, True, False, False, False]
    assert [s for s, _ in stopper.history] == [s for s, _ in curve]


def test_state_is_copied_when_saved() -> None:
    stopper = EarlyStopping()
    w = torch.zeros(2)
    stopper.update(1, 1.0, {"w": w})
    w += 1  # training goes on in place
    assert stopper.best_state is not None and torch.equal(stopper.best_state["w"], torch.zeros(2))


def test_fit_with_early_stopping_restores_the_best_checkpoint(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config("vmt", backbone="vit")
    cfg = replace(cfg, optim=replace(cfg.optim, steps=6, lr=0.05))
    train, _ = make_data(cfg)
    tune = make_split(cfg, "tune")
    # the states after every step of the same (deterministic) fit
    states: dict[int, dict[str, torch.Tensor]] = {}
    train_model(
        build_model(cfg), train, cfg, on_step=lambda done, m: states.update({done: copy.deepcopy(m.state_dict())})
    )
    # a toy validation curve with its minimum at step 4 of 6
    curve = iter([3.0, 1.0, 2.0])
    monkeypatch.setattr(selection, "validation_loss", lambda m, data: next(curve))
    model = build_model(cfg)
    stopper = fit_with_early_stopping(model, train, tune, cfg, eval_every=2)
    assert stopper.history == [(2, 3.0), (4, 1.0), (6, 2.0)] and stopper.best_step == 4
    got = model.state_dict()
    assert all(torch.equal(got[k], states[4][k]) for k in got)
    assert not all(torch.equal(got[k], states[6][k]) for k in got)


def test_fit_with_early_stopping_on_real_tune_scenes() -> None:
    cfg = tiny_config("vmt", backbone="vit")
    cfg = replace(cfg, optim=replace(cfg.optim, steps=4))
    train, _ = make_data(cfg)
    tune = make_split(cfg, "tune")
    model = build_model(cfg)
    stopper = fit_with_early_stopping(model, train, tune, cfg, eval_every=3)
    assert [s for s, _ in stopper.history] == [3, 4]
    assert stopper.best_loss == min(loss for _, loss in stopper.history)
    assert validation_loss(model, tune) == pytest.approx(stopper.best_loss, rel=1e-6)


def test_evaluations_during_training_do_not_change_the_fit() -> None:
    cfg = tiny_config("vmt", backbone="vit")
    train, test = make_data(cfg)
    plain, watched = build_model(cfg), build_model(cfg)
    train_model(plain, train, cfg)

    def on_step(done: int, m) -> None:  # type: ignore[no-untyped-def]
        validation_loss(m, test)
        m.train()

    train_model(watched, train, cfg, on_step=on_step)
    a, b = plain.state_dict(), watched.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_parse_variant() -> None:
    name, cfg = parse_variant("vmt:task_module=lowrank_up+placement=conv", MethodConfig("vmt", {"r": 4}))
    assert name == "vmt:task_module=lowrank_up+placement=conv"
    options = cfg.options_as(VMTOptions)
    assert (cfg.name, options.task_module, options.placement, options.r) == ("vmt", "lowrank_up", "conv", 4)
    assert parse_variant("shared_adapter")[1].name == "shared_adapter"
    # the bench's width carries over to every method that has one; the others get their own defaults
    lora = parse_variant("per_task_lora:lora_rank=2", MethodConfig("vmt", {"r": 4}))[1]
    assert lora.options == LoRAOptions(lora_rank=2)
    assert parse_variant("per_task_adapter", MethodConfig("vmt", {"r": 4}))[1].options.r == 4
    for bad, message in (
        ("vmtx:r=4", "with a method from"),
        ("vmt:r", "expected KEY=VALUE items"),
        ("vmt:name=bitfit", "option 'name' is not an option of adapters method 'vmt'"),
        ("per_task_adapter:placement=conv", "option 'placement' is not an option of adapters method"),
        ("bitfit:r=4", "its options: none"),
        ("vmt:r=4+budget_pct=1", "r: unused by vmt when budget_pct is set"),
    ):
        with pytest.raises(ValueError, match=message) as err:
            parse_variant(bad)
        assert "\n" not in str(err.value)


def test_bench_on_validation_scenes_never_renders_a_test_scene(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rendered: list[int] = []
    render = data_module.render_scenes

    def spy(n, size, seed, *args, **kwargs):  # type: ignore[no-untyped-def]
        rendered.append(seed)
        return render(n, size, seed, *args, **kwargs)

    monkeypatch.setattr(data_module, "render_scenes", spy)
    out = tmp_path / "val.json"
    args = [a for a in TINY if not a.startswith(("methods", "cost_"))]
    args += [
        "methods=single_task_full_ft,vmt",
        "cost_methods=",
        "workers=1",
        "split=val",
        "variants=vmt:task_module=lowrank_up,vmt:placement=conv+task_module=lowrank_up,vmt:budget_pct=2",
        "reference=tuned",
        "reference_lrs=1e-4,1e-3",
        "reference_eval_every=1",
    ]
    assert main(["bench", "adapters", "--quick", "--seed", "3", "--out", str(out), *args]) == 0
    assert rendered and all(
        seed % 1000 in (SCENE_STREAMS["train"], SCENE_STREAMS["val"], SCENE_STREAMS["tune"]) for seed in rendered
    )
    assert scene_seed(3, "test") not in rendered and scene_seed(3, "val") in rendered
    doc = load_bench(out)
    rows = {r["method"]: r for r in doc["rows"]}
    assert list(rows) == [
        "single_task_full_ft",
        "vmt",
        "vmt:task_module=lowrank_up",
        "vmt:placement=conv+task_module=lowrank_up",
        "vmt:budget_pct=2",
    ]
    assert all(r["params"]["split"] == "val" for r in rows.values())
    assert rows["vmt:task_module=lowrank_up"]["params"]["options"] == {"task_module": "lowrank_up"}
    assert rows["vmt:budget_pct=2"]["params"]["method"] == "vmt"
    assert (
        rows["vmt:task_module=lowrank_up"]["metrics"]["trainable_params"] > rows["vmt"]["metrics"]["trainable_params"]
    )
    (run,) = doc["extra"]["reference"]["runs"]
    assert run["seed"] == 3 and run["lr"] == min((1e-4, 1e-3), key=lambda lr: run["tune_loss"][f"{lr:g}"])
    # the kept step is the lowest tune loss of the chosen rate's recorded evaluations (early stopping restores it)
    steps, losses = zip(*run["tune_history"], strict=True)
    assert run["best_step"] == steps[losses.index(min(losses))]
    assert run["tune_loss"][f"{run['lr']:g}"] == round(min(losses), 6)
    ref = rows["single_task_full_ft"]
    assert ref["params"]["reference"] == "tuned" and ref["params"]["reference_lrs"] == [1e-4, 1e-3]
    assert ref["metrics"]["reference_lr"] == run["lr"] and ref["metrics"]["reference_best_step"] == run["best_step"]
    assert rows["single_task_full_ft"]["metrics"]["delta_m"] == 0.0


def test_default_bench_rows_carry_no_new_fields(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "default.json"
    args = [a for a in TINY if not a.startswith(("methods", "cost_"))]
    args += ["methods=single_task_full_ft,vmt", "cost_methods=", "workers=1"]
    assert main(["bench", "adapters", "--quick", "--out", str(out), *args]) == 0
    doc = load_bench(out)
    for row in doc["rows"]:
        assert set(row["params"]) == {"kind", "seeds", "backbone_passes"}
    assert not {"split", "variants", "reference"} & set(doc["extra"])


def test_several_variants_of_one_method_are_refused_on_test_scenes(capsys) -> None:  # type: ignore[no-untyped-def]
    args = [*TINY, "variants=vmt:task_module=linear,vmt:task_module=gate"]
    assert main(["bench", "adapters", "--quick", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "expected them on split=val" in err and "\n" not in err


def test_new_settings_at_their_defaults_keep_the_saved_evidence_parts_reusable() -> None:
    import hashlib
    import json

    from tailorkit.adapters.bench import AdaptersBenchConfig
    from tailorkit.core.bench import _part_key
    from tailorkit.core.config import to_dict

    cfg = replace(AdaptersBenchConfig(), seeds_full=1)
    before = {k: v for k, v in to_dict(cfg).items() if k not in AdaptersBenchConfig.part_key_omit_at_default}
    settings = json.dumps(before, sort_keys=True, default=str)
    digest = hashlib.sha256(f"adapters|quick|0|cpu|{settings}".encode()).hexdigest()[:16]
    cpu = torch.device("cpu")
    assert _part_key("adapters", cfg, "quick", 0, cpu) == f"adapters-quick-seed0-{digest}"
    for changed in (replace(cfg, split="val"), replace(cfg, reference="tuned"), replace(cfg, variants=("vmt",))):
        assert _part_key("adapters", changed, "quick", 0, cpu) != f"adapters-quick-seed0-{digest}"
