"""`priorsep separate` and the Separator API on a tiny model: outputs, pipes, bad inputs."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from priorsep.api import SeparationProgress, Separator
from priorsep.cli import app
from priorsep.config import LangevinConfig, SeparationSettings
from tests.conftest import TINY_FLOW, save_toy_priors

runner = CliRunner()
FAST = ["--steps", "4", "--quiet"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_toy_priors(tmp_path_factory.mktemp("model"), TINY_FLOW,
                           {"n_levels": 2, "steps_per_level": 2, "init": "mix"})


@pytest.fixture
def stereo_mix(tmp_path):
    rate = 22050
    time = np.arange(int(0.3 * rate)) / rate
    left = 0.5 * np.sin(2 * np.pi * 220 * time)
    path = tmp_path / "song.wav"
    soundfile.write(path, np.stack([left, 0.5 * left], axis=1), rate)
    return path


def test_stereo_stems_follow_their_own_channel(tmp_path, tiny_model):
    """Stems keep the channels: with L and R different, each stem's left channel follows the
    left input; an anti-phase file (L = -R) is not silenced; --mono gives one channel."""
    rate = 22050
    time = np.arange(int(0.3 * rate)) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 220 * time), 0.4 * np.sin(2 * np.pi * 1330 * time)
    soundfile.write(tmp_path / "song.wav", np.stack([left, right], axis=1), rate)
    soundfile.write(tmp_path / "phase.wav", np.stack([left, -left], axis=1), rate)
    out = tmp_path / "out"
    result = runner.invoke(app, ["separate", str(tmp_path / "song.wav"),
                                 str(tmp_path / "phase.wav"), "-o", str(out), "--model",
                                 str(tiny_model), "--steps", "4", "--float32"])
    assert result.exit_code == 0, result.output
    assert "%" not in result.output  # short tracks: one line each, no progress lines
    stems = sorted((out / "song").iterdir())
    assert [p.name for p in stems] == ["sawtooth.wav", "sine.wav", "square.wav", "triangle.wav"]
    for stem in stems:
        audio, stem_rate = soundfile.read(stem)
        assert stem_rate == rate and audio.shape == (int(0.3 * rate), 2)
        own = [abs(np.corrcoef(audio[:, c], x)[0, 1]) for c, x in enumerate((left, right))]
        other = [abs(np.corrcoef(audio[:, c], x)[0, 1]) for c, x in enumerate((right, left))]
        assert all(o > max(0.08, 2 * x) for o, x in zip(own, other)), (stem.name, own, other)
        phase, _ = soundfile.read(out / "phase" / stem.name)  # the tiny priors add noise
        assert np.sqrt(np.mean(phase**2)) > 0.05
        assert np.corrcoef(phase[:, 0], left)[0, 1] > 0.1
        assert np.corrcoef(phase[:, 1], -left)[0, 1] > 0.1
    assert not list(out.rglob("*.tmp"))
    mono = runner.invoke(app, ["separate", str(tmp_path / "song.wav"), "-o",
                               str(tmp_path / "mono"), "--model", str(tiny_model), "--mono",
                               *FAST])
    assert mono.exit_code == 0, mono.output
    assert soundfile.info(tmp_path / "mono" / "song" / "sine.wav").channels == 1


def test_output_formats_and_filename_template(tmp_path, tiny_model, stereo_mix):
    out = tmp_path / "out"
    cases = [(["--flac"], "{source}-{track}.{ext}", "sine-song.flac", ("FLAC", "PCM_16")),
             (["--flac", "--int24"], "{stem}.{trackext}.{ext}", "sine.wav.flac",
              ("FLAC", "PCM_24")),
             (["--float32"], "{track}/{source}.{ext}", "song/sine.wav", ("WAV", "FLOAT")),
             (["--ogg"], "{track}/{source}.{ext}", "song/sine.ogg", ("OGG", "VORBIS")),
             (["--mp3", "--mp3-bitrate", "64"], "{track}/{source}.{ext}", "song/sine.mp3",
              ("MP3", "MPEG_LAYER_III"))]
    for options, template, name, kind in cases:
        result = runner.invoke(app, ["separate", str(stereo_mix), "-o", str(out), "--model",
                                     str(tiny_model), "--filename", template, *options, *FAST])
        assert result.exit_code == 0, (options, result.output)
        info = soundfile.info(out / name)
        assert (info.format, info.subtype) == kind
        assert info.channels == 2 and abs(info.frames - int(0.3 * 22050)) < 1200
    assert (out / "song" / "sine.mp3").stat().st_size < 0.3 * 80_000 / 8 + 2000  # ~64 kbps


def test_outputs_are_checked_before_any_work(tmp_path, tiny_model, stereo_mix):
    """Template keys, collisions, folders and files in the way fail at once with exit 2."""
    other = tmp_path / "song.flac"
    soundfile.write(other, soundfile.read(stereo_mix)[0], 22050)
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    base = ["separate", str(stereo_mix), "--model", str(tiny_model), "--steps", "500"]
    cases = [(["-o", str(tmp_path / "o"), "--filename", "{track}/{colour}.{ext}"], "{colour}"),
             (["-o", str(tmp_path / "o"), "--filename", "{track}.{ext}"], "no {source}"),
             (["-o", str(tmp_path / "o"), str(other)], "{trackext}"),
             (["-o", str(blocker)], "is a file"),
             (["-o", str(tmp_path / "o"), "--filename", "x/{source}"], None)]
    (tmp_path / "o" / "x" / "sine").mkdir(parents=True)
    for options, message in cases:
        result = runner.invoke(app, [*base, *options])
        assert result.exit_code == 2, (options, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert message is None or message in result.output, result.output
        assert "is a folder" in result.output or message is not None
    assert sorted(p.name for p in (tmp_path / "o").rglob("*")) == ["sine", "x"]
    both = runner.invoke(app, ["separate", str(stereo_mix), str(other), "-o",
                               str(tmp_path / "o"), "--model", str(tiny_model), "--filename",
                               "{track}.{trackext}/{source}.{ext}", *FAST])
    assert both.exit_code == 0, both.output
    assert (tmp_path / "o" / "song.flac" / "sine.wav").is_file()


def test_a_track_is_written_whole_or_not_at_all(tmp_path, tiny_model, stereo_mix, monkeypatch):
    """A failure while writing the third stem of the first track leaves nothing of it (exit
    11, one line); the next input is still separated and written."""
    import os as real_os

    from priorsep import files

    second = tmp_path / "second.wav"
    second.write_bytes(stereo_mix.read_bytes())
    calls = {"n": 0}
    real_replace = real_os.replace

    def failing_replace(source, target):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device", str(target))
        return real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", failing_replace)
    out = tmp_path / "out"
    result = runner.invoke(app, ["separate", str(stereo_mix), str(second), "-o", str(out),
                                 "--model", str(tiny_model), *FAST])
    assert result.exit_code == 11, result.output
    assert "No space left" in result.output and "Traceback" not in result.output
    assert not (out / "song").exists() or not list((out / "song").iterdir())
    assert len(list((out / "second").iterdir())) == 4
    assert not list(out.rglob("*.tmp"))


def test_inputs_are_checked(tmp_path, tiny_model, stereo_mix):
    """Non-finite samples, empty folders and truncated files; folders expand to their audio."""
    rate = 16000
    bad = tmp_path / "in" / "nan.wav"
    bad.parent.mkdir()
    data = np.full((800, 1), 0.1, dtype=np.float32)
    data[10] = np.nan
    soundfile.write(bad, data, rate, subtype="FLOAT")
    data[10] = np.inf
    soundfile.write(tmp_path / "in" / "inf.wav", data, rate, subtype="FLOAT")
    good = tmp_path / "in" / "zgood.wav"
    good.write_bytes(stereo_mix.read_bytes())
    truncated = tmp_path / "cut.wav"
    payload = stereo_mix.read_bytes()
    truncated.write_bytes(payload[: len(payload) // 2])
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    result = runner.invoke(app, ["separate", str(tmp_path / "in"), str(tmp_path / "empty"),
                                 str(truncated), "-o", str(out), "--model", str(tiny_model),
                                 *FAST])
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert sum(line.startswith("error:") for line in lines) == 3, result.output
    assert any("empty" in line and "no audio files" in line for line in lines)
    assert any("inf.wav" in line and "not finite" in line for line in lines)
    assert any("nan.wav" in line and "not finite" in line for line in lines)
    assert any(line.startswith("warning:") and "cut.wav" in line for line in lines)
    assert sorted(p.name for p in out.iterdir()) == ["cut", "zgood"]
    assert not (out / "nan").exists()
    empty = subprocess.run([sys.executable, "-m", "priorsep", "separate", "-", "--stdout",
                            "sine", "--model", str(tiny_model), *FAST], input=b"",
                           capture_output=True, timeout=300)
    assert empty.returncode == 3 and empty.stdout == b""
    assert empty.stderr.decode().strip().count("\n") == 0
    assert "stdin: empty input" in empty.stderr.decode() and "BytesIO" not in empty.stderr.decode()


def test_two_stems_start_and_duration(tmp_path, tiny_model, stereo_mix):
    """--two-stems writes SOURCE and the sum of the rest, from the same separation."""
    common = [str(stereo_mix), "--model", str(tiny_model), "--float32", "--clip-mode", "none",
              "--seed", "1", "--start", "0.1", "--duration", "0.1", *FAST]
    assert runner.invoke(app, ["separate", *common, "-o", str(tmp_path / "all")]).exit_code == 0
    result = runner.invoke(app, ["separate", *common, "-o", str(tmp_path / "two"),
                                 "--two-stems", "square"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "two" / "song").iterdir()) == [
        "no_square.wav", "square.wav"]
    every = {name: soundfile.read(tmp_path / "all" / "song" / f"{name}.wav")[0]
             for name in ("sine", "sawtooth", "square", "triangle")}
    rest, _ = soundfile.read(tmp_path / "two" / "song" / "no_square.wav")
    assert rest.shape == (round(0.1 * 22050), 2)
    np.testing.assert_allclose(rest, every["sine"] + every["sawtooth"] + every["triangle"],
                               atol=1e-5)
    square, _ = soundfile.read(tmp_path / "two" / "song" / "square.wav")
    np.testing.assert_allclose(square, every["square"], atol=1e-6)


def test_one_bad_file_does_not_stop_the_others(tmp_path, tiny_model, stereo_mix):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav")
    out = tmp_path / "out"
    result = runner.invoke(app, ["separate", str(broken), str(tmp_path / "missing.wav"),
                                 str(stereo_mix), "-o", str(out), "--model", str(tiny_model),
                                 *FAST])
    assert result.exit_code == 3
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "broken.wav" in errors[0] and "missing.wav" in errors[1]
    assert "Traceback" not in result.output
    assert len(list((out / "song").iterdir())) == 4
    assert not (out / "broken").exists()


def test_existing_outputs_need_overwrite(tmp_path, tiny_model, stereo_mix):
    out = tmp_path / "out"
    args = ["separate", str(stereo_mix), "-o", str(out), "--model", str(tiny_model), *FAST]
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "song" / "sine.wav").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (out / "song" / "sine.wav").read_bytes() == before
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["--stdout", "vocals"], "the model's sources are"),
    ([], "give an output folder"),
    (["--float32", "--flac", "-o", "x"], "at most one"),
    (["--mp3", "--ogg", "-o", "x"], "at most one"),
    (["--float32", "--mp3", "-o", "x"], "at most one"),
    (["--two-stems", "vocals", "-o", "x"], "the model's sources are"),
    (["--clip-mode", "fold", "-o", "x"], "clip mode"),
    (["--mp3", "--mp3-bitrate", "500", "-o", "x"], "between 8 and 320"),
    (["--overlap", "0.7", "-o", "x"], "--overlap"),
    (["--start", "5", "-o", "x"], "past its end"),
    (["--steps", "0", "-o", "x"], "at least 1"),
])
def test_bad_options_give_one_line(tiny_model, stereo_mix, args, message):
    result = runner.invoke(app, ["separate", str(stereo_mix), "--model", str(tiny_model),
                                 "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_stdin_to_stdout_pipeline(tiny_model, stereo_mix):
    """`cat mix.wav | priorsep separate - --stdout sine > sine.wav` through the executable."""
    done = subprocess.run(
        [sys.executable, "-m", "priorsep", "separate", "-", "--stdout", "sine", "--model",
         str(tiny_model), *FAST], input=stereo_mix.read_bytes(), capture_output=True,
        timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    audio, rate = soundfile.read(io.BytesIO(done.stdout))
    assert rate == 22050 and audio.shape == (int(0.3 * 22050), 2)


def test_separator_api_uses_the_models_stored_settings(tiny_model):
    separator = Separator.from_pretrained(str(tiny_model), seed=3)
    assert separator.settings["langevin"] == LangevinConfig(n_levels=2, steps_per_level=2,
                                                            init="mix", seed=3)
    mix = torch.randn(1, 1000) * 0.3
    stems = separator.separate_audio(mix, 16000)
    assert list(stems) == list(separator.sources)
    assert all(stem.shape == (1, 1000) for stem in stems.values())
    again = Separator.from_pretrained(str(tiny_model), seed=3).separate_audio(mix, 16000)
    assert all(torch.equal(stems[k], again[k]) for k in stems)


def test_progress_bar_renders_on_a_terminal(monkeypatch):
    """On a terminal the bar is drawn before the first report, while its total is unknown."""
    import importlib
    import io

    from rich.console import Console

    from priorsep.cli.separating import AudioProgress

    app_module = importlib.import_module("priorsep.cli.app")  # the module, not the Typer app

    screen = io.StringIO()
    monkeypatch.setattr(app_module, "console", Console(file=screen, force_terminal=True))
    with AudioProgress("song", quiet=False) as update:
        assert update is not None
        update(SeparationProgress(1, 4, 0, 0, 4, seconds=2.0))
    assert "0.5/2.0 s" in screen.getvalue()
    with AudioProgress("song", quiet=True) as update:
        assert update is None
    screen = io.StringIO()  # off a terminal: a line per tenth of a long track
    plain = Console(file=screen, force_terminal=False)
    monkeypatch.setattr(app_module, "console", plain)
    monkeypatch.setattr(importlib.import_module("priorsep.cli.separating"), "console", plain)
    with AudioProgress("long", quiet=False) as update:
        for step in range(0, 21):  # one batch of 20 sampler steps, 60 s of audio
            update(SeparationProgress(1, 1, step, 20, 3, seconds=60.0))
    lines = screen.getvalue().splitlines()
    assert lines[0] == "long: 10% (6/60 s)" and lines[-1] == "long: 100% (60/60 s)"
    assert len(lines) == 10


def test_progress_events_count_batches_and_sampler_steps():
    """Three mixes of two segments each, two segments per batch, 3 x 2 Langevin steps: every
    step of every batch is reported once, in order, ending at the whole."""
    from tests.gaussian import GaussianPriors

    separator = Separator(GaussianPriors(), segment_length=64, overlap=16, batch_size=2,
                          settings=SeparationSettings(configs={
                              "langevin": LangevinConfig(n_levels=3, steps_per_level=2)}))
    events = []
    separator.separate_tensor(torch.randn(3, 100), events.append, seconds=0.5)
    assert [(e.batch, e.step) for e in events] == [(b, s) for b in (1, 2, 3) for s in range(1, 7)]
    assert {(e.batches, e.steps, e.segments, e.seconds) for e in events} == {(3, 6, 6, 0.5)}
    assert [e.done for e in events] == list(range(1, 19)) and events[-1].fraction == 1.0


def test_warning_when_every_stem_is_the_mix(monkeypatch, tmp_path):
    import importlib

    from rich.console import Console

    from priorsep.streaming import MixCorrelation

    screen = io.StringIO()
    monkeypatch.setattr(importlib.import_module("priorsep.cli.separating"), "console",
                        Console(file=screen, force_terminal=False, soft_wrap=True))
    mix = torch.randn(2, 4000)

    def lowest(stems) -> float:  # the stems come in two blocks, as from a stream
        correlation = MixCorrelation()
        for part in (slice(0, 1500), slice(1500, 4000)):
            correlation.add(mix[:, part], {name: stem[:, part] for name, stem in stems.items()})
        return correlation.lowest()

    assert lowest({name: 0.25 * mix + 0.01 * torch.randn(2, 4000) for name in "abcd"}) > 0.95
    assert lowest({name: torch.randn(2, 4000) for name in "abcd"}) < 0.5
    # through the command line: a model that keeps the mix in every slot is named
    monkeypatch.setattr(Separator, "_separate_segments",
                        lambda self, segments, step=None: segments[:, None].expand(-1, 4, -1))
    soundfile.write(tmp_path / "song.wav", (0.3 * mix).numpy().T, 16000)
    result = CliRunner().invoke(app, ["separate", str(tmp_path / "song.wav"), "-m", "toy",
                                      "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "model toy did not separate it" in screen.getvalue()
    assert "docs/benchmarks.md" in screen.getvalue()


def test_hostile_inputs_through_the_installed_executable(tmp_path, tiny_model, stereo_mix):
    """The installed `priorsep`: NaN audio beside a good file, a bad template, an output that
    is a file, empty stdin, a bad training value: one line each, their exit codes, no
    traceback, no half-written track, never 70."""
    from tests.test_cli import executable

    bad = tmp_path / "nan.wav"
    data = np.full((800, 2), 0.1, dtype=np.float32)
    data[5, 1] = np.nan
    soundfile.write(bad, data, 16000, subtype="FLOAT")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    base = [*executable(), "separate", "--model", str(tiny_model), *FAST]
    runs = [([*base, str(bad), str(stereo_mix), "-o", str(tmp_path / "out")], b"", 3),
            ([*base, str(stereo_mix), "-o", str(tmp_path / "t"), "--filename", "{stem}.{x}"],
             b"", 2),
            ([*base, str(stereo_mix), "-o", str(blocker)], b"", 2),
            ([*base, "-", "--stdout", "sine"], b"", 3),
            ([*executable(), "train", "--out", str(tmp_path / "m"), "--lr", "inf"], b"", 2)]
    for command, stdin, code in runs:
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=300)
        stderr = done.stderr.decode()
        assert done.returncode == code, (command, stderr)
        assert "Traceback" not in stderr and "internal error" not in stderr
        assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["song"]
    assert len(list((tmp_path / "out" / "song").iterdir())) == 4
    assert not (tmp_path / "t").exists()
