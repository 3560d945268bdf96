"""One pass over a dataset before it is used: what each source holds, and which files are unusable.

Per source: the usable files (path, frames, rate), the sample rates and channel counts found, and
every file skipped with its reason: unreadable, non-finite samples (NaN or infinity), entirely
silent (peak below `SILENCE_PEAK`), or shorter than one training crop. Headers are read first
(`soundfile.info`), so a file too short is skipped unread; the samples of the others stream
through in blocks of `BLOCK_FRAMES`, so an hour of audio is checked in seconds and never held in
memory whole. The summary is typed (`DataSummary`); the command line formats it.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from priorsep.audio import AUDIO_SUFFIXES
from priorsep.errors import DatasetError, UnusableAudioError

AudioEntry = tuple[Path, int, int]
"""(path, frames, sample rate) of a usable audio file."""

BLOCK_FRAMES = 1 << 16
"""Frames read at a time while streaming a file's samples."""
SILENCE_PEAK = 1e-4
"""A file whose peak is below this (-80 dBFS) counts as silent."""
FULL_SCALE = 0.999
"""A sample at or beyond this magnitude sits at full scale (the file may be clipped)."""
REASONS = ("unreadable", "non-finite", "silent", "too short")
"""Why a file is skipped, in the order the checks run."""


@dataclass(frozen=True)
class FileProblem:
    """A file left out of the data: `reason` is one of `REASONS`, `detail` says it in words."""

    path: Path
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


@dataclass(frozen=True)
class SourceSummary:
    """What one source of a dataset holds.

    Args:
        name: the source's name.
        folder: where its files are (None for generated data).
        entries: the usable files.
        channels: the channel counts found among them, sorted.
        skipped: the files left out, with the reason.
        ignored: names of things in the folder that are not audio files (subfolders end in /).
        full_scale: usable files with samples at full scale (clipped, perhaps; still used).
        generated: the data is synthesised on the fly (the toy dataset): no files.
        rates: sample rates of generated data (files: those of `entries`).
    """

    name: str
    folder: Path | None = None
    entries: tuple[AudioEntry, ...] = ()
    channels: tuple[int, ...] = ()
    skipped: tuple[FileProblem, ...] = ()
    ignored: tuple[str, ...] = ()
    full_scale: tuple[Path, ...] = ()
    generated: bool = False
    rates: tuple[int, ...] = ()

    @property
    def files(self) -> int:
        return len(self.entries)

    @property
    def seconds(self) -> float:
        return sum(frames / rate for _, frames, rate in self.entries)

    @property
    def sample_rates(self) -> tuple[int, ...]:
        return tuple(sorted({rate for *_, rate in self.entries} | set(self.rates)))

    @property
    def usable(self) -> bool:
        return self.generated or bool(self.entries)

    def skipped_counts(self) -> dict[str, int]:
        """Reason -> how many files were skipped for it (reasons in `REASONS` order)."""
        counts = Counter(problem.reason for problem in self.skipped)
        return {reason: counts[reason] for reason in REASONS if counts[reason]}

    def describe(self) -> str:
        """One line for the model card, e.g. "3 files, 1 min 12 s, 44100 Hz, stereo"."""
        rates = ", ".join(f"{rate} Hz" for rate in self.sample_rates)
        channels = ", ".join(channel_name(n) for n in self.channels)
        if self.generated:
            return f"generated on the fly, {rates}, {channels}"
        text = f"{self.files} file(s), {format_duration(self.seconds)}"
        text += f", {rates}, {channels}" if self.entries else ""
        counts = self.skipped_counts()
        if counts:
            text += f"; skipped {len(self.skipped)} (" + ", ".join(
                f"{count} {reason}" for reason, count in counts.items()) + ")"
        return text

    def why_unusable(self) -> str:
        """Why the source has no usable audio, in a few words."""
        if self.skipped:
            return f"all {len(self.skipped)} audio file(s) skipped: " + ", ".join(
                f"{count} {reason}" for reason, count in self.skipped_counts().items())
        if self.ignored:
            return ("no audio files directly inside; it holds " + ", ".join(self.ignored[:3])
                    + (", ..." if len(self.ignored) > 3 else ""))
        return "an empty folder"


