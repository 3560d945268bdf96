"""What the command line and Python users call: load priors, separate tensors and files.

    from priorsep.api import Separator
    separator = Separator.from_pretrained("toy")
    stems = separator.separate_audio(audio, rate)   # {source: (channels, time)}
    fast = Separator.from_pretrained("toy-flow", method="posterior")  # one encoder pass

`Separator` owns the defaults that make separation work (the model's stored settings and
encoder, segment length, overlap); audio goes through `priorsep.separation.apply` (files
through `priorsep.streaming`), so the methods only ever see fixed segments."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from priorsep.audio import resample, to_mono
from priorsep.config import DEFAULT_MODEL, SECTIONS, SeparationSettings
from priorsep.errors import ModelFormatError, UsageError
from priorsep.methods import METHODS, Context, Strategy, build_strategy, with_steps
from priorsep.nn.interface import SourcePrior
from priorsep.nn.posterior import PosteriorEncoder
from priorsep.separation.apply import segment_starts, separate_long
from priorsep.separation.mixing import Mixing
from priorsep.storage import read_separation, stored_settings

if TYPE_CHECKING:
    from priorsep.hub import ResolvedModel


@dataclasses.dataclass(frozen=True)
class SeparationProgress:
    """Where a separation stands, as `Separator` reports it after every sampler step.

    The audio is cut into `segments` segments (every channel's), separated `batches` batches
    at a time; `batch` is the batch under way (from 1) and `step` of `steps` the prior
    evaluations done in it (`steps` is 0 for the one-pass posterior, reported once per batch).
    `seconds` is the audio's length when the caller gave it (`separate_audio` does).
    """

    batch: int
    batches: int
    step: int
    steps: int
    segments: int
    seconds: float | None = None

    @property
    def done(self) -> int:
        """Work done: prior evaluations over all batches (batches for the posterior)."""
        return (self.batch - 1) * self.steps + self.step if self.steps else self.batch

    @property
    def total(self) -> int:
        """All the work, in the unit of `done`."""
        return self.batches * self.steps if self.steps else self.batches

    @property
    def fraction(self) -> float:
        """`done / total`, from 0 to 1."""
        return self.done / self.total


def load_pretrained(model: str | os.PathLike, device: str | torch.device = "cpu",
                    notify: Callable[[str], None] | None = None
                    ) -> tuple[SourcePrior, dict[str, Any]]:
    """Resolve a model id (bundled name, local folder, Hub repo, list or bag) and load it.

    Returns:
        (priors, info): info is the `info` of the model's config.json (empty for
        combinations); `load_model_id` also gives the stored separation settings.
    """
    priors, info, _, _ = load_model_id(model, device, notify)
    return priors, info


def load_model_id(model: str | os.PathLike, device: str | torch.device = "cpu",
                  notify: Callable[[str], None] | None = None, with_posterior: bool = False
                  ) -> tuple[SourcePrior, dict[str, Any], PosteriorEncoder | None,
                             SeparationSettings]:
    """(priors, info, the stored posterior encoder or None, the stored separation settings)
    of a model id; `with_posterior` makes a missing encoder an error."""
    from priorsep import hub

    return load_resolved_model(hub.resolve_model(str(model), notify=notify), device,
                               with_posterior)


def load_resolved_model(resolved: ResolvedModel, device: str | torch.device = "cpu",
                        with_posterior: bool = False
                        ) -> tuple[SourcePrior, dict[str, Any], PosteriorEncoder | None,
                                   SeparationSettings]:
    """`load_model_id` of a model the resolver (`priorsep.hub.resolve_model`) has found."""
    from priorsep import hub
    from priorsep.storage import load_posterior

    priors = hub.load_resolved(resolved, device)
    encoder = None
    if with_posterior:
        if resolved.folder is not None:
            try:
                encoder = load_posterior(resolved.folder, device)
            except ModelFormatError as error:
                raise ModelFormatError(f"{resolved.model_id}: {error}") from None
        if encoder is None:
            raise UsageError(f"{resolved.model_id} has no amortised posterior; train one with "
                             "`priorsep train-posterior`, or separate with the langevin method")
    try:
        settings = _stored_settings(resolved)
    except ModelFormatError as error:
        raise ModelFormatError(f"{resolved.model_id}: {error}") from None
    return priors, dict(resolved.info), encoder, settings


def _stored_settings(resolved: ResolvedModel) -> SeparationSettings:
    """The separation settings stored with a resolved model: its folder's (a per-level model's
    top folder's, else its lowest level's); the defaults for a combination."""
    from priorsep.storage import CONFIG_NAME, SEPARATION_NAME

    home = resolved
    if resolved.levels and not {CONFIG_NAME, SEPARATION_NAME} & set(resolved.files):
        home = resolved.parts[0]  # the settings stored with the lowest level
    folder = home.folder or home.top
    if folder is None:
        return SeparationSettings()
    if SEPARATION_NAME in home.files:
        return read_separation(folder)
    return stored_settings(home.info)


def _check_method(method: str | None) -> None:
    if method is not None and method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose {', '.join(METHODS)}")


def default_method(priors: SourcePrior) -> str:
    """The family's preferred method (extraction for generator priors), else diffusion
    sampling for score priors and Langevin for density priors."""
    if priors.preferred_method:
        return priors.preferred_method
    return "langevin" if priors.has_log_prob else "diffusion"


class Separator:
    """Separates mixes into the sources of a set of priors.

    Six methods:
    - "langevin": (annealed) Langevin posterior sampling under the priors
      (`priorsep.separation.langevin`);
    - "diffusion": the independent-priors diffusion sampler with the mix as an exact constraint
      (`priorsep.separation.diffusion`), the default for score priors;
    - "posterior": one forward pass of the amortised posterior encoder (`priorsep.amortised`),
      its mean, or the average of `samples` draws;
    - "posterior+langevin": the encoder's mean starts a short Langevin refinement;
    - "extract": staged extraction by evidence (`priorsep.separation.extract`), the default of
      generator priors, optionally refined by one of the samplers;
    - "wiener": the posterior mean under the Gaussian composite model
      (`priorsep.separation.wiener`), the default of the spectral families (nmf, vae).

    Args:
        priors: the source priors (eval mode).
        settings: the method and every settings section's configuration (default: the
            package defaults; the method: `default_method(priors)`).
        segment_length: samples the separator sees at once (rounded to the models' multiple;
            default: the priors' own segment length, else 16384).
        overlap: samples shared by consecutive segments (default: an eighth of a segment).
        batch_size: segments separated together (bounds memory; default: the family's
            `separation_batch`).
        method: one of `METHODS`; overrides the settings' method.
        encoder: the amortised posterior, needed by the two posterior methods.
        samples: posterior draws to average (0: the analytic posterior mean).
    """

    def __init__(self, priors: SourcePrior, settings: SeparationSettings | None = None,
                 segment_length: int | None = None, overlap: int | None = None,
                 batch_size: int | None = None, method: str | None = None,
                 encoder: PosteriorEncoder | None = None, samples: int = 0) -> None:
        settings = settings or SeparationSettings()
        method = method or settings.method
        _check_method(method)
        method = method or default_method(priors)
        if METHODS[method].needs_encoder and encoder is None:
            raise UsageError(f"method {method} needs a model with an amortised posterior")
        if samples < 0:
            raise UsageError("samples must be at least 0")
        self.priors = priors.eval()
        self.settings = dataclasses.replace(settings, method=method)
        self.encoder = encoder.eval() if encoder is not None else None
        self.samples = samples
        multiple = priors.length_multiple
        if encoder is not None:
            multiple = math.lcm(multiple, encoder.config.frame)
        self.multiple = multiple
        if segment_length is None:
            segment_length = priors.segment_length or 16384
        self.segment_length = max(segment_length // multiple, 1) * multiple
        self.overlap = self.segment_length // 8 if overlap is None else overlap
        self.batch_size = batch_size or priors.separation_batch
        self.mixing = Mixing.from_config(priors.config)
        self.present: tuple[str, ...] | None = None

    @property
    def method(self) -> str:
        """The separation method (a key of `METHODS`)."""
        return self.settings.method

    @method.setter
    def method(self, name: str) -> None:
        _check_method(name)
        if METHODS[name].needs_encoder and self.encoder is None:
            raise UsageError(f"method {name} needs a model with an amortised posterior")
        self.settings = dataclasses.replace(self.settings, method=name)

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike = DEFAULT_MODEL,
                        device: str | torch.device = "cpu",
                        notify: Callable[[str], None] | None = None,
                        method: str | None = None, samples: int = 0,
                        **overrides: Any) -> Separator:
        """Load a model by id; its stored separation settings, then `overrides`, apply.

        `overrides` are fields of the chosen method's configuration sections
        (`priorsep.config.SECTIONS`: `LangevinConfig`, `DiffusionConfig`, `ExtractConfig`,
        `WienerConfig`), or `steps` (score evaluations in all); None values are ignored.
        A method may adapt the stored settings (for "posterior+langevin" the refinement runs
        a quarter of the stored Langevin steps unless `steps_per_level` is given).

        Args:
            notify: receives notices while resolving the model (e.g. a fallback to the cache).
        """
        _check_method(method)  # before loading: a wrong method must not cost a download
        wants_encoder = method is not None and METHODS[method].needs_encoder
        priors, _, encoder, settings = load_model_id(model, device, notify,
                                             with_posterior=wants_encoder)
        method = method or settings.method or default_method(priors)
        settings = METHODS[method].stored(dataclasses.replace(settings, method=method))
        separator = cls(priors, settings, encoder=encoder, samples=samples)
        separator.configure(**overrides)
        return separator

    def configure(self, steps: int | None = None, **fields: Any) -> None:
        """Change the method's settings: fields of its own sections by name (`ExtractConfig`
        for "extract", `WienerConfig` for "wiener"), then `steps` (score evaluations in all:
        Langevin keeps its levels and cuts the steps per level; diffusion sets its steps) and
        the remaining fields for its sampler's section (the refinement's with "extract"; a
        method without a sampler ignores them). None values are ignored.

        Raises:
            UsageError: a value the method cannot use (naming the field).
        """
        fields = {k: v for k, v in fields.items() if v is not None}
        if steps is not None and steps < 1:
            raise UsageError("steps must be at least 1")
        kind = METHODS[self.method]
        settings = self.settings
        try:
            for section in kind.own:
                names = {f.name for f in dataclasses.fields(SECTIONS[section])}
                own = {k: v for k, v in fields.items() if k in names}
                fields = {k: v for k, v in fields.items() if k not in names}
                settings = settings.with_config(
                    section, dataclasses.replace(settings[section], **own))
            sampler = kind.sampler(settings)
            if sampler is not None:
                config = settings[sampler]
                if steps is not None:
                    config = with_steps(sampler, config, steps)
                settings = settings.with_config(sampler, dataclasses.replace(config, **fields))
        except (ValueError, TypeError) as error:
            raise UsageError(str(error)) from None
        self.settings = settings

    def only(self, names) -> None:
        """Separate only the sources `names` (the others known absent: never searched, no
        stems); None: all of them again.

        Raises:
            UsageError: a name the model does not have, a repeated name, or a posterior method
                (its encoder gives every source).
        """
        if names is None:
            self.present = None
            return
        names = tuple(names)
        unknown = [name for name in names if name not in self.sources]
        if unknown or not names:
            raise UsageError(f"no source {', '.join(unknown) or 'given'}: the model's sources "
                             f"are {', '.join(self.sources)}")
        if len(set(names)) != len(names):
            raise UsageError(f"a source named twice in {', '.join(names)}")
        self.present = tuple(name for name in self.sources if name in names)
        self._check_only()

    def _check_only(self) -> None:
        if self.present is not None and METHODS[self.method].needs_encoder:
            raise UsageError(f"method {self.method} gives every source; choose the sources "
                             "with another method")

    @property
    def stems(self) -> tuple[str, ...]:
        """The sources separation returns: those of `only`, else all of the model's."""
        return self.present or self.sources

    @property
    def strategy(self) -> Strategy:
        """The method with the current settings (`priorsep.methods`)."""
        return build_strategy(self.settings, Context(len(self.stems), self.encoder,
                                                     self.samples))

    @property
    def evaluations_per_segment(self) -> int:
        """Prior score evaluations per batch of segments (0 for the posterior's one pass)."""
        return self.strategy.evaluations

    @property
    def sources(self) -> tuple[str, ...]:
        return self.priors.sources

    @property
    def sample_rate(self) -> int:
        return self.priors.config.sample_rate

    @property
    def device(self) -> torch.device:
        return self.priors.device

    def _separate_segments(self, segments: torch.Tensor,
                           step: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """(n, length) mixes -> (n, n_sources, length) estimates of the sources (silence for
        those known absent)."""
        self._check_only()
        strategy, segments = self.strategy, segments.to(self.device)
        if self.present is None:
            return strategy.separate(self.priors, segments, self.mixing, step)
        classes = [self.sources.index(name) for name in self.present]
        if strategy.takes_classes:
            return strategy.separate(self.priors, segments, self.mixing, step, classes)
        from priorsep.separation.extract import on_classes

        return on_classes(self.priors, self.mixing, classes, lambda priors, mixing:
                          strategy.separate(priors, segments, mixing, step))

    def segment_function(self, rows: int, time: int | None,
                         progress: Callable[[SeparationProgress], None] | None = None,
                         seconds: float | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The function `separation.apply` calls on every batch of segments, reporting a
        `SeparationProgress` after every step of it (for `rows` mixes of `time` samples at
        the model's rate, when known: the number of segments)."""
        n_segments = rows * len(segment_starts(time or self.segment_length,
                                               self.segment_length, self.overlap))
        steps, batch = self.evaluations_per_segment, 0

        def report(step: int) -> None:
            if progress is not None:
                batches = max(-(-n_segments // self.batch_size), batch)
                progress(SeparationProgress(batch, batches, step, steps, n_segments, seconds))

        def segment_fn(segments: torch.Tensor) -> torch.Tensor:
            nonlocal batch
            batch += 1
            estimates = self._separate_segments(
                segments, (lambda done, total: report(done)) if steps else None)
            if not steps:
                report(0)
            return estimates

        return segment_fn

    def separate_tensor(self, mix: torch.Tensor,
                        progress: Callable[[SeparationProgress], None] | None = None,
                        seconds: float | None = None) -> torch.Tensor:
        """Separate mono mixes (time,) or (batch, time) at the model's sample rate into
        (n_sources, time) or (batch, n_sources, time) on the CPU; `progress` hears a
        `SeparationProgress` (its `seconds` those given) after every sampler step (every
        batch of segments for the one-pass posterior)."""
        rows = 1 if mix.dim() == 1 else mix.shape[0]
        segment_fn = self.segment_function(rows, mix.shape[-1], progress, seconds)
        estimates = separate_long(mix.float(), segment_fn, self.segment_length, self.overlap,
                                  self.multiple, self.batch_size)
        return estimates.cpu()

    def separate_audio(self, audio: torch.Tensor, rate: int,
                       progress: Callable[[SeparationProgress], None] | None = None,
                       mono: bool = False) -> dict[str, torch.Tensor]:
        """Separate audio of any rate and channel count.

        Every channel is separated on its own (the channels of a segment in one batch), so the
        stems keep the input's channels; `mono` averages the channels first. The mix is
        resampled to the model's rate and the stems back to `rate`.

        Args:
            audio: (channels, time).
            progress: called with a `SeparationProgress` (its `seconds` the audio's length)
                after every sampler step.
            mono: separate the average of the channels and return one-channel stems.

        Returns:
            {source: (channels, time)} at `rate` (one channel with `mono`), for the sources of
            `stems`.
        """
        channels = to_mono(audio) if mono else audio
        mixes = resample(channels, rate, self.sample_rate)  # (channels, time at model rate)
        stems = self.separate_tensor(mixes, progress, audio.shape[-1] / rate)
        stems = resample(stems, self.sample_rate, rate)
        length = audio.shape[-1]
        if stems.shape[-1] < length:
            stems = torch.nn.functional.pad(stems, (0, length - stems.shape[-1]))
        return {name: stems[:, k, :length] for k, name in enumerate(self.sources)
                if name in self.stems}
