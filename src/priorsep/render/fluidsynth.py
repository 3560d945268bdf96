"""FluidSynth through ctypes: one General MIDI program plays a list of timed MIDI events.

Only the C library (`libfluidsynth`, Debian's `libfluidsynth3`, Homebrew's `fluid-synth`) is
needed, no Python binding: the handful of calls used here are declared below. Output is
written as float (`fluid_synth_write_float`), so no dither is ever added, and reverb and chorus
are off: a part rendered twice gives the same samples, and a solo is the dry instrument.

Every part is played by a fresh synthesiser (FluidSynth shares the soundfont's samples between
synthesisers of one process, so this is cheap): nothing of one part (voices still ringing, the
position in FluidSynth's 64-sample block) reaches the next, and a part sounds the same whatever
was rendered before it.

Reference: FluidSynth API, https://www.fluidsynth.org/api/ (synth.h, settings.h).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from priorsep.errors import SynthesiserNotFoundError
from priorsep.render.midi import DRUM_CHANNEL, Event

SOUNDFONT_ENV = "PRIORSEP_SOUNDFONT"
SOUNDFONT_PLACES: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian, Ubuntu: fluid-soundfont-gm
    "/usr/share/soundfonts/FluidR3_GM.sf2",  # Arch, Fedora
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)
"""Where a General MIDI soundfont is looked for when none is given (in this order)."""
GAIN = 1.0
"""Master gain: five times FluidSynth's default (0.2), so that a General MIDI melody at
velocity 90 peaks near 0.25 (RMS near -24 dBFS) as a recording would, not at -38 dBFS. Chords
on one part can pass 1.0: float files keep them, 16-bit files clip."""
_LIBRARY_NAMES = ("fluidsynth", "libfluidsynth-3", "libfluidsynth")
_SONAMES = ("libfluidsynth.so.3", "libfluidsynth.so.2", "libfluidsynth.3.dylib")
_FAILED = -1
DRUM_BANK = 128
"""The bank of a soundfont's drum kits."""


def find_soundfont(path: str | os.PathLike | None = None) -> Path:
    """The soundfont to use: `path`, else $PRIORSEP_SOUNDFONT, else the first of
    `SOUNDFONT_PLACES` that exists.

    Raises:
        SynthesiserNotFoundError: the given file does not exist, or none was found.
    """
    given = path if path is not None else os.environ.get(SOUNDFONT_ENV) or None
    if given is not None:
        if not Path(given).is_file():
            raise SynthesiserNotFoundError(f"{given}: no such soundfont file")
        return Path(given)
    for place in SOUNDFONT_PLACES:
        if Path(place).is_file():
            return Path(place)
    raise SynthesiserNotFoundError(
        "no General MIDI soundfont found (looked in " + ", ".join(SOUNDFONT_PLACES) +
        f"); install one (Debian: fluid-soundfont-gm) or set {SOUNDFONT_ENV}")


def _load_library() -> ctypes.CDLL:
    candidates = [ctypes.util.find_library(name) for name in _LIBRARY_NAMES]
    for name in [c for c in candidates if c] + list(_SONAMES):
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        _declare(library)
        return library
    raise SynthesiserNotFoundError(
        "the FluidSynth library (libfluidsynth) was not found; install it (Debian: "
        "libfluidsynth3 or fluidsynth, macOS: brew install fluid-synth)")


def _declare(library: ctypes.CDLL) -> None:
    pointer, integer, text = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    signatures = {
        "new_fluid_settings": (pointer, []),
        "delete_fluid_settings": (None, [pointer]),
        "fluid_settings_setnum": (integer, [pointer, text, ctypes.c_double]),
        "fluid_settings_setint": (integer, [pointer, text, integer]),
        "new_fluid_synth": (pointer, [pointer]),
        "delete_fluid_synth": (None, [pointer]),
        "fluid_synth_sfload": (integer, [pointer, text, integer]),
        "fluid_synth_program_select": (integer, [pointer, integer, integer, integer, integer]),
        "fluid_synth_noteon": (integer, [pointer, integer, integer, integer]),
        "fluid_synth_noteoff": (integer, [pointer, integer, integer]),
        "fluid_synth_cc": (integer, [pointer, integer, integer, integer]),
        "fluid_synth_pitch_bend": (integer, [pointer, integer, integer]),
        "fluid_synth_channel_pressure": (integer, [pointer, integer, integer]),
        "fluid_synth_key_pressure": (integer, [pointer, integer, integer, integer]),
        "fluid_synth_write_float": (integer, [pointer, integer, pointer, integer, integer,
                                              pointer, integer, integer]),
        "fluid_set_log_function": (pointer, [integer, pointer, pointer]),
    }
    for name, (result, arguments) in signatures.items():
        function = getattr(library, name)
        function.restype, function.argtypes = result, arguments
    for level in range(5):  # panic, error, warning, info, debug: failures are return codes here
        library.fluid_set_log_function(level, None, None)


