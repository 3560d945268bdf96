"""Instruments named by the user or by the score, and which part of a score each one plays.

An instrument is written `NAME=PROGRAM` or `NAME=PROGRAM@PART`: NAME becomes the source's
name (its folder and file names), PROGRAM is a 0-based General MIDI program (40 violin,
71 clarinet, 66 tenor sax, 70 bassoon) or `drums` (`drums:KIT` for another of the
soundfont's kits, bank 128), and PART picks the part it plays, by 0-based index or by the
part's name (the MIDI track name, case-insensitive). Instruments without `@PART` take the
parts with notes no other instrument took, in order. Every part with notes must be played by
exactly one instrument and every instrument must find a part with notes (parts without notes,
such as a set-up track of program changes, need none): anything else is an error, never a
silent guess.

Without instruments named, `as_written` plays a score as it is written: every part with notes
on its own General MIDI program, named after it (`violin`, `acoustic_grand_piano`; parts that
share a program are numbered, `violin_1`, `violin_2`), the percussion channel as `drums`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from priorsep.errors import PartMappingError, UsageError
from priorsep.render.midi import Part, Score

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RESERVED = ("mixture",)
"""Names an instrument may not take (the mix's file is `mixture.wav`)."""
DRUMS = "drums"
GM_PROGRAMS = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet", "Celesta",
    "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells",
    "Dulcimer", "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ",
    "Accordion", "Harmonica", "Tango Accordion", "Acoustic Guitar (nylon)",
    "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2", "Violin", "Viola", "Cello",
    "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2",
    "Choir Aahs", "Voice Oohs", "Synth Choir", "Orchestra Hit", "Trumpet", "Trombone", "Tuba",
    "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon",
    "Clarinet", "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi",
    "Whistle", "Ocarina", "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)",
    "Lead 4 (chiff)", "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)",
    "Lead 8 (bass + lead)", "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)",
    "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)", "Sitar", "Banjo",
    "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai", "Tinkle Bell", "Agogo",
    "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring",
    "Helicopter", "Applause", "Gunshot")
"""The General MIDI Level 1 program names, by 0-based program number."""


def program_name(program: int) -> str:
    """A General MIDI program as a source name: `acoustic_guitar_nylon`, `lead_8_bass_and_lead`.
    """
    words = re.findall(r"[a-z0-9]+", GM_PROGRAMS[program].lower().replace("+", "and"))
    return "_".join(words)


@dataclass(frozen=True)
class Instrument:
    """A source to render.

    Args:
        name: the source's name.
        program: 0-based General MIDI program, 0-127 (for drums: the kit, bank 128).
        part: the part it plays (index or name), or None for "the next part left".
        drums: played on the percussion channel with one of the soundfont's drum kits.
    """

    name: str
    program: int
    part: int | str | None = None
    drums: bool = False

    def spec(self) -> str:
        """The instrument as it is written on the command line."""
        program = (DRUMS + ("" if self.program == 0 else f":{self.program}") if self.drums
                   else str(self.program))
        return f"{self.name}={program}" + ("" if self.part is None else f"@{self.part}")


def parse_instrument(text: str) -> Instrument:
    """`NAME=PROGRAM[@PART]` -> Instrument.

    Raises:
        UsageError: not of that form, a name that cannot be a file name, a program out of range.
    """
    name, equals, rest = text.partition("=")
    name = name.strip()
    program_text, at, part_text = rest.partition("@")
    program_text = program_text.strip()
    if not equals or not name or not program_text:
        raise UsageError(f"instrument {text!r}: expected NAME=PROGRAM or NAME=PROGRAM@PART "
                         "(e.g. violin=40 or violin=40@0)")
    if not NAME.fullmatch(name) or name.lower() in RESERVED:
        raise UsageError(f"instrument name {name!r}: use letters, digits, '.', '_' or '-', "
                         f"and not {', '.join(RESERVED)}")
    kit, colon, kit_text = program_text.partition(":")
    drums = kit.lower() == DRUMS
    try:
        program = int(kit_text if drums and colon else 0 if drums else program_text)
    except ValueError:
        raise UsageError(f"instrument {text!r}: the program must be a General MIDI number "
                         "0-127, or drums (drums:KIT for another kit)") from None
    if not 0 <= program <= 127:
        raise UsageError(f"instrument {text!r}: the program must be 0-127 (0-based General "
                         "MIDI; violin is 40)")
    part: int | str | None = None
    if at:
        part_text = part_text.strip()
        if not part_text:
            raise UsageError(f"instrument {text!r}: nothing after '@' (a part index or name)")
        part = int(part_text) if part_text.isdigit() else part_text
    return Instrument(name, program, part, drums)


def as_written(score: Score) -> list[tuple[Instrument, Part]]:
    """Every part with notes, on its own program and named after it (see the module's text).

    Raises:
        PartMappingError: no part of the score has notes.
    """
    played = [part for part in score.parts if part.notes > 0]
    if not played:
        raise PartMappingError(f"{score.name} ({score.source}): no part has notes")
    names = [DRUMS if part.drums else program_name(part.program) for part in played]
    counts = {name: names.count(name) for name in names}
    seen: dict[str, int] = {}
    pairs = []
    for part, name in zip(played, names):
        if counts[name] > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name}_{seen[name]}"
        pairs.append((Instrument(name, part.program, part.index, part.drums), part))
    return pairs


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
            an instrument is left without a part, a part with notes without an instrument, or
            a part picked by a selector has no notes.
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
    free = [part for part in score.parts if part.index not in taken and part.notes > 0]
    played = sum(1 for part in score.parts if part.notes > 0)
    for instrument in instruments:
        if instrument.part is not None:
            continue
        if not free:
            raise PartMappingError(f"{where}: instrument {instrument.name} maps to no part "
                                   f"(the piece has {played} part(s) with notes)")
        part = free.pop(0)
        taken[part.index] = instrument
        chosen[instrument.name] = part
    if free:
        raise PartMappingError(
            f"{where}: {free[0].label()} maps to no instrument ({len(instruments)} "
            f"instrument(s) for {played} parts with notes; give one per part, or pick parts "
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
