"""Our TIES, magnitude top-k, task arithmetic and DARE against mergekit's on the same safetensors folders.

mergekit is a pinned peer installed by `make setup` (Makefile, NODEPS_PEERS); these tests run in `make test`.
Folders: a tiny BERT with its pooler (as transformers 5 writes a `BertModel`), a tiny Llama and a tiny GPT-2 causal
LM (written with `save_pretrained`). BERT goes through mergekit's architecture inference, because mergekit's own
BERT definition crashes (`tailorkit.patching.peers`); the decoders use mergekit's definitions.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tailorkit.patching import PatchConfig, eligible_modules, tailor
from tailorkit.patching.peers import mergekit_available, mergekit_merge, mergekit_version
from tests.patching._models import perturb

ROOT = Path(__file__).resolve().parents[2]


def test_mergekit_is_installed_at_the_pinned_version() -> None:
    pin = re.search(r"mergekit==([\w.]+)", (ROOT / "Makefile").read_text())
    assert pin is not None, "the Makefile must pin mergekit"
    assert mergekit_available(), "mergekit is missing: run `make setup`"
    assert mergekit_version() == pin.group(1)
    import mergekit.merge  # noqa: F401


def _bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return BertModel(cfg)  # with its pooler, as transformers writes a BertModel


def _llama() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


def _gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg)  # HF Conv1D layers, lm_head tied to the token embeddings


MAKERS = {"bert": _bert, "llama": _llama, "gpt2": _gpt2}


@pytest.fixture(scope="module", params=sorted(MAKERS))
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(name, base model, two fine-tunes changing every parameter, their folders)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = MAKERS[request.param]().eval()
    fts = [perturb(base, 20 + t) for t in range(2)]
    root = tmp_path_factory.mktemp(request.param)
    base.save_pretrained(root / "base")
    for t, ft in enumerate(fts):
        ft.save_pretrained(root / f"ft{t}")
    return request.param, base, fts, root


def _read(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def _compare(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], names: list[str]) -> None:
    assert names
    for name in names:
        assert name in theirs, f"{name} not in mergekit's output ({sorted(theirs)[:4]} ...)"
        assert torch.allclose(ours[name], theirs[name], atol=1e-6), name


def test_single_task_ties_and_magnitude_match_mergekit_on_every_tensor(family, tmp_path: Path) -> None:
    """One task: mergekit's TIES trims every tensor to its top-density |tau|; our default policy (sparsify) does the
    same for the tensors no method tailors, so the whole model agrees, embeddings, norms and biases included."""
    _, base, fts, root = family
    theirs = _read(mergekit_merge(root / "base", [root / "ft0"], tmp_path / "ties", "ties", density=0.2))
    ours = tailor(base, fts[0], None, PatchConfig(method="ties", density=0.2), progress=False)
    _compare(ours.state, theirs, sorted(ours.state))
    assert ours.summary()["patch_fraction_model"] <= 0.2
    mag = tailor(base, fts[0], None, PatchConfig(method="magnitude", density=0.2), progress=False)
    _compare(mag.state, theirs, sorted(mag.state))


def test_two_task_ties_matches_mergekit_on_tailored_weights(family, tmp_path: Path) -> None:
    """Two tasks: sign election and disjoint mean agree on every eligible weight. (The other tensors follow our
    policy, trim-and-sum, not TIES's sign election, so they are not compared.)"""
    _, base, fts, root = family
    out = mergekit_merge(root / "base", [root / "ft0", root / "ft1"], tmp_path / "ties2", "ties", density=0.2)
    ours = tailor(base, fts, None, PatchConfig(method="ties", density=0.2), progress=False)
    assert ours.tailored
    _compare(ours.state, _read(out), ours.tailored)


def test_task_arithmetic_matches_mergekit(family, tmp_path: Path) -> None:
    _, base, fts, root = family
    out = mergekit_merge(root / "base", [root / "ft0", root / "ft1"], tmp_path / "ta", "task_arithmetic", weight=0.5)
    cfg = PatchConfig(method="task_arithmetic", density=1.0, non_linear_policy="keep_finetuned", options={"lam": 0.5})
    ours = tailor(base, fts, None, cfg, progress=False)
    theirs = _read(out)
    _compare(ours.state, theirs, ours.tailored or [])
    # the other tensors: our keep_finetuned policy adds the task vectors with weight 1, mergekit with 0.5
    pre = dict(base.named_parameters())
    others = [k for k in ours.state if k not in set(ours.tailored or [])]
    assert others
    fine = [dict(ft.named_parameters()) for ft in fts]
    for k in others:
        expected = pre[k] + 0.5 * sum(f[k] - pre[k] for f in fine)
        assert torch.allclose(theirs[k], expected, atol=1e-6), k


def test_dare_ties_keeps_about_density_and_rescales(family, tmp_path: Path) -> None:
    """mergekit's DARE-TIES with one task: Bernoulli keep density, and the kept deltas rescaled so that each tensor's
    L1 norm is kept (x ||tau||_1 / ||m tau||_1, about 1/density); our DARE rescales by exactly 1/density, as the
    paper does."""
    _, base, fts, root = family
    theirs = _read(mergekit_merge(root / "base", [root / "ft0"], tmp_path / "dare", "dare_ties", density=0.3, seed=3))
    pre, fine = dict(base.named_parameters()), dict(fts[0].named_parameters())
    kept = total = 0
    for module in eligible_modules(base):
        key = f"{module}.weight"
        if key not in pre:
            continue  # a tied head
        tau = fine[key] - pre[key]
        delta = theirs[key] - pre[key]
        on = delta != 0
        scale = tau.abs().sum() / tau[on].abs().sum()
        assert torch.allclose(delta[on], tau[on] * scale, atol=1e-5), key
        assert 0.8 / 0.3 < scale < 1.25 / 0.3
        kept += int(on.sum())
        total += on.numel()
    assert 0.25 < kept / total < 0.35
    ours = tailor(base, copy.deepcopy(fts[0]), None, PatchConfig(method="dare", density=0.3), progress=False)
    assert 0.25 < ours.patch_fraction(ours.tailored) < 0.35
