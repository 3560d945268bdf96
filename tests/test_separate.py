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

from priorsep.api import Separator
from priorsep.cli import app
from priorsep.config import LangevinConfig
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


def test_separate_writes_every_stem_at_the_input_rate(tmp_path, tiny_model, stereo_mix):
    result = runner.invoke(app, ["separate", str(stereo_mix), "-o", str(tmp_path / "out"),
                                 "--model", str(tiny_model), "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert "averaged to mono" in result.output
    stems = sorted((tmp_path / "out" / "song").iterdir())
    assert [p.name for p in stems] == ["sawtooth.wav", "sine.wav", "square.wav", "triangle.wav"]
    for stem in stems:
        info = soundfile.info(stem)
        assert (info.samplerate, info.channels, info.frames) == (22050, 1, int(0.3 * 22050))
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_output_formats_and_filename_template(tmp_path, tiny_model, stereo_mix):
    out = tmp_path / "out"
    result = runner.invoke(app, ["separate", str(stereo_mix), "-o", str(out), "--model",
                                 str(tiny_model), "--flac", "--filename", "{source}-{track}.{ext}",
                                 *FAST])
    assert result.exit_code == 0, result.output
    assert soundfile.info(out / "sine-song.flac").format == "FLAC"
    result = runner.invoke(app, ["separate", str(stereo_mix), "-o", str(out), "--model",
                                 str(tiny_model), "--float32", *FAST])
    assert result.exit_code == 0, result.output
    assert soundfile.info(out / "song" / "sine.wav").subtype == "FLOAT"


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
    (["--int24", "--flac", "-o", "x"], "at most one"),
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
    assert rate == 22050 and audio.shape == (int(0.3 * 22050),)


def test_separator_api_uses_the_models_stored_settings(tiny_model):
    separator = Separator.from_pretrained(str(tiny_model), seed=3)
    assert separator.langevin == LangevinConfig(n_levels=2, steps_per_level=2, init="mix",
                                                seed=3)
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
        update(0.5, 2.0)
    assert "0.5/2.0 s" in screen.getvalue()
    with AudioProgress("song", quiet=True) as update:
        assert update is None
