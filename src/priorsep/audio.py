"""Reading, writing, resampling and channel handling of audio files.

Everything else in priorsep sees float32 tensors (channels, time); this module alone talks to
soundfile and torchaudio, reads `-` as stdin and writes outputs atomically.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional

from priorsep.errors import AudioReadError
from priorsep.storage import atomic_write

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
SUBTYPES = {"int16": "PCM_16", "int24": "PCM_24", "float32": "FLOAT"}


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Read a file (or `-` for stdin) as (channels, time) float32 and its sample rate."""
    try:
        if str(path) == "-":
            data, rate = soundfile.read(io.BytesIO(sys.stdin.buffer.read()), dtype="float32",
                                        always_2d=True)
        else:
            if not Path(path).is_file():
                raise AudioReadError(f"{path}: no such file")
            data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except AudioReadError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as error:
        name = "stdin" if str(path) == "-" else str(path)
        raise AudioReadError(f"{name}: not a readable audio file ({error})") from None
    if data.shape[0] == 0:
        raise AudioReadError(f"{path}: contains no audio")
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


def read_segment(path: str | os.PathLike, start: int, frames: int) -> tuple[torch.Tensor, int]:
    """Read `frames` samples from `start` (in the file's own rate): (channels, frames)."""
    try:
        data, rate = soundfile.read(str(path), start=start, frames=frames, dtype="float32",
                                    always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{path}: not a readable audio file ({error})") from None
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(number of frames, sample rate) of a file, without reading it."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{path}: not a readable audio file ({error})") from None
    return info.frames, info.samplerate


def to_mono(audio: torch.Tensor) -> torch.Tensor:
    """(channels, time) -> (1, time) by averaging the channels."""
    return audio.mean(dim=0, keepdim=True)


def resample(audio: torch.Tensor, rate_in: int, rate_out: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed sinc)."""
    if rate_in == rate_out:
        return audio
    return torchaudio.functional.resample(audio, rate_in, rate_out)


def encode_wav(audio: torch.Tensor, rate: int, subtype: str = "PCM_16",
               format: str = "WAV") -> bytes:
    """Encode (channels, time) audio to bytes, clipping to [-1, 1] for integer formats."""
    data = audio.detach().cpu().float().numpy().T
    if subtype != "FLOAT":
        data = np.clip(data, -1.0, 1.0)
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, subtype=subtype, format=format)
    return buffer.getvalue()


def write_audio(path: str | os.PathLike, audio: torch.Tensor, rate: int,
                subtype: str = "PCM_16") -> None:
    """Write (channels, time) audio atomically (temp file, then rename); format from the suffix."""
    path = Path(path)
    file_format = "FLAC" if path.suffix.lower() == ".flac" else "WAV"
    if file_format == "FLAC" and subtype == "FLOAT":
        subtype = "PCM_24"
    payload = encode_wav(audio, rate, subtype, file_format)
    atomic_write(path, lambda tmp: tmp.write_bytes(payload))
