"""The command line, through Typer's runner and through the installed executable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from typer.testing import CliRunner

from priorsep.cli import app

TINY = ["--prior", "flowavenet", "--n-blocks", "2", "--early-squeezes", "0", "--n-flows", "2",
        "--n-layers", "2",
        "--width", "8", "--cond-channels", "4", "--batch-size", "2", "--crop-length", "256"]
runner = CliRunner()


def executable() -> list[str]:
    found = shutil.which("priorsep", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "priorsep"]


def test_train_then_cross_likelihood(tmp_path):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--steps", "4",
                                 "--checkpoint-every", "2", *TINY])
    assert result.exit_code == 0, result.output
    assert "step 4/4" in result.output
    assert (tmp_path / "m" / "model.safetensors").is_file()
    result = runner.invoke(app, ["cross-likelihood", str(tmp_path / "m"), "--n-examples", "2",
                                 "--length", "256", "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)["log_likelihood"]
    assert set(table) == {"sine", "sawtooth", "square", "triangle"}
    assert all(len(row) == 4 for row in table.values())


def test_train_resume_extends_a_run(tmp_path):
    out = str(tmp_path / "m")
    assert runner.invoke(app, ["train", "--out", out, "--steps", "2", *TINY]).exit_code == 0
    again = runner.invoke(app, ["train", "--out", out, "--steps", "2", *TINY])
    assert again.exit_code == 2 and "--resume" in again.output
    assert runner.invoke(app, ["train", "--out", out, "--steps", "2", "--resume", *TINY]
                         ).exit_code == 0


def test_train_on_a_folder_of_solo_recordings(tmp_path):
    rng = np.random.default_rng(0)
    for source, rate in (("low", 8000), ("high", 16000)):
        (tmp_path / "data" / source).mkdir(parents=True)
        for i in range(2):
            soundfile.write(tmp_path / "data" / source / f"{i}.wav",
                            rng.uniform(-0.5, 0.5, (rate, 2)), rate)
    result = runner.invoke(app, ["train", "--dataset", "folder", "--root",
                                 str(tmp_path / "data"), "--out", str(tmp_path / "m"),
                                 "--steps", "2", *TINY])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model"]["sources"] == ["high", "low"]


def test_train_with_a_dct_front_end_writes_a_model_that_reloads(tmp_path):
    from priorsep.storage import load_model

    out = tmp_path / "m"
    result = runner.invoke(app, ["train", "--out", str(out), "--steps", "2", *TINY,
                                 "--early-squeezes", "2", "--frame-transform", "dct"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["architecture"]["frame_transform"] == "dct"
    priors = load_model(out).eval()
    assert priors.config.architecture.frame_transform == "dct"
    log_prob = priors.log_prob(torch.rand(2, 4, 256) - 0.5)
    assert log_prob.shape == (2, 4) and torch.isfinite(log_prob).all()


def test_train_from_a_models_config_keeps_its_family_and_architecture(tmp_path):
    """--config: another model's config.json gives the family and architecture; options on
    the command line and --set win over it."""
    first = tmp_path / "first"
    result = runner.invoke(app, ["train", "--out", str(first), "--steps", "1", "--prior",
                                 "wavenet", "--n-blocks", "1", "--n-layers", "3", "--width", "8",
                                 "--set", "skip_channels=8", "--set", "classes=32",
                                 "--batch-size", "2", "--crop-length", "256", "-q"])
    assert result.exit_code == 0, result.output
    second = tmp_path / "second"
    result = runner.invoke(app, ["train", "--out", str(second), "--steps", "1", "--config",
                                 str(first / "config.json"), "--n-layers", "2", "--width", "16",
                                 "--set", "classes=16", "--batch-size", "2", "--crop-length",
                                 "256", "-q"])
    assert result.exit_code == 0, result.output
    before = json.loads((first / "config.json").read_text())["model"]
    after = json.loads((second / "config.json").read_text())["model"]
    assert after["family"] == "wavenet"
    # --width sets a WaveNet's residual channels only: the file's skip channels stay
    assert after["architecture"] == {**before["architecture"], "n_layers": 2, "classes": 16,
                                     "residual_channels": 16}
    spec = tmp_path / "spec.json"
    spec.write_text('{"prior": "score", "architecture": {"bogus": 1}}')
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--config", str(spec)])
    assert result.exit_code == 2 and f"--config {spec}: bogus: not a field of ScoreConfig" in (
        result.output.replace("\n", ""))
    spec.write_text("[1, 2]")
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--config", str(spec)])
    assert result.exit_code == 2 and "expected a model's config.json" in result.output


@pytest.mark.parametrize("args, code, message", [
    (["--dataset", "folder"], 2, "--root: is needed by the folder dataset"),
    (["--dataset", "folder", "--root", "/nonexistent"], 4, "no such folder"),
    (["--dataset", "nope"], 2, "unknown dataset"),
    (["--crop-length", "102"], 2, "multiple of"),
    (["--frame-transform", "wavelet"], 2, "unknown frame_transform"),
    (["--frame-transform", "dct"], 2, "needs early_squeezes >= 1"),
    (["--lr", "inf"], 2, "--lr: must be a finite number above 0, got inf"),
    (["--lr", "nan"], 2, "--lr: must be a finite number"),
    (["--checkpoint-every", "0"], 2, "--checkpoint-every: must be a whole number of at least 1"),
    (["--sample-rate", "0"], 2, "--sample-rate: must be positive"),
    (["--crop-length", "0"], 2, "--crop-length: must be a whole number of at least 1"),
    (["--batch-size", "0"], 2, "--batch-size:"),
    (["--lr-decay", "1.5"], 2, "--lr-decay: must be a finite number in (0, 1]"),
    (["--prior", "score", "--crop-length", "4096", "--set", "sigma_data=0"], 2,
     "sigma_data must be positive"),
    (["--prior", "score", "--n-layers", "3"], 2,
     "--n-layers does not apply to score priors (it sets flowavenet, wavenet priors"),
    (["--prior", "wavenet", "--permutation", "invconv"], 2,
     "--permutation does not apply to wavenet priors"),
    (["--prior", "flowavenet", "--front-end", "time"], 2,
     "--front-end does not apply to flowavenet priors"),
    (["--prior", "auto", "--n-flows", "4"], 2,
     "--n-flows shapes flowavenet priors, but --prior auto chose wavetable for --dataset toy"),
])
def test_bad_train_options_give_one_line(tmp_path, args, code, message):
    flow_options = [] if "--prior" in args else TINY  # TINY shapes a flow
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--steps", "1",
                                 *flow_options, *args])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def one_line_usage_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


@pytest.mark.parametrize("command, args, message", [
    # the parser's own errors: one line, as every other error
    (["separate", "mix.wav", "-o", "out"], ["--steps", "nan"], "'nan' is not a valid integer"),
    (["separate", "mix.wav", "-o", "out"], ["--no-such-option"], "No such option"),
    (["models", "download"], [], "Missing argument 'MODEL'"),
    # numbers the parser takes but the commands cannot use
    (["separate", "mix.wav", "-o", "out"], ["--start", "nan"], "--start must be a finite"),
    (["separate", "mix.wav", "-o", "out"], ["--start", "inf"], "--start must be a finite"),
    (["separate", "mix.wav", "-o", "out"], ["--duration", "inf"], "--duration must be a finite"),
    (["separate", "mix.wav", "-o", "out"], ["--segment", "nan"], "--segment must be a finite"),
    (["separate", "mix.wav", "-o", "out"], ["--chains", "0"], "--chains must be at least 1"),
    (["separate", "mix.wav", "-o", "out"], ["--seed", "-1"], "--seed must be 0 to 2147483647"),
    (["train", "--out", "m", "--steps", "1", *TINY], ["--width", "0"],
     "--width: must be a whole number of at least 1"),
    (["train", "--out", "m", "--steps", "1", *TINY], ["--cond-channels", "-1"],
     "--cond-channels: must be a whole number of at least 0"),
    (["evaluate", "--dataset", "toy", "-o", "report"], ["--mix-seconds", "nan"],
     "--mix-seconds, --sample-seconds) must be finite"),
    (["evaluate", "--dataset", "toy", "-o", "report"], ["--sample-seconds", "inf"],
     "must be finite numbers of seconds above 0"),
    (["evaluate", "--dataset", "toy", "-o", "report"], ["--seed", "-1"], "not in the range"),
    (["evaluate", "--dataset", "toy", "-o", "report"], ["--sigmas", "0.1,nan"],
     "must be one or more finite noise levels above 0"),
    (["evaluate", "--dataset", "toy", "-o", "report"], ["--sigmas", "abc"],
     "--sigmas abc: expected comma-separated noise levels"),
    (["render", "piece.mid", "-o", "out"], ["--tail", "inf"], "must be 0 to 60 seconds"),
    (["cross-likelihood", "toy-flow"], ["--n-examples", "0"], "--n-examples 0: must be"),
    (["cross-likelihood", "toy-flow"], ["--length", "-1"], "--length -1: must be at least"),
    (["cross-likelihood", "toy-flow"], ["--sigma", "nan"], "--sigma nan: must be a finite"),
    (["models", "download", "owner/name"], ["--timeout", "nan"],
     "--timeout nan: must be a number of seconds above 0"),
    (["models", "download", "owner/name"], ["--timeout", "-1"], "must be a number of seconds"),
])
def test_numbers_a_command_cannot_use_are_one_line_usage_errors(tmp_path, monkeypatch, command,
                                                                args, message):
    """Found by trying NaN, infinities, negatives and zero in every numeric option."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "piece.mid").write_bytes(b"MThd")  # never read: the options come first
    one_line_usage_error(runner.invoke(app, [*command, *args]), message)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["piece.mid"]  # nothing written


