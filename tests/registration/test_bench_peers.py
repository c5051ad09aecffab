"""Bench metrics and claims, peers read back by coordinate images (skipped only where a peer is not installed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailorkit.registration import transforms as T
from tailorkit.registration.peers import PEERS, coordinate_images, peer_missing, run_peer
from tests.conftest import load_or_skip


def _head(shape: tuple[int, ...], seed: int) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 1, *[max(3, s // 3) for s in shape], generator=g)
    img = torch.nn.functional.interpolate(small, size=shape, mode="trilinear", align_corners=True)[0, 0].numpy()
    return (img * ((idx**2).sum(0) < 0.6) * 100).astype(np.float32)


def _shifted_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor]:
    shape = (28, 30, 26)
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    aff[:3, 3] = [-40, -45, -39]
    fixed = _head(shape, 5)
    a = np.eye(4)
    a[:3, 3] = [3.0, -4.5, 2.0]
    truth = T.affine_displacement(a, shape, aff)
    moving = T.warp_image(torch.as_tensor(fixed), aff, -truth, aff).numpy()  # M(psi(y)) = F(y)
    return fixed, moving, aff, truth


def test_coordinate_images_hold_world_coordinates_beyond_the_grid() -> None:
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    coords, big = coordinate_images((4, 5, 6), aff, margin=2)
    assert coords.shape == (3, 8, 9, 10)
    assert np.allclose(coords[:, 2, 2, 2], [0.0, 0.0, 0.0])  # the original index 0 sits at the old origin
    assert np.allclose(big[:3, 3], [-4.0, -6.0, -8.0])


@pytest.mark.parametrize("name", ["ants_affine", "sitk_demons", "convexadam"])
def test_peer_recovers_a_translation(name: str, **options: object) -> None:
    reason = peer_missing(name)
    if reason:
        pytest.skip(reason)
    fixed, moving, aff, truth = _shifted_pair()
    disp = run_peer(name, fixed, aff, moving, aff, threads=1, **options)
    assert disp.shape == truth.shape
    inner = (slice(None),) + (slice(8, -8),) * 3
    err = (disp[inner] - truth[inner]).norm(dim=0).mean()
    assert err < 0.5 * truth[inner].norm(dim=0).mean(), float(err)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ants_syn", "elastix"])
def test_slow_peer_recovers_a_translation(name: str) -> None:
    test_peer_recovers_a_translation(name)


@pytest.mark.slow
def test_elastix_with_quick_modes_step_size_estimation_recovers_a_translation() -> None:
    test_peer_recovers_a_translation("elastix", iterations=64, estimation="DisplacementDistribution")


def test_peer_registry_and_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(PEERS.names()) == {"ants_affine", "ants_syn", "sitk_demons", "elastix", "convexadam"}
    with pytest.raises(KeyError, match="ants_syn"):
        peer_missing("ants")
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert "not installed" in (peer_missing("elastix") or "")
    with pytest.raises(RuntimeError, match="not installed"):
        run_peer("elastix", np.zeros((4, 4, 4)), np.eye(4), np.zeros((4, 4, 4)), np.eye(4))
    fixed, moving, aff, _ = _shifted_pair()
    monkeypatch.undo()
    if peer_missing("sitk_demons") is None:
        with pytest.raises(ValueError, match="modalities"):
            run_peer("sitk_demons", fixed, aff, moving, aff, multimodal=True)


def test_bench_metrics_of_the_true_map_and_claims_from_rows() -> None:
    from tailorkit.anatomy.data import bench_atlas
    from tailorkit.anatomy.deform import random_deformation
    from tailorkit.anatomy.geometry import tensor_affine, to_tensor_order
    from tailorkit.core.results import Row
    from tailorkit.registration.bench import BenchPair, _claims, evaluate
    from tailorkit.registration.config import BenchConfig

    atlas = load_or_skip(bench_atlas, 3.0)
    d = random_deformation(atlas.t1.shape, atlas.affine, np.random.default_rng(0), max_disp_mm=4.0)
    lm = torch.as_tensor(atlas.landmarks, dtype=torch.float32)
    pair = BenchPair("easy", to_tensor_order(d.warp(atlas.t1, atlas.affine)),
                     to_tensor_order(d.warp(atlas.labels, atlas.affine, order=0)), d.psi(lm).numpy())  # fmt: skip
    taff = tensor_affine(atlas.affine)
    grid = T.grid_points(atlas.t1.shape[::-1], taff).reshape(3, -1).T
    truth = (d.psi(grid) - grid).T.reshape(3, *atlas.t1.shape[::-1])
    good, ident = evaluate(truth, atlas, pair), evaluate(torch.zeros_like(truth), atlas, pair)
    assert good["tre_mm"] < 0.3 and good["dice"] > 0.9 > ident["dice"] and ident["tre_mm"] > 2
    assert good["folding_pct"] == 0.0 and ident["sdlogj"] == 0.0
    rows = [Row("identity", {"dice": 0.4, "folding_pct": 0.0}, {"tier": t}) for t in ("easy", "hard", "cross")]
    for t in ("easy", "hard", "cross"):
        for i, stage in enumerate(("affine", "coarse", "deform", "io")):
            rows.append(Row(f"same_{stage}", {"dice": 0.5 + 0.1 * i, "folding_pct": 0.0}, {"tier": t}, 2.0))
        rows.append(Row("ants_syn", {"dice": 0.85}, {"tier": t}, 5.0))
    claims = {c.id: c for c in _claims(rows, BenchConfig())}
    assert not claims["same_dice_vs_best_peer_easy"].holds and claims["same_dice_vs_best_peer_easy"].target == 0.85
    assert claims["same_faster_than_ants_syn"].holds and claims["same_folding_below_0.1pct"].holds
    assert all(claims[f"stage_{s}_improves"].holds for s in ("affine", "coarse", "deform", "io"))
    assert "mindcvx_matches_convexadam" not in claims  # not run: no claim
    # paired over pairs: a steady 0.01 deficit is within the 0.02 margin, a steady 0.05 one is not, and a noisy
    # difference whose interval straddles the margin is undecided
    cvx = {0: 0.85, 1: 0.80, 2: 0.90, 3: 0.70}
    for shift, noise, expected in ((0.01, 0.0, "holds"), (0.05, 0.0, "fails"), (0.0, 0.2, "undecided")):
        peer = {k: v + shift + (noise if k % 2 else -noise) + 0.001 * k for k, v in cvx.items()}
        c = {c.id: c for c in _claims(rows, BenchConfig(), {"mindcvx": cvx, "convexadam": peer})}
        claim = c["mindcvx_matches_convexadam"]
        assert claim.verdict == expected and claim.n == 4 and claim.target == -0.02, (shift, noise, claim)


def test_bench_jobs_share_the_work_and_keep_the_row_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # The scheduling alone, with stand-in jobs: SAME++ needs the training's parts, the peers need each pair's
    # initialisation, a mono-modal peer skips the cross tier, a missing peer is reported, and the CPU seconds are
    # summed per part and per worker process.
    import tailorkit.registration.bench as B
    from tailorkit.registration.config import BenchConfig

    # arrays of 2 elements, as real volumes: `pairs.index(p)` (array `==`) would raise on them, identity must be used
    pairs = [B.BenchPair(tier, np.zeros(2), np.zeros(2), np.zeros(2), 2 * t + i) for t, tier in enumerate(B.TIERS)
             for i in range(2)]  # fmt: skip
    calls: list[str] = []

    def done(rows: list[dict], pid: int = 1, **extra: object) -> dict:
        return {"rows": rows, "cpu_seconds": 2.0, "pid": pid, **extra}

    def row(method: str, pair: B.BenchPair) -> dict:
        return {"method": method, "tier": pair.tier, "pair": pair.index}

    def train_job(config: object, mode: str, seed: int, spacing: float, parts_dir: str) -> dict:
        calls.append("train")
        return done([], parts={"model": f"{parts_dir}/sam.pt", "net": f"{parts_dir}/deform_net.pt"})

    def init_job(config: object, spacing: float, ps: list) -> dict:
        calls.append("init")
        return done([row("init", p) for p in ps], inits=[(np.eye(4) * (i + 1), 0.0, 0.0) for i in range(len(ps))])

    def steps_job(
        config: object, mode: str, spacing: float, ps: list, kind: str, parts: dict | None, inits: list
    ) -> dict:
        calls.append(kind)
        assert (parts is not None) == (kind == "same") and len({p.tier for p in ps}) == 1
        # each pair's own initialisation from the init job, shared rather than recomputed
        assert [m[0, 0] for m, _, _ in inits] == [next(i for i, q in enumerate(pairs) if q is p) + 1 for p in ps]
        if kind == "mindcvx":  # one row per pair
            return done([row("mindcvx", p) for p in ps], pid=2)
        stages = B.SAME_STAGES if kind == "same" else ("affine", "coarse", "io")
        return done([row(f"{kind}_{s}", p) for p in ps for s in stages], pid=2)

    def peer_job(config: object, mode: str, spacing: float, name: str, pair: B.BenchPair, init: tuple) -> dict:
        calls.append(name)
        assert init[0][0, 0] == next(i for i, p in enumerate(pairs) if p is pair) + 1  # the pair's own init
        return done([row(name, pair)], pid=2)

    def landmark_job(config: object, spacing: float, ps: list, parts: dict) -> dict:
        calls.append("landmarks")
        assert parts["model"].endswith("sam.pt")
        return done([], landmarks=[{"tier": p.tier, "pair": p.index} for p in ps])

    for name, fn in (("_train_job", train_job), ("_init_job", init_job), ("_steps_job", steps_job),
                     ("_peer_job", peer_job), ("_landmark_job", landmark_job)):  # fmt: skip
        monkeypatch.setattr(B, name, fn)
    monkeypatch.setattr(
        "tailorkit.registration.peers.peer_missing", lambda name: "absent" if name == "elastix" else None
    )
    config = BenchConfig(peers=("ants_syn", "sitk_demons", "elastix"), workers=1)
    val = [B.BenchPair("easy", np.zeros(1), np.zeros(1), np.zeros(1), 0)]
    run = B._run_jobs(B._Inline(), config, "quick", 0, 3.0, pairs, "/parts", val)
    assert calls[:2] == ["train", "init"] and calls[-5:] == ["landmarks"] * 2 + ["same"] * 3
    # the validation pairs (which choose the landmark confidence) and the test pairs are located apart
    assert run["landmarks"]["validation"] == [{"tier": "easy", "pair": 0}] and len(run["landmarks"]["test"]) == 6
    assert calls.count("mind") == 3 and calls.count("mindcvx") == 3
    assert calls.count("ants_syn") == 6 and calls.count("sitk_demons") == 4
    mono = "mono-modal method (compares intensities directly)"
    assert run["skipped"] == {"elastix": "absent", "sitk_demons/cross": mono}
    names = list(dict.fromkeys(r["method"] for r in run["rows"]))
    assert names == [*(f"same_{s}" for s in B.SAME_STAGES), "mind_affine", "mind_coarse", "mind_io", "init",
                     "ants_syn", "sitk_demons", "mindcvx"]  # fmt: skip
    # every row names its pair, so methods can be compared pair by pair (the mindcvx-vs-convexAdam claim)
    assert sorted(r["pair"] for r in run["rows"] if r["method"] == "mindcvx") == list(range(6))
    assert run["cpu_by_part"] == {"training": 2.0, "same": 6.0, "mind": 6.0, "mindcvx": 6.0, "init": 2.0,
                                  "peers": 20.0, "landmarks": 4.0}  # fmt: skip
    assert run["cpu_by_worker"] == [8.0, 38.0]
