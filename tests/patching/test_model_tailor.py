"""Model Tailor: the science (OBS reconstruction, budgets, identities) on tiny models."""

from __future__ import annotations

import warnings

import pytest
import torch

from tailorkit.patching import PatchConfig, PatchError, apply_patch, tailor, tailor_matrix
from tailorkit.patching.hessian import inverse_cholesky
from tests.patching._models import TinyConvNet, perturb, tiny_bert, tiny_gpt2, token_batches


def correlated_layer(seed: int = 0, rows: int = 64, cols: int = 256, n: int = 3000):
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(cols, 16, generator=gen)
    x = mix @ torch.randn(16, n, generator=gen) + 0.2 * torch.randn(cols, n, generator=gen)  # strongly correlated
    h = (x @ x.t() / n).double()
    w_pre = torch.randn(rows, cols, generator=gen)
    w_ft = w_pre + 0.3 * torch.randn(rows, cols, generator=gen)
    return w_ft, w_pre, x, h


def layer_error(w_ft: torch.Tensor, w: torch.Tensor, x: torch.Tensor) -> float:
    return float(((w_ft - w) @ x).pow(2).sum())


def test_obs_sign_lowers_error_and_released_sign_raises_it() -> None:
    w_ft, w_pre, x, h = correlated_layer()
    mask = tailor_matrix(w_ft, w_pre, h, PatchConfig(options={"compensate": False}))[1]
    w_mask = torch.where(mask, w_ft, w_pre)
    w_minus = tailor_matrix(w_ft, w_pre, h, PatchConfig(options={"compensation_sign": -1}), mask=mask)[0]
    w_plus = tailor_matrix(w_ft, w_pre, h, PatchConfig(options={"compensation_sign": 1}), mask=mask)[0]
    e_mask, e_minus, e_plus = (layer_error(w_ft, w, x) for w in (w_mask, w_minus, w_plus))
    assert e_minus < 0.9 * e_mask  # OBS compensation helps clearly on correlated inputs
    assert e_plus > e_mask  # the released code's sign makes it worse
    # outside the patch everything is pretrained, for every variant
    for w in (w_minus, w_plus):
        assert torch.equal(w[~mask], w_pre[~mask])


def test_reported_errors_match_direct_computation() -> None:
    w_ft, w_pre, x, h = correlated_layer(1)
    w_hat, mask, errors = tailor_matrix(w_ft, w_pre, h, PatchConfig())
    n = x.shape[1]
    assert errors["compensated"] == pytest.approx(layer_error(w_ft, w_hat, x) / n, rel=1e-4)
    assert errors["mask_only"] == pytest.approx(layer_error(w_ft, torch.where(mask, w_ft, w_pre), x) / n, rel=1e-4)
    assert errors["compensated"] < errors["mask_only"] < errors["pretrained"]


@pytest.mark.parametrize("density", [0.05, 0.1, 0.37])
def test_block_patch_fraction(density: float) -> None:
    w_ft, w_pre, _, h = correlated_layer(2, rows=48, cols=300)
    mask = tailor_matrix(w_ft, w_pre, h, PatchConfig(density=density, options={"block_size": 128}))[1]
    for i1 in range(0, 300, 128):
        block = mask[:, i1 : i1 + 128]
        assert abs(block.float().mean().item() - density) <= 1.0 / block.numel()


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_layer_and_global_scope_budget(bert_pair, scope: str) -> None:
    base, ft, calib = bert_pair
    result = tailor(base, ft, calib, PatchConfig(density=0.1, options={"scope": scope}), progress=False)
    names = list(result.masks)
    total = sum(result.masks[n].numel() for n in names)
    kept = sum(int(result.masks[n].sum()) for n in names)
    assert abs(kept / total - 0.1) <= len(names) / total
    if scope == "layer":
        for n in names:
            assert abs(result.masks[n].float().mean().item() - 0.1) <= 1.0 / result.masks[n].numel()


