"""Who decides whether a progress bar shows: the caller's False, then TAILORKIT_PROGRESS, then the caller or a tty."""

from __future__ import annotations

import pytest

from tailorkit.core.progress import progress_enabled


@pytest.mark.parametrize(
    ("env", "explicit", "expected"),
    [
        ("0", True, False),  # the environment silences bars a library call asked for
        ("0", None, False),
        ("1", None, True),
        ("1", False, False),  # an explicit False always wins
        (None, True, True),
        (None, False, False),
    ],
)
def test_progress_enabled(monkeypatch: pytest.MonkeyPatch, env: str | None, explicit: bool | None, expected: bool):
    if env is None:
        monkeypatch.delenv("TAILORKIT_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("TAILORKIT_PROGRESS", env)
    assert progress_enabled(explicit) is expected
