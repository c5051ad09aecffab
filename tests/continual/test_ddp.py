"""`tailorkit continual run` unchanged under torchrun (2 ranks, gloo on CPU)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .test_cli import TINY


@pytest.mark.slow
def test_continual_run_under_torchrun(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    if "lo" in {name for _, name in socket.if_nameindex()}:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}", "-m", "tailorkit.cli.main", "continual", "run", str(cfg),
        "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun timed out:\n{output[-4000:]}")
    assert proc.returncode == 0, f"torchrun failed:\n{output[-4000:]}"
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["phases_done"] == 3 and doc["strategy"] == "cppf"
    assert sorted(p.name for p in (tmp_path / "run").glob("phase?.pt")) == ["phase0.pt", "phase1.pt", "phase2.pt"]