@dataclass(frozen=True)
class DataSummary:
    """What a dataset holds, source by source, as found by one pass over it.

    Args:
        dataset: the dataset's kind ("toy", "folder", "mixes", "musdb").
        root: its root folder (None for generated data).
        sources: one summary per source, in the order the data will use.
        min_seconds: the shortest file kept (one crop), seconds.
    """

    dataset: str
    root: Path | None
    sources: tuple[SourceSummary, ...]
    min_seconds: float = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(source.name for source in self.sources)

    @property
    def skipped(self) -> tuple[FileProblem, ...]:
        return tuple(problem for source in self.sources for problem in source.skipped)

    def source(self, name: str) -> SourceSummary:
        return self.sources[self.names.index(name)]

    def require(self, min_sources: int = 1, strict: bool = False) -> None:
        """Check that the data can be used.

        Args:
            min_sources: how many sources the use needs.
            strict: refuse any unusable file rather than leave it out.

        Raises:
            UnusableAudioError: `strict` and some file was skipped.
            DatasetError: a source has no usable audio, or there are fewer than `min_sources`.
        """
        skipped = self.skipped
        if strict and skipped:
            raise UnusableAudioError(f"{len(skipped)} unusable file(s) in the data, the first "
                                     f"{skipped[0]}")
        for source in self.sources:
            if not source.usable:
                raise DatasetError(f"{source.folder or source.name}: no usable audio for source "
                                   f"{source.name!r} ({source.why_unusable()})")
        if len(self.sources) < min_sources:
            where = f"{self.root}: " if self.root is not None else ""
            raise DatasetError(f"{where}{len(self.sources)} source(s) "
                               f"({', '.join(self.names) or 'none'}); at least {min_sources} "
                               "are needed, one folder of solo recordings each")

    def card_lines(self) -> dict[str, str]:
        """The model card's lines about the data: {"data (source)": description}."""
        return {f"data ({source.name})": source.describe() for source in self.sources}

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (for reports)."""
        return {"dataset": self.dataset, "root": None if self.root is None else str(self.root),
                "min_seconds": self.min_seconds, "sources": [{
                    "name": source.name, "files": source.files,
                    "seconds": round(source.seconds, 3), "sample_rates": list(source.sample_rates),
                    "channels": list(source.channels), "generated": source.generated,
                    "skipped": [{"path": str(p.path), "reason": p.reason, "detail": p.detail}
                                for p in source.skipped],
                    "full_scale_files": len(source.full_scale), "summary": source.describe(),
                } for source in self.sources]}


def channel_name(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def format_duration(seconds: float) -> str:
    """"0.5 s", "12.0 s", "3 min 05 s", "1 h 02 min"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


@dataclass
class _Scan:
    """What one pass over a file's samples counted."""

    frames: int = 0
    non_finite: int = 0
    peak: float = 0.0
    full_scale: int = 0


@dataclass(frozen=True)
class CheckedFile:
    """A usable file: its entry, its channel count, and whether it reaches full scale."""

    entry: AudioEntry
    channels: int
    full_scale: bool


def _stream(path: Path) -> tuple[_Scan, int, int]:
    """Stream a file's samples once: (counts, sample rate, channels)."""
    scan = _Scan()
    with soundfile.SoundFile(str(path)) as file:
        rate, channels = file.samplerate, file.channels
        for block in file.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            scan.frames += block.shape[0]
            high, low = block.max(), block.min()  # NaN and infinities show up in these
            if not (np.isfinite(high) and np.isfinite(low)):
                finite = np.isfinite(block)
                scan.non_finite += int(block.size - np.count_nonzero(finite))
                block = block[finite]
                if block.size == 0:
                    continue
                high, low = block.max(), block.min()
            peak = max(float(high), -float(low))
            scan.peak = max(scan.peak, peak)
            if peak >= FULL_SCALE:
                scan.full_scale += int(np.count_nonzero(np.abs(block) >= FULL_SCALE))
    return scan, rate, channels


def check_file(path: Path, min_seconds: float = 0.0) -> CheckedFile | FileProblem:
    """Check one audio file (at least `min_seconds` long to be usable): usable, or its
    problem."""
    too_short = f"shorter than one training crop ({{:.3f}} s < {min_seconds:.3f} s)"
    try:
        info = soundfile.info(str(path))
        if info.frames <= 0:
            return FileProblem(path, "too short", "holds no samples")
        if info.frames / info.samplerate < min_seconds:
            return FileProblem(path, "too short",
                               too_short.format(info.frames / info.samplerate))
        scan, rate, channels = _stream(path)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as error:
        return FileProblem(path, "unreadable", f"not a readable audio file ({error})")
    if scan.non_finite:
        return FileProblem(path, "non-finite", f"{scan.non_finite} sample(s) are not finite "
                                               "(NaN or infinity)")
    if scan.frames <= 0 or scan.frames / rate < min_seconds:  # shorter than its header said
        return FileProblem(path, "too short", too_short.format(scan.frames / rate))
    if scan.peak < SILENCE_PEAK:
        return FileProblem(path, "silent", "entirely silent (peak below -80 dBFS)")
    return CheckedFile((path, scan.frames, rate), channels, scan.full_scale > 0)


