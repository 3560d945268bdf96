"""What the command line and Python users call: load priors, separate tensors and files.

    from priorsep.api import Separator
    separator = Separator.from_pretrained("toy")
    stems = separator.separate_audio(audio, rate)   # {source: (channels, time)}
    fast = Separator.from_pretrained("toy", method="posterior")  # one encoder pass

`Separator` owns the defaults that make separation work (the Langevin schedule stored with the
model, the amortised posterior when one is stored, segment length, overlap); long audio goes
through `priorsep.separation.apply`, so the sampler and the encoder only ever see fixed
segments.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from priorsep.amortised import posterior_estimate
from priorsep.audio import resample, to_mono
from priorsep.config import LangevinConfig, from_dict
from priorsep.errors import ModelFormatError, UsageError
from priorsep.nn.posterior import PosteriorEncoder
from priorsep.nn.prior import SourcePriors
from priorsep.separation.apply import separate_long
from priorsep.separation.langevin import langevin_separate
from priorsep.separation.mixing import Mixing

DEFAULT_MODEL = "toy"


def load_pretrained(model: str | os.PathLike, device: str | torch.device = "cpu",
                    notify: Callable[[str], None] | None = None
                    ) -> tuple[SourcePriors, dict[str, Any]]:
    """Resolve a model id (bundled name, local folder, Hub repo, list or bag) and load it.

    Returns:
        (priors, info): info is the `info` of the model's config.json (empty for combinations),
        where the model's tuned separation settings live under "separation".
    """
    priors, info, _ = _load(model, device, notify, with_posterior=False)
    return priors, info


def _load(model: str | os.PathLike, device: str | torch.device,
          notify: Callable[[str], None] | None, with_posterior: bool
          ) -> tuple[SourcePriors, dict[str, Any], PosteriorEncoder | None]:
    """(priors, info, the stored posterior encoder or None) of a model id."""
    from priorsep import hub
    from priorsep.amortised import load_posterior
    from priorsep.storage import read_config

    resolved = hub.resolve_model(str(model), notify=notify)
    info = read_config(resolved.folder)[1] if resolved.folder is not None else {}
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
                             "`priorsep train-posterior`, or use --method langevin")
    return priors, info, encoder


METHODS = ("langevin", "posterior", "posterior+langevin")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose {', '.join(METHODS)}")


class Separator:
    """Separates mixes into the sources of a set of priors.

    Three methods:
    - "langevin": Langevin posterior sampling under the priors (`priorsep.separation.langevin`);
    - "posterior": one forward pass of the amortised posterior encoder (`priorsep.amortised`),
      its mean, or the average of `samples` draws;
    - "posterior+langevin": the encoder's mean starts a short Langevin refinement.

    Args:
        priors: the source priors (eval mode).
        langevin: the sampler's settings (default: those stored with the model, else the
            package defaults).
        segment_length: samples the separator sees at once (rounded to the models' multiple).
        overlap: samples shared by consecutive segments.
        batch_size: segments separated together (bounds memory).
        method: one of `METHODS`.
        encoder: the amortised posterior, needed by the two posterior methods.
        samples: posterior draws to average (0: the analytic posterior mean).
    """

    def __init__(self, priors: SourcePriors, langevin: LangevinConfig | None = None,
                 segment_length: int = 16384, overlap: int | None = None,
                 batch_size: int = 4, method: str = "langevin",
                 encoder: PosteriorEncoder | None = None, samples: int = 0) -> None:
        _check_method(method)
        if method != "langevin" and encoder is None:
            raise UsageError(f"--method {method} needs a model with an amortised posterior")
        if samples < 0:
            raise UsageError("--samples must be at least 0")
        self.priors = priors.eval()
        self.langevin = langevin or LangevinConfig()
        self.method = method
        self.encoder = encoder.eval() if encoder is not None else None
        self.samples = samples
        multiple = priors.config.flow.frame_multiple
        if encoder is not None:
            multiple = math.lcm(multiple, encoder.config.frame)
        self.multiple = multiple
        self.segment_length = max(segment_length // multiple, 1) * multiple
        self.overlap = self.segment_length // 8 if overlap is None else overlap
        self.batch_size = batch_size
        self.mixing = Mixing.from_config(priors.config)

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike = DEFAULT_MODEL,
                        device: str | torch.device = "cpu",
                        notify: Callable[[str], None] | None = None,
                        method: str = "langevin", samples: int = 0,
                        **langevin_overrides: Any) -> Separator:
        """Load a model by id; its stored separation settings, then `langevin_overrides`, apply.

        For "posterior+langevin" the refinement runs a quarter of the stored Langevin steps
        unless `steps_per_level` is given.

        Args:
            notify: receives notices while resolving the model (e.g. a fallback to the cache).
        """
        _check_method(method)  # before loading: a wrong method must not cost a download
        priors, info, encoder = _load(model, device, notify, with_posterior=method != "langevin")
        stored = info.get("separation", {})
        langevin = from_dict(LangevinConfig, stored) if stored else LangevinConfig()
        if method == "posterior+langevin":
            langevin = dataclasses.replace(
                langevin, steps_per_level=max(1, langevin.steps_per_level // 4))
        overrides = {k: v for k, v in langevin_overrides.items() if v is not None}
        return cls(priors, dataclasses.replace(langevin, **overrides), method=method,
                   encoder=encoder, samples=samples)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.priors.sources

    @property
    def sample_rate(self) -> int:
        return self.priors.config.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.priors.parameters()).device

    def _separate_segments(self, segments: torch.Tensor) -> torch.Tensor:
        """(n, length) mixes -> (n, n_sources, length) estimates of the sources."""
        segments = segments.to(self.device)
        initial = None
        if self.method != "langevin":
            generator = torch.Generator().manual_seed(self.langevin.seed)
            initial = posterior_estimate(self.encoder, segments, self.mixing,
                                         self.samples, generator)
            if self.method == "posterior":
                return initial
        result = langevin_separate(self.priors, segments, self.mixing, self.langevin,
                                   initial=initial)
        return result.sources

    def separate_tensor(self, mix: torch.Tensor,
                        progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Separate mono mixes at the model's sample rate.

        Args:
            mix: (time,) or (batch, time).
            progress: called with (segments done, total segments).

        Returns:
            (n_sources, time) or (batch, n_sources, time), on the CPU.
        """
        estimates = separate_long(mix.float(), self._separate_segments, self.segment_length,
                                  self.overlap, self.multiple,
                                  self.batch_size, progress)
        return estimates.cpu()

    def separate_audio(self, audio: torch.Tensor, rate: int,
                       progress: Callable[[float, float], None] | None = None
                       ) -> dict[str, torch.Tensor]:
        """Separate audio of any rate and channel count.

        Channels are averaged to mono (the priors are mono), the mix is resampled to the
        model's rate and the stems back to `rate`.

        Args:
            audio: (channels, time).
            progress: called with (seconds done, seconds total) of audio.

        Returns:
            {source: (1, time)} at `rate`.
        """
        mono = resample(to_mono(audio), rate, self.sample_rate)[0]
        seconds = audio.shape[-1] / rate

        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(seconds * done / total, seconds)

        stems = self.separate_tensor(mono, report)  # (N, time at model rate)
        stems = resample(stems, self.sample_rate, rate)
        length = audio.shape[-1]
        if stems.shape[-1] < length:
            stems = torch.nn.functional.pad(stems, (0, length - stems.shape[-1]))
        return {name: stems[k : k + 1, :length] for k, name in enumerate(self.sources)}


def output_path(out_dir: str | os.PathLike, template: str, track: str, source: str,
                ext: str) -> Path:
    """Where a stem goes: `template` formatted with {track}, {source} and {ext}."""
    return Path(out_dir) / template.format(track=track, source=source, ext=ext)
