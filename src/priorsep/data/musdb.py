"""MUSDB18 in its standard wav layout: `ROOT/{train,test}/<track>/<stem>.wav`.

The stems are `mixture`, `drums`, `bass`, `other` and `vocals` (musdb18-HQ, or the `musdb`
package's decoded wav format), stereo at 44.1 kHz. Everything read here comes out mono (the
channels averaged) at the rate asked for, float32, with every stem of a track cut at the same
place, so the stems of a crop stay aligned.

Reference: Rafii et al. 2017, "The MUSDB18 corpus for music separation", doi 10.5281/zenodo.1117372.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from priorsep.audio import audio_info, read_segment, resample, to_mono
from priorsep.errors import DatasetError

STEMS: tuple[str, ...] = ("drums", "bass", "other", "vocals")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""MUSDB18 has train and test; pieces rendered by `priorsep render` (same layout) also have a
validation split."""
SILENCE_RMS = 1e-3
"""A crop of a stem quieter than this (-60 dBFS RMS) counts as silent."""
CROP_ATTEMPTS = 16
"""Random positions tried per crop before settling for the one whose quietest stem is loudest."""
_RESAMPLE_MARGIN = 256
"""At least this many extra samples (at the file's rate) are read on each side of a crop, so the
resampler's edge effects fall outside it."""


class MusdbWav:
    """The tracks of one MUSDB18 split, read stem by stem.

    Args:
        root: the folder holding `train/` and `test/`.
        split: "train", "validation" (rendered pieces only) or "test".
        sample_rate: rate everything is resampled to.
        stems: which stems, in order (default: drums, bass, other, vocals).

    Raises:
        DatasetError: the split folder is missing, holds no track, or a track lacks a stem.
    """

    def __init__(self, root: str | Path, split: str = "test", sample_rate: int = 44100,
                 stems: tuple[str, ...] = STEMS) -> None:
        if split not in SPLITS:
            raise DatasetError(f"unknown musdb split {split!r}; choose train or test (or "
                               "validation, for rendered pieces)")
        folder = Path(root) / split
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such folder (expected ROOT/{{train,test}}/<track>/"
                               f"{{mixture,{','.join(STEMS)}}}.wav)")
        self.root = Path(root)
        self.split = split
        self.sample_rate = sample_rate
        self.stems = tuple(stems)
        self.tracks = sorted(p for p in folder.iterdir() if p.is_dir())
        if not self.tracks:
            raise DatasetError(f"{folder}: holds no track folders")
        self.frames: list[int] = []
        self.file_rates: list[int] = []
        for track in self.tracks:
            infos = []
            for stem in self.stems:
                path = track / f"{stem}.wav"
                if not path.is_file():
                    raise DatasetError(f"{track}: missing {stem}.wav")
                infos.append(audio_info(path))
            rates = {rate for _, rate in infos}
            if len(rates) != 1:
                raise DatasetError(f"{track}: stems at different sample rates")
            # stems of one track should have one length; use the shortest to stay aligned
            self.frames.append(min(frames for frames, _ in infos))
            self.file_rates.append(rates.pop())

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def track_names(self) -> list[str]:
        return [track.name for track in self.tracks]

    def duration(self, index: int) -> float:
        """Seconds of audio in track `index`."""
        return self.frames[index] / self.file_rates[index]

    def read(self, index: int, start: float = 0.0, length: int | None = None,
             stems: tuple[str, ...] | None = None) -> torch.Tensor:
        """Stems of track `index`, mono at `sample_rate`, from `start` seconds.

        Args:
            length: samples to return at `sample_rate` (default: to the end of the track); a
                crop running past the end is zero-padded.
            stems: which stems (default: `self.stems`; "mixture" may be asked for too).

        Returns:
            (n_stems, length) float32.
        """
        stems = self.stems if stems is None else stems
        file_rate, frames = self.file_rates[index], self.frames[index]
        # file samples per whole number of output samples (441 for 44.1 -> 16 kHz): the start and
        # the margins sit on this grid, so a crop's samples are those of the whole track
        grid = file_rate // math.gcd(file_rate, self.sample_rate)
        first = int(round(start * file_rate / grid)) * grid
        if length is None:
            length = max(int(math.floor((frames - first) * self.sample_rate / file_rate)), 0)
        need = math.ceil(length * file_rate / self.sample_rate)
        margin = math.ceil(_RESAMPLE_MARGIN / grid) * grid if file_rate != self.sample_rate else 0
        margin_before = min(margin, first)
        offset = margin_before * self.sample_rate // file_rate
        out = torch.zeros(len(stems), length)
        for k, stem in enumerate(stems):
            audio, rate = read_segment(self.tracks[index] / f"{stem}.wav", first - margin_before,
                                       need + margin_before + margin)
            mono = resample(to_mono(audio)[0], rate, self.sample_rate)[offset:offset + length]
            out[k, :mono.shape[0]] = mono
        return out

    def crops(self, n: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """`n` aligned crops, track after track in turn, each at a random position.

        A position where some stem is silent (RMS below `SILENCE_RMS`) is redrawn, up to
        `CROP_ATTEMPTS` times; then the position whose quietest stem is loudest is kept.

        Returns:
            (n, n_stems, length) float32.
        """
        out = torch.empty(n, len(self.stems), length)
        for item in range(n):
            index = item % len(self.tracks)
            seconds = length / self.sample_rate
            latest = max(self.duration(index) - seconds, 0.0)
            best, best_quietest = None, -1.0
            for _ in range(CROP_ATTEMPTS):
                # a position on the file's sample grid, drawn from the CPU generator
                start = float(torch.rand((), generator=generator, dtype=torch.float64)) * latest
                crop = self.read(index, start, length)
                quietest = float(crop.pow(2).mean(dim=-1).sqrt().min())
                if quietest > best_quietest:
                    best, best_quietest = crop, quietest
                if quietest >= SILENCE_RMS:
                    break
            out[item] = best
        return out
