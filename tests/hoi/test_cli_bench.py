from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tailorkit.cli.main import main
from tailorkit.core.bench import bench_config, import_bench_module, run_bench
from tailorkit.core.results import validate_bench
from tailorkit.hoi.config import SynthConfig
from tailorkit.hoi.data import make_synth
from tailorkit.hoi.train import load_checkpoint, predict

TINY = """
data: {image_size: 48, n_train: 8, n_test: 4, texture: flat}
model: {variant: hodn, backbone: tiny, freeze_backbone: false, tiny_width: 8, d_model: 16, heads: 2, ffn: 32,
        enc_layers: 1, num_queries: 4}
optim: {steps: 2, batch_size: 4}
"""


def test_train_eval_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    run = tmp_path / "run"
    assert main(["hoi", "train", str(cfg), "--out", str(run), "model.link=pair"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["variant"] == "hodn" and set(metrics["metrics"]) >= {"role_map", "human_ap", "object_map"}
    assert "link: pair" in (run / "config.yaml").read_text()
    assert main(["hoi", "eval", str(run / "model.pt")]) == 0
    assert "role_map:" in capsys.readouterr().out
    data = make_synth(SynthConfig(image_size=48, n_train=1, texture="flat"), 5, "test", n=1)
    assert data.images is not None
    image = tmp_path / "scene.png"
    Image.fromarray(data.images[0]).save(image)
    out = tmp_path / "pred.png"
    assert main(["hoi", "predict", str(image), "--model", str(run / "model.pt"), "--out", str(out), "--top", "2"]) == 0
    with Image.open(out) as drawn:
        assert drawn.size == (384, 384)
    # real-format annotations need a model trained on their vocabulary: a clear error, not a shape crash
    ann = tmp_path / "test_hico.json"
    entry = {
        "file_name": "scene.png",
        "annotations": [{"bbox": [1, 1, 20, 40], "category_id": 1}],
        "hoi_annotation": [],
    }
    ann.write_text(json.dumps([entry]))
    code = main(["hoi", "eval", str(run / "model.pt"), "--annotations", str(ann), "--images", str(tmp_path)])
    assert code == 2 and "the model knows 5 objects and 4 verbs" in capsys.readouterr().err


def test_train_eval_predict_on_hico_format_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real-data path: QPIC-format HICO-DET files with images of any size train an 80-object / 117-verb model,
    which `eval --annotations` then accepts and `predict` applies to a non-square photo (boxes in its pixels)."""
    entries = []
    for i, (w, h) in enumerate([(90, 60), (64, 64), (50, 100), (70, 70)]):
        Image.new("RGB", (w, h), (40 * i, 120, 200 - 40 * i)).save(tmp_path / f"img{i}.png")
        person, ball = [2, 2, w // 2, h - 2], [w // 2, h // 3, w - 2, h // 2]
        entries.append({
            "file_name": f"img{i}.png",
            "annotations": [{"bbox": person, "category_id": 1}, {"bbox": ball, "category_id": 37}],
            "hoi_annotation": [{"subject_id": 0, "object_id": 1, "category_id": 88}],
        })  # fmt: skip
    ann = tmp_path / "hico.json"
    ann.write_text(json.dumps(entries))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    run = tmp_path / "run"
    files = [f"files.{k}={v}" for k, v in (("train_annotations", ann), ("test_annotations", ann),
                                              ("train_images", tmp_path), ("test_images", tmp_path))]  # fmt: skip
    code = main(["hoi", "train", str(cfg), "--out", str(run), "files.format=hico", "files.image_size=48", *files])
    assert code == 0
    assert json.loads((run / "metrics.json").read_text())["metrics"]["role_map"] is not None
    capsys.readouterr()
    assert main(["hoi", "eval", str(run / "model.pt"), "--annotations", str(ann), "--images", str(tmp_path)]) == 0
    assert "role_map:" in capsys.readouterr().out
    assert main(["hoi", "predict", str(tmp_path / "img2.png"), "--model", str(run / "model.pt"), "--top", "1"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("hico_")  # verbs are named by their file id
    # predict resizes to the training side and returns boxes in the photo's pixels: the same as predicting on the
    # resized image and scaling its boxes by (50 / 48, 100 / 48)
    _, model, _, _ = load_checkpoint(run / "model.pt")
    with Image.open(tmp_path / "img2.png") as img:
        photo = np.asarray(img.convert("RGB"))
        small = np.asarray(img.convert("RGB").resize((48, 48), Image.Resampling.BILINEAR))
    direct, resized = predict(model, photo, top_k=3, size=48), predict(model, small, top_k=3)
    scale = np.array([50 / 48, 100 / 48] * 2)
    assert np.allclose(direct.sub_boxes, resized.sub_boxes * scale, atol=1e-3)
    assert np.allclose(direct.obj_boxes, resized.obj_boxes * scale, atol=1e-3)
    (tmp_path / "img3.png").unlink()
    failed = tmp_path / "failed-run"
    assert main(["hoi", "train", str(cfg), "--out", str(failed), "files.format=hico", *files]) == 2
    assert "img3.png: expected a readable image file" in capsys.readouterr().err
    assert not failed.exists()  # bad data is found before anything is written


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    assert main(["hoi", "train", str(cfg), "model.variant=detr"]) == 2
    assert "variant: expected one of" in capsys.readouterr().err
    assert main(["hoi", "eval", str(tmp_path / "none.pt")]) == 2
    assert "expected a file written by `tailorkit hoi train`" in capsys.readouterr().err


TINY_BENCH = ["workers=1", "n_train=8", "n_test=4", "steps=1", "image_size=48", "batch_size=4"]


def test_bench_writes_the_contract_document(tmp_path: Path) -> None:
    import_bench_module("hoi")
    cfg = bench_config("hoi", None, ["seeds=2", *TINY_BENCH])
    doc = run_bench("hoi", quick=True, seed=4, out=tmp_path / "hoi.json", config=cfg)
    validate_bench(json.loads((tmp_path / "hoi.json").read_text()))
    assert [r["method"] for r in doc["rows"]] == [
        "single", "cascade", "single_deep", "cascade_deep", "hodn", "hodn_link_object", "hodn_no_sg_obj",
        "hodn_sg_hum",
    ]  # fmt: skip
    assert [c["id"] for c in doc["claims"]] == [
        "hodn_beats_cascade_deep", "hodn_beats_single_deep", "link_human_beats_object", "sg_obj_object_map",
        "sg_obj_role_map", "sg_hum_control_hurts", "gate-cascade-beats-single",
    ]  # fmt: skip
    for row in doc["rows"]:
        assert set(row["metrics"]) == {"role_map", "human_ap", "object_map", "vcoco_role_ap_s1", "train_seconds"}
        assert len(row["params"]["per_seed"]["role_map"]) == 2
        assert row["params"]["training_seeds"] == [4, 1004]  # bench seed 4 fixes the training seeds too
        assert row["params"]["held_look"] is True
    params = {r["method"]: r["params"]["trainable_params"] for r in doc["rows"]}
    assert abs(params["cascade_deep"] - params["hodn"]) <= 0.01 * params["hodn"]
    for claim in doc["claims"]:
        assert claim["kind"] == "paired" and claim["n"] == 2 and len(claim["values_per_seed"]) == 2
    with pytest.raises(ValueError, match="rows"):
        bench_config("hoi", None, ["rows=[hodn, qpic]"])


def test_bench_decisive_rows_and_one_seed_plan(tmp_path: Path) -> None:
    """The plan: one training seed per call (= the bench seed), the decisive rows alone carry their claims, and
    --budget 2 doubles every step count."""
    from tailorkit.core.bench import BENCHES, scale_budget, with_settings

    import_bench_module("hoi")
    plan = BENCHES.get("hoi").plan
    cfg = bench_config("hoi", None, TINY_BENCH)
    doubled = scale_budget(cfg, plan.budget_fields, 2)
    assert set(plan.budget_fields) == {"steps", "full_steps"}
    for name in plan.budget_fields:
        assert getattr(doubled, name) == 2 * getattr(cfg, name)
    one = with_settings(with_settings(cfg, plan.one_seed), plan.decisive)
    doc = run_bench("hoi", quick=True, seed=7, config=one)
    assert [r["method"] for r in doc["rows"]] == ["hodn", "cascade_deep", "hodn_no_sg_obj"]
    assert {r["params"]["training_seeds"][0] for r in doc["rows"]} == {7}
    assert {c["id"] for c in doc["claims"]} == {"hodn_beats_cascade_deep", "sg_obj_object_map", "sg_obj_role_map"}
    assert set(plan.decisive_claims) == {c["id"] for c in doc["claims"]}
    assert all(c["verdict"] == "undecided" and c["n"] == 1 for c in doc["claims"])  # one seed decides nothing


def _cells(row_values: dict[str, list[float]]) -> dict[str, list[dict[str, object]]]:
    return {
        row: [{"metrics": {m: v for m in ("role_map", "object_map", "human_ap")}} for v in values]
        for row, values in row_values.items()
    }


def test_claims_are_per_seed_paired_differences_decided_by_the_interval() -> None:
    from tailorkit.core.results import merge_claims
    from tailorkit.hoi.bench import ROWS, make_claims

    base = [0.50, 0.52, 0.48, 0.51, 0.49]
    # HODN ahead of the cascade by 0.02 +- a little on every seed: holds; single equal to cascade_deep up to noise
    # in both directions: the gate is undecided; hodn_no_sg_obj ahead of HODN: the sg_obj claims fail.
    rows = {r: base for r in ROWS}
    rows["hodn"] = [v + 0.02 + 0.001 * k for k, v in enumerate(base)]
    rows["cascade_deep"] = base
    rows["single_deep"] = [v + d for v, d in zip(base, [0.01, -0.01, 0.01, -0.01, 0.0], strict=True)]
    rows["hodn_no_sg_obj"] = [v + 0.05 + 0.001 * k for k, v in enumerate(base)]
    claims = {c.id: c for c in make_claims(_cells(rows))}
    assert claims["hodn_beats_cascade_deep"].verdict == "holds"
    assert claims["hodn_beats_cascade_deep"].value == pytest.approx(0.022)
    assert claims["gate-cascade-beats-single"].verdict == "undecided"
    assert claims["sg_obj_object_map"].verdict == "fails" and claims["sg_obj_role_map"].verdict == "fails"
    # the old rule passed sg_obj at a mean drop down to -0.01 and link on any positive mean: a tiny positive mean
    # with a wide spread is now undecided
    rows["hodn_link_object"] = [v + d for v, d in zip(rows["hodn"], [-0.05, 0.05, -0.04, 0.04, -0.001], strict=True)]
    assert {c.id: c for c in make_claims(_cells(rows))}["link_human_beats_object"].verdict == "undecided"
    # one seed per call: each claim carries its single difference, and the runner's merge decides over calls
    per_call = [make_claims(_cells({r: [v[k]] for r, v in rows.items()})) for k in range(5)]
    merged = {c.id: c for c in merge_claims(per_call)}
    assert merged["hodn_beats_cascade_deep"].verdict == "holds" and merged["hodn_beats_cascade_deep"].n == 5
    assert merged["sg_obj_role_map"].verdict == "fails"


@pytest.mark.parametrize("name", ["hodn_synth.yaml", "hodn_hico.yaml"])
def test_shipped_configs_load(name: str) -> None:
    from importlib.resources import files

    from tailorkit.core.config import load_config
    from tailorkit.hoi.config import TrainConfig

    cfg = load_config(TrainConfig, Path(str(files("tailorkit.hoi") / "configs" / name)), [])
    assert cfg.model.variant == "hodn" and cfg.model.link == "human" and cfg.model.sg_obj
    assert (cfg.files.format == "hico") == (name == "hodn_hico.yaml")


def test_train_resumes_from_its_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hoi train` rerun on its own --out continues from OUT/resume.pt: 2 steps, then extended to 4, give the losses
    of an uninterrupted 4-step run bit for bit; a changed training setting is refused in one line (exit 2)."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["hoi", "train", str(cfg), "--out", str(whole), "optim.steps=4"]) == 0
    assert main(["hoi", "train", str(cfg), "--out", str(split), "--checkpoint-every", "1"]) == 0
    assert (split / "resume.pt").is_file()
    assert main(["hoi", "train", str(cfg), "--out", str(split), "optim.steps=4"]) == 0
    docs = [json.loads((run / "metrics.json").read_text()) for run in (whole, split)]
    assert [doc["resumed_from_step"] for doc in docs] == [0, 2]
    assert len(docs[0]["losses"]) == 4 and docs[0]["losses"] == docs[1]["losses"]
    capsys.readouterr()
    assert main(["hoi", "train", str(cfg), "--out", str(split), "optim.steps=4", "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "resume.pt" in err and "lr" in err
