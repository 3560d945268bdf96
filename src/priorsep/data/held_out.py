"""Held-out solo sources for evaluation, from the datasets the command line knows.

- `toy`: the fixed test split (the same on every run and machine, whatever the seed);
- `musdb`: aligned crops of the test tracks of a MUSDB18 wav tree (see `priorsep.data.musdb`);
- `chorales`: aligned crops of the test pieces of the rendered Bach chorales (see
  `priorsep.data.chorales`; rendered into the cache on first use);
- `folder`: crops of solo recordings in `ROOT/<source>/*.wav|flac`, one random file per source
  and example (recordings of different sources are not related, so a mix of them is made up).

Every source comes in the order of the model's sources, mono at the model's rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from priorsep.config import FieldError
from priorsep.data import DATASETS as USES
from priorsep.data.check import DataSummary, check_folders, generated_summary, header_summary
from priorsep.data.chorales import SOURCES as CHORALE_SOURCES
from priorsep.data.chorales import ensure_chorales
from priorsep.data.folders import FolderSources
from priorsep.data.musdb import STEMS, MusdbWav
from priorsep.data.toy import SOURCES as TOY_SOURCES
from priorsep.data.toy import ToyDataset
from priorsep.errors import DatasetError, UsageError

DATASETS = USES["evaluate"]


@dataclass(frozen=True)
class HeldOutData:
    """A dataset of held-out solo sources for a model.

    Args:
        name: "toy", "musdb", "folder" or "chorales".
        root: dataset root (musdb: the folder holding `test/`; folder: ROOT/<source>/).
        sources: the model's source names, in order; the dataset must hold each of them.
        sample_rate: the model's rate.
        notify: hears how rendering the chorales goes, the first time they are used.
    """

    name: str
    root: Path | None
    sources: tuple[str, ...]
    sample_rate: int
    notify: Callable[[str], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise UsageError(f"unknown dataset {self.name!r}; use {', '.join(DATASETS)}")
        if self.name in ("toy", "chorales"):
            if self.root is not None:
                raise FieldError("root", "applies to the musdb and folder datasets only")
            self._check_names(TOY_SOURCES if self.name == "toy" else CHORALE_SOURCES)
        elif self.root is None:
            layout = ("ROOT/test/<track>/<stem>.wav" if self.name == "musdb"
                      else "ROOT/<source>/*.wav")
            raise FieldError("root", f"is needed by the {self.name} dataset ({layout})")
        elif not Path(self.root).is_dir():
            raise DatasetError(f"{self.root}: no such folder (the root of the {self.name} "
                               "dataset)")
        elif self.name == "musdb":
            self._check_names(STEMS)

    def _check_names(self, available: tuple[str, ...]) -> None:
        missing = [source for source in self.sources if source not in available]
        if missing:
            raise UsageError(f"the model's source(s) {', '.join(missing)} are not in the "
                             f"{self.name} dataset (it has {', '.join(available)})")

    @cached_property
    def _chorale_pieces(self) -> Path:
        """The rendered chorales' `pieces/` folder (rendered first when not in the cache)."""
        return ensure_chorales(self.sample_rate, self.notify) / "pieces"

    @cached_property
    def summary(self) -> DataSummary:
        """What the data holds per source (`priorsep.data.check`): the folder dataset's files
        are checked sample by sample and unusable ones left out; MUSDB18's and the chorales'
        test pieces have their headers read."""
        if self.name == "toy":
            return generated_summary("toy", self.sources, self.sample_rate)
        if self.name in ("musdb", "chorales"):
            root = self._chorale_pieces if self.name == "chorales" else Path(self.root)
            tracks = MusdbWav(root, "test", self.sample_rate, self.sources).tracks
            return header_summary(self.name, root / "test", {
                source: [track / f"{source}.wav" for track in tracks]
                for source in self.sources})
        return check_folders(self.root, self.sample_rate, sources=self.sources)

    def describe(self) -> dict:
        """What the report says about the data, with its summary."""
        summary = {"summary": self.summary.as_dict()}
        if self.name == "toy":
            return {"name": "toy", "split": "test", "root": None,
                    "note": "the fixed test split; example i is the same on every run", **summary}
        if self.name == "chorales":
            return {"name": "chorales", "split": "test", "root": None,
                    "note": "aligned crops of the test chorales (Bach, music21; FluidSynth "
                            "violin, clarinet, tenor sax, bassoon; the mix their mean); crops "
                            "where a part is silent are redrawn", **summary}
        if self.name == "musdb":
            return {"name": "musdb", "split": "test", "root": str(self.root),
                    "note": "aligned crops of the test tracks, mono, resampled to the model's "
                            "rate; crops where a stem is silent are redrawn", **summary}
        return {"name": "folder", "split": None, "root": str(self.root),
                "note": "crops of the solo recordings, one random file per source and example",
                **summary}

    def excerpts(self, n: int, length: int, seed: int) -> torch.Tensor:
        """`n` held-out examples of every source.

        Args:
            n: how many.
            length: samples per excerpt, at the model's rate.
            seed: seeds the crop positions (musdb, chorales, folder); the toy split is fixed.

        Returns:
            (n, n_sources, length) float32, sources in the model's order. For toy, musdb and
            chorales the sources of one example are aligned (they mix into a real mix).
        """
        generator = torch.Generator().manual_seed(seed)
        if self.name == "toy":
            split = ToyDataset("test", n, self.sample_rate, duration=length / self.sample_rate)
            order = [TOY_SOURCES.index(source) for source in self.sources]
            return split.batch(range(n))[:, order, :length]
        if self.name == "musdb":
            return MusdbWav(self.root, "test", self.sample_rate, self.sources).crops(
                n, length, generator)
        if self.name == "chorales":
            return MusdbWav(self._chorale_pieces, "test", self.sample_rate, self.sources).crops(
                n, length, generator)
        self.summary.require()
        return FolderSources.from_summary(self.summary, self.sample_rate).sample(
            generator, n, length)
