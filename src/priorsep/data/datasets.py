"""Dataset names as the command line knows them -> training data and validation sources."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from priorsep.config import FieldError
from priorsep.data import DATASETS
from priorsep.data.check import DataSummary, check_folders, check_mixes, generated_summary
from priorsep.data.folders import FolderMixes, FolderSources
from priorsep.data.toy import ToyDataset, ToySources
from priorsep.errors import UsageError

VALIDATION_EXAMPLES = 16
VALIDATION_SEED = 12345


SummaryCallback = Callable[[DataSummary], None]
"""Receives a dataset's summary once it is checked, before it is required usable."""


def check_training_data(name: str, root: Path | None, sources: str | None, sample_rate: int,
                        crop_length: int, notify: Callable[[str], None] | None = None
                        ) -> DataSummary:
    """One pass over a training dataset of solo sources (see `priorsep.data.check`).

    Args:
        sources: comma-separated source names (folder dataset: folder names, default every
            subfolder; chorales: some of `chorales.SOURCES`, default all).
        notify: hears how rendering the chorales goes, the first time they are used.
    """
    if name == "toy":
        if sources is not None:
            raise FieldError("sources", "applies to the folder and chorales datasets only")
        return generated_summary("toy", ToySources.sources, sample_rate)
    if name == "chorales":
        return _check_chorales(root, sources, sample_rate, crop_length, notify)
    if name == "folder":
        if root is None:
            raise FieldError("root", "is needed by the folder dataset (ROOT/<source>/*.wav)")
        names = tuple(s.strip() for s in sources.split(",") if s.strip()) if sources else None
        return check_folders(root, sample_rate, crop_length, names)
    raise UsageError(f"unknown dataset {name!r}; use {' or '.join(DATASETS['train'])}")


def _chorale_sources(root: Path | None, sources: str | None) -> tuple[str, ...]:
    from priorsep.data import chorales

    if root is not None:
        raise FieldError("root", "does not apply to the chorales dataset (it lives in the "
                         f"cache, {chorales.data_home()})")
    names = (tuple(s.strip() for s in sources.split(",") if s.strip()) if sources
             else chorales.SOURCES)
    unknown = [source for source in names if source not in chorales.SOURCES]
    if unknown:
        raise FieldError("sources", f"{', '.join(unknown)} not in the chorales dataset (it has "
                         f"{', '.join(chorales.SOURCES)})")
    return names


def _check_chorales(root: Path | None, sources: str | None, sample_rate: int, crop_length: int,
                    notify: Callable[[str], None] | None) -> DataSummary:
    """The chorales' training solos (`solos/train/<source>/*.wav`, rendered first when they are
    not in the cache), checked as a folder dataset."""
    from priorsep.data import chorales

    names = _chorale_sources(root, sources)
    folder = chorales.ensure_chorales(sample_rate, notify)
    summary = check_folders(chorales.split_folder(folder, "solos", "train"), sample_rate,
                            crop_length, names)
    return dataclasses.replace(summary, dataset="chorales")


def training_data(name: str, root: Path | None, sources: str | None, sample_rate: int,
                  crop_length: int, notify: Callable[[str], None] | None = None, *,
                  min_sources: int = 1, strict: bool = False,
                  on_summary: SummaryCallback | None = None,
                  ) -> tuple[Any, torch.Tensor, dict[str, Any]]:
    """Check a dataset, then build (data, validation sources (n, N, crop_length), model-card
    info) from its usable files.

    The toy validation set is the fixed validation split; for folders it is a fixed-seed draw
    of crops from the same files (the card says so); for the chorales, from the solos of the
    validation split (rendered first when they are not in the cache: `notify` hears how far).
    The card's training section gets a line per source (files, duration, rates, channels, what
    was skipped).

    Args:
        notify: hears how rendering the chorales goes, the first time they are used.
        min_sources: fewer sources than this is an error (one: a prior of one class is one
            more prior for a model of others, `docs/models.md`).
        strict: an unusable file is an error instead of being left out.
        on_summary: receives the summary before it is required usable (to show it).

    Raises:
        DatasetError: the layout is wrong, a source has no usable audio, or too few sources.
        UnusableAudioError: `strict` and a file is unusable.
    """
    summary = check_training_data(name, root, sources, sample_rate, crop_length, notify)
    if on_summary is not None:
        on_summary(summary)
    summary.require(min_sources, strict)
    if name == "toy":
        split = ToyDataset("validation", VALIDATION_EXAMPLES, sample_rate,
                           duration=crop_length / sample_rate)
        validation = split.batch(range(VALIDATION_EXAMPLES))
        training = {"dataset": "toy (sine, sawtooth, square, triangle; on the fly)"}
        return ToySources(sample_rate), validation, {"training": training}
    data = FolderSources.from_summary(summary, sample_rate)
    generator = torch.Generator().manual_seed(VALIDATION_SEED)
    if name == "chorales":
        from priorsep.data import chorales

        held = FolderSources(chorales.split_folder(chorales.chorales_root(sample_rate), "solos",
                                                   "validation"), sample_rate, summary.names)
        validation = held.sample(generator, VALIDATION_EXAMPLES, crop_length)
        training = {"dataset": "chorales (Bach's four-part chorales from music21, FluidSynth "
                               "FluidR3_GM: violin, clarinet, tenor sax, bassoon; train split; "
                               "validation: fixed crops of the validation split)",
                    **summary.card_lines()}
        return data, validation, {"training": training}
    validation = data.sample(generator, VALIDATION_EXAMPLES, crop_length)
    training = {"dataset": f"folder {root} (validation: fixed crops of it)",
                **summary.card_lines()}
    return data, validation, {"training": training}


def mix_training_data(name: str, root: Path | None, sources: tuple[str, ...], sample_rate: int,
                      mixing: Any, crop_length: int,
                      notify: Callable[[str], None] | None = None, *, strict: bool = False,
                      on_summary: SummaryCallback | None = None,
                      ) -> tuple[Any, torch.Tensor, dict[str, Any]]:
    """Check a dataset, then build (mix data, validation mixes (n, crop_length), card info) for
    posterior training.

    "toy", "folder" and "chorales" mix independently drawn solos with the model's `mixing` (the
    sources are dropped at once); "mixes" crops mix recordings (ROOT/**/*.wav|flac). `notify`,
    `strict` and `on_summary` are as for `training_data`.
    """
    from priorsep.amortised import MixesOfSolos

    if name not in DATASETS["posterior"]:
        raise UsageError(f"unknown dataset {name!r}; use {', '.join(DATASETS['posterior'])}")
    if name == "mixes":
        if root is None:
            raise FieldError("root", "is needed by the mixes dataset (a folder of mix "
                             "recordings)")
        summary = check_mixes(root, sample_rate, crop_length)
        if on_summary is not None:
            on_summary(summary)
        summary.require(strict=strict)
        data = FolderMixes.from_summary(summary, sample_rate)
        validation = data.sample_mixes(torch.Generator().manual_seed(VALIDATION_SEED),
                                       VALIDATION_EXAMPLES, crop_length)
        training = {"dataset": f"mixes in {root}", **summary.card_lines()}
        return data, validation, {"training": training}
    solos, validation_sources, info = training_data(
        name, root, ",".join(sources) if name in ("folder", "chorales") else None, sample_rate,
        crop_length, notify, min_sources=1, strict=strict, on_summary=on_summary)
    info["training"]["dataset"] += " (mixed on the fly; the sources are never seen)"
    return MixesOfSolos(solos, mixing), mixing(validation_sources), info
