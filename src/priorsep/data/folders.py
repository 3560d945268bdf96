"""Recordings in folders: solos, one folder per source (`ROOT/<source>/*.wav|flac`), or mixes.

Training draws, for every source independently, a random file (weighted by length) and a random
crop of it: sources are never paired, which is what keeps the priors unsupervised. A folder of
mixes (`FolderMixes`) feeds the amortised posterior, which trains on mixes alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from priorsep.audio import read_segment, resample, to_mono
from priorsep.data.check import AudioEntry, DataSummary, check_folders, check_mixes


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
        sources: which subfolders, in order (default: every subfolder, sorted).

    Raises:
        DatasetError: the layout is wrong or a source has no usable audio (see
            `priorsep.data.check`; unusable files are left out).
    """

    def __init__(self, root: str | Path, sample_rate: int,
                 sources: tuple[str, ...] | None = None) -> None:
        summary = check_folders(root, sample_rate, sources=sources)
        summary.require()
        self._use(summary, sample_rate)

    @classmethod
    def from_summary(cls, summary: DataSummary, sample_rate: int) -> FolderSources:
        """The usable files of a checked folder dataset (`check_folders`, then `require`)."""
        data = cls.__new__(cls)
        data._use(summary, sample_rate)
        return data

    def _use(self, summary: DataSummary, sample_rate: int) -> None:
        self.root = summary.root
        self.summary = summary
        self.sources = summary.names
        self.sample_rate = sample_rate
        self.files: list[list[AudioEntry]] = [list(source.entries) for source in summary.sources]

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

    Raises:
        DatasetError: `root` is not a folder or holds no usable audio.
    """

    def __init__(self, root: str | Path, sample_rate: int) -> None:
        summary = check_mixes(root, sample_rate)
        summary.require()
        self._use(summary, sample_rate)

    @classmethod
    def from_summary(cls, summary: DataSummary, sample_rate: int) -> FolderMixes:
        """The usable files of a checked folder of mixes (`check_mixes`, then `require`)."""
        data = cls.__new__(cls)
        data._use(summary, sample_rate)
        return data

    def _use(self, summary: DataSummary, sample_rate: int) -> None:
        self.summary = summary
        self.entries = list(summary.sources[0].entries)
        self.sample_rate = sample_rate

    def sample_mixes(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor:
        """(batch, length): an independent random crop per example."""
        return torch.stack([random_crop(self.entries, generator, length, self.sample_rate)
                            for _ in range(batch)])
