"""Dataset names as the command line knows them -> training data and validation sources."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from priorsep.config import FieldError
from priorsep.data import DATASETS
from priorsep.data.folders import FolderMixes, FolderSources
from priorsep.data.toy import ToyDataset, ToySources
from priorsep.errors import UsageError

VALIDATION_EXAMPLES = 16
VALIDATION_SEED = 12345


def training_data(name: str, root: Path | None, sources: str | None, sample_rate: int,
                  crop_length: int, notify: Callable[[str], None] | None = None
                  ) -> tuple[Any, torch.Tensor, dict[str, Any]]:
    """Build (data, validation sources (n, N, crop_length), model-card info) for a dataset.

    The toy validation set is the fixed validation split; for folders it is a fixed-seed draw
    of crops from the same files (the card says so); for the chorales, from the solos of the
    validation split (rendered first when they are not in the cache: `notify` hears how far).
    """
    if name == "toy":
        if sources is not None:
            raise FieldError("sources", "applies to the folder and chorales datasets only")
        split = ToyDataset("validation", VALIDATION_EXAMPLES, sample_rate,
                           duration=crop_length / sample_rate)
        validation = split.batch(range(VALIDATION_EXAMPLES))
        info = {"training": {"dataset": "toy (sine, sawtooth, square, triangle; on the fly)"}}
        return ToySources(sample_rate), validation, info
    if name == "chorales":
        return _chorales(root, sources, sample_rate, crop_length, notify)
    if name == "folder":
        if root is None:
            raise FieldError("root", "is needed by the folder dataset (ROOT/<source>/*.wav)")
        names = tuple(s.strip() for s in sources.split(",")) if sources else None
        data = FolderSources(root, sample_rate, names)
        generator = torch.Generator().manual_seed(VALIDATION_SEED)
        validation = data.sample(generator, VALIDATION_EXAMPLES, crop_length)
        info = {"training": {"dataset": f"folder {root} (validation: fixed crops of it)"}}
        return data, validation, info
    raise UsageError(f"unknown dataset {name!r}; use {' or '.join(DATASETS['train'])}")


def _chorales(root: Path | None, sources: str | None, sample_rate: int, crop_length: int,
              notify: Callable[[str], None] | None) -> tuple[Any, torch.Tensor, dict[str, Any]]:
    from priorsep.data import chorales

    if root is not None:
        raise FieldError("root", "does not apply to the chorales dataset (it lives in the "
                         f"cache, {chorales.data_home()})")
    names = tuple(s.strip() for s in sources.split(",")) if sources else chorales.SOURCES
    unknown = [source for source in names if source not in chorales.SOURCES]
    if unknown:
        raise FieldError("sources", f"{', '.join(unknown)} not in the chorales dataset (it has "
                         f"{', '.join(chorales.SOURCES)})")
    folder = chorales.ensure_chorales(sample_rate, notify)
    data = FolderSources(chorales.split_folder(folder, "solos", "train"), sample_rate, names)
    validation = FolderSources(chorales.split_folder(folder, "solos", "validation"),
                               sample_rate, names).sample(
        torch.Generator().manual_seed(VALIDATION_SEED), VALIDATION_EXAMPLES, crop_length)
    info = {"training": {"dataset": "chorales (Bach's four-part chorales from music21, "
                         "FluidSynth FluidR3_GM: violin, clarinet, tenor sax, bassoon; train "
                         "split; validation: fixed crops of the validation split)"}}
    return data, validation, info


def mix_training_data(name: str, root: Path | None, sources: tuple[str, ...], sample_rate: int,
                      mixing: Any, crop_length: int, notify: Callable[[str], None] | None = None
                      ) -> tuple[Any, torch.Tensor, dict[str, Any]]:
    """Build (mix data, validation mixes (n, crop_length), card info) for posterior training.

    "toy", "folder" and "chorales" mix independently drawn solos with the model's `mixing` (the
    sources are dropped at once); "mixes" crops mix recordings (ROOT/**/*.wav|flac).
    """
    from priorsep.amortised import MixesOfSolos

    if name not in DATASETS["posterior"]:
        raise UsageError(f"unknown dataset {name!r}; use {', '.join(DATASETS['posterior'])}")
    if name == "mixes":
        if root is None:
            raise FieldError("root", "is needed by the mixes dataset (a folder of mix "
                             "recordings)")
        data = FolderMixes(root, sample_rate)
        validation = data.sample_mixes(torch.Generator().manual_seed(VALIDATION_SEED),
                                       VALIDATION_EXAMPLES, crop_length)
        return data, validation, {"training": {"dataset": f"mixes in {root}"}}
    solos, validation_sources, info = training_data(
        name, root, ",".join(sources) if name in ("folder", "chorales") else None, sample_rate,
        crop_length, notify)
    info["training"]["dataset"] += " (mixed on the fly; the sources are never seen)"
    return MixesOfSolos(solos, mixing), mixing(validation_sources), info
