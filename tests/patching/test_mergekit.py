"""Our TIES and magnitude top-k against mergekit's on the same safetensors folders (runs where `[peers]` installs
mergekit; skipped cleanly otherwise). Only the eligible linear weights are compared: mergekit merges every tensor,
while tailorkit applies each method to the eligible weights and a separate policy to biases and norms."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tailorkit.patching import PatchConfig, eligible_modules, tailor
from tests.patching._models import perturb, tiny_bert

mergekit = pytest.importorskip("mergekit")


def _merge(tmp: Path, base: Path, models: list[Path], density: float) -> dict[str, torch.Tensor]:
    config = {
        "merge_method": "ties",
        "base_model": str(base),
        "models": [{"model": str(m), "parameters": {"density": density, "weight": 1.0}} for m in models],
        "parameters": {"normalize": True},
        "dtype": "float32",
    }
    (tmp / "merge.yml").write_text(yaml.safe_dump(config))
    exe = shutil.which("mergekit-yaml")
    if exe is None:
        pytest.skip("mergekit is importable but the mergekit-yaml command is not on PATH")
    proc = subprocess.run(
        [exe, str(tmp / "merge.yml"), str(tmp / "merged")], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, torch.Tensor] = {}
    for f in sorted((tmp / "merged").glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


@pytest.mark.parametrize("n_tasks", [1, 2])
def test_ties_matches_mergekit(tmp_path: Path, n_tasks: int) -> None:
    base = tiny_bert()
    fts = [perturb(base, 20 + t, only="layer.1") for t in range(n_tasks)]
    base.save_pretrained(tmp_path / "base")
    for t, ft in enumerate(fts):
        ft.save_pretrained(tmp_path / f"ft{t}")
    theirs = _merge(tmp_path, tmp_path / "base", [tmp_path / f"ft{t}" for t in range(n_tasks)], 0.2)
    ours = tailor(base, fts if n_tasks > 1 else fts[0], None, PatchConfig(method="ties", density=0.2), progress=False)
    names = [f"{n}.weight" for n in eligible_modules(base)]
    assert names
    for name in names:
        key = name if name in theirs else next(k for k in theirs if k.endswith(name))
        assert torch.allclose(ours.state[name], theirs[key], atol=1e-6), name
    if n_tasks == 1:  # single-task TIES = magnitude top-k, also against mergekit
        mag = tailor(base, fts[0], None, PatchConfig(method="magnitude", density=0.2), progress=False)
        for name in names:
            key = name if name in theirs else next(k for k in theirs if k.endswith(name))
            assert torch.allclose(mag.state[name], theirs[key], atol=1e-6), name
