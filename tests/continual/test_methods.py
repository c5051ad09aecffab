from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

from tailorkit.continual.config import RunConfig
from tailorkit.continual.losses import SSL_LOSSES, make_ssl_loss, relation_distill
from tailorkit.continual.methods import METHODS, PhaseContext, make_strategy
from tailorkit.continual.methods.cppf import init_prototypes, sinkhorn
from tailorkit.continual.nets import Student, frozen_copy
from tailorkit.continual.runner import PhaseModel
from tailorkit.core.registry import RegistryError

from .conftest import tiny_config

ALL = {"cppf", "finetune", "cassle", "pfr", "joint", "random_init"}


def test_every_method_module_registered() -> None:
    assert set(METHODS.names()) == ALL
    assert set(SSL_LOSSES.names()) == {"simclr", "byol", "simsiam", "barlow"}
    with pytest.raises(RegistryError, match="expected one of"):
        make_strategy(tiny_config("nope"))


def test_registry_full_when_only_base_is_imported() -> None:
    # make_strategy relies on Python importing methods/__init__.py (which imports every strategy) before base.py
    code = "from tailorkit.continual.methods.base import METHODS, make_strategy; print(','.join(METHODS.names()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert set(out.strip().split(",")) == ALL


def _setup(config: RunConfig, phase: int, phases: int = 3) -> tuple[PhaseModel, torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    student = Student(1, config.model)
    ssl = make_ssl_loss(config.ssl, config.model, student)
    data = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    strategy = make_strategy(config)
    ctx = PhaseContext(
        phase=phase,
        phases=phases,
        config=config,
        student=student,
        previous=frozen_copy(student) if phase > 0 else None,
        data=data,
        carry={},
        pretrain=lambda m, steps, name: copy.deepcopy(m),
        seed=0,
    )
    model = PhaseModel(student, ssl, strategy.begin_phase(ctx), strategy)
    out = model.step_outputs(data)
    return model, data, strategy.terms(model.extras, out)


@pytest.mark.parametrize("name", ["finetune", "joint"])
def test_baselines_add_no_terms(name: str) -> None:
    for phase in (0, 2):
        assert _setup(tiny_config(name), phase)[2] == {}


def test_random_init_does_not_train() -> None:
    assert not make_strategy(tiny_config("random_init")).trains


@pytest.mark.parametrize(("name", "key"), [("cassle", "distill"), ("pfr", "pfr")])
def test_distillation_only_with_a_past_model(name: str, key: str) -> None:
    assert _setup(tiny_config(name), 0)[2] == {}  # no past teacher in phase 1
    model, _, terms = _setup(tiny_config(name), 1)
    assert set(terms) == {key} and torch.isfinite(terms[key]) and terms[key] > 0
    terms[key].backward()
    assert model.student.encoder.net[0].weight.grad is not None
    teacher = model.extras.past
    assert all(not p.requires_grad for p in teacher.parameters()) and not teacher.training


def test_cppf_terms_per_phase_and_ablation() -> None:
    _, _, first = _setup(tiny_config("cppf"), 0)
    assert set(first) == {"pc", "esr", "mtd_present"}  # no past teacher in phase 1
    _, _, middle = _setup(tiny_config("cppf"), 1)
    assert set(middle) == {"pc", "esr", "mtd_past", "mtd_present"}
    for flag, key in (("pc", "pc"), ("esr", "esr"), ("mtd_past", "mtd_past"), ("mtd_present", "mtd_present")):
        _, _, ablated = _setup(tiny_config("cppf", **{flag: False}), 1)
        assert key not in ablated and set(ablated) == set(middle) - {key}
    _, _, none = _setup(tiny_config("cppf", pc=False, esr=False, mtd_past=False, mtd_present=False), 1)
    assert none == {}


def test_cppf_reserving_terms_vanish_in_the_last_phase() -> None:
    from tailorkit.continual.config import CPPFConfig, StrategyConfig

    base = tiny_config("cppf", pc=False, mtd_past=False, mtd_present=False)
    config = RunConfig(
        **{
            **base.__dict__,
            "strategy": StrategyConfig(
                name="cppf",
                cppf=CPPFConfig(prototypes_per_phase=2, pc=False, mtd_past=False, mtd_present=False, esr_pull=0.0),
            ),
        }
    )
    assert _setup(config, 1)[2]["esr"] > 0  # reserved prototypes exist: features have a component on them
    assert _setup(config, 2)[2]["esr"] == 0  # last phase: nothing reserved, pull weight 0


def test_relation_distillation_is_zero_for_an_identical_teacher() -> None:
    z = torch.randn(12, 8)
    assert relation_distill(z, z.clone(), 0.1).abs() < 1e-6
    assert relation_distill(z, torch.randn(12, 8), 0.1) > 1e-3
    model, data, _ = _setup(tiny_config("cppf"), 0)
    model.eval()  # same BN mode as the frozen present teacher (an untrained copy of the student)
    out = model.step_outputs(data)
    assert model.strategy.terms(model.extras, out)["mtd_present"].abs() < 1e-5


def test_sinkhorn_balances_assignments() -> None:
    scores = torch.randn(32, 4) * 3  # sharp: exp(score / eps) underflows in the plain-domain algorithm
    scores[:, 0] += 5  # every sample prefers prototype 0; balancing must spread them
    q = sinkhorn(scores, eps=0.05, iters=10)
    assert torch.isfinite(q).all()
    assert torch.allclose(q.sum(1), torch.ones(32), atol=1e-4)
    assert torch.allclose(q.sum(0), torch.full((4,), 8.0), atol=0.5)


def test_prototype_initialisation_is_orthonormal() -> None:
    c = init_prototypes(6, 8, "orthogonal", torch.Generator().manual_seed(0))
    assert torch.allclose(c @ c.T, torch.eye(6), atol=1e-5)


@pytest.mark.parametrize("name", ["simclr", "byol", "simsiam", "barlow"])
def test_ssl_losses_are_finite_and_train_the_encoder(name: str) -> None:
    config = tiny_config("finetune", ssl=name)
    model, data, _ = _setup(config, 0)
    loss = model(data)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.student.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def _cppf_config(**settings: object) -> RunConfig:
    import dataclasses

    from tailorkit.continual.config import CPPFConfig, StrategyConfig

    base = tiny_config("cppf")
    return dataclasses.replace(
        base,
        strategy=StrategyConfig(name="cppf", cppf=CPPFConfig(prototypes_per_phase=2, **settings)),  # type: ignore[arg-type]
    )


def test_reserve_fraction_sets_the_masked_dimensions() -> None:
    from tailorkit.continual.methods.cppf import reserved_count

    # tiny: proj_dim 8, K = 2, T = 3 -> 4 future prototypes in phase 1, 2 in phase 2, 0 in the last
    all_future = _cppf_config()
    assert [reserved_count(all_future.strategy.cppf, 8, t, 3) for t in range(3)] == [4, 2, 0]
    quarter = _cppf_config(reserve_fraction=0.25)  # round(0.25 * 8) = 2 dimensions at most
    assert [reserved_count(quarter.strategy.cppf, 8, t, 3) for t in range(3)] == [2, 2, 0]
    assert [reserved_count(_cppf_config(reserve_fraction=0.0).strategy.cppf, 8, t, 3) for t in range(3)] == [0] * 3
    model_all = _setup(all_future, 0)[0].extras
    model_quarter = _setup(quarter, 0)[0].extras
    # the reserved rows are the next phases' first prototypes, in order
    assert model_all.reserved.shape == (4, 8) and model_quarter.reserved.shape == (2, 8)
    assert torch.equal(model_quarter.reserved, model_all.reserved[:2])
    # ESR's projection energy: a feature along an unreserved future prototype costs nothing, a reserved one does
    s = quarter.strategy.cppf
    settings = dict(pc=False, mtd_past=False, mtd_present=False, esr_pull=0.0)
    for fraction, expect_zero in ((0.25, True), (1.0, False)):
        model, data, _ = _setup(_cppf_config(reserve_fraction=fraction, **settings), 0)
        direction = model_all.reserved[3]  # the 4th future prototype: reserved only with fraction 1
        from tailorkit.continual.methods.base import StepOutputs

        z = direction.expand(4, 8).clone()
        out = StepOutputs((data[:4], data[:4]), (z, z), (z, z), model.ssl)
        esr = model.strategy.terms(model.extras, out)["esr"]
        assert (float(esr.detach()) < 1e-6) == expect_zero, (fraction, float(esr.detach()))
    assert s.reserve_fraction == 0.25
    with pytest.raises(Exception, match="reserve_fraction"):
        _cppf_config(reserve_fraction=1.5)


@pytest.mark.parametrize(
    ("on", "key"), [("pc", "pc"), ("esr", "esr"), ("mtd_past", "mtd_past"), ("mtd_present", "mtd_present")]
)
def test_a_single_module_adds_only_its_own_term(on: str, key: str) -> None:
    flags = {"pc": False, "esr": False, "mtd_past": False, "mtd_present": False, on: True}
    _, _, terms = _setup(_cppf_config(**flags), 1)
    assert set(terms) == {key} and torch.isfinite(terms[key])


@pytest.mark.parametrize(
    ("weight", "key"),
    [("lambda_pc", "pc"), ("lambda_res", "esr"), ("lambda_past", "mtd_past"), ("lambda_rel", "mtd_present")],
)
def test_a_zero_loss_weight_contributes_zero_loss(weight: str, key: str) -> None:
    _, _, terms = _setup(_cppf_config(**{weight: 0.0}), 1)
    _, _, default = _setup(_cppf_config(), 1)
    assert float(terms[key].detach()) == 0.0 and float(default[key].detach()) != 0.0
    for other in set(default) - {key}:  # the other modules are untouched
        assert torch.allclose(terms[other], default[other])


def test_present_fraction_sets_the_teacher_schedule() -> None:
    steps: list[int] = []
    config = _cppf_config(present_fraction=0.5)
    config = __import__("dataclasses").replace(
        config, optim=__import__("dataclasses").replace(config.optim, steps_per_phase=10, warmup_steps=1)
    )
    torch.manual_seed(0)
    student = Student(1, config.model)
    ctx = PhaseContext(
        phase=0,
        phases=3,
        config=config,
        student=student,
        previous=None,
        data=torch.zeros(16, 1, 16, 16, dtype=torch.uint8),
        carry={},
        pretrain=lambda m, n, name: steps.append(n) or copy.deepcopy(m),  # type: ignore[func-returns-value]
        seed=0,
    )
    make_strategy(config).begin_phase(ctx)
    assert steps == [5]
    make_strategy(_cppf_config(mtd_present=False)).begin_phase(ctx)
    assert steps == [5]  # no present teacher, no pretraining
