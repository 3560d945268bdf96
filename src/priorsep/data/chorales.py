"""The `chorales` dataset: Bach's four-part chorales from music21's corpus, played by Bach10's
instruments and rendered with FluidSynth into the cache on first use.

Pieces: every chorale of `music21.corpus.chorales.Iterator` (Riemenschneider's 371, 350 files
once duplicates are dropped) whose score has exactly four parts (soprano, alto, tenor, bass);
the others (with obbligato instruments) are left out. Instruments, as in Bach10 (Duan and
Pardo 2011): soprano violin (GM 40), alto clarinet (71), tenor saxophone (tenor sax, 66), bass
bassoon (70). The mix is the mean of the four. Tempo: the score's, else 120 bpm. Splits: the
fixed rule of `priorsep.render.layout.split_of` (a hash of the piece name; docs/datasets.md
lists the pieces of each).

The cache folder is `$PRIORSEP_DATA/chorales-<rate>` ($PRIORSEP_DATA defaults to
`$XDG_CACHE_HOME/priorsep/datasets`, else `~/.cache/priorsep/datasets`), laid out as any
`priorsep render` output; it is ready once its `manifest.json` is written, and a render that
was stopped goes on where it stopped.

Reference: Duan and Pardo 2011, "Soundprism: an online system for score-informed source
separation of music audio", IEEE JSTSP (the Bach10 dataset).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from priorsep.errors import DatasetError, MidiReadError, PartMappingError
from priorsep.render.instruments import Instrument, parse_instrument

SOURCES: tuple[str, ...] = ("violin", "clarinet", "saxophone", "bassoon")
INSTRUMENTS: tuple[str, ...] = ("violin=40@0", "clarinet=71@1", "saxophone=66@2",
                                "bassoon=70@3")
"""Part 0 (soprano) to 3 (bass) of every chorale, as `priorsep render --instrument` takes."""
SAMPLE_RATE = 16000
DATA_ENV = "PRIORSEP_DATA"


def data_home() -> Path:
    """Where rendered datasets are cached: $PRIORSEP_DATA, else
    $XDG_CACHE_HOME/priorsep/datasets, else ~/.cache/priorsep/datasets."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "priorsep" / "datasets"


def chorales_root(sample_rate: int = SAMPLE_RATE, soundfont: Path | None = None) -> Path:
    """The cache folder of the chorales rendered at `sample_rate` (with the default soundfont,
    else `chorales-<rate>-<soundfont's stem>`)."""
    suffix = "" if soundfont is None else f"-{Path(soundfont).stem}"
    return data_home() / f"chorales-{int(sample_rate)}{suffix}"


def instruments() -> list[Instrument]:
    return [parse_instrument(text) for text in INSTRUMENTS]


def chorale_works() -> list[str]:
    """The corpus works of the chorales, unique, sorted (before the four-part filter)."""
    from priorsep.render.inputs import music21_module

    iterator = music21_module().corpus.chorales.Iterator(returnType="filename")
    return sorted({str(work) for work in iterator if work})


def ensure_chorales(sample_rate: int = SAMPLE_RATE,
                    notify: Callable[[str], None] | None = None,
                    soundfont: Path | None = None,
                    splits: tuple[str, ...] | None = None) -> Path:
    """The chorales' folder at `sample_rate`, rendered first when it is not complete.

    Args:
        notify: receives a line when rendering starts and every 25 pieces.
        soundfont: render with this soundfont instead of the default (another folder: the
            same pieces played by other instruments, to test models off their training
            sounds).
        splits: render only these splits (default: all).

    Raises:
        SynthesiserNotFoundError, MidiReadError: FluidSynth, a soundfont or music21 missing.
    """
    root = chorales_root(sample_rate, soundfont)
    if (root / "manifest.json").is_file():
        return root
    from priorsep.render.inputs import PieceSource
    from priorsep.render.instruments import assign
    from priorsep.render.layout import split_of
    from priorsep.render.pipeline import PlannedPiece, RenderSettings, render_planned

    say = notify or (lambda line: None)
    say(f"rendering the chorales dataset into {root} (first use; a few minutes)")
    chosen = instruments()
    works = chorale_works()
    planned = []
    for done, work in enumerate(works, start=1):
        try:  # a chorale music21 cannot export, or with an empty voice, is left out
            score = PieceSource(Path(work).name, work=work).read()
            split = split_of(score.name)
            if len(score.parts) == len(SOURCES) and (splits is None or split in splits):
                planned.append(PlannedPiece(score, assign(score, chosen), split))
        except (MidiReadError, PartMappingError):
            pass
        if done % 50 == 0 or done == len(works):
            say(f"chorales: read {done}/{len(works)} scores ({len(planned)} in four parts)")

    def progress(done: int, total: int, name: str) -> None:
        if done % 25 == 0 or done == total:
            say(f"chorales: rendered {done}/{total} pieces")

    render_planned(planned, chosen, root,
                   RenderSettings(sample_rate=sample_rate, soundfont=soundfont), resume=True,
                   progress=progress)
    return root


def split_folder(root: Path, kind: str, split: str) -> Path:
    """`root/pieces/<split>` or `root/solos/<split>`, checked to exist."""
    folder = root / kind / split
    if not folder.is_dir():
        raise DatasetError(f"{folder}: missing; remove {root} to render the chorales again")
    return folder