class Synthesiser:
    """A General MIDI soundfont loaded into FluidSynth, rendering one part at a time.

    Args:
        soundfont: path of an .sf2/.sf3 file (see `find_soundfont`).
        sample_rate: output rate in Hz (FluidSynth accepts 8000 to 96000).
        gain: master gain.

    Raises:
        SynthesiserNotFoundError: no FluidSynth library, or the soundfont does not load.
    """

    def __init__(self, soundfont: str | os.PathLike, sample_rate: int,
                 gain: float = GAIN) -> None:
        self.library = _load_library()
        self.soundfont = Path(soundfont)
        self.sample_rate = int(sample_rate)
        self.gain = float(gain)
        # this synthesiser only holds the soundfont's samples in FluidSynth's cache
        self._settings, self._holder, _ = self._new_synth()

    def _new_synth(self) -> tuple[int, int, int]:
        """(settings, synth, soundfont id) of a fresh synthesiser with the soundfont loaded."""
        lib = self.library
        settings = lib.new_fluid_settings()
        lib.fluid_settings_setnum(settings, b"synth.sample-rate", float(self.sample_rate))
        lib.fluid_settings_setnum(settings, b"synth.gain", self.gain)
        lib.fluid_settings_setint(settings, b"synth.reverb.active", 0)
        lib.fluid_settings_setint(settings, b"synth.chorus.active", 0)
        lib.fluid_settings_setint(settings, b"synth.cpu-cores", 1)
        synth = lib.new_fluid_synth(settings)
        if not synth:
            lib.delete_fluid_settings(settings)
            raise SynthesiserNotFoundError(
                f"FluidSynth could not start at {self.sample_rate} Hz (it takes 8000 to 96000)")
        font = lib.fluid_synth_sfload(synth, os.fsencode(self.soundfont), 1)
        if font == _FAILED:
            lib.delete_fluid_synth(synth)
            lib.delete_fluid_settings(settings)
            raise SynthesiserNotFoundError(f"{self.soundfont}: FluidSynth could not load this "
                                           "soundfont")
        return settings, synth, font

    def render(self, program: int, events: Sequence[Event], length: int,
               drums: bool = False) -> np.ndarray:
        """Play `events` on General MIDI `program` (0-127, bank 0, channel 1), or on the
        soundfont's drum kit `program` (bank 128, the percussion channel 10) when `drums`.

        Args:
            program: 0-based GM program (40 violin, 71 clarinet, 66 tenor sax, 70 bassoon), or
                the drum kit (0 the standard kit).
            events: time-ordered MIDI channel events of one part (their channel is ignored).
            length: samples to render; events at or after it are dropped.
            drums: play a percussion part.

        Returns:
            (length,) float32, mono: the mean of FluidSynth's left and right outputs.
        """
        lib = self.library
        channel = DRUM_CHANNEL if drums else 0
        settings, synth, font = self._new_synth()
        try:
            if lib.fluid_synth_program_select(synth, channel, font, DRUM_BANK if drums else 0,
                                              int(program)) == _FAILED and drums:
                # a kit the soundfont lacks: its standard kit, as a GM synthesiser does
                if lib.fluid_synth_program_select(synth, channel, font, DRUM_BANK,
                                                  0) == _FAILED:
                    raise SynthesiserNotFoundError(
                        f"{self.soundfont}: this soundfont has no drum kit (bank 128), so it "
                        "cannot play a drum part; use a General MIDI soundfont that has one")
            left = np.zeros(length, dtype=np.float32)
            right = np.zeros(length, dtype=np.float32)
            left_pointer, right_pointer = left.ctypes.data, right.ctypes.data
            position = 0
            for event in events:
                sample = min(int(round(event.seconds * self.sample_rate)), length)
                if sample > position:
                    lib.fluid_synth_write_float(synth, sample - position, left_pointer, position,
                                                1, right_pointer, position, 1)
                    position = sample
                if position >= length:
                    break
                self._send(synth, channel, event)
            if length > position:
                lib.fluid_synth_write_float(synth, length - position, left_pointer, position, 1,
                                            right_pointer, position, 1)
        finally:
            lib.delete_fluid_synth(synth)
            lib.delete_fluid_settings(settings)
        return (0.5 * (left + right)).astype(np.float32)

    def _send(self, synth: int, channel: int, event: Event) -> None:
        lib, kind, data = self.library, event.kind, event.data
        if kind == "note_on":
            lib.fluid_synth_noteon(synth, channel, data[0], data[1])
        elif kind == "note_off":
            lib.fluid_synth_noteoff(synth, channel, data[0])
        elif kind == "control_change":
            lib.fluid_synth_cc(synth, channel, data[0], data[1])
        elif kind == "pitchwheel":
            lib.fluid_synth_pitch_bend(synth, channel, data[0] + 8192)  # mido: -8192..8191
        elif kind == "aftertouch":
            lib.fluid_synth_channel_pressure(synth, channel, data[0])
        elif kind == "polytouch":
            lib.fluid_synth_key_pressure(synth, channel, data[0], data[1])

    def close(self) -> None:
        """Free the soundfont (the object cannot render afterwards)."""
        if self._holder:
            self.library.delete_fluid_synth(self._holder)
            self.library.delete_fluid_settings(self._settings)
            self._holder = 0

    def __enter__(self) -> Synthesiser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
