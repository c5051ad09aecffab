"""The convexAdam-family instance optimisation (registration/convex_io.py, `io.kind=convex_adam`).

A 32^3 phantom of Gaussian blobs on a 2 mm grid with a flipped axis, and a fixed image that is the same analytic
phantom at y + u(y) for a known smooth u (so the true fixed -> moving displacement is u exactly): the convex
search alone lowers the feature SSD and the error to u; the search + Adam recovers u better than identity and the
search alone, with no folding; identical images give zero displacement; options are validated.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
import torch

from tailorkit.core.config import load_config
from tailorkit.registration import transforms as T
from tailorkit.registration.config import ConvexIOConfig, FeatureConfig, IOConfig, RegistrationConfig
from tailorkit.registration.convex_io import convex_adam_io, coupled_convex, feature_ssd
from tailorkit.registration.features import FeatureMap, mind_features
from tailorkit.registration.pipeline import register_arrays
from tailorkit.registration.same import sam_io

SHAPE = (32, 32, 32)
AFF = np.diag([-2.0, 2.0, 2.0, 1.0])  # tensor axis 0 runs along -x: world conversions are exercised
AFF[:3, 3] = [31.0, -31.0, -20.0]
AMPLITUDE_MM = 8.0  # peak of each of two sine waves per component: |u| up to ~4 voxels


def _blobs(world: torch.Tensor, rng: np.random.Generator, count: int = 60) -> torch.Tensor:
    """An analytic image: Gaussian blobs (sigma 3-7 mm) at random places inside the grid, sampled at `world`."""
    lo = T.grid_points(SHAPE, AFF).reshape(3, -1).amin(1).numpy()
    hi = T.grid_points(SHAPE, AFF).reshape(3, -1).amax(1).numpy()
    out = torch.zeros(world.shape[1:])
    for _ in range(count):
        centre = torch.tensor(rng.uniform(lo + 5, hi - 5), dtype=torch.float32).reshape(3, 1, 1, 1)
        sigma, weight = float(rng.uniform(3.0, 7.0)), float(rng.uniform(0.3, 1.0))
        out += weight * torch.exp(-((world - centre) ** 2).sum(0) / (2 * sigma**2))
    return out


def _smooth_field(world: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Two plane sine waves per component, wavelengths 38-64 mm: a smooth, fold-free displacement (world mm)."""
    u = torch.zeros_like(world)
    for c in range(3):
        for _ in range(2):
            k = torch.tensor(rng.normal(size=3), dtype=torch.float32)
            k = k / k.norm() * 2 * math.pi / float(rng.uniform(38.0, 64.0))
            phase = float(rng.uniform(0, 2 * math.pi))
            u[c] += AMPLITUDE_MM / 2 * torch.sin((k.reshape(3, 1, 1, 1) * world).sum(0) + phase)
    return u


@pytest.fixture(scope="module")
def phantom() -> dict[str, Any]:
    torch.set_num_threads(1)
    world = T.grid_points(SHAPE, AFF)
    truth = _smooth_field(world, np.random.default_rng(11))
    moving = _blobs(world, np.random.default_rng(12))
    fixed = _blobs(world + truth, np.random.default_rng(12))  # F(y) = M(y + u(y)): psi = id + u exactly
    mask = torch.zeros(SHAPE, dtype=torch.bool)
    mask[4:-4, 4:-4, 4:-4] = True
    mask &= fixed > 0.1  # inside the grid and on the blobs, where the images say where things went
    ff, mf = mind_features(fixed, AFF, FeatureConfig()), mind_features(moving, AFF, FeatureConfig())
    return {"fixed": fixed, "moving": moving, "truth": truth, "mask": mask, "ff": ff, "mf": mf}


def _error(u: torch.Tensor, p: dict[str, Any]) -> float:
    return float((u - p["truth"]).norm(dim=0)[p["mask"]].mean())


