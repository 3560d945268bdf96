"""Where rendered pieces go: the split of a piece, its files, and the manifest of a render.

    OUT/
      manifest.json                          instruments, rate, soundfont, pieces per split
      pieces/<split>/<piece>/<source>.wav    every solo of a piece, and
      pieces/<split>/<piece>/mixture.wav     their mix (the mean): read by evaluation and
                                             benchmarks as ROOT=OUT/pieces (as MUSDB18's wavs)
      solos/<split>/<source>/<piece>.wav     the same solos by source (hard links; copies
                                             where links are refused): `priorsep train
                                             --dataset folder --root OUT/solos/train`

The split of a piece is a fixed function of its name: the first four bytes of the SHA-256 of
its UTF-8 name, read big-endian, modulo 10: 0 is test, 1 is validation, 2-9 train (about
80/10/10). A piece keeps its split whatever else is rendered with it.

Files are mono WAV, 32-bit float by default (the mixture is then exactly the mean of the
solos) or 16-bit PCM, written without any timestamp: the same audio gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from pathlib import Path

import numpy as np
import soundfile

from priorsep.files import write_together

SPLITS: tuple[str, ...] = ("train", "validation", "test")
MIXTURE = "mixture"
MANIFEST = "manifest.json"
SUBTYPES = ("float32", "int16")


def split_of(name: str) -> str:
    """The split of a piece by name: SHA-256 of the UTF-8 name, first 4 bytes mod 10
    (0: test, 1: validation, else train)."""
    bucket = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big") % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def piece_folder(out: Path, split: str, piece: str) -> Path:
    return out / "pieces" / split / piece


def solo_path(out: Path, split: str, source: str, piece: str) -> Path:
    return out / "solos" / split / source / f"{piece}.wav"


def piece_files(out: Path, split: str, piece: str, sources: list[str]) -> list[Path]:
    """Every file a piece owns (its folder's stems and mixture, then its solos)."""
    folder = piece_folder(out, split, piece)
    return ([folder / f"{source}.wav" for source in [*sources, MIXTURE]]
            + [solo_path(out, split, source, piece) for source in sources])


def is_complete(out: Path, split: str, piece: str, sources: list[str]) -> bool:
    """Whether every file of a piece is there (a render stopped midway leaves none or all
    of the piece folder; the solos are linked after it)."""
    return all(path.is_file() for path in piece_files(out, split, piece, sources))


def wav_bytes(audio: np.ndarray, sample_rate: int, subtype: str = "float32") -> bytes:
    """A mono WAV file's bytes.

    Args:
        audio: (time,) float32.
        subtype: "float32" (IEEE float, format tag 3, with the `fact` chunk) or "int16" (PCM,
            values outside [-1, 1] clipped by libsndfile).

    Float files are written here rather than by libsndfile, whose PEAK chunk holds the time of
    writing and would make every render's bytes differ.
    """
    if subtype == "int16":
        buffer = io.BytesIO()
        soundfile.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
        return buffer.getvalue()
    data = np.ascontiguousarray(audio, dtype="<f4").tobytes()
    frames = len(data) // 4
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, sample_rate * 4, 4, 32)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<II", 4, frames)
            + b"data" + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_piece(out: Path, split: str, piece: str, solos: dict[str, np.ndarray],
                mixture: np.ndarray, sample_rate: int, subtype: str = "float32") -> None:
    """Write a piece's folder (all files or none), then link its solos into `solos/`.

    Args:
        solos: source -> (time,) float32, all of one length.
        mixture: (time,) float32.

    Raises:
        OSError: a file could not be written; the piece folder is then left as it was.
    """
    folder = piece_folder(out, split, piece)
    payloads = {folder / f"{source}.wav": wav_bytes(audio, sample_rate, subtype)
                for source, audio in solos.items()}
    payloads[folder / f"{MIXTURE}.wav"] = wav_bytes(mixture, sample_rate, subtype)
    write_together(payloads)
    for source in solos:
        _link(folder / f"{source}.wav", solo_path(out, split, source, piece))


def _link(target: Path, link: Path) -> None:
    """Hard-link `link` to `target` (a copy where the file system refuses links), replacing
    whatever is at `link` in one rename."""
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.link")
    temporary.unlink(missing_ok=True)
    try:
        os.link(target, temporary)
    except OSError:
        temporary.write_bytes(target.read_bytes())
    os.replace(temporary, link)
