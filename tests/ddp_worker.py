"""Run by `torchrun` from test_ddp.py: tiny data-parallel training; each rank saves its replica."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from priorsep.amortised import MixesOfSolos, train_posterior
from priorsep.config import FlowConfig, ModelConfig, PosteriorConfig, TrainConfig
from priorsep.data.toy import ToySources
from priorsep.separation.mixing import Mixing
from priorsep.training import train

if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    flow = FlowConfig(early_squeezes=0, n_blocks=2, n_flows=2, n_layers=2, residual_channels=8,
                      skip_channels=8, cond_channels=4)
    priors = train(ModelConfig(architecture=flow),
                   TrainConfig(steps=4, batch_size=2, crop_length=256, checkpoint_every=2,
                               seed=5),
                   ToySources(), out)
    rank = torch.distributed.get_rank()
    state = {k: v.contiguous() for k, v in priors.state_dict().items()}
    save_file(state, str(out / f"replica-{rank}.safetensors"))
    # the amortised posterior trains through the same data-parallel loop
    encoder = train_posterior(
        priors, PosteriorConfig(squeezes=1, n_layers=2, residual_channels=8, skip_channels=8),
        TrainConfig(steps=2, batch_size=2, crop_length=256, seed=5),
        MixesOfSolos(ToySources(), Mixing("mean")), out / "amortised")
    state = {k: v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, str(out / f"encoder-{rank}.safetensors"))
    torch.distributed.destroy_process_group()