def test_alpha_one_normalization_none_layer_scope_is_magnitude(bert_pair) -> None:
    base, ft, calib = bert_pair
    options = dict(alpha=1.0, normalization="none", scope="layer", compensate=False)
    mt = tailor(base, ft, calib, PatchConfig(density=0.1, options=options), progress=False)
    mag = tailor(base, ft, None, PatchConfig(method="magnitude", density=0.1), progress=False)
    for name in mt.masks:
        assert torch.equal(mt.state[name], mag.state[name])


def test_density_one_returns_finetuned_and_zero_returns_pretrained(bert_pair) -> None:
    base, ft, calib = bert_pair
    full = tailor(base, ft, calib, PatchConfig(density=1.0), progress=False)
    for name, p in ft.named_parameters():
        assert torch.allclose(full.state[name], p, atol=1e-6), name
    none = tailor(base, ft, calib, PatchConfig(density=0.0), progress=False)
    pre = dict(base.named_parameters())
    assert none.masks
    for name in none.masks:
        assert torch.equal(none.state[name], pre[name])
    # the default policy (sparsify) at density 0 returns every other tensor too: nothing differs from pretrained
    assert none.patch == {} and none.patch_fraction() == 0.0
    # keep_finetuned: biases of the fine-tuned layer stay fine-tuned; keep_pretrained (alias revert) puts them back
    bias = "encoder.layer.1.output.dense.bias"
    kept = tailor(base, ft, calib, PatchConfig(density=0.0, non_linear_policy="keep_finetuned"), progress=False)
    assert torch.equal(kept.state[bias], dict(ft.named_parameters())[bias])
    for policy in ("keep_pretrained", "revert"):
        reverted = tailor(base, ft, calib, PatchConfig(density=0.0, non_linear_policy=policy), progress=False)
        assert all(torch.equal(reverted.state[k], v) for k, v in pre.items())
        assert reverted.patch == {} and reverted.patch_fraction() == 0.0


@pytest.mark.parametrize("method", ["model_tailor", "magnitude", "ties"])
def test_default_policy_keeps_the_whole_model_within_rho(method: str) -> None:
    """Every parameter fine-tuned (embeddings, norms, biases too): the default policy keeps the whole-model patch
    within rho, and trims each other tensor to its largest task-vector entries; keep_finetuned exceeds rho."""
    base = tiny_bert()
    ft = perturb(base, 5)
    calib = token_batches(3)
    result = tailor(base, ft, calib, PatchConfig(method=method, density=0.1), progress=False)
    summary = result.summary()
    assert 0.09 <= summary["patch_fraction"] <= 0.1
    assert summary["patch_fraction_model"] <= 0.1
    assert summary["patch_fraction_tailored"] <= 0.1
    pre, fine = dict(base.named_parameters()), dict(ft.named_parameters())
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.0.output.LayerNorm.weight"):
        tau = (fine[name] - pre[name]).reshape(-1)
        k = int(0.1 * tau.numel())
        top = torch.topk(tau.abs(), k).indices
        assert set(result.patch[name].indices.tolist()) == set(top.tolist()), name
        assert torch.allclose(result.state[name].reshape(-1)[top], fine[name].reshape(-1)[top])
    loose = tailor(base, ft, calib, PatchConfig(method=method, non_linear_policy="keep_finetuned"), progress=False)
    assert loose.summary()["patch_fraction_model"] > 0.2  # embeddings and norms stay whole


def test_only_changed_layers_are_tailored_and_patch_round_trips(bert_pair) -> None:
    base, ft, calib = bert_pair
    result = tailor(base, ft, calib, PatchConfig(non_linear_policy="keep_finetuned"), progress=False)
    assert result.masks and all(name.startswith("encoder.layer.1.") for name in result.masks)
    rebuilt = apply_patch(dict(base.named_parameters()), result.patch)
    assert all(torch.equal(rebuilt[k], result.state[k]) for k in result.state)
    # patch fraction = tailored weights at 10 % plus the fine-tuned biases and norms, over what the fine-tune changed
    params = dict(ft.named_parameters())
    changed = [k for k in params if k.startswith("encoder.layer.1.")]
    kept = sum(int(m.sum()) for m in result.masks.values()) + sum(
        params[k].numel() for k in changed if k not in result.masks
    )
    assert sorted(result.changed_by_finetune) == sorted(changed)
    assert result.patch_fraction() == pytest.approx(kept / sum(params[k].numel() for k in changed), abs=1e-3)


