"""`tailorkit patch` end to end on tiny Hugging Face folders, and its one-line errors (exit status 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailorkit.cli.main import main
from tests.patching._models import perturb, tiny_bert

TEXTS = ["good film", "bad film", "fine plot", "weak plot"]


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "fine", "weak", "film", "plot"]
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab + [f"x{i}" for i in range(60 - len(vocab))]) + "\n")
    base = tiny_bert()
    ft = perturb(base, 2, only="layer.1")
    for model, name in ((base, "base"), (ft, "ft")):
        model.save_pretrained(tmp_path / name)
        BertTokenizerFast(vocab_file=str(vocab_file)).save_pretrained(tmp_path / name)
    calib = tmp_path / "calib.jsonl"
    calib.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return tmp_path / "base", tmp_path / "ft", calib


def test_patch_command(folders, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, ft, calib = folders
    out = tmp_path / "out"
    argv = [
        "patch",
        "--base",
        str(base),
        "--finetuned",
        str(ft),
        "--calibration",
        str(calib),
        "--density",
        "0.2",
        "--out",
        str(out),
        "--no-progress",
        "compensation_sign=1",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tailored_layers"] == 6 and 0.19 <= summary["patch_fraction_of_tailored_weights"] <= 0.2
    manifest = json.loads((out / "patch" / "manifest.json").read_text())
    assert manifest["config"]["options"]["compensation_sign"] == 1 and manifest["config"]["density"] == 0.2
    from transformers import AutoModel

    AutoModel.from_pretrained(out, local_files_only=True)
    capsys.readouterr()
    # the output exists now: refused without --overwrite, one line, exit 2
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--density", "1.5"], "density"),
        (["--method", "grafting"], "unknown patching method"),
        (["alpha=2"], "alpha"),
        (["--method", "magnitude", "alpha=0.5"], "option 'alpha' is not an option of method 'magnitude'"),
        (["--method", "ties", "options.rescale=false"], "option 'rescale' is not an option of method 'ties'"),
        (["nonsense=1"], "unknown config key"),
    ],
)
def test_bad_settings_exit_2(
    folders, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    base, ft, calib = folders
    argv = [
        "patch",
        "--base",
        str(base),
        "--finetuned",
        str(ft),
        "--calibration",
        str(calib),
        "--out",
        str(tmp_path / "o"),
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_missing_calibration_exit_2(folders, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, ft, _ = folders
    argv = ["patch", "--base", str(base), "--finetuned", str(ft), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "calibration" in capsys.readouterr().err


def test_several_finetuned_folders(folders, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, ft, calib = folders
    out = tmp_path / "multi"
    argv = ["patch", "--base", str(base), "--finetuned", str(ft), "--finetuned", str(ft), "--calibration", str(calib)]
    argv += ["--out", str(out), "--no-progress", "combine=overlap_average"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["patch_fraction"] <= 0.1 and summary["patch_fraction_model"] <= summary["patch_fraction"]
    manifest = json.loads((out / "patch" / "manifest.json").read_text())
    assert manifest["finetuned"] == [str(ft), str(ft)] and manifest["config"]["options"]["combine"] == "overlap_average"
