"""Amortised posteriors: train an encoder q(s | m) against frozen priors, on mixes only.

The encoder (`priorsep.nn.posterior.PosteriorEncoder`) maximises the evidence lower bound

    ELBO(m) = sum_k E_q[log p_k,sigma(s_k)] + H(q(. | m)) + E_q[log N(m; g(s), gamma**2 I)]

with one reparameterised sample per mix for the two expectations and the analytic entropy of the
truncated normals. Only mixes enter the objective: the sources a toy mix is made of are drawn and
dropped at once, never paired with it. After training, separating is one forward pass (the
posterior mean), which is what makes the method faster than real time on a CPU.

The trained encoder lives in the model folder beside the priors: `posterior.safetensors` and
`posterior.json` (its `PosteriorConfig` and training details), written and read by
`priorsep.storage.save_posterior` / `load_posterior`.

Reference: the thesis' "Modeling the posteriors" section (M. Frank, University of Amsterdam);
Kingma & Welling 2014, "Auto-Encoding Variational Bayes", arXiv 1312.6114.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from priorsep.config import FieldError, PosteriorConfig, TrainConfig
from priorsep.errors import UsageError
from priorsep.nn.posterior import PosteriorEncoder
from priorsep.nn.prior import CombinedPriors, SourcePriors
from priorsep.separation.langevin import log_likelihood
from priorsep.separation.mixing import Mixing
from priorsep.storage import save_model, save_posterior
from priorsep.training import (
    TrainingStep,
    distributed_rank,
    fresh_checkpoint_path,
    optimise,
    rank_device,
    training_card,
)


class MixData(Protocol):
    """Anything that draws (batch, length) mixes from a generator."""

    def sample_mixes(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor: ...


class MixesOfSolos:
    """Mixes made on the fly from independently drawn solo sources; the sources are dropped.

    Args:
        solos: draws (batch, n_sources, length) solo sources (e.g. `ToySources`, `FolderSources`).
        mixing: the mixing function of the priors.
    """

    def __init__(self, solos: Any, mixing: Mixing) -> None:
        self.solos = solos
        self.mixing = mixing

    def sample_mixes(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor:
        return self.mixing(self.solos.sample(generator, batch, length))


def elbo(priors: SourcePriors, encoder: PosteriorEncoder, mix: torch.Tensor, mixing: Mixing,
         generator: torch.Generator | None = None, sigma: float | None = None,
         gamma: float | None = None) -> torch.Tensor:
    """One-sample estimate of the evidence lower bound of every mix, in nats.

    Args:
        mix: (batch, time), time a multiple of the encoder's frame and the flow's multiple.
        sigma, gamma: the priors' noise level and the likelihood width (default: the encoder
            config's).

    Returns:
        (batch,) ELBO: log prior of the sampled sources + entropy of q + log likelihood of the mix.
    """
    config = getattr(encoder, "module", encoder).config  # unwrapped under DDP
    sigma = config.sigma if sigma is None else sigma
    gamma = config.gamma if gamma is None else gamma
    n_sources = len(priors.sources)
    posterior = encoder(mix, mixing.least_norm_sources(mix, n_sources))
    sources = posterior.rsample(generator)  # (B, N, T)
    log_prior = priors.log_prob(sources, sigma).sum(dim=1)
    entropy = posterior.entropy().sum(dim=(1, 2))
    return log_prior + entropy + log_likelihood(sources, mix, mixing, gamma)


@torch.no_grad()
def posterior_estimate(encoder: PosteriorEncoder, mix: torch.Tensor, mixing: Mixing,
                       samples: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The sources the encoder proposes for `mix`.

    Args:
        mix: (batch, time).
        samples: 0 for the analytic posterior mean, K >= 1 for the average of K samples.

    Returns:
        (batch, n_sources, time).
    """
    posterior = encoder(mix, mixing.least_norm_sources(mix, encoder.n_sources))
    if samples <= 0:
        return posterior.mean
    total = torch.zeros_like(posterior.loc)
    for _ in range(samples):
        total += posterior.rsample(generator)
    return total / samples


def train_posterior(
    priors: SourcePriors,
    posterior_config: PosteriorConfig,
    train_config: TrainConfig,
    data: MixData,
    out_dir: str | Path,
    *,
    priors_info: dict[str, Any] | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    validation: torch.Tensor | None = None,
    info: dict[str, Any] | None = None,
    on_progress: Callable[[TrainingStep], None] | None = None,
) -> PosteriorEncoder:
    """Train an encoder against the frozen `priors`; write priors + encoder to `out_dir`.

    Args:
        priors: one model's priors (a single model folder, not a combination).
        priors_info: the priors' `info` (kept in the new folder's config.json and card).
        data: draws training mixes.
        validation: (n, time) held-out mixes; their mean ELBO (nats per mix sample) goes into
            the card.
        info: extra "training" lines for the card.

    Returns:
        The trained encoder (eval mode, on `device`).

    Raises:
        TrainingInterrupted: after Ctrl-C, once the checkpoint is written.
    """
    if isinstance(priors, CombinedPriors):
        raise UsageError("a posterior is trained against one model folder, not a combination "
                         "of several")
    if not isinstance(priors, SourcePriors):
        raise UsageError(f"a posterior encoder is trained against flowavenet priors (its "
                         f"objective needs their exact density); this model's family is "
                         f"{priors.config.family}")
    out_dir = Path(out_dir)
    model_config = priors.config
    multiple = math.lcm(model_config.length_multiple, posterior_config.frame)
    if train_config.crop_length % multiple:
        raise FieldError("crop_length", f"must be a multiple of {multiple}")
    rank, world = distributed_rank()
    device = rank_device(device, world)
    checkpoint_path = fresh_checkpoint_path(out_dir, resume)
    priors = priors.to(device).eval().requires_grad_(False)
    mixing = Mixing.from_config(model_config)
    torch.manual_seed(train_config.seed)
    encoder = PosteriorEncoder(posterior_config, len(model_config.sources)).to(device)
    generator = torch.Generator().manual_seed(train_config.seed * 1000 + rank)
    length = train_config.crop_length

    def batch_loss(model: torch.nn.Module, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        mix = data.sample_mixes(generator, train_config.batch_size, length).to(device)
        return -elbo(priors, model, mix, mixing, generator).mean() / length, mix.numel()

    step, elapsed = optimise(
        encoder, train_config, checkpoint_path, batch_loss,
        configs={"model_config": model_config, "posterior_config": posterior_config,
                  "train_config": train_config},
        resume=resume, generator=generator, rank=rank, world=world, on_progress=on_progress)

    if rank == 0:
        card = training_card(info, train_config, step, world, elapsed, device)
        card["training"].pop("noise levels", None)
        if validation is not None:
            card["validation ELBO (nats/sample)"] = round(
                validation_elbo(priors, encoder, validation.to(device), mixing), 3)
        save_model(priors, out_dir, priors_info)
        save_posterior(encoder, out_dir, card)
        checkpoint_path.unlink(missing_ok=True)
    if world > 1:
        dist.barrier()
    return encoder


@torch.no_grad()
def validation_elbo(priors: SourcePriors, encoder: PosteriorEncoder, mixes: torch.Tensor,
                    mixing: Mixing, batch_size: int = 8) -> float:
    """Mean ELBO per mix sample of held-out mixes (one fixed-seed sample each), in nats."""
    generator = torch.Generator().manual_seed(0)
    total = sum(elbo(priors, encoder, chunk, mixing, generator).sum().item()
                for chunk in mixes.split(batch_size))
    return total / mixes.numel()
