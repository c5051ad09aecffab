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
