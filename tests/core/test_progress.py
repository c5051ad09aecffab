"""The one progress policy: bars on a terminal by default, never in a log file; --no-progress and
TAILORKIT_PROGRESS=0 switch them off; a caller's False always wins. Tested by monkeypatching, never by timing."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest

from tailorkit.core.progress import format_duration, parts, progress_enabled


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "env", "explicit", "expected"),
    [
        (True, None, None, True),  # a terminal: bars by default
        (True, None, True, True),
        (False, None, None, False),  # a log file or pipe: none
        (False, None, True, False),  # a caller's True no longer forces bars into a log file
        (True, "0", None, False),  # TAILORKIT_PROGRESS=0 silences them, on a terminal too
        (True, "0", True, False),
        (True, "off", None, False),
        (True, "", None, False),
        (False, "1", None, True),  # TAILORKIT_PROGRESS=1 asks for them in a log
        (True, None, False, False),  # an explicit False always wins
        (False, "1", False, False),
    ],
)
def test_progress_policy(
    monkeypatch: pytest.MonkeyPatch, tty: bool, env: str | None, explicit: bool | None, expected: bool
) -> None:
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    if env is None:
        monkeypatch.delenv("TAILORKIT_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("TAILORKIT_PROGRESS", env)
    assert progress_enabled(explicit) is expected


def test_bars_follow_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """track/bar draw on a terminal and write nothing at all into a log file."""
    from tailorkit.core.progress import bar, track

    monkeypatch.delenv("TAILORKIT_PROGRESS", raising=False)
    for tty in (True, False):
        stream = _Stream(tty)
        monkeypatch.setattr(sys, "stderr", stream)
        assert list(track(range(3), "loop", enabled=True)) == [0, 1, 2]
        with bar("manual", total=2) as b:
            b.update(2)
        assert ("loop" in stream.getvalue() and "manual" in stream.getvalue()) is tty
        assert tty or stream.getvalue() == ""


def test_core_train_bar_follows_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """core.train's own tqdm bar asks the same policy (it used to draw whenever progress=True)."""
    import inspect

    import tailorkit.core.train as train

    source = inspect.getsource(train._train)
    assert "progress_enabled(progress)" in source


def _clock(times: list[float]) -> Iterator[float]:
    yield from times


def test_parts_count_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    import tailorkit.core.progress as progress

    lines: list[str] = []
    monkeypatch.setattr(progress, "status", lines.append)
    ticks = _clock([0.0, 60.0, 180.0, 300.0])  # start, before part 2, before part 3, at the end
    seen = list(parts(["anatomy", "video", "hoi"], "demo", clock=lambda: next(ticks)))
    assert seen == ["anatomy", "video", "hoi"]
    assert lines == [
        "demo 1/3: anatomy",
        "demo 2/3: video (about 2.0 min left)",  # 60 s for 1 part, 2 parts left
        "demo 3/3: hoi (about 1.5 min left)",  # 180 s for 2 parts, 1 left
        "demo: 3/3 done in 5.0 min",
    ]
    lines.clear()
    assert list(parts([], "demo", clock=lambda: 0.0)) == [] and lines == []


@pytest.mark.parametrize(("seconds", "text"), [(5, "5 s"), (89, "89 s"), (150, "2.5 min"), (2 * 3600, "2.0 h")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
