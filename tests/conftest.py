"""Shared fixtures: real offline assets, skipped (with the install command) only when absent.

CI installs every asset (`make test` runs `tailorkit assets install` first), so there these tests run, not skip.
"""

from __future__ import annotations

import locale
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TAILORKIT_PROGRESS", "0")


def load_or_skip(loader: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an asset locator; skip the test with its install command when the asset is not installed."""
    from tailorkit.assets import AssetMissing

    try:
        return loader(*args, **kwargs)
    except AssetMissing as err:
        if os.environ.get("CI"):
            raise  # CI installs every asset: a missing one there is a failure, not a skip
        pytest.skip(str(err))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test, restored afterwards. Subsystems with tiny convolutions use it (autouse in their
    conftest): they gain nothing from a second thread, and spin-waiting threads on a busy 2-core machine multiply the
    time (about 10x measured on the active tests)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def restore_locale() -> Iterator[None]:
    """Put the C locale back after every test: a native library (the registration peers load ITK / ANTs) can switch
    it to "C", after which Python's default text encoding is ASCII and every later test reading UTF-8 text fails."""
    saved = locale.setlocale(locale.LC_ALL)
    yield
    if locale.setlocale(locale.LC_ALL) != saved:
        locale.setlocale(locale.LC_ALL, saved)


# Where digests of floating-point results (issue 23's old-vs-new pins) were recorded. Another CPU, BLAS kernel family
# or torch build may round differently (issue 18 saw rows move between two 2-core machines), so such a pin is checked
# only on the float path it was recorded on; elsewhere the test skips and says why.
DIGEST_FLOAT_PATH = {"torch": "2.13.0+cpu", "cpu_model": "AMD EPYC", "cpu_features": ["avx", "avx2", "fma"]}


def same_float_path_or_skip(recorded: dict[str, Any] = DIGEST_FLOAT_PATH) -> None:
    import torch

    from tailorkit.core.results import _cpu_features, _cpu_model

    here = {"torch": torch.__version__, "cpu_model": _cpu_model(), "cpu_features": _cpu_features()}
    if here != recorded:
        pytest.skip(f"digests recorded on {recorded}, this machine is {here}")


class Interrupted(Exception):
    """Raised by `interrupt_after` to stop a training run mid-way, as a crash would (resume tests)."""


def interrupt_after(step: int) -> Callable[[int, float], None]:
    """An `on_step(done, loss)` callback for core.train that raises `Interrupted` once `step` steps are done."""

    def on_step(done: int, loss: float) -> None:
        if done == step:
            raise Interrupted(f"interrupted after step {done}")

    return on_step


def crash_then_resume(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, command: Callable[[], int], crash_at: int = 2
) -> list[int]:
    """Run a CLI `command` whose training goes through `owner.name` (a function taking `on_step`) twice: first
    crashing it at step `crash_at` (the command must fail), then letting it finish (the command must succeed).
    Returns the steps the second run trained, so a test can check that it resumed instead of starting over."""
    import functools

    real = getattr(owner, name)
    monkeypatch.setattr(owner, name, functools.partial(real, on_step=interrupt_after(crash_at)))
    assert command() != 0
    steps_done: list[int] = []
    monkeypatch.setattr(owner, name, functools.partial(real, on_step=lambda done, _: steps_done.append(done)))
    assert command() == 0
    monkeypatch.setattr(owner, name, real)
    return steps_done
