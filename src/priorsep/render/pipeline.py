"""Render pieces: read and map every piece first, then synthesise each solo and write the piece.

Every piece is read and its parts mapped to instruments before the first sample is rendered,
so a bad file or a part without an instrument stops the run with nothing written. Each piece
is then rendered part by part (a solo per instrument, all of one length: the last event plus
`tail` seconds), mixed as the mean of its solos, and written with `layout.write_piece`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from priorsep.errors import OutputExistsError, UsageError
from priorsep.files import atomic_write_text
from priorsep.render.fluidsynth import GAIN, Synthesiser, find_soundfont
from priorsep.render.inputs import PieceSource
from priorsep.render.instruments import Instrument, as_written, assign, check_instruments
from priorsep.render.layout import (
    MANIFEST,
    SPLITS,
    SUBTYPES,
    is_complete,
    piece_files,
    split_of,
    write_piece,
)
from priorsep.render.midi import Part, Score

MANIFEST_VERSION = 1
MAX_TAIL = 60.0
"""The longest tail after a piece's last event, seconds (a release rings out in a few)."""
SPLIT_RULE = ("sha256(UTF-8 piece name), first 4 bytes big-endian, mod 10: 0 test, "
              "1 validation, 2-9 train")


@dataclass(frozen=True)
class RenderSettings:
    """How pieces are rendered.

    Args:
        sample_rate: Hz.
        soundfont: .sf2 path (None: `find_soundfont`'s search).
        subtype: "float32" or "int16" WAV samples.
        tail: seconds rendered after a piece's last event (release and decay).
        split: put every piece in this split (None: by `split_of` on its name).
        gain: FluidSynth's master gain.
    """

    sample_rate: int = 16000
    soundfont: Path | None = None
    subtype: str = "float32"
    tail: float = 1.0
    split: str | None = None
    gain: float = GAIN

    def __post_init__(self) -> None:
        if not 8000 <= self.sample_rate <= 96000:
            raise UsageError(f"sample rate {self.sample_rate}: FluidSynth renders at 8000 to "
                             "96000 Hz")
        if self.subtype not in SUBTYPES:
            raise UsageError(f"sample format {self.subtype!r}: use {' or '.join(SUBTYPES)}")
        if self.split is not None and self.split not in SPLITS:
            raise UsageError(f"split {self.split!r}: use {', '.join(SPLITS)}")
        if not 0 <= self.tail <= MAX_TAIL:  # also refuses NaN
            raise UsageError(f"tail {self.tail}: must be 0 to {MAX_TAIL:g} seconds")
        if not 0 < self.gain <= 10:  # also refuses NaN
            raise UsageError(f"gain {self.gain}: FluidSynth's master gain is more than 0 and "
                             "at most 10")


@dataclass
class PlannedPiece:
    """A piece read and mapped, ready to render."""

    score: Score
    pairs: list[tuple[Instrument, Part]]
    split: str

    @property
    def sources(self) -> list[str]:
        return [instrument.name for instrument, _ in self.pairs]


@dataclass
class RenderSummary:
    """What a render did: pieces per split (name -> seconds of audio), compute time."""

    pieces: dict[str, dict[str, float]] = field(default_factory=lambda: {s: {} for s in SPLITS})
    rendered: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    compute_seconds: float = 0.0
    peak: float = 0.0
    """Largest absolute sample of the solos rendered (above 1: clipped in 16-bit files)."""


def plan(pieces: list[PieceSource], instruments: list[Instrument] | None,
         settings: RenderSettings) -> list[PlannedPiece]:
    """Read every piece and map its parts (raises before anything is rendered); with
    `instruments` None, every piece is played as written (`instruments.as_written`)."""
    if instruments is not None:
        check_instruments(instruments)
    planned = []
    for source in pieces:
        score = source.read()
        pairs = as_written(score) if instruments is None else assign(score, instruments)
        planned.append(PlannedPiece(score, pairs, settings.split or split_of(score.name)))
    return planned


