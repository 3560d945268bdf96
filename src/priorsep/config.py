"""Frozen dataclasses holding every hyperparameter, one per component.

Checkpoints and model folders store `dataclasses.asdict(config)`; `from_dict` rebuilds them,
ignoring nothing silently: unknown keys are an error so that a newer format is never misread.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from priorsep.errors import UsageError

T = TypeVar("T")


DEFAULT_MODEL = "toy"
"""The bundled model every command and `Separator.from_pretrained` use when none is named."""


class FieldError(UsageError, ValueError):
    """A configuration field (or argument) holds a value it cannot take; `field` names it, so
    a front end can name its own option for it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


def check_counts(config: Any, minimum: int, *names: str) -> None:
    """Each named integer field is at least `minimum`."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise FieldError(name, f"must be a whole number of at least {minimum}, got {value!r}")


def check_finite(config: Any, low: float, high: float, *names: str,
                 low_open: bool = False) -> None:
    """Each named number is finite and in [low, high] (or (low, high] with `low_open`)."""
    for name in names:
        value = getattr(config, name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise FieldError(name, f"must be a number, got {value!r}") from None
        below = number <= low if low_open else number < low
        if not math.isfinite(number) or below or number > high:
            if math.isinf(high):
                wanted = f"{'above' if low_open else 'at least'} {low:g}"
            else:
                wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
            raise FieldError(name, f"must be a finite number {wanted}, got {value!r}")


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build dataclass `cls` from `values`, rejecting keys the class does not have; keys the
    class has renamed (its `RENAMED`, old -> new) are read under their new names."""
    renamed = getattr(cls, "RENAMED", {})
    values = {renamed.get(key, key): value for key, value in values.items()}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**converted)


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of one FloWaveNet prior (Kim et al. 2019, arXiv 1811.02155).

    Each of `n_blocks` blocks squeezes (time/2, channels*2) then applies `n_flows` flows of
    ActNorm -> affine coupling -> flip. Every coupling runs a non-causal WaveNet of `n_layers`
    dilated layers (dilations 1..2**(n_layers-1)) with `residual_channels` channels.
    """

    n_blocks: int = 2
    early_squeezes: int = 3
    """Squeezes before the first block (WaveGlow's grouping of samples): each halves the time
    resolution every coupling works at, cutting the cost per sample about in half."""
    n_flows: int = 3
    n_layers: int = 5
    residual_channels: int = 24
    skip_channels: int = 24
    kernel_size: int = 3
    cond_channels: int = 16
    """Width of the noise-level (log sigma) embedding added into every WaveNet gate."""
    max_log_scale: float = 4.0
    """Soft bound (tanh) on each coupling's |log s|: keeps the flow invertible in float32."""
    permutation: str = "flip"
    """What follows each coupling: "flip" swaps the channel halves (FloWaveNet), "invconv" is a
    learnt invertible 1x1 convolution (Glow)."""
    frame_transform: str = "none"
    """Applied to each frame of 2**early_squeezes samples after the early squeezes: "none", or
    "dct", a fixed orthonormal DCT-II (logdet 0), so the couplings see short-time spectra in
    which a periodic wave occupies few channels."""

    def __post_init__(self) -> None:
        if min(self.n_blocks, self.n_flows, self.n_layers) < 1:
            raise ValueError("n_blocks, n_flows and n_layers must be at least 1")
        if self.early_squeezes < 0:
            raise ValueError("early_squeezes must be at least 0")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd (the WaveNet is non-causal)")
        if self.permutation not in ("flip", "invconv"):
            raise ValueError(f"unknown permutation {self.permutation!r}; choose flip or invconv")
        if self.frame_transform not in ("none", "dct"):
            raise ValueError(f"unknown frame_transform {self.frame_transform!r}; "
                             "choose none or dct")
        if self.frame_transform == "dct" and self.early_squeezes < 1:
            raise ValueError("frame_transform dct needs early_squeezes >= 1")

    @property
    def length_multiple(self) -> int:
        """Input lengths must be a multiple of this (one halving per squeeze)."""
        return 2 ** (self.n_blocks + self.early_squeezes)


FRONT_ENDS = ("time", "spectral", "hybrid", "stft", "time+stft")
"""Views of a score prior: "spectral" is the FFT of the whole segment, "stft" short-time
spectra; "hybrid" is time + spectral."""


@dataclass(frozen=True)
class ScoreConfig:
    """Architecture of score-based priors: sigma-conditioned denoisers (`priorsep.nn.score`).

    Front ends: "time" (a dilated WaveNet over frames of `frame` samples), "spectral" (a dilated
    WaveNet over the bins of the orthonormal FFT of the whole segment), "stft" (a dilated WaveNet
    over the bins of every short-time spectrum, which also sees the segment's mean magnitude
    spectrum), "hybrid" (time + spectral) or "time+stft"; several views' outputs are summed.
    Layer i of a stack has dilation 2**(i % cycle).
    """

    front_end: str = "hybrid"
    frame: int = 8
    """Samples per time step of the time branch; input lengths must be a multiple of it."""
    time_channels: int = 48
    time_layers: int = 10
    time_cycle: int = 10
    spectral_frame: int = 4
    """Neighbouring frequency bins per step of the spectral branch (its squeeze)."""
    spectral_channels: int = 32
    spectral_layers: int = 12
    spectral_cycle: int = 12
    stft_size: int = 1024
    """Window of the short-time view (hop: half of it, square-root Hann windows)."""
    stft_channels: int = 32
    stft_layers: int = 8
    stft_cycle: int = 8
    time_attention: int = 0
    spectral_attention: int = 0
    """Self-attention layers in the time and spectral stacks (along frames or bins), spread
    evenly between the dilated layers: global competition, e.g. one tone kept and others
    dropped."""
    attention_width: int = 32
    kernel_size: int = 3
    embedding_channels: int = 32
    """Width of the noise-level embedding added into every gate."""
    shared: bool = False
    """One network for all sources, told the source by a learnt embedding, instead of one
    grouped network per source."""
    sigma_data: float = 0.6
    """Standard deviation of the clean data in EDM's preconditioning."""
    skip: bool = True
    """EDM's skip path D = c_skip x + c_out F. False: D = sigma_data F, the network
    synthesises the whole estimate, so nothing of the input reaches the output unless the
    network reproduces it (a test of whether the skip path is what makes denoisers keep every
    source of a mix)."""
    segment_length: int = 4096
    """Samples per segment at separation: the spectral view is learnt on segments of this
    length (the training frame length)."""

    def __post_init__(self) -> None:
        if self.front_end not in FRONT_ENDS:
            raise ValueError(f"unknown front_end {self.front_end!r}; "
                             f"choose {', '.join(FRONT_ENDS)}")
        if self.stft_size < 4 or self.stft_size % 2 or self.segment_length % (self.stft_size // 2):
            raise ValueError("stft_size must be even and its half divide segment_length")
        if min(self.time_attention, self.spectral_attention) < 0 or self.attention_width < 1:
            raise ValueError("attention layers must be >= 0 and attention_width >= 1")
        if min(self.frame, self.spectral_frame, self.stft_channels, self.stft_layers,
               self.stft_cycle, self.time_layers, self.spectral_layers, self.time_cycle,
               self.spectral_cycle, self.time_channels, self.spectral_channels,
               self.embedding_channels) < 1:
            raise ValueError("frame, layers, cycles and channels must be at least 1")
        if self.kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd (the denoiser is non-causal)")
        if self.sigma_data <= 0:
            raise ValueError("sigma_data must be positive")
        if self.segment_length < 1 or self.segment_length % self.frame:
            raise ValueError("segment_length must be a positive multiple of frame")

    @property
    def length_multiple(self) -> int:
        """Input lengths must be a multiple of this."""
        return self.frame


@dataclass(frozen=True)
class GaussianConfig:
    """Analytic priors: every sample of source k independent N(means[k], variances[k]).

    No parameters to learn: the reference family whose posterior is known in closed form, for
    checking samplers and the separator.
    """

    means: tuple[float, ...] = (0.0,)
    variances: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if len(self.means) != len(self.variances) or not self.means:
            raise ValueError("means and variances need one entry per source")
        if min(self.variances) <= 0:
            raise ValueError("variances must be positive")

    @property
    def length_multiple(self) -> int:
        return 1


QUANTISATIONS = ("linear", "mulaw")
"""How an autoregressive WaveNet's 256 (or `classes`) levels are spaced: evenly over [-1, 1],
or evenly after mu-law companding (finer near zero, as the WaveNet paper)."""


@dataclass(frozen=True)
class WaveNetConfig:
    """Architecture of autoregressive WaveNet priors (`priorsep.nn.autoregressive`).

    A causal dilated stack of `n_blocks` blocks of `n_layers` gated layers (dilation
    2**i in layer i of a block), residual and skip paths, and a categorical over `classes`
    quantisation levels for the next sample. Noise-conditioned as PnF: the history is noised at
    level sigma, the target stays clean, and sigma enters every gate.
    """

    n_blocks: int = 3
    n_layers: int = 10
    kernel_size: int = 3
    residual_channels: int = 32
    skip_channels: int = 64
    classes: int = 256
    quantisation: str = "linear"
    """"linear" (needed where sources are summed: Langevin on a linear mix) or "mulaw"."""
    mu: float = 255.0
    """The mu of mu-law companding (quantisation "mulaw")."""
    embedding_channels: int = 16
    """Width of the noise-level embedding added into every gate."""

    def __post_init__(self) -> None:
        check_counts(self, 1, "n_blocks", "n_layers", "residual_channels", "skip_channels",
                     "embedding_channels")
        check_counts(self, 2, "kernel_size", "classes")
        if self.quantisation not in QUANTISATIONS:
            raise FieldError("quantisation", f"unknown quantisation {self.quantisation!r}; "
                                             f"choose {' or '.join(QUANTISATIONS)}")
        check_finite(self, 0.0, math.inf, "mu", low_open=True)

    @property
    def length_multiple(self) -> int:
        return 1


@dataclass(frozen=True)
class WavetableConfig:
    """Generator priors (`priorsep.nn.wavetable`): one learnt wavetable per source class.

    Source k is `x = g * W_k(frac(f0 t / rate + theta))`, latent z = (f0, theta, g): whatever
    the latent, the output is one source of class k (exclusive by construction). Training
    learns W_k by autoencoding solo crops (the encoder is the latent search) and the ranges of
    f0 and gain seen in them (the prior on z). `exact` replaces the tables by the toy
    generator's true shapes and ranges (model `toy-exact`: a reference, nothing to learn).
    """

    bins: int = 4096
    """Wavetable length (phase resolution 1 / bins of a cycle)."""
    segment_length: int = 4096
    """Samples per segment at separation (one latent per segment)."""
    f0_min: float = 20.0
    f0_max: float = 5000.0
    """Bounds of the encoder's f0 search while training (the learnt range is inside)."""
    peaks: int = 10
    subharmonics: int = 1
    """Trial f0s of the search: the residual's strongest peaks, and each peak / 2 ... /
    subharmonics for sources whose fundamental is weaker than a harmonic."""
    rounds: int = 6
    """Nested f0 grids of the search, each 4 times finer (6: f0 to about 0.002 Hz over a
    4096-sample segment, so the edges of a low square wave land on the right samples)."""
    pitch: str = "peaks"
    """The training encoder's f0 of a solo crop: "peaks" (its spectral peaks, searched with the
    class's table: right when the fundamental is the strongest partial, as in the toy data) or
    "yin" (YIN, snapped to a spectral peak within 3 %: for instruments whose fundamental can
    be weaker than a harmonic)."""
    spectral_weight: float = 0.1
    """Weight of the multi-resolution STFT term beside the waveform term of the training loss."""
    exact: bool = False

    def __post_init__(self) -> None:
        check_counts(self, 8, "bins", "segment_length")
        check_counts(self, 1, "peaks", "subharmonics", "rounds")
        if self.pitch not in ("peaks", "yin"):
            raise FieldError("pitch", f"must be peaks or yin, got {self.pitch!r}")
        check_finite(self, 0.0, math.inf, "f0_min", low_open=True)
        check_finite(self, self.f0_min, math.inf, "f0_max")
        check_finite(self, 0.0, math.inf, "spectral_weight")

    @property
    def length_multiple(self) -> int:
        return 1


ARCHITECTURES: dict[str, type] = {"flowavenet": FlowConfig, "score": ScoreConfig,
                                  "gaussian": GaussianConfig, "wavenet": WaveNetConfig,
                                  "wavetable": WavetableConfig}
"""Prior family name -> the dataclass of its architecture (the family is stored by name)."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a set of source priors from `config.json` alone.

    `architecture` is the configuration of one prior family; `family` names it and is filled in
    from the architecture's type when left empty.
    """

    RENAMED: ClassVar[dict[str, str]] = {"sigma_min": "trained_sigma_min",
                                         "sigma_max": "trained_sigma_max"}
    """Keys of older model folders and checkpoints and their names now."""

    sources: tuple[str, ...] = ("sine", "sawtooth", "square", "triangle")
    sample_rate: int = 16000
    architecture: (FlowConfig | ScoreConfig | GaussianConfig | WaveNetConfig
                   | WavetableConfig) = field(
        default_factory=FlowConfig)
    grouped: bool = True
    """One module for all sources (convolutions with groups=len(sources)), or one per source."""
    trained_sigma_min: float = 0.0
    trained_sigma_max: float = 0.0
    """Noise levels the priors were trained on (0, 0 for clean priors)."""
    mixing: str = "mean"
    gains: tuple[float, ...] | None = None
    family: str = ""

    def __post_init__(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError("sources must be a non-empty list of distinct names")
        if self.sample_rate <= 0:
            raise FieldError("sample_rate", f"must be positive, got {self.sample_rate!r}")
        names = [name for name, cls in ARCHITECTURES.items()
                 if isinstance(self.architecture, cls)]
        if not names:
            raise ValueError(f"unknown architecture type {type(self.architecture).__name__}")
        if self.family and self.family != names[0]:
            raise ValueError(f"family {self.family!r} does not match a "
                             f"{type(self.architecture).__name__}")
        object.__setattr__(self, "family", names[0])

    @property
    def length_multiple(self) -> int:
        """Input lengths must be a multiple of this."""
        return self.architecture.length_multiple

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Rebuild from `asdict`; a dict with a "flow" entry and no family is a FloWaveNet
        model of format version 1."""
        values = dict(values)
        if "flow" in values:  # format version 1: only flows existed
            values["architecture"] = values.pop("flow")
        family = values.get("family") or "flowavenet"
        if family not in ARCHITECTURES:
            raise ValueError(f"unknown prior family {family!r}; "
                             f"known: {', '.join(ARCHITECTURES)}")
        values["family"] = family
        values["architecture"] = from_dict(ARCHITECTURES[family], values.get("architecture", {}))
        return from_dict(cls, values)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by `priorsep train` and `priorsep finetune-noise`."""

    RENAMED: ClassVar[dict[str, str]] = {"frame_length": "crop_length",
                                         "sigma_min": "draw_sigma_min",
                                         "sigma_max": "draw_sigma_max"}
    """Keys of older checkpoints and their names now."""

    steps: int = 2000
    batch_size: int = 8
    crop_length: int = 4096
    """Samples per training example (each a random crop of a recording)."""
    lr: float = 1e-3
    lr_decay: float = 0.6
    lr_decay_times: int = 5
    """The learning rate is multiplied by `lr_decay` this many times, evenly over `steps`."""
    grad_clip: float = 10.0
    draw_sigma_min: float = 0.0
    draw_sigma_max: float = 0.0
    """Noise levels drawn per example, log-uniform in [draw_sigma_min, draw_sigma_max]; 0, 0 =
    clean. (The model's `trained_sigma_*` record the range; samplers' `sigma_*` are schedules.)"""
    clean_fraction: float = 0.1
    """Share of examples kept clean (sigma = 0) when training with noise."""
    score_weight: float = 0.0
    """Weight of a denoising score-matching term added to the negative log-likelihood of the
    noised examples: mean (sigma * grad log p_sigma(x + sigma eps) + eps)**2 per sample, which
    trains the gradient that Langevin and the posterior follow (costs about 3x per step)."""
    checkpoint_every: int = 100
    eval_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_counts(self, 1, "steps", "batch_size", "crop_length", "checkpoint_every")
        check_counts(self, 0, "lr_decay_times", "eval_every", "seed")
        check_finite(self, 0.0, math.inf, "lr", low_open=True)
        check_finite(self, 0.0, 1.0, "lr_decay", low_open=True)
        check_finite(self, 0.0, 1.0, "clean_fraction")
        check_finite(self, 0.0, math.inf, "grad_clip", "draw_sigma_min", "draw_sigma_max",
                     "score_weight")
        if self.draw_sigma_min > self.draw_sigma_max:
            raise FieldError("draw_sigma_min", f"({self.draw_sigma_min:g}) must not exceed the "
                                               f"top of the range ({self.draw_sigma_max:g})")


@dataclass(frozen=True)
class PosteriorConfig:
    """An amortised posterior encoder q(s | m) and the ELBO it is trained with.

    The encoder is a non-causal WaveNet on frames of `2**squeezes` mix samples; it emits, per
    sample and source, a normal truncated to [-1, 1]. Training maximises
    `sum_k E_q[log p_k,sigma(s_k)] + H(q) - ||m - g(s)||**2 / (2 gamma**2)` with the priors frozen,
    evaluated at the noise level `sigma` the priors condition on.
    """

    squeezes: int = 3
    n_layers: int = 8
    residual_channels: int = 48
    skip_channels: int = 48
    kernel_size: int = 3
    min_scale: float = 1e-3
    initial_scale: float = 0.1
    sigma: float = 0.05
    """Noise level the frozen priors are evaluated at."""
    gamma: float = 0.05
    """Width of the Gaussian likelihood of the mix given the sources."""

    def __post_init__(self) -> None:
        check_counts(self, 0, "squeezes")
        check_counts(self, 1, "n_layers", "residual_channels", "skip_channels", "kernel_size")
        if self.kernel_size % 2 != 1:
            raise FieldError("kernel_size", "must be odd (the WaveNet is non-causal)")
        check_finite(self, 0.0, math.inf, "min_scale", "gamma", low_open=True)
        check_finite(self, 0.0, math.inf, "sigma")
        if not self.min_scale < self.initial_scale:
            raise FieldError("initial_scale", f"must exceed min_scale ({self.min_scale:g})")

    @property
    def frame(self) -> int:
        """Mix lengths must be a multiple of this: the samples of one encoder time step."""
        return 2**self.squeezes


@dataclass(frozen=True)
class LangevinConfig:
    """Posterior sampling of the sources by Langevin dynamics (see `priorsep.separation.langevin`).

    Every step is `s <- s + eta * (grad log p_sigma(s) + grad log p(m | s)) + sqrt(2 eta) * eps`
    with the Gaussian likelihood `p(m | s) = N(m; g(s), gamma**2)`. Both the step size and the
    likelihood width follow the noise level: `eta = step_size * (sigma / step_sigma)**2` and
    `gamma = gamma_scale * sigma`. The defaults are BASIS' (Jayaram & Thickstun 2020,
    arXiv 2002.07942): 10 geometric levels from 1.0 to 0.01, 100 steps each, delta = 3e-5,
    gamma = sigma. PnF's audio setting (eta = 0.05 sigma**2, gamma**2 = sigma**2 / 15) is
    `step_size=0.05, step_sigma=1.0, gamma_scale=15 ** -0.5`.
    """

    mode: str = "annealed"
    """"annealed": geometric sigma levels from sigma_max down to sigma_min (BASIS).
    "fixed": the thesis' Algorithm 2 - every step at sigma_min, a prior step then a separate
    constraint step."""
    sigma_max: float = 1.0
    sigma_min: float = 0.01
    n_levels: int = 10
    steps_per_level: int = 100
    """Prior gradient evaluations: n_levels * steps_per_level in both modes."""
    step_size: float = 3e-5
    """delta in eta = delta * (sigma / step_sigma)**2."""
    step_sigma: float | None = None
    """The sigma at which eta equals step_size; None means sigma_min (BASIS' rule)."""
    gamma_scale: float = 1.0
    """gamma = gamma_scale * sigma: the width of the Gaussian likelihood around the mix."""
    init: str = "noise"
    """"noise": Gaussian noise of standard deviation init_std; "mix": the least-norm sources
    that mix to the mix (the mix itself in every slot for the mean)."""
    init_std: float | None = None
    """Standard deviation of the "noise" initialisation; None means the first sigma level."""
    n_chains: int = 1
    """Chains per mix, run together in one batch; the one with the highest final posterior wins."""
    final_step: str = "none"
    """"none": the last iterate. "noise_free": the very last update adds no noise (no extra cost).
    "denoise": one Tweedie step s + sigma_min**2 * grad log p_sigma_min(s) after the last iterate,
    using the gradient of the final scoring pass."""
    project: bool = False
    """Project the output onto the mixing constraint g(s) = m (after final_step)."""
    bound: float | None = 1.0
    """After every update, clamp the sources to +-(bound + 3 sigma): audio lives in [-1, 1], and
    a flow's score far outside its data can be huge enough to throw a chain to infinity in one
    step. None disables the clamp."""
    seed: int = 0
    """Seed of the CPU generator that draws every noise sample (results do not depend on device)."""

    def __post_init__(self) -> None:
        if self.mode not in ("annealed", "fixed"):
            raise ValueError(f"unknown Langevin mode {self.mode!r}; choose annealed or fixed")
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError("need 0 < sigma_min <= sigma_max")
        if self.n_levels < 1 or self.steps_per_level < 1 or self.n_chains < 1:
            raise ValueError("n_levels, steps_per_level and n_chains must be at least 1")
        if self.step_size <= 0 or self.gamma_scale <= 0:
            raise ValueError("step_size and gamma_scale must be positive")
        if self.step_sigma is not None and self.step_sigma <= 0:
            raise ValueError("step_sigma must be positive")
        if self.init not in ("noise", "mix"):
            raise ValueError(f"unknown init {self.init!r}; choose noise or mix")
        if self.init_std is not None and self.init_std < 0:
            raise ValueError("init_std must be non-negative")
        if self.bound is not None and self.bound <= 0:
            raise ValueError("bound must be positive (or None for no clamp)")
        if self.final_step not in ("none", "noise_free", "denoise"):
            raise ValueError(
                f"unknown final_step {self.final_step!r}; choose none, noise_free or denoise")

    @property
    def total_steps(self) -> int:
        """Number of Langevin updates, each one prior gradient evaluation."""
        return self.n_levels * self.steps_per_level

    def with_total_steps(self, steps: int) -> LangevinConfig:
        """The same schedule with about `steps` updates in all: the levels are kept (fewer
        when `steps` is smaller than their number) and the steps spread evenly over them."""
        if steps < 1:
            raise FieldError("steps", f"must be at least 1, got {steps}")
        n_levels = min(self.n_levels, steps)
        return dataclasses.replace(self, n_levels=n_levels,
                                   steps_per_level=max(steps // n_levels, 1))

    def sigmas(self) -> list[float]:
        """The noise level of every level, (n_levels,): geometric from sigma_max to sigma_min
        when annealed (a single level is sigma_min), sigma_min throughout when fixed."""
        if self.mode == "fixed" or self.n_levels == 1:
            return [self.sigma_min] * self.n_levels
        ratio = self.sigma_min / self.sigma_max
        return [self.sigma_max * ratio ** (level / (self.n_levels - 1))
                for level in range(self.n_levels)]

    def step_size_at(self, sigma: float) -> float:
        """eta = step_size * (sigma / step_sigma)**2."""
        reference = self.sigma_min if self.step_sigma is None else self.step_sigma
        return self.step_size * (sigma / reference) ** 2

    def gamma_at(self, sigma: float) -> float:
        """gamma = gamma_scale * sigma."""
        return self.gamma_scale * sigma


@dataclass(frozen=True)
class DiffusionConfig:
    """Separation with score priors by a diffusion sampler (see `priorsep.separation.diffusion`).

    Karras' schedule of `steps` noise levels from sigma_max to sigma_min (then 0), Euler or Heun
    steps of the probability-flow ODE, EDM's churn, the Dirac constraint of Mariani et al. 2024
    (or a Gaussian likelihood), and optional Langevin corrections.
    """

    steps: int = 40
    sigma_max: float = 1.0
    sigma_min: float = 0.005
    rho: float = 7.0
    """Karras' schedule exponent: larger spends more steps at low noise."""
    solver: str = "heun"
    """"euler" (one score evaluation per step) or "heun" (two, second order)."""
    churn: float = 0.0
    """EDM's S_churn: noise re-injected per step is min(churn / steps, sqrt(2) - 1) of sigma."""
    churn_min: float = 0.0
    churn_max: float | None = None
    """Churn only for sigma in [churn_min, churn_max] (None: no upper bound)."""
    noise_scale: float = 1.0
    """EDM's S_noise: scale of the re-injected noise."""
    corrector_steps: int = 0
    """Langevin correction steps after every step (each one more score evaluation)."""
    corrector_size: float = 0.1
    """Step size of a correction, in units of sigma**2."""
    constraint: str = "projection"
    """"dirac": the last source is solved from the mix (MSDM); "projection": the sources stay
    on the plane that mixes to the mix and move along the projected score (exact, symmetric);
    "gaussian": every source is sampled under a Gaussian likelihood of width
    gamma_scale * sigma."""
    gamma_scale: float = 1.0
    init: str = "noise"
    """"noise": start at sigma_max noise; "mix": the mix in every slot (the least-norm sources
    that mix to it) plus sigma_max noise."""
    n_chains: int = 1
    """Chains per mix, run in one batch; the one nearest a fixed point of the denoisers wins."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.n_chains < 1 or self.corrector_steps < 0:
            raise ValueError("steps and n_chains must be at least 1, corrector_steps at least 0")
        if not 0 < self.sigma_min <= self.sigma_max:
            raise ValueError("need 0 < sigma_min <= sigma_max")
        if self.rho <= 0 or self.churn < 0 or self.noise_scale < 0 or self.corrector_size <= 0:
            raise ValueError("rho and corrector_size must be positive, churn and noise_scale "
                             "non-negative")
        if self.solver not in ("euler", "heun"):
            raise ValueError(f"unknown solver {self.solver!r}; choose euler or heun")
        if self.constraint not in ("dirac", "projection", "gaussian"):
            raise ValueError(f"unknown constraint {self.constraint!r}; "
                             "choose dirac, projection or gaussian")
        if self.gamma_scale <= 0:
            raise ValueError("gamma_scale must be positive")
        if self.init not in ("noise", "mix"):
            raise ValueError(f"unknown init {self.init!r}; choose noise or mix")

    @property
    def total_evaluations(self) -> int:
        """Score evaluations per run: every step (two for Heun but the last), the corrections
        after every step but the last, and one final check."""
        per_step = (2 if self.solver == "heun" else 1) + self.corrector_steps
        return (self.steps - 1) * per_step + 1 + 1



REFINEMENTS = ("none", "langevin", "diffusion")


@dataclass(frozen=True)
class ExtractConfig:
    """Staged extraction by evidence (see `priorsep.separation.extract`).

    The residual starts as the mix; at every stage each unassigned class proposes its source
    from the residual (the rest treated as noise of level `sigma`) with its evidence, and the
    `beam` best partial assignments by total evidence are kept. Then `sweeps` passes re-extract
    every source from the mix less the others at level `sweep_sigma`, and `refine` optionally
    runs the model's Langevin or diffusion sampler from the result.
    """

    sigma: float = 2.0
    """Noise level at which a class sees the residual (the other sources as noise)."""
    beam: int = 2
    """Partial assignments kept at every stage (1: greedy)."""
    order: str = "evidence"
    """"evidence": every stage's class is chosen by evidence; "fixed": the sources' own order
    (a baseline, to measure what ordering by evidence is worth)."""
    sweeps: int = 2
    sweep_sigma: float = 0.1
    refine: str = "none"
    """"none", or "langevin" / "diffusion": the sampler (with the model's stored settings)
    started from the extracted sources."""

    def __post_init__(self) -> None:
        check_counts(self, 1, "beam")
        check_counts(self, 0, "sweeps")
        check_finite(self, 0.0, math.inf, "sigma", "sweep_sigma", low_open=True)
        if self.order not in ("evidence", "fixed"):
            raise FieldError("order", f"must be evidence or fixed, got {self.order!r}")
        if self.refine not in REFINEMENTS:
            raise FieldError("refine", f"must be one of {', '.join(REFINEMENTS)}, "
                                       f"got {self.refine!r}")
