"""The command line: help everywhere, one-line usage errors with status 2, asset verification exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tailorkit.assets.base import tailorkit_home
from tailorkit.cli.main import ALIASES, build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser([])
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)  # type: ignore[arg-type]


def test_console_script_help() -> None:
    exe = Path(sys.executable).parent / "tailorkit"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "reproduce" in result.stdout and "assets" in result.stdout


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: tailorkit " + ALIASES.get(command, command) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["--version-please"], "error:"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["bench", "selfcheck", "--seed", "x"], "argument --seed: invalid int value"),
        (["bench", "no-such-bench"], "unknown bench 'no-such-bench'; expected one of"),
        (["bench", "selfcheck", "--bogus=1"], "unknown config key 'bogus'; valid keys:"),
        (["bench", "selfcheck", "photo_tolerance=abc"], "photo_tolerance: expected a number"),
        (["assets", "verify", "no-such-asset"], "unknown asset 'no-such-asset'"),
        (["reproduce", "--only", "nope"], "unknown bench 'nope'"),
        (["demo", "--device", "tpu"], "expected one of auto, cpu, cuda or cuda:N, got 'tpu'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1, f"expected a one-line error, got {err!r}"


def test_assets_verify_names_the_missing_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tailorkit_home() / "debian"
    if not (real / "fortunes").is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI installs every asset, but the Debian assets are missing")
        pytest.skip("Debian assets not installed: run tailorkit assets install")
    # A cache that has every Debian package but one: fortunes' folder is removed.
    (tmp_path / "debian").mkdir()
    for package in real.iterdir():
        if package.name != "fortunes" and not package.name.startswith("."):
            (tmp_path / "debian" / package.name).symlink_to(package)
    monkeypatch.setenv("TAILORKIT_HOME", str(tmp_path))
    assert main(["assets", "verify", "--fast"]) == 1
    captured = capsys.readouterr()
    assert "FAIL fortunes" in captured.out and "run: tailorkit assets install fortunes" in captured.out
    assert "1 of" in captured.err and "fortunes" in captured.err
    assert "ok   wordnet" in captured.out


def test_bench_list_and_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    assert "selfcheck" in capsys.readouterr().out.split()
    out = tmp_path / "x.json"
    doc_path = tmp_path / "cfg.yaml"
    doc_path.write_text("photos: [apple.jpg]\nparts: [vision]\n")
    # The bench runs with a config file and an override; the contract JSON lands where asked.
    argv = ["bench", "selfcheck", "--quick", "--config", str(doc_path), "--out", str(out), "--seed", "1"]
    code = main([*argv, "--photo_tolerance=0.2"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["subsystem"] == "selfcheck" and doc["mode"] == "quick" and doc["seed"] == 1
    assert doc["config"]["photos"] == ["apple.jpg"] and doc["config"]["photo_tolerance"] == 0.2
    assert [row["method"] for row in doc["rows"]] == ["efficientnet-lite0"]
    assert doc["rows"][0]["params"]["predicted"] == {"apple.jpg": "Granny Smith"}


def test_python_m_tailorkit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tailorkit", "--version"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.startswith("tailorkit ")
    bad = subprocess.run([sys.executable, "-m", "tailorkit", "frobnicate"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_py_typed_is_package_data() -> None:
    import tomllib

    import tailorkit

    assert (Path(tailorkit.__file__).parent / "py.typed").is_file()
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["tailorkit"]


def test_no_progress_switches_bars_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import tailorkit.cli.demo as demo
    from tailorkit.core.progress import progress_enabled

    class Terminal:
        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    seen = []
    monkeypatch.delenv("TAILORKIT_PROGRESS", raising=False)
    monkeypatch.setattr(demo, "run", lambda args: seen.append(progress_enabled(True)) or 0)
    monkeypatch.setattr("sys.stderr", Terminal())
    assert main(["demo"]) == 0 and seen == [True]  # a terminal: bars
    assert main(["--no-progress", "demo"]) == 0 and seen == [True, False]
    assert main(["demo", "--no-progress"]) == 0 and seen == [True, False, False]  # after the command too
    assert "TAILORKIT_PROGRESS" not in os.environ  # the caller's environment is given back
    monkeypatch.setenv("TAILORKIT_PROGRESS", "1")
    assert main(["--no-progress", "demo"]) == 0 and seen[-1] is False
    assert os.environ["TAILORKIT_PROGRESS"] == "1"


def test_global_no_progress_reaches_commands_with_their_own_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """argparse lets a subcommand's `--no-progress` default (False) overwrite the global flag; main restores it."""
    import tailorkit.films.cli as films

    seen = []
    monkeypatch.setattr(films, "cmd_run", lambda args: seen.append(args.no_progress) or 0)
    assert main(["--no-progress", "films", "run", "x.yaml"]) == 0 and seen == [True]


def test_help_points_at_no_file_outside_the_package() -> None:
    """examples/ is not in the wheel: no command's help or message may send a user there."""
    src = Path(__file__).parents[2] / "src" / "tailorkit"
    offenders = [
        str(p.relative_to(src))
        for p in [*src.glob("*/cli.py"), *src.glob("cli/*.py")]
        if re.search(r"(?<![\w/])examples/", p.read_text(encoding="utf-8"))
    ]
    assert not offenders
