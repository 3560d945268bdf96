"""How fast `priorsep render` turns a four-part chorale into solos and a mix, on one core.

Stages, timed apart: reading (music21's MIDI export of the corpus work, then the MIDI parse),
loading the soundfont, synthesising each part, mixing, and encoding the five WAV files. The
real-time factor is compute seconds per second of the piece (all four parts together); below 1
is faster than real time. The process is pinned to one CPU where the OS allows, and each part is
rendered `--repeats` times (the best time is kept, and every repeat must give the same samples).

    python benchmarks/render_speed.py                      # bach/bwv276: 60 s at 16 kHz
    python benchmarks/render_speed.py --sample-rate 44100 --work bach/bwv328
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

import numpy as np

from priorsep.data.chorales import instruments
from priorsep.render.fluidsynth import Synthesiser, find_soundfont
from priorsep.render.inputs import PieceSource
from priorsep.render.instruments import assign
from priorsep.render.layout import wav_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bach/bwv276",
                        help="music21 corpus work (default: a chorale of 59 s + 1 s tail)")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--soundfont", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"

    started = time.perf_counter()
    score = PieceSource(args.work.split("/")[-1], work=args.work).read()
    read_seconds = time.perf_counter() - started
    pairs = assign(score, instruments())
    soundfont = find_soundfont(args.soundfont)
    started = time.perf_counter()
    synth = Synthesiser(soundfont, args.sample_rate)
    load_seconds = time.perf_counter() - started
    length = int(np.ceil((score.end + 1.0) * args.sample_rate))
    seconds = length / args.sample_rate
    print(f"# {args.work}: {len(pairs)} parts, {seconds:.1f} s at {args.sample_rate} Hz, "
          f"soundfont {soundfont.name}, {cores} core(s)", file=sys.stderr)
    print("| stage | seconds | x real time |")
    print("|---|---:|---:|")
    print(f"| read (music21 MIDI export + parse) | {read_seconds:.3f} | "
          f"{read_seconds / seconds:.4f} |")
    print(f"| load soundfont (once per run) | {load_seconds:.3f} | |")
    solos = {}
    total = 0.0
    for instrument, part in pairs:
        times, digests = [], set()
        for _ in range(args.repeats):
            started = time.perf_counter()
            audio = synth.render(instrument.program, part.events, length)
            times.append(time.perf_counter() - started)
            digests.add(hashlib.sha256(audio.tobytes()).hexdigest())
        if len(digests) != 1:
            raise SystemExit(f"{instrument.name}: repeats gave different samples")
        solos[instrument.name] = audio
        total += min(times)
        print(f"| synthesise {instrument.name} (GM {instrument.program}, {part.notes} notes) | "
              f"{min(times):.3f} | {min(times) / seconds:.4f} |")
    started = time.perf_counter()
    mixture = np.stack(list(solos.values())).astype(np.float64).mean(axis=0).astype(np.float32)
    files = [wav_bytes(audio, args.sample_rate) for audio in [*solos.values(), mixture]]
    encode_seconds = time.perf_counter() - started
    synth.close()
    print(f"| mix + encode {len(files)} WAV files | {encode_seconds:.3f} | "
          f"{encode_seconds / seconds:.4f} |")
    piece = read_seconds + total + encode_seconds
    print(f"| **piece** (read + 4 parts + files) | **{piece:.3f}** | **{piece / seconds:.4f}** "
          f"({seconds / piece:.0f}x faster than real time) |")


if __name__ == "__main__":
    main()
