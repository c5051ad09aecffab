from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tailorkit.cli.main import main
from tailorkit.core.bench import bench_config, import_bench_module, run_bench
from tailorkit.core.results import validate_bench
from tailorkit.hoi.config import SynthConfig
from tailorkit.hoi.data import make_synth

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


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    assert main(["hoi", "train", str(cfg), "model.variant=detr"]) == 2
    assert "variant: expected one of" in capsys.readouterr().err
    assert main(["hoi", "eval", str(tmp_path / "none.pt")]) == 2
    assert "expected a file written by `tailorkit hoi train`" in capsys.readouterr().err


def test_bench_writes_the_contract_document(tmp_path: Path) -> None:
    import_bench_module("hoi")
    cfg = bench_config(
        "hoi", None, ["seeds=2", "workers=1", "n_train=8", "n_test=4", "steps=1", "image_size=48", "batch_size=4"]
    )
    doc = run_bench("hoi", quick=True, out=tmp_path / "hoi.json", config=cfg)
    validate_bench(json.loads((tmp_path / "hoi.json").read_text()))
    assert [r["method"] for r in doc["rows"]] == [
        "single", "cascade", "hodn", "hodn_link_object", "hodn_no_sg_obj", "hodn_sg_hum",
    ]  # fmt: skip
    assert {c["id"] for c in doc["claims"]} == {
        "hodn_beats_single", "hodn_beats_cascade", "link_human_beats_object", "sg_obj_object_map", "sg_obj_role_map",
        "sg_hum_control_hurts",
    }  # fmt: skip
    for row in doc["rows"]:
        assert set(row["metrics"]) == {"role_map", "human_ap", "object_map", "vcoco_role_ap_s1", "train_seconds"}
        assert len(row["params"]["per_seed"]["role_map"]) == 2
    with pytest.raises(ValueError, match="seeds"):
        bench_config("hoi", None, ["seeds=1"])
