"""Separation speed of the shipped models through `priorsep separate`, against an HTDemucs-size
network on the same audio, in one run.

Each model separates a mix of `--seconds` seconds made by tiling its bundled example (the
chorale for the chorale models, the toy mix for the toy ones) through the command line, as a
user runs it: start-up, reading, separation and writing all count. The reference is the
anchor a user would pick instead: HTDemucs (Rouard et al. 2023; `demucs`'s own class,
`bottom_channels=512`: 41.5 M parameters like the released `htdemucs`) with random weights,
its forward pass over 7.8-s segments of the same duration of 44.1 kHz stereo audio, also in a
process of its own (torch's import counted). The runs are interleaved (reference, every model;
`--runs` times) and each figure is the median over the runs.

    python benchmarks/speed.py --seconds 30 --runs 3 --threads 2

Prints, per system: wall seconds, the real-time factor (wall / audio seconds), the peak
resident memory of its process and its speed relative to the reference (reference wall /
its wall: above 1 is faster). The reference row needs HTDemucs' code, not its other
dependencies: `pip install --no-deps demucs && pip install julius einops`; without it the
models are timed alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import soundfile

EXAMPLES = {"chorales": "chorale_mix.wav", "chorales-nmf": "chorale_mix.wav",
            "toy": "toy_mix.wav", "toy-exact": "toy_mix.wav"}

REFERENCE = """
import sys, time, torch
torch.set_num_threads({threads})
from demucs.htdemucs import HTDemucs
torch.manual_seed(0)
model = HTDemucs(sources=["drums", "bass", "other", "vocals"], bottom_channels=512).eval()
rate, seconds, segment = 44100, {seconds}, 7.8
audio = 0.1 * torch.randn(1, 2, int(rate * seconds))
step = int(segment * rate)
with torch.no_grad():
    for start in range(0, audio.shape[-1], step):
        chunk = audio[..., start:start + step]
        if chunk.shape[-1] < step:
            chunk = torch.nn.functional.pad(chunk, (0, step - chunk.shape[-1]))
        model(chunk)
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    error = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def tiled_example(model: str, seconds: float, folder: Path) -> Path:
    """The model's bundled example tiled to `seconds`, as a WAV in `folder`."""
    name = EXAMPLES.get(model, "chorale_mix.wav")
    audio, rate = soundfile.read(str(files("priorsep") / "examples" / name), dtype="float32")
    length = int(seconds * rate)
    tiled = np.tile(audio, -(-length // audio.shape[0]))[:length]
    path = folder / f"{Path(name).stem}-{seconds:g}s.wav"
    soundfile.write(path, tiled, rate)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=None,
                        help="model id (repeat; default: chorales, chorales-nmf, toy, "
                             "toy-exact)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    models = args.model or ["chorales", "chorales-nmf", "toy", "toy-exact"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    try:
        import demucs.htdemucs  # noqa: F401
        with_reference = True
    except ImportError:
        print("# demucs is not installed: no reference row", file=sys.stderr)
        with_reference = False
    walls: dict[str, list[float]] = {}
    peaks: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        inputs = {model: tiled_example(model, args.seconds, folder) for model in models}
        reference = [sys.executable, "-c", REFERENCE.format(threads=args.threads,
                                                            seconds=args.seconds)]
        for run in range(args.runs):
            systems = ([("HTDemucs-size (random weights)", reference)] if with_reference
                       else [])
            systems += [(model, ["priorsep", "separate", str(inputs[model]), "-m", model,
                                 "-o", str(folder / f"out-{run}"), "--overwrite", "-q",
                                 "--jobs", str(args.threads)]) for model in models]
            for label, command in systems:
                wall, peak = timed(command, env)
                walls.setdefault(label, []).append(wall)
                peaks.setdefault(label, []).append(peak)
                print(f"# run {run + 1}: {label}: {wall:.2f} s, {peak:.0f} MB", file=sys.stderr,
                      flush=True)
    anchor = statistics.median(walls[next(iter(walls))]) if with_reference else None
    print(f"\n{args.seconds:g} s of audio, {args.threads} thread(s), median of {args.runs} "
          "run(s), each system a process of its own")
    print("| system | wall (s) | real-time factor | peak memory (MB) | speed vs reference |")
    print("|---|---|---|---|---|")
    for label in walls:
        wall = statistics.median(walls[label])
        ratio = f"{anchor / wall:.2f}×" if anchor else ""
        print(f"| {label} | {wall:.2f} | {wall / args.seconds:.2f} | "
              f"{statistics.median(peaks[label]):.0f} | {ratio} |")


if __name__ == "__main__":
    main()