def _run(p: dict[str, Any], config: IOConfig) -> tuple[torch.Tensor, dict[str, Any], float]:
    report: dict[str, Any] = {}
    zero = torch.zeros(3, *SHAPE)
    start = time.process_time()
    if config.kind == "adam":
        u = sam_io(p["ff"], p["mf"], zero, AFF, config)
    else:
        u = convex_adam_io(p["ff"], p["mf"], zero, AFF, config, report)
    return u, report, time.process_time() - start


SEARCH_ONLY = IOConfig(kind="convex_adam", convex=ConvexIOConfig(levels=(), iterations=()))
FULL = IOConfig(kind="convex_adam")


@pytest.fixture(scope="module")
def results(phantom: dict[str, Any]) -> dict[str, Any]:
    return {"search": _run(phantom, SEARCH_ONLY), "full": _run(phantom, FULL), "sam_io": _run(phantom, IOConfig())}


def test_convex_search_lowers_the_feature_ssd_and_the_error(phantom: dict[str, Any], results: dict[str, Any]) -> None:
    u, report, _ = results["search"]
    zero = torch.zeros(3, *SHAPE)
    identity_error = _error(zero, phantom)
    assert identity_error > 3.0  # the phantom moves things by several mm
    assert report["ssd_search"] < 0.9 * report["ssd_before"]
    assert report["ssd_before"] == pytest.approx(feature_ssd(phantom["ff"], phantom["mf"], zero, AFF))
    assert _error(u, phantom) < 0.9 * identity_error


def test_convex_plus_adam_recovers_the_field_without_folding(phantom: dict[str, Any], results: dict[str, Any]) -> None:
    u, report, _ = results["full"]
    search_error = _error(results["search"][0], phantom)
    error = _error(u, phantom)
    assert error < 0.6 * _error(torch.zeros(3, *SHAPE), phantom)
    assert error < 0.85 * search_error
    assert report["ssd_after"] < report["ssd_search"]
    det = T.jacobian_determinant(u, AFF)
    assert T.folding_percent(det) < 0.1


def test_toy_comparison_with_sam_io(phantom: dict[str, Any], results: dict[str, Any]) -> None:
    """Side by side with today's IO (SAM-IO on the same MIND-like features, same start): the numbers are printed
    (pytest -s) and indicative; CPU seconds on a loaded machine."""
    u_new, _, cpu_new = results["full"]
    u_old, _, cpu_old = results["sam_io"]
    e_new, e_old = _error(u_new, phantom), _error(u_old, phantom)
    identity = _error(torch.zeros(3, *SHAPE), phantom)
    fold_old = T.folding_percent(T.jacobian_determinant(u_old, AFF))
    print(
        f"\ntoy (32^3, 2 mm, true |u| mean {float(phantom['truth'].norm(dim=0)[phantom['mask']].mean()):.2f} mm): "
        f"mean error mm identity {identity:.2f}, convex search {_error(results['search'][0], phantom):.2f}, "
        f"convex_adam {e_new:.2f}, sam_io {e_old:.2f} (folding {fold_old:.3f} %); "
        f"CPU s convex_adam {cpu_new:.2f}, sam_io {cpu_old:.2f}, ratio {cpu_new / max(cpu_old, 1e-6):.2f}"
    )
    assert e_new < e_old


def test_identical_images_give_zero_displacement(phantom: dict[str, Any]) -> None:
    ff = phantom["ff"]
    report: dict[str, Any] = {}
    u = convex_adam_io(ff, ff, torch.zeros(3, *SHAPE), AFF, FULL, report)
    size = u.norm(dim=0)
    # the search finds exactly zero; Adam (lr 0.5 feature voxels = 2 mm, cosine decay) settles within a small
    # fraction of a feature voxel of the optimum (4 mm here)
    assert float(size.mean()) < 0.2 and float(size.max()) < 0.6
    assert report["ssd_search"] < 1e-10 and report["ssd_after"] < 1e-3


def test_previous_map_is_composed(phantom: dict[str, Any]) -> None:
    """Starting from the true field, the result stays near it (the IO refines psi_previous, it does not restart)."""
    u = convex_adam_io(phantom["ff"], phantom["mf"], phantom["truth"], AFF, FULL)
    assert _error(u, phantom) < 0.5 * _error(torch.zeros(3, *SHAPE), phantom)


