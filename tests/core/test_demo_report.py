"""The demo report ends each part with the command that runs it on the user's own files."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from tailorkit.cli.main import ALIASES, build_parser
from tailorkit.core.bench import SUBSYSTEMS
from tailorkit.core.demo import OWN_DATA
from tailorkit.core.report import DemoSection, write_demo_report


def test_every_subsystem_has_an_own_data_command() -> None:
    assert set(OWN_DATA) == set(SUBSYSTEMS) - {"selfcheck"}  # selfcheck checks the machinery: no user files


@pytest.mark.parametrize("name", sorted(OWN_DATA))
def test_own_data_commands_parse(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command is valid for today's parser (no unknown option, required arguments present)."""
    argv = shlex.split(OWN_DATA[name])
    assert argv[0] == "tailorkit"
    argv = argv[1:]
    parser = build_parser(argv)
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as err:  # the parser's one-line error
        pytest.fail(f"{OWN_DATA[name]!r} does not parse (exit {err.code})")
    assert ALIASES.get(args.command, args.command) == name
    assert all("=" in a for a in extra) and (not extra or hasattr(args, "overrides")), extra
    assert callable(args.func)


def test_the_report_ends_each_part_with_its_command(tmp_path: Path) -> None:
    sections = [
        DemoSection("films", "a film", own_data="tailorkit films run <mine>.toml --out run.h5", docs="docs/films.md"),
        DemoSection("selfcheck", "the machinery"),
    ]
    page = write_demo_report(sections, tmp_path, {}).read_text()
    films, selfcheck = page.index("<h2>films</h2>"), page.index("<h2>selfcheck</h2>")
    command = page.index("<code>tailorkit films run &lt;mine&gt;.toml --out run.h5</code>")  # escaped
    assert films < page.index("docs/films.md") < command < selfcheck
    assert page.count("On your own files") == 1  # a part without one says nothing


def test_run_demo_fills_the_command_from_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tailorkit.core.demo as demo
    from tailorkit.core.registry import Registry

    fake: Registry[Any] = Registry("demo")
    fake.register("films")(lambda out, seed, device: DemoSection("films", "toy"))
    fake.register("selfcheck")(lambda out, seed, device: DemoSection("selfcheck", "toy"))
    monkeypatch.setattr(demo, "DEMOS", fake)
    monkeypatch.setattr(demo, "load_subsystems", lambda kind: None)
    lines: list[str] = []
    monkeypatch.setattr("tailorkit.core.progress.status", lines.append)
    index, failures = demo.run_demo(tmp_path)
    page = index.read_text()
    assert not failures and "tailorkit films run my_film.toml --out run.h5" in page
    assert page.count("On your own files") == 1
    assert lines[0] == "demo 1/2: selfcheck" and lines[1].startswith("demo 2/2: films (about ")  # count and ETA
