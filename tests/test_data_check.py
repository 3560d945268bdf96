"""The one pass over a dataset before it is used (`priorsep.data.check`), and how the training
commands show it and refuse bad data, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from priorsep.cli import app
from priorsep.data import check
from priorsep.data.check import check_file, check_folders, check_mixes
from priorsep.data.held_out import HeldOutData
from priorsep.errors import DatasetError, UnusableAudioError

TINY = ["--prior", "flowavenet", "--n-blocks", "2", "--early-squeezes", "0", "--n-flows", "2",
        "--n-layers", "2",
        "--width", "8", "--cond-channels", "4", "--batch-size", "2", "--crop-length", "256",
        "--steps", "1"]
runner = CliRunner()
RATE = 16000


def noise(seconds: float = 0.5, rate: int = RATE, channels: int = 1, seed: int = 0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (int(seconds * rate), channels))


def write(path: Path, audio: np.ndarray, rate: int = RATE, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate, subtype=subtype)
    return path


def with_nan(count: int = 10) -> np.ndarray:
    audio = noise(1.0).astype(np.float32)
    audio[100:100 + count] = np.nan
    return audio


def messy_root(root: Path) -> Path:
    """Source a: one good file and one of each unusable kind; source b: good files at odd rates
    and channel counts, a stray text file and a subfolder."""
    write(root / "a" / "good.wav", noise(0.5))
    write(root / "a" / "nan.wav", with_nan(), subtype="FLOAT")
    write(root / "a" / "silent.wav", np.zeros((RATE, 1)))
    write(root / "a" / "short.wav", noise(0.005))
    (root / "a" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    write(root / "b" / "stereo.wav", noise(0.5, 22050, 2, seed=1), 22050)
    write(root / "b" / "low.flac", noise(0.5, 8000, seed=2), 8000)
    (root / "b" / "notes.txt").write_text("recorded on tuesday")
    (root / "b" / "takes").mkdir()
    (root / ".hidden").mkdir()
    return root


# the check itself

def test_the_summary_counts_files_durations_rates_and_channels(tmp_path):
    summary = check_folders(messy_root(tmp_path), RATE, crop_length=256)
    assert summary.names == ("a", "b")
    a, b = summary.sources
    assert a.files == 1 and a.seconds == pytest.approx(0.5) and a.sample_rates == (RATE,)
    assert b.files == 2 and b.seconds == pytest.approx(1.0)
    assert b.sample_rates == (8000, 22050) and b.channels == (1, 2)
    assert b.ignored == ("notes.txt", "takes/") and not b.skipped
    reasons = {problem.path.name: problem.reason for problem in a.skipped}
    assert reasons == {"nan.wav": "non-finite", "silent.wav": "silent",
                       "short.wav": "too short", "broken.wav": "unreadable"}
    assert a.skipped_counts() == {"unreadable": 1, "non-finite": 1, "silent": 1, "too short": 1}
    report = summary.as_dict()
    json.dumps(report, allow_nan=False)
    assert report["sources"][1]["sample_rates"] == [8000, 22050]
    assert "skipped 4" in summary.card_lines()["data (a)"]


@pytest.mark.parametrize("audio, subtype, reason", [
    (with_nan(), "FLOAT", "non-finite"),
    (np.full((RATE, 1), np.inf, dtype=np.float32), "FLOAT", "non-finite"),
    (np.full((RATE, 1), 1e-6), "FLOAT", "silent"),
    (np.zeros((0, 1)), None, "too short"),
])
def test_each_kind_of_unusable_file_is_named(tmp_path, audio, subtype, reason):
    problem = check_file(write(tmp_path / "x.wav", audio, subtype=subtype), 0.01)
    assert isinstance(problem, check.FileProblem) and problem.reason == reason
    assert str(problem).startswith(str(tmp_path / "x.wav"))


def test_samples_stream_in_blocks_and_a_late_nan_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "BLOCK_FRAMES", 1000)
    audio = noise(1.0).astype(np.float32)
    audio[-3] = np.nan  # in the last of 16 blocks
    assert check_file(write(tmp_path / "late.wav", audio, subtype="FLOAT")).detail.startswith(
        "1 sample(s) are not finite")
    clipped = noise(1.0)
    clipped[RATE - 5] = 1.0
    checked = check_file(write(tmp_path / "loud.wav", clipped, subtype="FLOAT"))
    assert checked.entry[1:] == (RATE, RATE) and checked.channels == 1 and checked.full_scale


def test_require_refuses_what_cannot_be_used(tmp_path):
    summary = check_folders(messy_root(tmp_path), RATE, crop_length=256)
    summary.require(min_sources=2)  # the unusable files are left out
    with pytest.raises(UnusableAudioError, match="4 unusable file"):
        summary.require(strict=True)
    with pytest.raises(DatasetError, match="at least 3"):
        summary.require(min_sources=3)
    (tmp_path / "c").mkdir()
    with pytest.raises(DatasetError, match="source 'c' \\(an empty folder\\)"):
        check_folders(tmp_path, RATE).require()
    (tmp_path / "d" / "takes").mkdir(parents=True)
    (tmp_path / "d" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no audio files directly inside; it holds notes.txt, "
                                           "takes/"):
        check_folders(tmp_path, RATE, sources=("d",)).require()


def test_a_missing_source_folder_names_the_nearest(tmp_path):
    write(tmp_path / "Vocals" / "1.wav", noise())
    write(tmp_path / "drums" / "1.wav", noise())
    with pytest.raises(DatasetError, match="did you mean 'Vocals'"):
        check_folders(tmp_path, RATE, sources=("vocals", "drums"))
    with pytest.raises(DatasetError, match="it has Vocals, drums"):
        check_folders(tmp_path, RATE, sources=("bass",))


def test_mixes_are_found_at_any_depth(tmp_path):
    write(tmp_path / "album" / "1.wav", noise())
    write(tmp_path / "2.flac", noise(seed=3))
    write(tmp_path / ".trash" / "3.wav", noise())
    write(tmp_path / "silent.wav", np.zeros((RATE, 1)))
    summary = check_mixes(tmp_path, RATE, 256)
    (mixes,) = summary.sources
    assert mixes.files == 2 and [p.reason for p in mixes.skipped] == ["silent"]


def test_evaluation_data_reports_its_summary_and_skips_unusable_files(tmp_path):
    data = HeldOutData("folder", messy_root(tmp_path), ("a", "b"), RATE)
    described = data.describe()["summary"]
    assert [s["files"] for s in described["sources"]] == [2, 2]  # short.wav is kept: no crop
    assert len(described["sources"][0]["skipped"]) == 3
    excerpts = data.excerpts(3, 256, seed=0)
    assert excerpts.shape == (3, 2, 256) and excerpts.isfinite().all()
    toy = HeldOutData("toy", None, ("sine", "square"), RATE).describe()["summary"]
    assert [s["name"] for s in toy["sources"]] == ["sine", "square"]


# through the command line

def train(root: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "--dataset", "folder", "--root", str(root),
                               "--out", str(out), *TINY, *extra])


def test_an_empty_source_folder_stops_training_before_anything_is_written(tmp_path):
    write(tmp_path / "data" / "a" / "1.wav", noise(1.0))
    (tmp_path / "data" / "b").mkdir()
    result = train(tmp_path / "data", tmp_path / "m")
    assert result.exit_code == 4, result.output
    assert "no usable audio for source 'b' (an empty folder)" in result.output
    assert not (tmp_path / "m").exists()


def test_a_named_source_without_its_folder_stops_training(tmp_path):
    write(tmp_path / "data" / "a" / "1.wav", noise(1.0))
    result = train(tmp_path / "data", tmp_path / "m", "--sources", "a,b")
    assert result.exit_code == 4 and "no such folder for source 'b'" in result.output
    assert not (tmp_path / "m").exists()


def test_unusable_files_are_skipped_with_a_line_each_and_summarised(tmp_path):
    root = messy_root(tmp_path / "data")
    result = train(root, tmp_path / "m")
    assert result.exit_code == 0, result.output
    output = result.output.replace("\n", "")
    for name, why in (("nan.wav", "not finite"), ("silent.wav", "entirely silent"),
                      ("short.wav", "shorter than one training crop"),
                      ("broken.wav", "not a readable audio file")):
        assert f"skipped: {root / 'a' / name}: " in output and why in output
    assert "folder data in" in output and "rates (Hz)" in output
    assert "ignored 2 entry(ies)" in output
    card = json.loads((tmp_path / "m" / "config.json").read_text())["info"]["training"]
    assert card["data (a)"].startswith("1 file(s), 0.5 s, 16000 Hz, mono; skipped 4")
    assert card["data (b)"] == "2 file(s), 1.0 s, 8000 Hz, 22050 Hz, mono, stereo"
    assert "data (b)" in (tmp_path / "m" / "README.md").read_text()


def test_strict_refuses_unusable_files(tmp_path):
    write(tmp_path / "data" / "a" / "1.wav", with_nan(), subtype="FLOAT")
    write(tmp_path / "data" / "a" / "2.wav", noise(1.0))
    write(tmp_path / "data" / "b" / "1.wav", noise(1.0, seed=1))
    result = train(tmp_path / "data", tmp_path / "m", "--strict", "--quiet")
    assert result.exit_code == 13, result.output
    assert f"unusable: {tmp_path / 'data' / 'a' / '1.wav'}: 10 sample(s)" in (
        result.output.replace("\n", ""))
    assert "folder data" not in result.output  # --quiet: no table, the lines stay
    assert not (tmp_path / "m").exists()


def test_the_toy_dataset_is_summarised_too(tmp_path):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), *TINY])
    assert result.exit_code == 0, result.output
    assert "toy data" in result.output and "on the fly" in result.output


def test_finetune_noise_checks_the_folder_of_the_models_sources(tmp_path):
    for name in ("sine", "sawtooth", "square"):
        write(tmp_path / "data" / name / "1.wav", noise(1.0))
    args = ["finetune-noise", "toy", "--out", str(tmp_path / "m"), "--dataset", "folder",
            "--root", str(tmp_path / "data"), "--steps", "1", "--crop-length", "256"]
    result = runner.invoke(app, args)
    assert result.exit_code == 4 and "no such folder for source 'triangle'" in result.output
    write(tmp_path / "data" / "triangle" / "1.wav", with_nan(), subtype="FLOAT")
    result = runner.invoke(app, [*args, "--strict"])
    assert result.exit_code == 13 and "unusable:" in result.output
    assert not (tmp_path / "m").exists()


def test_train_posterior_checks_a_folder_of_mixes(tmp_path):
    (tmp_path / "mixes").mkdir()
    args = ["train-posterior", "toy", "--out", str(tmp_path / "m"), "--dataset", "mixes",
            "--root", str(tmp_path / "mixes"), "--steps", "1", "--crop-length", "256"]
    result = runner.invoke(app, args)
    assert result.exit_code == 4 and "no usable audio" in result.output
    write(tmp_path / "mixes" / "1.wav", with_nan(), subtype="FLOAT")
    write(tmp_path / "mixes" / "2.wav", noise(1.0))
    result = runner.invoke(app, [*args, "--strict"])
    assert result.exit_code == 13 and "unusable:" in result.output
    assert not (tmp_path / "m").exists()
