"""Every registered bench declares how it runs as evidence: `--budget 2` doubles the steps of every fit, and the
plan's one-seed and decisive overrides are valid settings of its config."""

from __future__ import annotations

import pytest

from tailorkit.core.bench import BENCHES, available_benches, scale_budget, with_settings
from tailorkit.core.config import to_dict

# selfcheck trains nothing (a fixed sanity check of the shared networks). The others join as their branches land;
# an entry here is a bench whose plan is still to be declared.
NO_TRAINING = {"selfcheck"}
PENDING: set[str] = set()


def _lookup(data: dict, key: str) -> object:
    for part in key.split("."):
        data = data[part]
    return data


@pytest.mark.parametrize("name", available_benches())
def test_budget_two_doubles_every_declared_step_count(name: str) -> None:
    bench = BENCHES.get(name)
    if name in NO_TRAINING | PENDING:
        assert name in NO_TRAINING or not bench.plan.budget_fields, f"{name}: declared, remove it from PENDING"
        return
    assert bench.plan.budget_fields, f"{name}: no budget_fields declared"
    config = bench.config()
    doubled = to_dict(scale_budget(config, bench.plan.budget_fields, 2))
    for key in bench.plan.budget_fields:
        before = _lookup(to_dict(config), key)
        assert isinstance(before, int | float) and before > 0, f"{name}.{key} is not a step count or time budget"
        assert _lookup(doubled, key) == 2 * before


@pytest.mark.parametrize("name", available_benches())
def test_plan_overrides_are_valid_settings(name: str) -> None:
    bench = BENCHES.get(name)
    if bench.config is None:
        return
    one = with_settings(bench.config(), bench.plan.one_seed)
    with_settings(one, bench.plan.decisive)
    assert bench.plan.seeds >= 5 or name in NO_TRAINING | PENDING
