"""Inputs FFmpeg decodes (m4a/AAC, Opus, WebM) through PyAV: the stems equal those of the same
decoded audio given as a WAV; a corrupt file gets the one-line refusal a corrupt WAV gets."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from priorsep.audio import read_audio
from priorsep.cli import app

av = pytest.importorskip("av")


def encode(path, codec: str, rate: int, channels: int) -> None:
    """One second of two tones, encoded with PyAV."""
    time = np.arange(rate) / rate
    tones = np.stack([0.3 * np.sin(2 * np.pi * 440 * time),
                      0.2 * np.sin(2 * np.pi * 660 * time)])[:channels].astype(np.float32)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(tones, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


@pytest.mark.parametrize("name,codec,rate,channels", [
    ("song.m4a", "aac", 44100, 2), ("voice.opus", "libopus", 48000, 1),
    ("clip.webm", "libopus", 48000, 2), ("odd.m4a", "aac", 22050, 1)])
def test_ffmpeg_inputs_separate_as_their_decoded_wav(tmp_path, name, codec, rate, channels):
    source = tmp_path / name
    encode(source, codec, rate, channels)
    audio, read_rate = read_audio(source)
    assert read_rate == rate and audio.shape[0] == channels
    assert audio.shape[1] >= rate and 0.1 < float(audio.abs().max()) < 1  # the tones, decoded
    reference = tmp_path / "wav" / (source.stem + ".wav")
    reference.parent.mkdir()
    soundfile.write(reference, audio.numpy().T, rate, subtype="FLOAT")
    runner = CliRunner()
    for given, out in ((source, "from-ffmpeg"), (reference, "from-wav")):
        result = runner.invoke(app, ["separate", str(given), "-m", "toy", "-o",
                                     str(tmp_path / out), "--float32", "--duration", "0.25", "-q"])
        assert result.exit_code == 0, result.output
    stems = sorted((tmp_path / "from-ffmpeg" / source.stem).iterdir())
    assert [p.name for p in stems] == ["sawtooth.wav", "sine.wav", "square.wav", "triangle.wav"]
    for stem in stems:
        decoded, _ = soundfile.read(stem, dtype="float32")
        direct, _ = soundfile.read(tmp_path / "from-wav" / source.stem / stem.name,
                                   dtype="float32")
        assert decoded.shape == direct.shape
        np.testing.assert_allclose(decoded, direct, atol=1e-6)


def test_a_corrupt_m4a_is_refused_like_a_corrupt_wav(tmp_path):
    (tmp_path / "bad.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x07" * 500)
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + b"\x07" * 500)
    runner = CliRunner()
    for name in ("bad.m4a", "bad.wav"):
        result = runner.invoke(app, ["separate", str(tmp_path / name), "-m", "toy", "-o",
                                     str(tmp_path / "out")])
        assert result.exit_code == 3, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "not a readable audio file" in lines[0], result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.wav"))


def test_a_folder_input_lists_ffmpeg_files(tmp_path):
    encode(tmp_path / "a.m4a", "aac", 16000, 1)
    soundfile.write(tmp_path / "b.wav", np.zeros(1600, dtype=np.float32), 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    from priorsep.audio import audio_files

    assert [p.name for p in audio_files(tmp_path)] == ["a.m4a", "b.wav"]