def render_piece(synth: Synthesiser, piece: PlannedPiece,
                 tail: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(source -> solo (time,), mixture (time,)): every solo of one length, the mix their mean.
    """
    length = int(np.ceil((piece.score.end + tail) * synth.sample_rate))
    solos = {instrument.name: synth.render(instrument.program, part.events, length,
                                           drums=instrument.drums)
             for instrument, part in piece.pairs}
    mixture = np.stack(list(solos.values())).astype(np.float64).mean(axis=0).astype(np.float32)
    return solos, mixture


AS_WRITTEN = "as written: each part's own General MIDI program, channel 10 as drums"


def _manifest(instruments: list[Instrument] | None, planned: list[PlannedPiece],
              settings: RenderSettings, soundfont: Path) -> dict:
    if instruments is None:
        sources = sorted({name for piece in planned for name in piece.sources})
    else:
        sources = [instrument.name for instrument in instruments]
    return {
        "format_version": MANIFEST_VERSION,
        "instruments": (AS_WRITTEN if instruments is None else
                        [instrument.spec() for instrument in instruments]),
        "sources": sources,
        "sample_rate": settings.sample_rate,
        "subtype": settings.subtype,
        "tail_seconds": settings.tail,
        "gain": settings.gain,
        "soundfont": soundfont.name,
        "mixture": "mean of the solos",
        "split_rule": SPLIT_RULE if settings.split is None else f"every piece in {settings.split}",
        "pieces": {split: {} for split in SPLITS},
    }


def _existing_manifest(out: Path, manifest: dict) -> dict | None:
    """The manifest already in `out` when it was made with the same settings."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = ("instruments", "sample_rate", "subtype", "tail_seconds", "gain", "soundfont")
    if any(existing.get(key) != manifest[key] for key in keys):
        raise UsageError(f"{out} holds a render with other settings (see {path}); render "
                         "into another folder")
    return existing


def render(pieces: list[PieceSource], instruments: list[Instrument] | None, out: str | Path,
           settings: RenderSettings, overwrite: bool = False, resume: bool = False,
           progress: Callable[[int, int, str], None] | None = None) -> RenderSummary:
    """Read and map every piece, then render them into `out` (see `render_planned`); with
    `instruments` None, as written (each part on its own program, see `plan`).

    Raises:
        SynthesiserNotFoundError, MidiReadError, PartMappingError, UsageError: before anything
            is written; OutputExistsError: a piece's files exist without `overwrite`/`resume`.
    """
    soundfont = find_soundfont(settings.soundfont)  # before reading: the cheaper failure
    planned = plan(pieces, instruments, settings)
    return render_planned(planned, instruments, out, settings, overwrite, resume, progress,
                          soundfont)


def render_planned(planned: list[PlannedPiece], instruments: list[Instrument] | None,
                   out: str | Path, settings: RenderSettings, overwrite: bool = False,
                   resume: bool = False, progress: Callable[[int, int, str], None] | None = None,
                   soundfont: Path | None = None) -> RenderSummary:
    """Render planned pieces into `out` (layout in `priorsep.render.layout`), then write its
    manifest (merged with the one there when that was made with the same settings).

    Args:
        overwrite: replace a piece's existing files (else they are an error, found first).
        resume: skip pieces whose files are all there (a render stopped midway goes on).
        progress: called as (pieces done, pieces in all, name of the piece just done).
        soundfont: found already (default: `find_soundfont(settings.soundfont)`).

    Raises:
        SynthesiserNotFoundError: no FluidSynth or soundfont. UsageError: `out` holds a render
            with other settings. OutputExistsError: a piece's files exist without `overwrite`
            or `resume`. All before anything is written.
    """
    out = Path(out)
    soundfont = soundfont or find_soundfont(settings.soundfont)
    if instruments is not None:
        check_instruments(instruments)
    manifest = _manifest(instruments, planned, settings, soundfont)
    existing = _existing_manifest(out, manifest)
    if existing is not None:
        for split in SPLITS:
            manifest["pieces"][split].update(existing.get("pieces", {}).get(split, {}))
        if instruments is None:  # each piece has its own; the manifest lists them all
            manifest["sources"] = sorted({*manifest["sources"], *existing.get("sources", [])})
    if not overwrite and not resume:
        for piece in planned:
            found = [p for p in piece_files(out, piece.split, piece.score.name, piece.sources)
                     if p.exists()]
            if found:
                raise OutputExistsError(f"{found[0]} exists")
    summary = RenderSummary()
    started = time.perf_counter()
    with Synthesiser(soundfont, settings.sample_rate, settings.gain) as synth:
        for done, piece in enumerate(planned, start=1):
            name = piece.score.name
            if resume and not overwrite and is_complete(out, piece.split, name, piece.sources):
                summary.skipped += 1
                seconds = manifest["pieces"][piece.split].get(name)
            else:
                solos, mixture = render_piece(synth, piece, settings.tail)
                write_piece(out, piece.split, name, solos, mixture, settings.sample_rate,
                            settings.subtype)
                seconds = len(mixture) / settings.sample_rate
                summary.peak = max(summary.peak, *(float(np.abs(a).max(initial=0.0))
                                                   for a in solos.values()))
                summary.rendered += 1
                summary.audio_seconds += seconds
            if seconds is None:  # resumed without a manifest entry: the length is the score's
                seconds = np.ceil((piece.score.end + settings.tail) * settings.sample_rate
                                  ) / settings.sample_rate
            manifest["pieces"][piece.split][name] = round(float(seconds), 6)
            summary.pieces[piece.split][name] = float(seconds)
            if progress is not None:
                progress(done, len(planned), name)
    summary.compute_seconds = time.perf_counter() - started
    for split in SPLITS:
        manifest["pieces"][split] = dict(sorted(manifest["pieces"][split].items()))
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return summary