def check_files(name: str, folder: Path, paths: list[Path], ignored: tuple[str, ...] = (),
                min_seconds: float = 0.0) -> SourceSummary:
    """Check the audio files of one source (see `check_file`)."""
    entries, channels, skipped, full_scale = [], set(), [], []
    for path in paths:
        result = check_file(path, min_seconds)
        if isinstance(result, FileProblem):
            skipped.append(result)
            continue
        entries.append(result.entry)
        channels.add(result.channels)
        if result.full_scale:
            full_scale.append(path)
    return SourceSummary(name, folder, tuple(entries), tuple(sorted(channels)), tuple(skipped),
                         ignored, tuple(full_scale))


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def check_folders(root: str | Path, sample_rate: int, crop_length: int = 0,
                  sources: tuple[str, ...] | None = None) -> DataSummary:
    """Check solo recordings, one folder per source: `ROOT/<source>/*.wav|flac|...`.

    Args:
        sample_rate: the rate the data will be used at (sets the crop's duration).
        crop_length: samples per crop at `sample_rate`; shorter files are skipped.
        sources: which subfolders, in order (default: every subfolder, sorted, hidden ones
            aside; an empty one stays, and makes `require` fail).

    Raises:
        DatasetError: `root` is not a folder, holds no subfolder, or lacks one of `sources`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    folders = [p.name for p in _visible(root) if p.is_dir()]
    if sources is None:
        sources = tuple(folders)
        if not sources:
            raise DatasetError(f"{root}: holds no subfolders; expected one folder of audio "
                               "files per source (ROOT/<source>/*.wav)")
    for name in sources:
        if name not in folders:
            close = ([f for f in folders if f.lower() == name.lower()]
                     or difflib.get_close_matches(name, folders, n=1, cutoff=0.6))
            hint = (f"; did you mean {close[0]!r}?" if close else
                    f"; it has {', '.join(folders)}" if folders else "; it has no subfolders")
            raise DatasetError(f"{root / name}: no such folder for source {name!r}{hint}")
    min_seconds = crop_length / sample_rate
    summaries = []
    for name in sources:
        contents = _visible(root / name)
        audio = [p for p in contents if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
        ignored = tuple(p.name + ("/" if p.is_dir() else "") for p in contents
                        if p not in audio)
        summaries.append(check_files(name, root / name, audio, ignored, min_seconds))
    return DataSummary("folder", root, tuple(summaries), min_seconds)


def check_mixes(root: str | Path, sample_rate: int, crop_length: int = 0) -> DataSummary:
    """Check a folder of mix recordings (every audio file under `root`, at any depth): one
    source named "mixes".

    Raises:
        DatasetError: `root` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file()
                   and p.suffix.lower() in AUDIO_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    min_seconds = crop_length / sample_rate
    return DataSummary("mixes", root, (check_files("mixes", root, paths, (), min_seconds),),
                       min_seconds)


def generated_summary(dataset: str, sources: tuple[str, ...], sample_rate: int) -> DataSummary:
    """The summary of data synthesised on the fly (mono, at `sample_rate`): nothing to check."""
    return DataSummary(dataset, None, tuple(
        SourceSummary(name, channels=(1,), generated=True, rates=(sample_rate,))
        for name in sources))


def header_summary(dataset: str, root: Path, files: dict[str, list[Path]]) -> DataSummary:
    """A summary from the files' headers alone (for large aligned datasets such as MUSDB18,
    whose crops are drawn from the whole of every track): nothing is skipped but the
    unreadable."""
    summaries = []
    for name, paths in files.items():
        entries, channels, skipped = [], set(), []
        for path in paths:
            try:
                info = soundfile.info(str(path))
            except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
                skipped.append(FileProblem(path, "unreadable",
                                           f"not a readable audio file ({error})"))
                continue
            entries.append((path, info.frames, info.samplerate))
            channels.add(info.channels)
        summaries.append(SourceSummary(name, root, tuple(entries), tuple(sorted(channels)),
                                       tuple(skipped)))
    return DataSummary(dataset, root, tuple(summaries))
