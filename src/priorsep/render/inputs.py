"""What `priorsep render` reads: MIDI files, folders of them, and music21 corpus queries.

An input is a path to a `.mid`/`.midi` file, a folder (searched at any depth for such files,
in sorted order), or `corpus:PATTERN`: the works of music21's corpus whose path below the
corpus folder, without its extension, matches the glob PATTERN (`corpus:bach/bwv66.6`,
`corpus:bach/bwv2*`). Corpus works are exported to MIDI by music21 (a track per part,
120 bpm where the score gives no tempo). A piece is named by its file's stem.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from priorsep.errors import MidiReadError, UsageError
from priorsep.render.midi import Score, read_midi

CORPUS_PREFIX = "corpus:"
MIDI_SUFFIXES = (".mid", ".midi")


@dataclass(frozen=True)
class PieceSource:
    """One piece to read: a MIDI file or a corpus work.

    Args:
        name: the piece's name (file stem).
        path: the MIDI file, or None for a corpus work.
        work: the corpus work (`bach/bwv66.6`), or None for a file.
    """

    name: str
    path: Path | None = None
    work: str | None = None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else f"{CORPUS_PREFIX}{self.work}"

    def read(self) -> Score:
        """Read and parse the piece.

        Raises:
            MidiReadError: unreadable, not MIDI, or the corpus work does not parse.
        """
        if self.path is not None:
            try:
                data = self.path.read_bytes()
            except OSError as error:
                raise MidiReadError(f"{self.path}: cannot read ({error.strerror})") from None
        else:
            data = corpus_midi(str(self.work))
        return read_midi(data, self.name, self.label)


def music21_module():
    """music21, imported (raises MidiReadError when it is not installed)."""
    try:
        import music21
    except ImportError as error:
        raise MidiReadError("corpus inputs need music21 (pip install 'priorsep[render]')"
                            ) from error
    return music21


def corpus_works(pattern: str) -> list[str]:
    """Corpus works matching a glob, as `composer/work` (sorted)."""
    music21 = music21_module()
    root = Path(music21.common.getCorpusFilePath())
    works = set()
    for path in music21.corpus.getPaths():
        path = Path(path)
        try:
            work = path.relative_to(root).with_suffix("").as_posix()
        except ValueError:
            continue
        if fnmatch.fnmatchcase(work, pattern):
            works.add(work)
    return sorted(works)


def corpus_midi(work: str) -> bytes:
    """The MIDI bytes music21 writes for a corpus work (a track per part).

    Raises:
        MidiReadError: music21 cannot find or parse the work.
    """
    music21 = music21_module()
    try:
        score = music21.corpus.parse(work)
        midi = music21.midi.translate.streamToMidiFile(score)
        return bytes(midi.writestr())
    except Exception as error:  # music21 raises many kinds for a bad or missing work
        raise MidiReadError(f"{CORPUS_PREFIX}{work}: music21 cannot export it to MIDI "
                            f"({type(error).__name__}: {error})") from None


def expand(inputs: list[str]) -> list[PieceSource]:
    """Every piece the inputs name, in order.

    Raises:
        MidiReadError: a path that does not exist, a folder without MIDI files, a corpus
            pattern matching nothing.
        UsageError: two pieces of the same name (their files would collide).
    """
    pieces: list[PieceSource] = []
    for text in inputs:
        pieces.extend(_expand_one(text))
    seen: dict[str, str] = {}
    for piece in pieces:
        if piece.name in seen and seen[piece.name] != piece.label:
            raise UsageError(f"two pieces are named {piece.name!r} ({seen[piece.name]} and "
                             f"{piece.label}); rename one")
        seen[piece.name] = piece.label
    unique = {piece.label: piece for piece in pieces}  # an input named twice is read once
    return list(unique.values())


def _expand_one(text: str) -> Iterator[PieceSource]:
    if text.startswith(CORPUS_PREFIX):
        pattern = text[len(CORPUS_PREFIX):]
        works = corpus_works(pattern)
        if not works:
            raise MidiReadError(f"{text}: no work of music21's corpus matches (try "
                                "corpus:bach/bwv66.6)")
        for work in works:
            yield PieceSource(Path(work).name, work=work)
        return
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*")
                       if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
        if not files:
            raise MidiReadError(f"{path}: no .mid or .midi files in this folder")
        for file in files:
            yield PieceSource(file.stem, path=file)
    elif path.is_file():
        yield PieceSource(path.stem, path=path)
    else:
        raise MidiReadError(f"{path}: no such file or folder")