def test_sequential_differs_from_one_pass_and_is_deterministic(bert_pair) -> None:
    base = tiny_bert()
    ft = perturb(base, 3)  # both layers changed: layer 1's Hessian depends on the tailored layer 0
    calib = token_batches(3)
    seq = tailor(base, ft, calib, PatchConfig(options={"sequential": True}), progress=False)
    seq2 = tailor(base, ft, calib, PatchConfig(options={"sequential": True}), progress=False)
    one = tailor(base, ft, calib, PatchConfig(options={"sequential": False}), progress=False)
    key = "encoder.layer.1.attention.self.query.weight"
    assert torch.equal(seq.state[key], seq2.state[key])
    assert not torch.equal(seq.state[key], one.state[key])
    key0 = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(seq.state[key0], one.state[key0])  # the first block sees the same inputs either way


def test_padding_is_masked_out_of_hessians(bert_pair) -> None:
    base, ft, _ = bert_pair
    calib = token_batches(2, pad_last=4)
    changed = [{**b, "input_ids": b["input_ids"].clone()} for b in calib]
    changed[0]["input_ids"][0, -4:] = 7  # different token ids under the padding mask
    a = tailor(base, ft, calib, PatchConfig(), progress=False)
    b = tailor(base, ft, changed, PatchConfig(), progress=False)
    for name in a.masks:
        assert torch.allclose(a.state[name], b.state[name], atol=1e-5)


def test_gpt2_conv1d() -> None:
    base = tiny_gpt2()
    ft = perturb(base, 2, scale=0.02, only="h.1.")
    calib = [{"input_ids": b["input_ids"]} for b in token_batches(3)]
    result = tailor(base, ft, calib, PatchConfig(density=0.2), progress=False)
    assert set(result.masks) == {f"h.1.{n}.weight" for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")}
    for name, mask in result.masks.items():
        assert mask.shape == dict(base.named_parameters())[name].shape
        errors = result.layer_errors[name]
        assert errors["compensated"] <= errors["mask_only"] + 1e-12
        outside = ~mask
        assert torch.equal(result.state[name][outside], dict(base.named_parameters())[name][outside])


def test_conv_net() -> None:
    torch.manual_seed(0)
    base = TinyConvNet().eval()
    ft = perturb(base, 4, scale=0.1)
    gen = torch.Generator().manual_seed(5)
    calib = [torch.randn(8, 3, 8, 8, generator=gen) for _ in range(3)]
    result = tailor(base, ft, calib, PatchConfig(density=0.25), progress=False)
    assert set(result.masks) == {"conv1.weight", "conv2.weight", "head.weight"}
    for name, mask in result.masks.items():
        assert abs(mask.float().mean().item() - 0.25) < 0.02
        assert result.layer_errors[name]["compensated"] < result.layer_errors[name]["mask_only"]


def test_multitask_combinations_and_overlap() -> None:
    base = tiny_bert()
    fts = [perturb(base, 10, only="layer.1"), perturb(base, 11, only="layer.1")]
    calib = [token_batches(2, seed=1), token_batches(2, seed=2)]
    results = {
        c: tailor(base, fts, calib, PatchConfig(options={"combine": c}), progress=False)
        for c in ("sum", "overlap_average", "joint")
    }
    singles = [tailor(base, ft, c, PatchConfig(), progress=False) for ft, c in zip(fts, calib, strict=True)]
    pre = dict(base.named_parameters())
    name = "encoder.layer.1.intermediate.dense.weight"
    deltas = [s.state[name] - pre[name] for s in singles]
    assert torch.allclose(results["sum"].state[name], pre[name] + deltas[0] + deltas[1], atol=1e-6)
    both = singles[0].masks[name] & singles[1].masks[name]
    assert both.any()
    assert torch.allclose(
        results["overlap_average"].state[name][both], (pre[name] + (deltas[0] + deltas[1]) / 2)[both], atol=1e-6
    )
    overlap = results["sum"].overlap
    expected = float(both.sum()) / float((singles[0].masks[name] | singles[1].masks[name]).sum())
    assert overlap is not None and 0 < overlap < 0.5 and overlap == pytest.approx(expected, rel=0.3)
    joint = results["joint"]
    union = singles[0].masks[name] | singles[1].masks[name]
    assert torch.equal(joint.state[name][~union], pre[name][~union])


def test_cholesky_escalates_with_warning() -> None:
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(10, 10, generator=gen, dtype=torch.float64))
    eig = torch.ones(10, dtype=torch.float64)
    eig[-1] = -1e-4  # slightly indefinite, as accumulated round-off can make H
    h = q @ torch.diag(eig) @ q.t()
    with pytest.warns(RuntimeWarning, match="retrying"):
        u = inverse_cholesky(h, 1e-6, name="weird")
    assert torch.isfinite(u).all()
    with pytest.raises(FloatingPointError, match="not positive definite"), pytest.warns(RuntimeWarning):
        inverse_cholesky(-torch.eye(4, dtype=torch.float64), 0.01, max_tries=2)
    dead = torch.diag(torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64))  # an input that never fires
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = inverse_cholesky(dead, 0.0)
    assert torch.allclose(
        u.t() @ u, torch.linalg.inv(torch.diag(torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64))), rtol=1e-6
    )


