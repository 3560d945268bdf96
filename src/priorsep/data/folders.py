"""Solo recordings in folders, one per source: `ROOT/<source>/*.wav|flac`.

Training draws, for every source independently, a random file (weighted by length) and a random
crop of it: sources are never paired, which is what keeps the priors unsupervised.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from priorsep.audio import AUDIO_SUFFIXES, audio_info, read_segment, resample, to_mono
from priorsep.errors import DatasetError


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
            entries = []
            for path in self._audio_files(root / source):
                frames, rate = audio_info(path)
                if frames > 0:
                    entries.append((path, frames, rate))
            if not entries:
                raise DatasetError(f"{root / source}: no readable audio files")
            self.files.append(entries)

    @staticmethod
    def _audio_files(folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)

    def _crop(self, entries, generator: torch.Generator, length: int) -> torch.Tensor:
        weights = torch.tensor([float(frames) for _, frames, _ in entries])
        index = int(torch.multinomial(weights, 1, generator=generator))
        path, frames, rate = entries[index]
        need = math.ceil(length * rate / self.sample_rate) + 1
        start = int(torch.randint(0, max(frames - need, 0) + 1, (1,), generator=generator))
        audio, rate = read_segment(path, start, need)
        audio = resample(to_mono(audio)[0], rate, self.sample_rate)[:length]
        if audio.shape[0] < length:
            audio = torch.nn.functional.pad(audio, (0, length - audio.shape[0]))
        return audio

    def sample(self, generator: torch.Generator, batch: int, length: int) -> torch.Tensor:
        """(batch, n_sources, length): an independent random crop per example and source."""
        out = torch.empty(batch, len(self.sources), length)
        for b in range(batch):
            for k, entries in enumerate(self.files):
                out[b, k] = self._crop(entries, generator, length)
        return out
