"""The contract every prior family keeps: the interface, save/load, training, separation and
evaluation, run over every registered family (the analytic Gaussian one included)."""

from __future__ import annotations

import pytest
import torch

from priorsep.api import Separator
from priorsep.config import (
    GaussianConfig,
    ModelConfig,
    NMFConfig,
    ScoreConfig,
    SpectralVAEConfig,
    TrainConfig,
    WaveNetConfig,
    WavetableConfig,
)
from priorsep.data.toy import ToyDataset, ToySources
from priorsep.errors import CapabilityError
from priorsep.evaluate import EvaluationConfig, run_evaluation
from priorsep.nn.registry import FAMILIES, build_priors
from priorsep.storage import load_model, save_model
from priorsep.training import train
from tests.conftest import TINY_FLOW

TOY = ("sine", "sawtooth", "square", "triangle")
TINY_SCORE = dict(frame=4, time_channels=8, time_layers=3, time_cycle=3, spectral_channels=8,
                  spectral_layers=3, spectral_cycle=3, stft_size=64, stft_channels=8,
                  stft_layers=3, stft_cycle=3, embedding_channels=8, segment_length=256)
TINY_WAVENET = dict(n_blocks=2, n_layers=3, residual_channels=8, skip_channels=8, classes=32,
                    embedding_channels=4)
CONFIGS = {
    "flowavenet": ModelConfig(architecture=TINY_FLOW, trained_sigma_min=0.01,
                              trained_sigma_max=1.0),
    "score-time": ModelConfig(architecture=ScoreConfig(front_end="time", **TINY_SCORE),
                              trained_sigma_min=0.005, trained_sigma_max=2.0),
    "score-spectral": ModelConfig(architecture=ScoreConfig(front_end="spectral", **TINY_SCORE),
                                  trained_sigma_min=0.005, trained_sigma_max=2.0),
    "score-hybrid-attention": ModelConfig(
        architecture=ScoreConfig(front_end="hybrid", time_attention=1, spectral_attention=1,
                                 attention_width=4, **TINY_SCORE),
        trained_sigma_min=0.005, trained_sigma_max=2.0),
    "score-time+stft-shared": ModelConfig(
        architecture=ScoreConfig(front_end="time+stft", shared=True, **TINY_SCORE),
        trained_sigma_min=0.005, trained_sigma_max=2.0),
    "score-spectral-no-skip": ModelConfig(
        architecture=ScoreConfig(front_end="spectral", skip=False, **TINY_SCORE),
        trained_sigma_min=0.005, trained_sigma_max=2.0),
    "gaussian": ModelConfig(architecture=GaussianConfig((0.0,) * 4, (0.3, 0.2, 0.5, 0.2))),
    "wavenet": ModelConfig(architecture=WaveNetConfig(**TINY_WAVENET), trained_sigma_min=0.005,
                           trained_sigma_max=2.0),
    "wavenet-mulaw-separate": ModelConfig(
        architecture=WaveNetConfig(quantisation="mulaw", **TINY_WAVENET), grouped=False,
        trained_sigma_min=0.005, trained_sigma_max=2.0),
    "wavetable": ModelConfig(architecture=WavetableConfig(bins=256, segment_length=256,
                                                          peaks=3, rounds=2)),
    "nmf": ModelConfig(architecture=NMFConfig(n_fft=64, hop=16, rank=4, fit_iterations=20)),
    "nmf-itakura-saito": ModelConfig(architecture=NMFConfig(n_fft=64, hop=16, rank=4, beta=0.0,
                                                            power=2.0, fit_iterations=20)),
    "vae": ModelConfig(architecture=SpectralVAEConfig(n_fft=64, hop=16, rank=4, latent=2,
                                                      hidden=8, warm_iterations=5,
                                                      iterations=3)),
    "wavetable-exact": ModelConfig(architecture=WavetableConfig(exact=True, bins=256,
                                                                segment_length=256, peaks=3)),
}


def test_every_registered_family_is_covered():
    assert {config.family for config in CONFIGS.values()} == set(FAMILIES)


def randomised(config: ModelConfig):
    """Priors of `config` whose zero-initialised outputs are random (not identities)."""
    torch.manual_seed(0)
    priors = build_priors(config)
    with torch.no_grad():
        for name, parameter in priors.named_parameters():
            if name.endswith("out.weight") or ".net.out." in name:
                parameter.copy_(torch.randn(parameter.shape) * 0.05)
    if config.family == "flowavenet":
        priors.prepare(torch.randn(2, 4, 256) * 0.5)
    return priors.eval()


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def family(request):
    return request.param, randomised(CONFIGS[request.param])


def test_interface(family):
    name, priors = family
    assert priors.sources == TOY and priors.sample_rate == 16000
    assert priors.receptive_field() >= 1 and 256 % priors.length_multiple == 0
    x = torch.randn(3, 4, 256) * 0.5
    score = priors.score(x, 0.1)
    assert score.shape == x.shape and torch.isfinite(score).all()
    assert not score.requires_grad
    assert torch.allclose(priors.denoise(x, 0.1), x + 0.01 * score, atol=1e-5)
    if priors.has_log_prob:
        leaf = x.clone().requires_grad_(True)
        (gradient,) = torch.autograd.grad(priors.log_prob(leaf, 0.1).sum(), leaf)
        assert torch.allclose(score, gradient, atol=1e-5)
    else:
        with pytest.raises(CapabilityError, match="no log-density"):
            priors.log_prob(x, 0.1)
    sigma = torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 3)
    assert torch.isfinite(priors.score(x, sigma)).all()