def test_empty_calibration_and_bad_inputs(bert_pair) -> None:
    base, ft, _ = bert_pair
    with pytest.raises(PatchError, match="calibration"):
        tailor(base, ft, [], PatchConfig(), progress=False)
    broken = perturb(base, 0, scale=0.0)
    with torch.no_grad():
        dict(broken.named_parameters())["encoder.layer.0.output.dense.weight"][0, 0] = float("nan")
    with pytest.raises(PatchError, match="NaN"):
        tailor(base, broken, token_batches(1), PatchConfig(), progress=False)
    with pytest.raises(PatchError, match="shapes"):
        tailor(base, _wider_bert(), token_batches(1), PatchConfig(), progress=False)
    with pytest.raises(ValueError, match="density"):
        PatchConfig(density=1.5)


def _wider_bert():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=96,
        max_position_embeddings=32,
    )
    return BertModel(cfg, add_pooling_layer=False)


def _reference_sweep(w_ft, w_pre, u, mask, sign, block):
    """SparseGPT's column loop, written out plainly (the released code's structure) for a fixed mask."""
    w = w_ft.clone().double()
    wp = w_pre.double()
    for i1 in range(0, w.shape[1], block):
        i2 = min(i1 + block, w.shape[1])
        w1, u1, m1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2], mask[:, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            q = torch.where(m1[:, i], w1[:, i], wp[:, i1 + i])
            err = (w1[:, i] - q) / u1[i, i]
            w1[:, i:] += sign * err.unsqueeze(1) * u1[i, i:].unsqueeze(0)
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] += sign * err1 @ u[i1:i2, i2:]
    return w


@pytest.mark.parametrize("sign", [-1, 1])
def test_sweep_matches_reference_column_loop(sign: int) -> None:
    w_ft, w_pre, _, h = correlated_layer(4, rows=16, cols=70)
    cfg = PatchConfig(options={"block_size": 32, "compensation_sign": sign})
    mask = tailor_matrix(w_ft, w_pre, h, PatchConfig(options={"block_size": 32, "compensate": False}))[1]
    fast = tailor_matrix(w_ft.double(), w_pre.double(), h, cfg, mask=mask)[0]
    ref = _reference_sweep(w_ft, w_pre, inverse_cholesky(h, 0.01), mask, sign, 32)
    assert torch.allclose(fast, ref, atol=1e-9)


