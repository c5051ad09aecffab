"""Contract matrix of every registered prompt method: neutral start, gradients only on the learner, parameter
counts, save/load with a manifest, determinism, and a short training run that lowers the loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tailorkit.prompts import METHODS, Engine, TrainConfig, assignment_for, load_learner, make_learner, save_learner

NEUTRAL = ("coop", "vpt", "ivlp", "maple", "mmap", "bitfit", "full_ft")  # start exactly at the frozen model
ALL = (*NEUTRAL, "clip_adapter", "linear_probe", "zero_shot")


def test_every_method_module_registered() -> None:
    assert set(METHODS.names()) == set(ALL)


def _embeddings(engine: Engine, learner, task: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    text = engine.text_embeddings(learner, [task])[task]
    image = engine.image_embeddings(learner, task, "train", None)
    return text, image


@pytest.mark.parametrize("method", NEUTRAL)
def test_zero_initialised_prompts_leave_the_model_unchanged(method: str, engine: Engine) -> None:
    base = make_learner("zero_shot", engine.encoder, assignment_for("mt", 3))
    learner = make_learner(method, engine.encoder, assignment_for("st", 3))
    with torch.no_grad():
        t0, i0 = _embeddings(engine, base, 1)
        t1, i1 = _embeddings(engine, learner, 1)
    assert torch.allclose(t0, t1, atol=1e-5) and torch.allclose(i0, i1, atol=1e-5)


@pytest.mark.parametrize("method", ("vpt", "ivlp", "maple", "mmap"))
def test_film_slot_starts_at_the_identity_and_its_first_step_has_a_gradient(method: str, engine: Engine) -> None:
    base = make_learner("zero_shot", engine.encoder, assignment_for("mt", 3))
    learner = make_learner(method, engine.encoder, assignment_for("mt", 3), image_slot="film")
    with torch.no_grad():
        t0, i0 = _embeddings(engine, base, 1)
        t1, i1 = _embeddings(engine, learner, 1)
        logits0 = engine.logits(base, i0, t0, 1)
        logits1 = engine.logits(learner, i1, t1, 1)
    assert torch.allclose(logits0, logits1, atol=1e-4)  # zero-shot logits unchanged at step 0
    if method in ("vpt", "ivlp"):  # the image tokens are leaves: both the scale row and the shift rows get gradients
        losses = engine.task_losses(learner, {0: torch.arange(4), 1: torch.arange(4)})
        sum(losses.values()).backward()  # type: ignore[union-attr]
        for stage, bank in learner.image.items():  # type: ignore[attr-defined]
            grad = bank[0].grad
            assert grad is not None and (grad.abs().sum(1) > 0).all(), stage


def test_film_slot_acts_multiplicatively_on_the_stage_input(engine: Engine) -> None:
    from tailorkit.prompts.methods.base import tokens_to_film, tokens_to_map

    tokens = torch.randn(4, 40, generator=torch.Generator().manual_seed(0))
    scale, shift = tokens_to_film(tokens, 8, 8)
    assert scale.shape == (1, 40, 1, 1) and torch.equal(scale.flatten(), tokens[0])
    assert torch.allclose(shift, tokens_to_map(tokens[1:], 8, 8))
    learner = make_learner("vpt", engine.encoder, assignment_for("mt", 3), image_slot="film", depth=1)
    with torch.no_grad():
        plain = engine.image_embeddings(learner, 0, "train", None)
        learner.image["6"][0][0].fill_(-1.0)  # type: ignore[index]  # scale 1 + (-1) = 0 wipes stage 6's input
        wiped = engine.image_embeddings(learner, 0, "train", None)
        learner.image["6"][0][0].fill_(1.0)  # type: ignore[index]  # scale 2 doubles it
        doubled = engine.image_embeddings(learner, 0, "train", None)
        prefix = engine.prefix(0, "train", 6)
        reference = engine.encoder.encode_image_prefix(2 * prefix, 6)
    assert torch.allclose(wiped[0], wiped[1], atol=1e-5)  # every image now gives the same embedding
    assert not torch.allclose(plain[0], plain[1], atol=1e-3)
    assert torch.allclose(doubled, reference, atol=1e-5) and not torch.allclose(doubled, plain, atol=1e-3)
    with pytest.raises(ValueError, match="image_slot"):
        make_learner("vpt", engine.encoder, assignment_for("mt", 1), image_slot="tokens")


@pytest.mark.parametrize("image_slot", ("additive", "film"))
def test_mmap_first_step_changes_every_factor_with_a_normal_source(image_slot: str, engine: Engine) -> None:
    def run(source_init: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], object]:
        learner = make_learner(
            "mmap", engine.encoder, assignment_for("mt", 3), source_init=source_init, image_slot=image_slot
        )
        before = {n: p.detach().clone() for n, p in learner.named_parameters()}
        prompts0 = [t.detach().clone() for t in learner.text_deltas(0)] + list(learner.image_tokens(0).values())
        engine.train(learner, TrainConfig(steps=1, batch=4, lr=0.01, warmup=0), seed=0)
        after = {n: p.detach().clone() for n, p in learner.named_parameters()}
        prompts1 = list(learner.text_deltas(0)) + list(learner.image_tokens(0).values())
        return before, after, (prompts0, prompts1)

    before, after, (p0, p1) = run("normal")
    assert {n.split(".")[0] for n in before} == {"source", "a_txt", "a_vis"}
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert not unchanged, unchanged  # a gradient reached the source and both modality factors of every layer
    assert all(not torch.allclose(a, b.detach()) for a, b in zip(p0, p1, strict=True))  # text and image prompts
    # the default zero source is the diagnosis of issue 20: dP/dA = S = 0, so Adam's first step leaves the factors
    before, after, _ = run("zeros")
    assert all(torch.equal(before[n], after[n]) == (not n.startswith("source")) for n in before)


def test_mmap_fixed_width_crops_the_kronecker_product_and_budget_matches_the_share(encoder) -> None:  # type: ignore[no-untyped-def]
    from tailorkit.prompts.methods.mmap import mmap_count

    learner = make_learner("mmap", encoder, assignment_for("mt", 1), depth=2, d_s=64, source_init="normal")
    assert learner.d_s == [64, 64]
    assert tuple(learner.a_txt[0][0].shape) == (2, 6) and tuple(learner.a_vis[0][0].shape) == (2, 2)  # 112 -> 2
    image = learner.image_tokens(0)[5]
    assert image.shape == (4, 112)
    src, fac = learner.source[0][0], learner.a_vis[0][0]
    # row 1 = source row 0 (x) factor row 1, column p * 2 + q = S[0, p] * A[1, q], cropped from 128 to 112
    assert torch.allclose(image[1], torch.outer(src[0], fac[1]).flatten()[:112])
    count = mmap_count(1, [(384, 112, 64), (384, 192, 64)], 2, 2)
    assert learner.trainable_count() == count == (128 + 12 + 4) + (128 + 12 + 6)
    total = encoder.parameter_count()
    for form, groups in (("group+task", [[0, 1], [2, 3], [4, 5]]), ("mt", None)):
        budgeted = make_learner("mmap", encoder, assignment_for(form, 6, groups), budget=0.0009)
        share = budgeted.trainable_count() / total
        if form == "mt":  # one bank cannot reach 0.09 % here: the widest source (384) is taken
            assert budgeted.d_s == [384] * 4 and share < 0.0009
        else:
            assert abs(share - 0.0009) < 0.00005, share
    with pytest.raises(ValueError, match="budget"):
        make_learner("mmap", encoder, assignment_for("mt", 1), budget=0.0009, d_s=8)
    with pytest.raises(ValueError, match="source_init"):
        make_learner("mmap", encoder, assignment_for("mt", 1), source_init="ones")


@pytest.mark.parametrize("method", ("coop", "vpt", "mmap", "maple", "bitfit", "clip_adapter", "linear_probe"))
def test_only_learner_parameters_get_gradients(method: str, engine: Engine) -> None:
    learner = make_learner(method, engine.encoder, assignment_for("st", 3))
    engine.encoder.zero_grad(set_to_none=True)
    losses = engine.task_losses(learner, {0: torch.arange(4), 2: torch.arange(4)})
    sum(losses.values()).backward()  # type: ignore[union-attr]
    assert all(p.grad is None for p in engine.encoder.parameters())
    grads = {n: p.grad for n, p in learner.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values()), method
    # task 1 was not in the batch: its single-task bank gets no gradient
    if method in ("coop", "mmap", "vpt"):
        bank1 = [g for n, g in grads.items() if n.split(".")[-1] == "1"]
        assert bank1 and all(g is None or g.abs().sum() == 0 for g in bank1)


def test_mmap_parameter_count_matches_the_kronecker_factors(encoder) -> None:  # type: ignore[no-untyped-def]
    learner = make_learner("mmap", encoder, assignment_for("st", 2), depth=4)
    # stages 3..6 take 40, 80, 112, 192 channels; d_s = gcd(384, C) = 8, 16, 16, 192; n_src = 2, a = 2
    per_bank = sum(2 * ds + 2 * (384 // ds) + 2 * (c // ds) for c, ds in ((40, 8), (80, 16), (112, 16), (192, 192)))
    assert learner.trainable_count() == 2 * per_bank
    maple = make_learner("maple", encoder, assignment_for("mt", 2), depth=4)
    assert maple.trainable_count() > 50 * per_bank
    frac = per_bank / encoder.parameter_count()
    assert 1e-5 < frac < 1e-3


def test_mmap_source_couples_both_modalities(encoder) -> None:  # type: ignore[no-untyped-def]
    learner = make_learner("mmap", encoder, assignment_for("mt", 1), depth=2)
    with torch.no_grad():
        learner.source[0][0].fill_(1.0)
    text = learner.text_deltas(0)[0]
    image = learner.image_tokens(0)[5]
    assert text.shape == (4, 384) and image.shape == (4, 112)
    # row i of both prompts is source row i // a scaled by the factor row i % a (Kronecker structure)
    assert torch.allclose(text[0], torch.kron(torch.ones(1, 16), learner.a_txt[0][0][:1]).flatten())
    assert image.abs().sum() > 0


def test_save_load_round_trip_with_manifest(engine: Engine, tmp_path: Path) -> None:
    learner = make_learner("mmap", engine.encoder, assignment_for("group+task", 3, [[0], [1, 2]]), depth=2)
    with torch.no_grad():
        for p in learner.parameters():
            p.add_(0.01)
    path = save_learner(learner, engine.encoder, tmp_path / "p.safetensors", method="mmap", options={"depth": 2})
    loaded, manifest = load_learner(path, engine.encoder)
    assert manifest["encoder"]["image_tower"].startswith("efficientnet-lite0")
    assert manifest["assignment"] == [[0, 2], [1, 3], [1, 4]]
    for (k, a), (_, b) in zip(learner.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_training_lowers_the_loss_and_is_deterministic(engine: Engine) -> None:
    runs = []
    for _ in range(2):
        learner = make_learner("coop", engine.encoder, assignment_for("mt", 3))
        result = engine.train(learner, TrainConfig(steps=6, batch=8, lr=0.05, warmup=0), seed=3)
        runs.append(result.losses)
    assert runs[0] == runs[1]
    assert runs[0][-1] < runs[0][0] and all(math.isfinite(x) for x in runs[0])


def test_bad_assignments_and_options_raise(encoder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="assignment"):
        make_learner("coop", encoder, [[0], []])
    with pytest.raises(ValueError, match="without gaps"):
        make_learner("coop", encoder, [[0], [2]])
    with pytest.raises(ValueError, match="n_ctx"):
        make_learner("coop", encoder, [[0]], n_ctx=5)
    with pytest.raises(KeyError, match="expected one of"):
        make_learner("nope", encoder, [[0]])
