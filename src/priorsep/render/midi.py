"""Reading a Standard MIDI File into parts: timed channel events, one list per part.

A part is one (track, channel) pair that holds channel messages: in a type-1 file (music21's
export, most notation programs) a track per voice; in a type-0 file a channel per voice. Tracks
of meta messages only (tempo, time signature: a conductor track) are no part. Times are in
seconds from the file's tempo map (`set_tempo` in any track; 120 bpm until the first one).
Program changes and bank selects are not kept as events: a part's program as written (its
first program change; else the last one on its channel in another track before its first
note; else 0, the General MIDI default) is its `program`, and whoever renders chooses what to
play it with. Channel 10 (9 from 0) is General MIDI's percussion channel: its parts are drums.

Reference: MIDI 1.0 Detailed Specification, Standard MIDI Files 1.0 (The MIDI Association).
"""

from __future__ import annotations

import io
from bisect import bisect_right
from dataclasses import dataclass, field

from priorsep.errors import MidiReadError

DRUM_CHANNEL = 9
"""General MIDI's percussion channel (channel 10, counted from 1)."""
DEFAULT_TEMPO = 500_000
"""Microseconds per beat until the first tempo change: 120 bpm, as the standard says."""
KEPT = ("note_on", "note_off", "control_change", "pitchwheel", "aftertouch", "polytouch")
"""Channel messages a part keeps; program changes are the renderer's choice."""
_BANK_SELECT = (0, 32)


@dataclass(frozen=True)
class Event:
    """One channel message of a part.

    Args:
        seconds: time from the start of the piece.
        kind: a mido message type from `KEPT`.
        data: note_on (note, velocity); note_off (note,); control_change (control, value);
            pitchwheel (pitch -8192..8191,); aftertouch (value,); polytouch (note, value).
    """

    seconds: float
    kind: str
    data: tuple[int, ...]


@dataclass
class Part:
    """The channel events of one voice of a piece.

    Args:
        index: position among the piece's parts, from 0 (tracks in order, then channels).
        name: the track's name (`track_name` meta message), or "" when it has none.
        track, channel: where in the file it was found.
        events: time-ordered.
        program: its 0-based General MIDI program as written (for drums: the kit).
    """

    index: int
    name: str
    track: int
    channel: int
    events: list[Event] = field(default_factory=list)
    program: int = 0

    @property
    def drums(self) -> bool:
        """Whether the part is on General MIDI's percussion channel."""
        return self.channel == DRUM_CHANNEL

    @property
    def notes(self) -> int:
        """How many notes start in the part."""
        return sum(1 for e in self.events if e.kind == "note_on" and e.data[1] > 0)

    @property
    def end(self) -> float:
        """Seconds at the part's last event (0 for an empty part)."""
        return self.events[-1].seconds if self.events else 0.0

    def label(self) -> str:
        """How a message names the part: `part 2 ("Tenor")`."""
        return f'part {self.index} ("{self.name}")' if self.name else f"part {self.index}"


@dataclass
class Score:
    """A piece as parts.

    Args:
        name: the piece's name (file stem or corpus work), used for files and the split.
        parts: in file order.
        source: where it came from (a path or `corpus:...`), for messages.
    """

    name: str
    parts: list[Part]
    source: str

    @property
    def end(self) -> float:
        """Seconds at the last event of any part."""
        return max((part.end for part in self.parts), default=0.0)


def _seconds_of(tempo_changes: list[tuple[int, int]], ticks_per_beat: int):
    """A function ticks -> seconds for a sorted list of (tick, microseconds per beat)."""
    ticks, seconds, tempos = [0], [0.0], [DEFAULT_TEMPO]
    for tick, tempo in tempo_changes:
        seconds.append(seconds[-1] + (tick - ticks[-1]) * tempos[-1] / 1e6 / ticks_per_beat)
        ticks.append(tick)
        tempos.append(tempo)

    def convert(tick: int) -> float:
        k = bisect_right(ticks, tick) - 1
        return seconds[k] + (tick - ticks[k]) * tempos[k] / 1e6 / ticks_per_beat

    return convert


def read_midi(data: bytes, name: str, source: str) -> Score:
    """Parse the bytes of a Standard MIDI File.

    Args:
        data: the file's bytes.
        name: the piece's name.
        source: where the bytes came from, for messages.

    Raises:
        MidiReadError: not a MIDI file, truncated or malformed, or timed in SMPTE frames.
    """
    try:
        import mido
    except ImportError as error:
        raise MidiReadError("reading MIDI needs the mido package (pip install "
                            "'priorsep[render]')") from error
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception as error:  # mido raises OSError, EOFError, ValueError, KeyError, ...
        detail = str(error) or type(error).__name__
        raise MidiReadError(f"{source}: not a readable MIDI file ({detail})") from None
    if midi.ticks_per_beat <= 0:
        raise MidiReadError(f"{source}: SMPTE-timed MIDI files are not supported")
    tempo_changes: list[tuple[int, int]] = []
    tracks: list[list[tuple[int, object]]] = []
    names: list[str] = []
    for track in midi.tracks:
        tick, messages, track_name = 0, [], ""
        for message in track:
            tick += message.time
            if message.type == "set_tempo":
                tempo_changes.append((tick, message.tempo))
            elif message.type == "track_name" and not track_name:
                track_name = message.name.strip()
            elif not message.is_meta and hasattr(message, "channel"):
                messages.append((tick, message))
        tracks.append(messages)
        names.append(track_name)
    seconds = _seconds_of(sorted(tempo_changes, key=lambda change: change[0]),
                          midi.ticks_per_beat)
    programs = sorted((tick, message.channel, message.program) for messages in tracks
                      for tick, message in messages if message.type == "program_change")
    parts: list[Part] = []
    for track_index, (messages, track_name) in enumerate(zip(tracks, names)):
        channels = sorted({message.channel for _, message in messages})
        for channel in channels:
            part = Part(len(parts), track_name, track_index, channel)
            own: list[int] = []
            first_note = None
            for tick, message in messages:
                if message.channel != channel:
                    continue
                if message.type == "program_change":
                    own.append(message.program)
                if message.type not in KEPT:
                    continue
                if message.type == "control_change" and message.control in _BANK_SELECT:
                    continue
                if first_note is None and message.type == "note_on" and message.velocity:
                    first_note = tick
                part.events.append(Event(seconds(tick), message.type, _data(message)))
            if own:
                part.program = own[0]
            else:  # set in another track (a set-up track) before the part's first note
                before = [program for tick, where, program in programs
                          if where == channel and (first_note is None or tick <= first_note)]
                part.program = before[-1] if before else 0
            parts.append(part)
    return Score(name, parts, source)


def _data(message) -> tuple[int, ...]:
    kind = message.type
    if kind == "note_on":
        return (message.note, message.velocity)
    if kind == "note_off":
        return (message.note,)
    if kind == "control_change":
        return (message.control, message.value)
    if kind == "pitchwheel":
        return (message.pitch,)
    if kind == "aftertouch":
        return (message.value,)
    return (message.note, message.value)  # polytouch