def test_coupled_convex_picks_the_minimum_and_smooths() -> None:
    """A cost whose minimum is displacement (1, 0) everywhere gives that field; ties (a flat cost) give zero."""
    r = torch.arange(-2, 3)
    offsets = torch.stack(torch.meshgrid(r, r, indexing="ij"), 0).reshape(2, -1)
    target = torch.tensor([1.0, 0.0])[:, None]
    cost = ((offsets.float() - target) ** 2).sum(0).reshape(-1, 1, 1).expand(-1, 6, 7).clone()
    field = coupled_convex(cost, offsets, (0.01, 0.1, 1.0))
    assert torch.allclose(field[0], torch.ones(6, 7)) and torch.allclose(field[1], torch.zeros(6, 7))
    flat = coupled_convex(torch.zeros(25, 6, 7), offsets, (0.1,))
    assert float(flat.abs().max()) == 0.0


def test_2d_runs_and_improves() -> None:
    aff = np.diag([1.5, 1.5, 1.0])
    world = T.grid_points((48, 48), aff)
    truth = torch.stack([3 * torch.sin(world[1] / 12), 2 * torch.cos(world[0] / 15)])
    g = torch.Generator().manual_seed(3)
    base = torch.nn.functional.interpolate(torch.rand(1, 1, 12, 12, generator=g), size=(48, 48), mode="bicubic")[0]
    moving = base[0]
    fixed = T.sample(base, aff, world + truth, padding="border")[0]
    ff, mf = mind_features(fixed, aff), mind_features(moving, aff)
    u = convex_adam_io(ff, mf, torch.zeros(2, 48, 48), aff, FULL)
    inner = (slice(None), slice(6, -6), slice(6, -6))
    assert float((u - truth)[inner].norm(dim=0).mean()) < 0.6 * float(truth[inner].norm(dim=0).mean())


def test_pipeline_selects_the_io_kind(phantom: dict[str, Any]) -> None:
    """`io.kind=convex_adam` through the config override path; the result reports the search."""
    config = load_config(
        RegistrationConfig, None, ["steps=io", "spacing_mm=2", "init.kind=none", "io.kind=convex_adam",
                                   "io.convex.levels=2,1", "io.convex.iterations=20,20"]
    )  # fmt: skip
    assert config.io.kind == "convex_adam" and config.io.convex.iterations == (20, 20)
    res = register_arrays(phantom["fixed"], AFF, phantom["moving"], AFF, config)
    assert res.info["io"]["ssd_after"] < res.info["io"]["ssd_before"]
    assert _error(res.displacement, phantom) < 0.7 * _error(torch.zeros(3, *SHAPE), phantom)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": 0}, "io.convex.grid: expected an int >= 1"),
        ({"radius": -1}, "io.convex.radius: expected an int >= 0"),
        ({"coupling": (0.1, -1.0)}, "io.convex.coupling: expected non-negative numbers"),
        ({"levels": (2, 0), "iterations": (10, 10)}, "io.convex.levels: expected positive integers"),
        ({"levels": (2, 1), "iterations": (10,)}, "io.convex.iterations: expected 2 non-negative integers"),
        ({"lr": 0.0}, "io.convex.lr: expected > 0"),
        ({"diffusion": -1.0}, "io.convex.diffusion: expected a finite number >= 0"),
        ({"search": False, "levels": (), "iterations": ()}, "io.convex: expected search=true or at least one"),
    ],
)
def test_options_are_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        ConvexIOConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_io_kind_is_validated() -> None:
    with pytest.raises(ValueError, match=r"io\.kind: expected adam or convex_adam, got 'convex'"):
        IOConfig(kind="convex")  # type: ignore[arg-type]


def test_wrong_dimensions_are_refused(phantom: dict[str, Any]) -> None:
    flat = FeatureMap(phantom["ff"].data[:, 0], np.eye(3), "mind")
    with pytest.raises(ValueError, match="expected 3D feature maps, got 2D"):
        convex_adam_io(flat, phantom["mf"], torch.zeros(3, *SHAPE), AFF, FULL)