def test_inverse_cholesky_is_sparsegpts_factor() -> None:
    _, _, _, h = correlated_layer(5, cols=40)
    u = inverse_cholesky(h, 0.01)
    damped = h + 0.01 * torch.diagonal(h).mean() * torch.eye(40, dtype=torch.float64)
    reference = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(damped)), upper=True)
    assert torch.allclose(u, torch.triu(u)) and bool((torch.diagonal(u) > 0).all())
    assert torch.allclose(u, reference, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("make", [tiny_bert, tiny_gpt2])
def test_block_input_cache_gives_the_same_result(make) -> None:
    base = make()
    ft = perturb(base, 7, scale=0.03)
    calib = token_batches(2)
    if make is tiny_gpt2:
        calib = [{"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]} for b in calib]
    cached = tailor(base, ft, calib, PatchConfig(options={"cache_block_inputs": True}), progress=False)
    plain = tailor(base, ft, calib, PatchConfig(options={"cache_block_inputs": False}), progress=False)
    assert len(cached.masks) == (12 if make is tiny_bert else 8)
    for name in cached.masks:
        assert torch.equal(cached.masks[name], plain.masks[name]), name
        assert torch.allclose(cached.state[name], plain.state[name], atol=1e-5), name


def test_regmean_merge_builds_its_identity_on_the_hessians_device() -> None:
    """The joint combine's damping identity follows the Hessians' device and dtype (on the meta device a CPU
    identity would raise), and the merge is RegMean's closed form."""
    from tailorkit.patching.methods.model_tailor import regmean_merge

    hs = [torch.empty(6, 6, device="meta", dtype=torch.float64) for _ in range(2)]
    ws = [torch.empty(3, 6, device="meta") for _ in range(2)]
    merged, h_sum = regmean_merge(ws, hs, 0.01)
    assert merged.device.type == "meta" and merged.dtype == torch.float64 and merged.shape == (3, 6)
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(6, 50, generator=gen, dtype=torch.float64) for _ in range(2)]
    hs = [x @ x.t() / 50 for x in xs]
    ws = [torch.randn(3, 6, generator=gen) for _ in range(2)]
    merged, h_sum = regmean_merge(ws, hs, 0.0)
    # the gradient of sum_t ||(W_t - W) X_t||^2 vanishes at the merge
    grad = sum((w.double() - merged) @ h for w, h in zip(ws, hs, strict=True))
    assert torch.allclose(grad, torch.zeros_like(grad), atol=1e-8)
    assert torch.allclose(h_sum, hs[0] + hs[1])


def test_shared_inputs_share_one_hessian(bert_pair) -> None:
    """q, k and v see the same input: one product, one Hessian object, equal to X^T X / n over real tokens."""
    from tailorkit.patching.hessian import HessianAccumulator, run_calibration

    base, _, calib = bert_pair
    attn = base.encoder.layer[0].attention.self
    mods = {"q": attn.query, "k": attn.key, "v": attn.value, "o": base.encoder.layer[0].attention.output.dense}
    seen: list[torch.Tensor] = []
    handle = attn.query.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    with HessianAccumulator(mods) as acc:
        run_calibration(base, calib)
    handle.remove()
    assert acc.hessian("q") is acc.hessian("k") is acc.hessian("v")
    assert acc.hessian("o") is not acc.hessian("q")
    rows = torch.cat([x[b["attention_mask"].bool()] for x, b in zip(seen, calib, strict=True)]).double()
    assert torch.allclose(acc.hessian("q"), rows.t() @ rows / rows.shape[0], atol=1e-6)


@pytest.mark.gpu
def test_joint_combine_runs_on_cuda() -> None:
    """combine="joint" on CUDA (models, pretrained state and calibration all on the GPU) gives the CPU result."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    base = tiny_bert()
    fts = [perturb(base, 10, only="layer.1"), perturb(base, 11, only="layer.1")]
    calib = [token_batches(2, seed=1), token_batches(2, seed=2)]
    cfg = PatchConfig(options={"combine": "joint"})
    cpu = tailor(base, fts, calib, cfg, progress=False)
    dev = torch.device("cuda")
    gpu_calib = [[{k: v.to(dev) for k, v in b.items()} for b in c] for c in calib]
    gpu = tailor(base.to(dev), [ft.to(dev) for ft in fts], gpu_calib, cfg, progress=False)
    for name in cpu.masks:
        assert gpu.state[name].device.type == "cuda"
        close = torch.isclose(gpu.state[name].cpu(), cpu.state[name], atol=1e-4)
        assert close.float().mean() > 0.99, name  # float noise may flip a near-tied mask entry, no more
