"""Data-parallel training under plain torchrun: two CPU processes (gloo) stay identical."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None
                    and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_gloo_ranks_keep_identical_replicas(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", "29517", str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    first = load_file(tmp_path / "replica-0.safetensors")
    second = load_file(tmp_path / "replica-1.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first)
    written = load_file(tmp_path / "model.safetensors")
    assert all(torch.equal(first[k], written[k]) for k in first)
    # the ranks drew different data: training moved the weights away from the start
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 4
    assert len(checkpoint["data_rng"]) == 2
    assert not torch.equal(checkpoint["data_rng"][0], checkpoint["data_rng"][1])
    # the posterior encoder's replicas too, and rank 0 wrote it into the model folder
    first = load_file(tmp_path / "encoder-0.safetensors")
    second = load_file(tmp_path / "encoder-1.safetensors")
    assert all(torch.equal(first[k], second[k]) for k in first)
    written = load_file(tmp_path / "amortised" / "posterior.safetensors")
    assert all(torch.equal(first[k], written[k]) for k in first)