def test_sources_stay_independent(family):
    _, priors = family
    x = torch.randn(2, 4, 256) * 0.5
    changed = x.clone()
    changed[:, 2] = torch.randn(2, 256)
    before, after = priors.score(x, 0.2), priors.score(changed, 0.2)
    assert torch.allclose(before[:, [0, 1, 3]], after[:, [0, 1, 3]], atol=1e-6)
    assert not torch.allclose(before[:, 2], after[:, 2])


def test_save_and_load_give_the_same_priors(family, tmp_path):
    _, priors = family
    save_model(priors, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.config == priors.config and type(loaded) is type(priors)
    x = torch.randn(2, 4, 256) * 0.5
    assert torch.allclose(loaded.score(x, 0.1), priors.score(x, 0.1), atol=1e-6)


def test_samples_have_the_asked_shape(family):
    _, priors = family
    samples = priors.sample(2, 256, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 4, 256) and torch.isfinite(samples).all()


@pytest.mark.parametrize("name", [name for name, config in CONFIGS.items()
                                  if config.family != "gaussian"
                                  and not getattr(config.architecture, "exact", False)])
def test_two_training_steps_change_the_weights_and_write_a_folder(name, tmp_path):
    config = CONFIGS[name]
    validation = ToyDataset("validation", 2, duration=256 / 16000).batch(range(2))
    noise = ({"draw_sigma_min": 0.005, "draw_sigma_max": 2.0}
             if config.family in ("score", "wavenet") else {})
    torch.manual_seed(0)
    before = build_priors(config).state_dict()
    trained = train(config, TrainConfig(steps=2, batch_size=2, crop_length=256, seed=0,
                                        **noise),
                    ToySources(), tmp_path, validation=validation)
    changed = [key for key, value in trained.state_dict().items()
               if not torch.equal(value, before[key])]
    assert changed
    card = (tmp_path / "README.md").read_text()
    assert trained.validation_name in card
    assert load_model(tmp_path).config.family == config.family


def test_separator_separates_with_the_familys_default(family):
    _, priors = family
    separator = Separator(priors, segment_length=256, batch_size=2)
    assert separator.method == (priors.preferred_method
                                or ("langevin" if priors.has_log_prob else "diffusion"))
    separator.configure(steps=4)
    mix = torch.randn(2, 600) * 0.3
    estimates = separator.separate_tensor(mix)
    assert estimates.shape == (2, 4, 600) and torch.isfinite(estimates).all()
    if separator.method == "diffusion":  # the exact constraint holds through overlap-add
        assert torch.allclose(separator.mixing(estimates), mix, atol=1e-4)


def test_evaluation_runs_the_sections_the_family_supports(family, tmp_path):
    name, priors = family
    save_model(priors, tmp_path / "model")
    config = EvaluationConfig(sections=("cross", "denoising", "separation", "samples"),
                              n_examples=2, length=256, separation_mixes=1,
                              separation_seconds=256 / 16000, separation_steps=2,
                              sample_seconds=256 / 16000, temperatures=(1.0,),
                              with_audio=False)
    report = run_evaluation(config, str(tmp_path / "model")).report
    sections = report["sections"]
    assert ("table" in sections["cross"]) == priors.has_log_prob
    assert len(sections["denoising"]["gain_db"][0]) == 4
    assert all(len(table) == 4 for table in sections["denoising"]["mix_response"].values())
    assert "separated" in sections["separation"]["si_sdr"]
    assert set(sections["samples"]["stats"]["1"]) == set(TOY)


def test_new_attention_layers_start_as_the_identity():
    plain = ModelConfig(architecture=ScoreConfig(front_end="hybrid", **TINY_SCORE))
    attending = ModelConfig(architecture=ScoreConfig(front_end="hybrid", time_attention=2,
                                                     spectral_attention=1, **TINY_SCORE))
    base = randomised(plain)
    extended = build_priors(attending).eval()
    missing = extended.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all(".attention." in key for key in missing)
    x = torch.randn(2, 4, 256) * 0.5
    assert torch.allclose(extended.denoise(x, 0.2), base.denoise(x, 0.2), atol=1e-6)


def test_without_the_skip_path_the_estimate_is_the_networks_alone():
    """skip=False: D = sigma_data F(c_in x); with F silenced nothing of the input passes, while
    EDM's skip path passes c_skip x."""
    for skip, expected in ((True, lambda x, s: 0.36 / (s**2 + 0.36) * x),
                           (False, lambda x, s: torch.zeros_like(x))):
        priors = build_priors(ModelConfig(architecture=ScoreConfig(
            front_end="hybrid", skip=skip, **TINY_SCORE))).eval()
        priors.network = lambda x, sigma: torch.zeros_like(x)
        x = torch.randn(2, 4, 256)
        assert torch.allclose(priors.denoise(x, 0.3), expected(x, 0.3), atol=1e-6)


def test_mix_response_tells_separating_priors_from_mix_keeping_ones():
    from priorsep.evaluation.diagnostics import mix_response
    from priorsep.separation.mixing import Mixing
    from tests.test_diffusion import OraclePriors

    truth = ToyDataset("validation", 2, duration=256 / 16000).batch(range(2))
    oracle = mix_response(OraclePriors(truth), truth, Mixing(), 0.1)
    # 256 samples: the waves are not quite orthogonal, hence off-diagonal gains up to ~0.1
    assert torch.allclose(oracle.diagonal(), torch.ones(4, dtype=oracle.dtype))
    assert (oracle - torch.eye(4, dtype=oracle.dtype)).abs().max() < 0.15
    keeping = build_priors(ModelConfig(architecture=GaussianConfig((0.0,) * 4, (1e6,) * 4)))
    response = mix_response(keeping, truth, Mixing(), 0.01)  # a flat prior keeps its input
    assert torch.allclose(response.diagonal(), torch.full((4,), 0.25, dtype=response.dtype),
                          atol=0.02)