def test_a_diverging_run_stops_without_saving_a_broken_model(tmp_path):
    """A learning rate that blows the weights up ends with exit 12 and no model file."""
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--steps", "6",
                                 "--checkpoint-every", "1", "--lr", "1e30", *TINY])
    assert result.exit_code == 12, result.output
    assert "lower the learning rate" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m" / "model.safetensors").exists()
    checkpoint = tmp_path / "m" / "checkpoint.pt"
    if checkpoint.exists():  # what was saved is finite
        state = torch.load(checkpoint, weights_only=True)["model"]
        assert all(torch.isfinite(value).all() for value in state.values())


def test_version_list_models_and_help(tmp_path):
    from priorsep import __version__

    for flag in ("--version", "-V"):
        result = runner.invoke(app, [flag])
        assert result.exit_code == 0 and result.stdout.strip() == f"priorsep {__version__}"
    listed = runner.invoke(app, ["--list-models"])
    assert listed.exit_code == 0 and "toy-score" in listed.stdout and "encoder" in listed.stdout
    help_text = runner.invoke(app, ["separate", "--help"], env={"COLUMNS": "120"}).stdout
    assert "<bool>" not in help_text and "--two-stems" in help_text and "-d" in help_text


def test_stdout_refuses_a_terminal(monkeypatch, tmp_path):
    import types

    from priorsep.cli import separating

    fake_stdout = types.SimpleNamespace(isatty=lambda: True)
    monkeypatch.setattr(separating, "sys", types.SimpleNamespace(stdout=fake_stdout))
    result = runner.invoke(app, ["separate", "x.wav", "--stdout", "sine"])
    assert result.exit_code == 2 and "redirect it" in result.output


