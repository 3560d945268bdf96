"""Instruments named by the user, and which part of a score each one plays.

An instrument is written `NAME=PROGRAM` or `NAME=PROGRAM@PART`: NAME becomes the source's
name (its folder and file names), PROGRAM is a 0-based General MIDI program (40 violin,
71 clarinet, 66 tenor sax, 70 bassoon), and PART picks the part it plays, by 0-based index or
by the part's name (the MIDI track name, case-insensitive). Instruments without `@PART` take
the parts no other instrument took, in order. Every part must be played by exactly one
instrument and every instrument must find a part with notes: anything else is an error, never
a silent guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from priorsep.errors import PartMappingError, UsageError
from priorsep.render.midi import Part, Score

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RESERVED = ("mixture",)
"""Names an instrument may not take (the mix's file is `mixture.wav`)."""


@dataclass(frozen=True)
class Instrument:
    """A source to render.

    Args:
        name: the source's name.
        program: 0-based General MIDI program, 0-127.
        part: the part it plays (index or name), or None for "the next part left".
    """

    name: str
    program: int
    part: int | str | None = None

    def spec(self) -> str:
        """The instrument as it is written on the command line."""
        return f"{self.name}={self.program}" + ("" if self.part is None else f"@{self.part}")


def parse_instrument(text: str) -> Instrument:
    """`NAME=PROGRAM[@PART]` -> Instrument.

    Raises:
        UsageError: not of that form, a name that cannot be a file name, a program out of range.
    """
    name, equals, rest = text.partition("=")
    name = name.strip()
    program_text, at, part_text = rest.partition("@")
    if not equals or not name or not program_text.strip():
        raise UsageError(f"instrument {text!r}: expected NAME=PROGRAM or NAME=PROGRAM@PART "
                         "(e.g. violin=40 or violin=40@0)")
    if not NAME.fullmatch(name) or name.lower() in RESERVED:
        raise UsageError(f"instrument name {name!r}: use letters, digits, '.', '_' or '-', "
                         f"and not {', '.join(RESERVED)}")
    try:
        program = int(program_text)
    except ValueError:
        raise UsageError(f"instrument {text!r}: the program must be a General MIDI number "
                         "0-127") from None
    if not 0 <= program <= 127:
        raise UsageError(f"instrument {text!r}: the program must be 0-127 (0-based General "
                         "MIDI; violin is 40)")
    part: int | str | None = None
    if at:
        part_text = part_text.strip()
        if not part_text:
            raise UsageError(f"instrument {text!r}: nothing after '@' (a part index or name)")
        part = int(part_text) if part_text.isdigit() else part_text
    return Instrument(name, program, part)


def check_instruments(instruments: list[Instrument]) -> None:
    """Raise UsageError when there are none or a name is used twice."""
    if not instruments:
        raise UsageError("no instrument given (NAME=PROGRAM, e.g. violin=40)")
    names = [instrument.name for instrument in instruments]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"instrument name(s) used twice: {', '.join(twice)}")


def assign(score: Score, instruments: list[Instrument]) -> list[tuple[Instrument, Part]]:
    """Which part each instrument plays, in the order of `instruments`.

    Raises:
        PartMappingError: a selector matches no part or several, two instruments take one part,
            an instrument is left without a part, a part without an instrument, or a played
            part has no notes.
    """
    taken: dict[int, Instrument] = {}
    chosen: dict[str, Part] = {}
    where = f"{score.name} ({score.source})"
    for instrument in instruments:
        if instrument.part is None:
            continue
        part = _select(score, instrument)
        if part.index in taken:
            raise PartMappingError(f"{where}: {part.label()} is taken by both "
                                   f"{taken[part.index].name} and {instrument.name}")
        taken[part.index] = instrument
        chosen[instrument.name] = part
    free = [part for part in score.parts if part.index not in taken]
    for instrument in instruments:
        if instrument.part is not None:
            continue
        if not free:
            raise PartMappingError(f"{where}: instrument {instrument.name} maps to no part "
                                   f"(the piece has {len(score.parts)} parts)")
        part = free.pop(0)
        taken[part.index] = instrument
        chosen[instrument.name] = part
    if free:
        raise PartMappingError(
            f"{where}: {free[0].label()} maps to no instrument ({len(instruments)} "
            f"instrument(s) for {len(score.parts)} parts; give one per part, or pick parts "
            "with NAME=PROGRAM@PART)")
    pairs = [(instrument, chosen[instrument.name]) for instrument in instruments]
    for instrument, part in pairs:
        if part.notes == 0:
            raise PartMappingError(f"{where}: {part.label()}, played by {instrument.name}, "
                                   "has no notes")
    return pairs


def _select(score: Score, instrument: Instrument) -> Part:
    where = f"{score.name} ({score.source})"
    if isinstance(instrument.part, int):
        if instrument.part >= len(score.parts):
            raise PartMappingError(f"{where}: instrument {instrument.name} asks for part "
                                   f"{instrument.part}, but the piece has {len(score.parts)} "
                                   "parts (counted from 0)")
        return score.parts[instrument.part]
    wanted = str(instrument.part).casefold()
    matches = [part for part in score.parts if part.name.casefold() == wanted]
    if len(matches) != 1:
        names = ", ".join(repr(part.name) for part in score.parts if part.name) or "none named"
        found = "no part" if not matches else f"{len(matches)} parts"
        raise PartMappingError(f"{where}: instrument {instrument.name} asks for part "
                               f"{instrument.part!r}; {found} of that name (parts: {names})")
    return matches[0]
