"""Solo recordings rendered from MIDI: scores in, one WAV per instrument and their mix out.

`inputs` finds the pieces (MIDI files, folders, music21 corpus queries), `midi` reads a file
into parts, `instruments` maps parts to the instruments the user names, `fluidsynth` plays a
part on a General MIDI program, `layout` places the files and fixes each piece's split, and
`pipeline` runs them in that order. Rendering needs FluidSynth (the C library) and a General
MIDI soundfont; reading needs mido (and music21 for corpus inputs): `pip install
'priorsep[render]'`.
"""

from priorsep.render.instruments import Instrument, parse_instrument
from priorsep.render.pipeline import RenderSettings, RenderSummary, render

__all__ = ["Instrument", "RenderSettings", "RenderSummary", "parse_instrument", "render"]