def test_installed_executable_trains_and_reports_errors(tmp_path):
    env = dict(os.environ, COLUMNS="200")
    done = subprocess.run([*executable(), "train", "--out", str(tmp_path / "m"), "--steps", "2",
                           "--quiet", *TINY], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # nothing but requested data on stdout
    assert (tmp_path / "m" / "README.md").is_file()
    bad = subprocess.run([*executable(), "cross-likelihood", str(tmp_path / "missing")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 5
    assert bad.stderr.strip().count("\n") == 0 and "no such folder" in bad.stderr
    assert "Traceback" not in bad.stderr
    module = subprocess.run([sys.executable, "-m", "priorsep", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert module.returncode == 0 and "train" in module.stdout


def test_finetune_noise_continuous_and_per_level(tmp_path):
    clean = str(tmp_path / "clean")
    assert runner.invoke(app, ["train", "--out", clean, "--steps", "2", *TINY]).exit_code == 0
    finetune_tiny = ["--batch-size", "2", "--crop-length", "256", "--steps", "2"]
    result = runner.invoke(app, ["finetune-noise", clean, "--out", str(tmp_path / "cond"),
                                 "--sigma-min", "0.02", "--sigma-max", "0.5", *finetune_tiny])
    assert result.exit_code == 0, result.output
    model = json.loads((tmp_path / "cond" / "config.json").read_text())["model"]
    assert (model["trained_sigma_min"], model["trained_sigma_max"]) == (0.02, 0.5)
    result = runner.invoke(app, ["finetune-noise", clean, "--out", str(tmp_path / "levels"),
                                 "--sigmas", "0.1,0.3", *finetune_tiny])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "levels").iterdir()) == [
        "levels.json", "sigma-0.1", "sigma-0.3"]
    for level in (0.1, 0.3):
        folder = tmp_path / "levels" / f"sigma-{level:g}"
        model = json.loads((folder / "config.json").read_text())["model"]
        assert model["trained_sigma_min"] == model["trained_sigma_max"] == level
        assert not (folder / "checkpoint.pt").exists()
    # levels are serial: 0.3 starts from 0.1, so the two differ from each other and from clean
    from safetensors.torch import load_file
    weights = [load_file(tmp_path / "levels" / f"sigma-{v}" / "model.safetensors")
               for v in ("0.1", "0.3")]
    assert any(not (weights[0][k] == weights[1][k]).all() for k in weights[0])
    # the level folder is a model id of its own: separate, export and separate the export
    mix = tmp_path / "mix.wav"
    soundfile.write(mix, np.random.default_rng(0).uniform(-0.3, 0.3, 800), 16000)
    for model in ("levels", "exported"):
        if model == "exported":
            result = runner.invoke(app, ["export", str(tmp_path / "levels"),
                                         str(tmp_path / "exported"), "--quiet"])
            assert result.exit_code == 0, result.output
            assert (tmp_path / "exported" / "levels.json").is_file()
        result = runner.invoke(app, ["separate", str(mix), "-o", str(tmp_path / f"out-{model}"),
                                     "--model", str(tmp_path / model), "--steps", "4", "-q"])
        assert result.exit_code == 0, result.output
        assert len(list((tmp_path / f"out-{model}" / "mix").iterdir())) == 4


def test_ctrl_c_while_starting_up_is_one_line():
    """SIGINT while the command line is still importing: exit 130, "interrupted", no
    traceback. The child starts with SIGINT at its default (a background parent may ignore
    it) and is interrupted while it imports Typer (seen through -X importtime), inside the
    console script's guard."""
    import signal

    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "priorsep", "separate", "x.wav", "-o",
         "out"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines, started = [], False
    for raw in process.stderr:  # one line per import done: interrupt amid the CLI's imports
        lines.append(raw.decode())
        started = started or "priorsep.console" in lines[-1]
        if started and "typer" in lines[-1]:
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    stderr = "".join(lines) + rest.decode()
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "interrupted" in stderr
