"""`tailorkit prompts ...`: usage errors exit 2 with one line; a tiny run trains, saves and reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailorkit.cli.main import main


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "run", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["prompts", "run", "coop", "--tasks", "paintings"]) == 2
    assert "unknown" in capsys.readouterr().err
    assert main(["prompts", "frobnicate"]) == 2


def test_tiny_run_saves_prompts(tmp_path: Path, capsys: pytest.CaptureFixture[str], encoder) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "coop.safetensors"
    code = main(
        ["prompts", "run", "coop", "--form", "mt", "--tasks", "digits-mnist,fashion-photo", "--shots", "1",
         "--steps", "2", "--save", str(out)]
    )  # fmt: skip
    assert code == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "test accuracy mean" in text and "trainable parameters: 1536" in text


def test_group_bad_options_exit_2_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "group", "--wrt", "weights"]) == 2
    assert "--wrt" in capsys.readouterr().err
    assert main(["prompts", "group", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["prompts", "group", "--out", str(tmp_path)]) == 2  # a folder, refused before the encoder loads
    err = capsys.readouterr().err
    assert "--out" in err and "folder" in err and len(err.strip().splitlines()) == 1


def test_group_seeds_write_one_entry_per_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str], encoder) -> None:  # type: ignore[no-untyped-def]
    import json

    out = tmp_path / "groups.json"
    code = main(
        ["prompts", "group", "--tasks", "digits-mnist,digits-opencv", "--shots", "1", "--steps", "1", "--seed", "3",
         "--seeds", "2", "--wrt", "prompts", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert [r["seed"] for r in doc["runs"]] == [3, 4] and doc["settings"]["wrt"] == "prompts"
    assert doc["planted"] == [["digits-mnist", "digits-opencv"]]
    for run in doc["runs"]:
        cos = run["affinity_cosine"]
        assert len(cos) == 2 and abs(cos[0][1] - cos[1][0]) < 1e-6 and abs(cos[0][0] - 1) < 1e-5
        # the flag is the bench's scoring of this seed's groups: both tasks together is the planted pair
        assert run["recovered"] == (sorted(map(sorted, run["groups"])) == [["digits-mnist", "digits-opencv"]])
    assert doc["recovered"] == sum(r["recovered"] for r in doc["runs"])
    text = capsys.readouterr().out
    assert text.count("planted pairs recovered: ") == 2 and f"recovered on {doc['recovered']}/2 seeds" in text
