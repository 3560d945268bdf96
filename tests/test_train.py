"""Training: the loss drops, checkpoints resume bit for bit, Ctrl-C saves, sigma sampling."""

from __future__ import annotations

import dataclasses
import math
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from priorsep.cli.app import option_error
from priorsep.config import ModelConfig, TrainConfig
from priorsep.data.toy import ToyDataset, ToySources
from priorsep.errors import CheckpointError, TrainingInterrupted, UsageError
from priorsep.nn.interface import draw_sigma, validation_log_likelihood
from priorsep.storage import load_model
from priorsep.training import (
    CHECKPOINT_NAME,
    learning_rate,
    train,
)
from tests.conftest import TINY_FLOW

SHORT = TrainConfig(steps=6, batch_size=2, crop_length=256, checkpoint_every=3, seed=1)


def validation_set() -> torch.Tensor:
    return ToyDataset("validation", 6, duration=512 / 16000).batch(range(6))


def test_training_raises_held_out_likelihood(tmp_path):
    config = ModelConfig(architecture=TINY_FLOW)
    validation = validation_set()
    torch.manual_seed(0)
    steps = TrainConfig(steps=60, batch_size=4, crop_length=512, lr=1e-2, seed=0)
    priors = train(config, steps, ToySources(), tmp_path, validation=validation)
    trained = validation_log_likelihood(priors, validation)
    # the same architecture after ActNorm's initialisation only, i.e. step 0
    untrained = train(config, TrainConfig(steps=1, batch_size=4, crop_length=512, lr=1e-12),
                      ToySources(), tmp_path / "untrained", validation=validation)
    before = validation_log_likelihood(untrained, validation)
    assert all(after > start + 0.3 for after, start in zip(trained, before))
    card = (tmp_path / "README.md").read_text()
    assert "validation log-likelihood" in card and "steps: 60" in card


def test_resume_continues_bit_for_bit(tmp_path):
    config = ModelConfig(architecture=TINY_FLOW)
    train(config, SHORT, ToySources(), tmp_path / "straight")

    def die_after_checkpoint(progress):
        if progress.step == 4:  # the step-3 checkpoint is on disk
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train(config, SHORT, ToySources(), tmp_path / "resumed", on_progress=die_after_checkpoint)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT_NAME, weights_only=True)["step"] == 3
    train(config, SHORT, ToySources(), tmp_path / "resumed", resume=True)
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_ctrl_c_saves_a_checkpoint_and_stops(tmp_path):
    config = ModelConfig(architecture=TINY_FLOW)

    def press_ctrl_c(progress):
        if progress.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match="checkpoint saved") as stopped:
        train(config, SHORT, ToySources(), tmp_path, on_progress=press_ctrl_c)
    assert "--resume" in str(option_error(stopped.value))  # the command line names the flag
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["step"] == 2
    assert not (tmp_path / "model.safetensors").exists()
    priors = train(config, SHORT, ToySources(), tmp_path, resume=True)
    assert load_model(tmp_path).config == priors.config


