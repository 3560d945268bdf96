"""Separation block by block: the same result as the whole file at once, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from priorsep.audio import open_audio, read_audio, resample
from priorsep.cli import app
from priorsep.errors import AudioReadError, UsageError
from priorsep.separation.apply import OverlapAdd, separate_long
from priorsep.streaming import StreamResampler

runner = CliRunner()


def gains_fn(segments: torch.Tensor) -> torch.Tensor:
    """A segment function whose output depends on the whole segment (not sample-local), so a
    wrong segmentation shows."""
    return torch.stack([segments, segments * segments.mean(-1, keepdim=True)], dim=1)


def split(signal: torch.Tensor, seed: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.choice(np.arange(1, signal.shape[-1]), size=6, replace=False).tolist())
    return [signal[..., a:b] for a, b in zip([0, *cuts], [*cuts, signal.shape[-1]])]


@pytest.mark.parametrize("time", [37, 64, 65, 1001, 4000])
def test_blocks_give_the_whole_mix_result(time):
    mix = torch.randn(2, time, generator=torch.Generator().manual_seed(time))
    whole = separate_long(mix, gains_fn, segment_length=64, overlap=16, multiple=8, batch_size=3)
    stream = OverlapAdd(gains_fn, 64, 16, multiple=8, batch_size=3, rows=2)
    pieces = [stream.feed(block) for block in split(mix, time)] + [stream.finish()]
    streamed = torch.cat([piece for piece in pieces if piece is not None], dim=-1)
    torch.testing.assert_close(streamed, whole, atol=1e-6, rtol=1e-6)


def test_memory_stays_one_segment_and_a_batch_behind_the_input():
    stream = OverlapAdd(gains_fn, 256, 32, batch_size=4)
    given, largest = 0, 0
    for _ in range(200):
        out = stream.feed(torch.randn(1, 500))
        given += 0 if out is None else out.shape[-1]
        largest = max(largest, stream.buffer.shape[-1],
                      0 if stream.output is None else stream.output.shape[-1])
    given += stream.finish().shape[-1]
    assert given == 200 * 500
    assert largest <= 500 + 256 + 4 * 224  # a block, a segment and a batch of hops


@pytest.mark.parametrize("rates", [(44100, 16000), (16000, 44100), (22050, 16000)])
def test_the_stream_resampler_is_the_whole_resampler(rates):
    signal = torch.randn(2, 9001, generator=torch.Generator().manual_seed(1))
    whole = resample(signal, *rates)
    resampler = StreamResampler(*rates)
    pieces = [resampler.feed(block) for block in split(signal, 3)]
    pieces.append(resampler.finish(signal))
    torch.testing.assert_close(torch.cat(pieces, dim=-1), whole, atol=1e-6, rtol=1e-5)


def test_a_file_is_read_in_blocks_from_start_for_duration(tmp_path):
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (3 * 44100, 2)).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", audio, 44100, subtype="FLOAT")
    stream = open_audio(str(tmp_path / "a.wav"), start=0.5, duration=2.0)
    assert (stream.rate, stream.channels, stream.frames) == (44100, 2, 88200)
    read = torch.cat(list(stream.blocks), dim=-1)
    torch.testing.assert_close(read, torch.from_numpy(audio[22050:22050 + 88200].T))
    with pytest.raises(UsageError, match="past its end"):
        open_audio(str(tmp_path / "a.wav"), start=3.5)


def test_a_bad_sample_late_in_a_long_file_leaves_no_stems(tmp_path):
    audio = np.full((20 * 16000, 1), 0.1, dtype=np.float32)
    audio[15 * 16000] = np.nan
    soundfile.write(tmp_path / "late.wav", audio, 16000, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="not finite numbers .* from 15.00 s"):
        list(open_audio(str(tmp_path / "late.wav")).blocks)
    result = runner.invoke(app, ["separate", str(tmp_path / "late.wav"), "-m", "toy", "-o",
                                 str(tmp_path / "out"), "-q"])
    assert result.exit_code == 3, result.output
    assert "not finite" in result.output and not (tmp_path / "out" / "late").exists()


def test_separate_streams_a_stereo_file_at_its_own_rate_like_the_whole_file(tmp_path):
    from priorsep.api import Separator

    rng = np.random.default_rng(1)
    time = np.arange(int(9.3 * 22050)) / 22050
    left = 0.4 * np.sin(2 * np.pi * 220 * time) + 0.3 * np.sign(np.sin(2 * np.pi * 330 * time))
    right = 0.3 * np.sin(2 * np.pi * 440 * time) + 0.01 * rng.standard_normal(time.size)
    audio = np.stack([left, right], axis=1).astype(np.float32)
    soundfile.write(tmp_path / "song.wav", audio, 22050, subtype="FLOAT")
    result = runner.invoke(app, ["separate", str(tmp_path / "song.wav"), "-m", "toy", "-o",
                                 str(tmp_path / "out"), "--float32", "--clip-mode", "none",
                                 "-q"])
    assert result.exit_code == 0, result.output
    separator = Separator.from_pretrained("toy")
    whole = separator.separate_audio(*read_audio(tmp_path / "song.wav"))
    for source, stem in whole.items():
        written, rate = soundfile.read(tmp_path / "out" / "song" / f"{source}.wav",
                                       dtype="float32", always_2d=True)
        assert rate == 22050 and written.shape == audio.shape
        torch.testing.assert_close(torch.from_numpy(written.T), stem, atol=1e-4, rtol=1e-4)


def test_spectral_models_separate_one_segment_at_a_time_by_default():
    from priorsep.api import Separator

    assert Separator.from_pretrained("chorales-nmf").batch_size == 1  # a large fit per segment
    assert Separator.from_pretrained("toy").batch_size == 4
