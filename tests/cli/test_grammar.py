"""The command grammar, checked by walking the parser: `tailorkit <subsystem> <verb>`.

- Every subsystem is a command under its package name; the older names (`patch`, `film`, `register`) are aliases
  that reach the same parser.
- Verbs that mean the same thing have the same name everywhere: `train` (fit a model and save a run), `eval`
  (re-evaluate a saved run), `predict` (apply a saved model to one input), `bench` (the reproduction bench, the same
  as `tailorkit bench <subsystem>`). A training verb under another name is allowed only as an alias of `train`.
- The deviations not fixed yet are listed in KNOWN; a new deviation fails, a fixed one only has to leave the list.
"""

from __future__ import annotations

import argparse
import importlib

import pytest

from tailorkit.cli.main import ALIASES, SUBSYSTEM_COMMANDS, build_parser, main

CANONICAL = {"train", "eval", "predict", "bench"}
# names that mean one of the canonical verbs: only allowed as an alias of it
SYNONYMS = {
    "tune": "train",
    "fit": "train",
    "evaluate": "eval",
    "test": "eval",
    "infer": "predict",
    "benchmark": "bench",
}
# verbs that train a model under another name (the subsystem's own word), allowed only as an alias of `train`
TRAINING_VERBS = {("continual", "run"), ("prompts", "run"), ("active", "tune")}

# Deviations that live in other helpers' folders (fixed on their branches): (package, what)
KNOWN = {
    ("patching", "no verbs"),  # `tailorkit patching --base ...` (patching/cli.py)
    ("registration", "no verbs"),  # `tailorkit registration FIXED MOVING`, `train` by hand (registration/cli.py)
}


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subsystem_parser(name: str) -> argparse.ArgumentParser:
    return _choices(build_parser([name]))[name]


def _verbs(package: str) -> dict[str, list[str]]:
    """verb -> the names it answers to (primary first), from the subsystem's own parser."""
    parser = _subsystem_parser(package)
    by_parser: dict[int, list[str]] = {}
    for name, sub in _choices(parser).items():
        by_parser.setdefault(id(sub), []).append(name)
    return {names[0]: names for names in by_parser.values()}


def deviations() -> set[tuple[str, str]]:
    found = set()
    for package in SUBSYSTEM_COMMANDS:
        verbs = _verbs(package)
        if not verbs:
            found.add((package, "no verbs"))
            continue
        for primary, names in verbs.items():
            if primary in SYNONYMS or (package, primary) in TRAINING_VERBS:
                found.add((package, f"verb {primary!r} should be {SYNONYMS.get(primary, 'train')!r}"))
            for alias in names[1:]:
                if alias in CANONICAL:
                    found.add((package, f"canonical verb {alias!r} is only an alias of {primary!r}"))
    return found


def test_every_subsystem_under_its_package_name() -> None:
    top = _choices(build_parser([]))
    for package in SUBSYSTEM_COMMANDS:
        assert package in top, package
        assert importlib.util.find_spec(f"tailorkit.{package}.cli") is not None
    for alias, package in ALIASES.items():
        assert alias in top and top[alias] is top[package], alias


@pytest.mark.parametrize(("alias", "package"), sorted(ALIASES.items()))
def test_old_names_reach_the_same_parser(alias: str, package: str, capsys: pytest.CaptureFixture[str]) -> None:
    full = _choices(build_parser([alias]))
    assert full[alias] is full[package]
    assert full[package].prog == f"tailorkit {package}"
    for name in (alias, package):  # both spellings print the subsystem's own help
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: tailorkit {package}" in capsys.readouterr().out


def test_verbs_follow_the_grammar() -> None:
    new = deviations() - KNOWN
    assert not new, f"verbs that break the grammar (see the module docstring): {sorted(new)}"


def test_training_verbs_are_train() -> None:
    for package, old in TRAINING_VERBS:
        verbs = _verbs(package)
        assert "train" in verbs and old in verbs["train"], (package, verbs)


def test_subsystem_bench_verbs_match_the_bench_command() -> None:
    """A subsystem's `bench` verb runs the bench registered under its package name."""
    from tailorkit.core.bench import available_benches

    benches = set(available_benches())
    for package in SUBSYSTEM_COMMANDS:
        if "bench" in _verbs(package):
            assert package in benches, package