def test_existing_checkpoint_needs_resume_and_resume_needs_same_options(tmp_path):
    config = ModelConfig(architecture=TINY_FLOW)
    train(config, SHORT, ToySources(), tmp_path)
    with pytest.raises(UsageError, match="exists: resume it"):
        train(config, SHORT, ToySources(), tmp_path)
    other = TrainConfig(steps=6, batch_size=3, crop_length=256)
    with pytest.raises(CheckpointError, match="other training options"):
        train(config, other, ToySources(), tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(config, SHORT, ToySources(), tmp_path / "empty", resume=True)


def test_a_checkpoint_from_before_a_new_field_resumes(tmp_path):
    """A field added to an architecture later (with its default), or a training option renamed
    since, does not block --resume; a changed value still does."""
    config = ModelConfig(architecture=TINY_FLOW)
    short = TrainConfig(steps=3, batch_size=2, crop_length=256, checkpoint_every=3, seed=1)
    train(config, short, ToySources(), tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    saved = torch.load(path, weights_only=True)
    del saved["model_config"]["architecture"]["frame_transform"]  # as an older version wrote
    saved["train_config"]["frame_length"] = saved["train_config"].pop("crop_length")
    torch.save(saved, path)
    more = TrainConfig(steps=4, batch_size=2, crop_length=256, checkpoint_every=3, seed=1)
    train(config, more, ToySources(), tmp_path, resume=True)
    wider = ModelConfig(architecture=dataclasses.replace(TINY_FLOW, residual_channels=6))
    with pytest.raises(CheckpointError, match="another model configuration"):
        train(wider, more, ToySources(), tmp_path, resume=True)


def test_checkpoint_write_is_atomic(tmp_path):
    """A crash while saving leaves the previous checkpoint, never a half-written file."""
    config = ModelConfig(architecture=TINY_FLOW)
    train(config, SHORT, ToySources(), tmp_path)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_learning_rate_decays_the_asked_number_of_times():
    config = TrainConfig(steps=600, lr=1.0, lr_decay=0.5, lr_decay_times=5)
    rates = sorted({learning_rate(config, step) for step in range(600)}, reverse=True)
    assert rates == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]


def test_sigma_draws_are_log_uniform_with_clean_share():
    config = TrainConfig(draw_sigma_min=0.01, draw_sigma_max=1.0, clean_fraction=0.25)
    sigma = draw_sigma(config, torch.Generator().manual_seed(0), 4000, 4)
    clean = (sigma == 0).float().mean().item()
    assert abs(clean - 0.25) < 0.02
    noisy = sigma[sigma > 0]
    assert noisy.min() >= 0.01 and noisy.max() <= 1.0
    assert abs(torch.log10(noisy).mean().item() + 1.0) < 0.03  # midpoint of [-2, 0]
    # the score family's draws: never clean; the noisy ones are the same stream's
    always = draw_sigma(config, torch.Generator().manual_seed(0), 4000, 4, with_clean=False)
    assert always.min() >= 0.01 and always.max() <= 1.0
    assert torch.equal(always[sigma > 0], noisy)


def test_score_matching_loss_is_smallest_at_the_true_score():
    """For x ~ N(0, v) the noised density is N(0, v + sigma**2); its exact score gives the
    loss v / (v + sigma**2), any other variance more, and clean examples do not count."""
    from priorsep.nn.prior import score_matching_loss

    generator = torch.Generator().manual_seed(0)
    variance = 0.25
    sigma = torch.tensor([[0.3, 0.0]]).expand(64, 2)
    clean = variance**0.5 * torch.randn(64, 2, 2048, generator=generator)
    noise = torch.randn(64, 2, 2048, generator=generator)
    noisy = (clean + sigma[..., None] * noise).requires_grad_(True)

    def loss_for(assumed: float) -> float:
        total = assumed + sigma[..., None] ** 2
        log_prob = (-0.5 * noisy.pow(2) / total - 0.5 * torch.log(total)).sum(dim=-1)
        return score_matching_loss(log_prob, noisy, noise, sigma).item()

    exact = loss_for(variance)
    assert exact == pytest.approx(variance / (variance + 0.09), rel=0.01)
    assert loss_for(0.5 * variance) > exact + 0.01 and loss_for(2 * variance) > exact + 0.01


def test_training_with_score_matching(tmp_path, tiny_model_config):
    config = TrainConfig(steps=2, batch_size=2, crop_length=256, draw_sigma_min=0.05,
                         draw_sigma_max=0.5, score_weight=1.0)
    losses = []
    train(tiny_model_config, config, ToySources(), tmp_path / "m",
          on_progress=lambda p: losses.append(p.loss))
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    assert (tmp_path / "m" / "model.safetensors").is_file()
