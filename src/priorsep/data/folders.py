"""Recordings in folders: solos, one folder per source (`ROOT/<source>/*.wav|flac`), or mixes.

Training draws, for every source independently, a random file (weighted by length) and a random
crop of it: sources are never paired, which is what keeps the priors unsupervised. A folder of
mixes (`FolderMixes`) feeds the amortised posterior, which trains on mixes alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from priorsep.audio import AUDIO_SUFFIXES, audio_info, read_segment, resample, to_mono
from priorsep.errors import DatasetError

AudioEntry = tuple[Path, int, int]
"""(path, frames, sample rate) of a readable audio file."""


def _entries(paths: list[Path]) -> list[AudioEntry]:
    entries = []
    for path in paths:
        frames, rate = audio_info(path)
        if frames > 0:
            entries.append((path, frames, rate))
    return entries


def random_crop(entries: list[AudioEntry], generator: torch.Generator, length: int,
                sample_rate: int) -> torch.Tensor:
    """A random crop of `length` samples at `sample_rate`, mono, from a file drawn by length.

    Returns:
        (length,), zero-padded when the file is shorter.
    """
    weights = torch.tensor([float(frames) for _, frames, _ in entries])
    index = int(torch.multinomial(weights, 1, generator=generator))
    path, frames, rate = entries[index]
    need = math.ceil(length * rate / sample_rate) + 1
    start = int(torch.randint(0, max(frames - need, 0) + 1, (1,), generator=generator))
    audio, rate = read_segment(path, start, need)
    audio = resample(to_mono(audio)[0], rate, sample_rate)[:length]
    if audio.shape[0] < length:
        audio = torch.nn.functional.pad(audio, (0, length - audio.shape[0]))
    return audio


class FolderSources:
    """Random crops of solo recordings.

    Args:
        root: folder with one subfolder of audio files per source.
        sample_rate: rate the crops are resampled to.
        sources: which subfolders, in order (default: every subfolder holding audio, sorted).
    """

    def __init__(self, root: str | Path, sample_rate: int,
                 sources: tuple[str, ...] | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such folder")
        if sources is None:
            sources = tuple(sorted(d.name for d in root.iterdir()
                                   if d.is_dir() and self._audio_files(d)))
        if not sources:
            raise DatasetError(f"{root}: expected one subfolder of .wav/.flac files per source")
        self.root = root
        self.sources = tuple(sources)
        self.sample_rate = sample_rate
        self.files: list[list[tuple[Path, int, int]]] = []
        for source in self.sources:
            entries = _entries(self._audio_files(root / source))
            if not entries:
                raise DatasetError(f"{root / source}: no readable audio files")
            self.files.append(entries)

    @staticmethod
    def _audio_files(folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)

    def sample(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor:
        """(batch, n_sources, length): an independent random crop per example and source."""
        out = torch.empty(batch, len(self.sources), length)
        for b in range(batch):
            for k, entries in enumerate(self.files):
                out[b, k] = random_crop(entries, generator, length, self.sample_rate)
        return out


class FolderMixes:
    """Random crops of mix recordings: every audio file under `root`, at any depth.

    Args:
        root: folder of mixes (.wav/.flac).
        sample_rate: rate the crops are resampled to.
    """

    def __init__(self, root: str | Path, sample_rate: int) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: no such folder")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        self.entries = _entries(paths)
        if not self.entries:
            raise DatasetError(f"{root}: no readable .wav/.flac mixes")
        self.sample_rate = sample_rate

    def sample_mixes(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor:
        """(batch, length): an independent random crop per example."""
        return torch.stack([random_crop(self.entries, generator, length, self.sample_rate)
                            for _ in range(batch)])
