"""`priorsep evaluate`: report structure, the known orderings on a trained tiny model,
determinism, the MUSDB18 and folder readers, per-level checkpoints, the CLI, no matplotlib."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np
import pytest
import soundfile
import torch
import typer
from typer.testing import CliRunner

from priorsep.api import Separator
from priorsep.audio import resample
from priorsep.cli import app
from priorsep.config import ModelConfig, TrainConfig
from priorsep.data.held_out import HeldOutData
from priorsep.data.musdb import SILENCE_RMS, STEMS, MusdbWav
from priorsep.data.toy import ToySources
from priorsep.errors import DatasetError, UsageError
from priorsep.evaluate import (
    SECTIONS,
    EvaluationConfig,
    json_ready,
    run_evaluation,
    write_report,
)
from priorsep.evaluation.levels import load_priors_under_test
from priorsep.evaluation.likelihood import table_summary
from priorsep.evaluation.separation import oracle_estimates
from priorsep.nn.prior import SourcePriors, receptive_field
from priorsep.storage import save_model
from priorsep.training import finetune_levels, train
from tests.conftest import TINY_FLOW

# Wide enough a receptive field (364 samples) to tell the four waveforms apart after 80 steps;
# with this seed every source's own prior wins its row by >= 0.2 nats/sample.
ORDERING_FLOW = dataclasses.replace(TINY_FLOW, n_layers=4)
ORDERING_TRAINING = TrainConfig(steps=80, batch_size=4, crop_length=512, lr=1e-2,
                                checkpoint_every=1000, seed=0)
SMALL = EvaluationConfig(n_examples=4, length=512, sigmas=(0.05, 0.2), noise_examples=2,
                         separation_mixes=2, separation_seconds=0.032, separation_steps=4,
                         sample_seconds=0.064)
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A clean tiny model trained for the orderings, a sigma-conditional copy of it (two steps
    of noise), and per-level checkpoints (one step per level)."""
    torch.set_num_threads(1)  # module fixtures are set up before each test's `_one_thread`
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    clean = train(ModelConfig(architecture=ORDERING_FLOW), ORDERING_TRAINING, ToySources(),
                  root / "clean")
    noisy_steps = dataclasses.replace(ORDERING_TRAINING, steps=2, draw_sigma_min=0.05,
                                      draw_sigma_max=0.5)
    train(clean.config, noisy_steps, ToySources(), root / "conditional",
          init_state=clean.state_dict())
    finetune_levels(clean, [0.05, 0.2], dataclasses.replace(noisy_steps, steps=1), ToySources(),
                    root / "levels")
    return {"clean": str(root / "clean"), "conditional": str(root / "conditional"),
            "levels": str(root / "levels")}


@pytest.fixture(scope="module")
def full_evaluation(models):
    torch.set_num_threads(1)
    return run_evaluation(SMALL, models["conditional"])


# the report


def test_report_has_every_section_with_the_right_shapes(full_evaluation, models):
    report = full_evaluation.report
    assert list(report["sections"]) == list(SECTIONS)
    assert report["model"]["kind"] == "sigma-conditional"
    assert report["model"]["levels"] == [0.05, 0.2]
    sources = report["model"]["sources"]
    n = len(sources)
    config = load_priors_under_test(models["conditional"], "cpu").priors.config
    field = report["receptive_field"]
    assert field["samples"] == receptive_field(config) == 363
    assert field["ms"] == pytest.approx(363 / 16000 * 1000)

    sections = report["sections"]
    cross = sections["cross"]
    assert len(cross["table"]) == n and all(len(row) == n for row in cross["table"])
    noise = sections["noise"]
    assert noise["data_sigmas"] == [0.0, 0.05, 0.2] and noise["prior_sigmas"] == [0.05, 0.2]
    assert all(np.shape(table) == (3, 2) for table in noise["by_source"].values())
    assert [table["sigma"] for table in noise["cross_likelihood"]] == [0.05, 0.2]
    constant = sections["constant"]
    multiple = config.length_multiple
    assert constant["length"] == math.ceil(364 / multiple) * multiple
    assert [c["sigma"] for c in constant["conditions"]] == [0.0, 0.05, 0.2]
    assert constant["inputs"] == ["constant 0", "constant 1", "N(0, 0.5²)"]
    assert all(np.shape(rows) == (3, n) for rows in constant["log_likelihood"].values())
    gaussian = sections["gaussian"]
    assert all(len(curve) == len(gaussian["noise_sigmas"])
               for curve in gaussian["log_likelihood"].values())
    separation = sections["separation"]
    for metric in ("si_sdr", "sdr"):
        assert set(separation[metric]) == {"separated", "mix", "oracle"}
        assert set(separation[metric]["separated"]) == {*sources, "all"}
        assert np.shape(separation["per_mix"][metric]["separated"]) == (2, n)
    assert separation["settings"]["method"] == "langevin"
    langevin = separation["settings"]["sampler"]
    assert langevin["n_levels"] * langevin["steps_per_level"] <= 4
    denoising = sections["denoising"]
    assert np.shape(denoising["gain_db"]) == (len(denoising["sigmas"]), n)
    assert all(np.shape(table) == (n, n) for table in denoising["cross_denoising"].values())
    assert separation["sisec"] is None  # toy: no SiSEC figure
    # the oracle loses nothing in the overlap-add; the mix is a poor but finite anchor
    assert separation["si_sdr"]["oracle"]["all"]["median"] > 60
    samples = sections["samples"]
    assert samples["temperatures"] == [0.5, 0.8, 1.0]
    assert len(samples["files"]) == 3 * n
    assert set(samples["stats"]) == {"0.5", "0.8", "1"}
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN or infinity


def test_write_report_writes_json_markdown_plots_and_samples(full_evaluation, tmp_path):
    written = write_report(full_evaluation, tmp_path)
    names = {path.relative_to(tmp_path).as_posix() for path in written}
    assert {"report.json", "report.md", "timings.json", "cross_likelihood.png",
            "cross_likelihood_by_sigma.png", "noise_conditioning.png", "gaussian_noise.png",
            "separation.png", "samples.png", "samples/sine-t0.8.wav"} <= names
    assert all(path.is_file() for path in written)
    assert json.loads((tmp_path / "report.json").read_text()) == full_evaluation.report
    markdown = (tmp_path / "report.md").read_text()
    for title in ("## Cross-likelihood", "## Noise conditioning", "## Constant and random inputs",
                  "## Gaussian noise", "## Separation", "## Samples from the priors",
                  "![cross-likelihood](cross_likelihood.png)", "receptive field"):
        assert title in markdown
    audio, rate = soundfile.read(tmp_path / "samples" / "sine-t0.8.wav")
    assert rate == 16000 and audio.shape == (full_evaluation.report["sections"]["samples"]
                                             ["length"],)


def test_subset_of_sections_and_json_only(models, tmp_path):
    evaluation = run_evaluation(dataclasses.replace(SMALL, sections=("constant", "cross")),
                                models["clean"])
    assert list(evaluation.report["sections"]) == ["cross", "constant"]  # canonical order
    written = write_report(evaluation, tmp_path, json_only=True)
    assert [path.name for path in written] == ["report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_clean_model_skips_the_noise_section(models):
    evaluation = run_evaluation(dataclasses.replace(SMALL, sections=("noise", "constant")),
                                models["clean"])
    sections = evaluation.report["sections"]
    assert evaluation.report["model"]["kind"] == "clean"
    assert "no noise levels" in sections["noise"]["skipped"]
    assert [c["sigma"] for c in sections["constant"]["conditions"]] == [0.0]


# the known orderings


@pytest.fixture(scope="module")
def clean_likelihoods(models) -> dict:
    torch.set_num_threads(1)
    config = dataclasses.replace(SMALL, n_examples=8, sections=("cross", "gaussian"))
    return run_evaluation(config, models["clean"]).report["sections"]


def test_own_prior_beats_every_other_prior_on_its_data(clean_likelihoods):
    cross = clean_likelihoods["cross"]
    table = torch.tensor(cross["table"])
    assert cross["own_prior_best"] == [True] * 4, table
    for i in range(4):
        others = torch.cat([table[i, :i], table[i, i + 1:]])
        assert table[i, i] > others.max() + 0.05, table


def test_pure_noise_is_less_likely_than_data_under_the_clean_prior(clean_likelihoods):
    gaussian = clean_likelihoods["gaussian"]
    for source, curve in gaussian["log_likelihood"].items():
        data = gaussian["data_log_likelihood"][source]
        at_data_scale = [value for sigma, value in zip(gaussian["noise_sigmas"], curve)
                         if sigma >= 0.3]
        assert len(at_data_scale) == 3
        assert all(value < data - 0.1 for value in at_data_scale), (source, data, curve)


def test_table_summary():
    table = torch.tensor([[1.0, -2.0, -3.0], [-1.0, 0.5, 0.0], [2.0, -5.0, -1.0]])
    summary = table_summary(table)
    assert summary["own_prior_best"] == [True, True, False]
    assert summary["own_data_best"] == [False, True, False]
    assert summary["diagonal_margin"] == pytest.approx(-1.0 - 2.0)


# determinism


def test_same_seed_same_report_byte_for_byte(models, full_evaluation, tmp_path):
    again = run_evaluation(SMALL, models["conditional"])
    write_report(full_evaluation, tmp_path / "a", json_only=True)
    write_report(again, tmp_path / "b", json_only=True)
    assert (tmp_path / "a" / "report.json").read_bytes() == (
        tmp_path / "b" / "report.json").read_bytes()
    other = run_evaluation(dataclasses.replace(SMALL, seed=1, sections=("separation",)),
                           models["conditional"]).report["sections"]["separation"]
    assert other["per_mix"] != full_evaluation.report["sections"]["separation"]["per_mix"]


def test_json_ready_rounds_and_drops_non_finite():
    assert json_ready({"a": (1.23456789, math.inf), "b": [math.nan, True, 3]}) == {
        "a": [1.23457, None], "b": [None, True, 3]}


# per-level checkpoints


def test_per_level_checkpoints_use_each_levels_model(models):
    under_test = load_priors_under_test(models["levels"], "cpu")
    assert under_test.kind == "per-level"
    assert [level.sigma for level in under_test.levels] == [0.05, 0.2]
    assert under_test.base_sigma == 0.05 and any("lowest level" in n for n in under_test.notes)
    switching = under_test.separation_priors()
    assert [switching.nearest(s) for s in (0.0, 0.01, 0.09, 0.11, 1.0)] == [0, 0, 0, 1, 1]
    x = torch.randn(2, 4, 64)
    torch.testing.assert_close(switching.log_prob(x, 0.3),
                               under_test.levels[1].priors.log_prob(x, 0.2))
    report = run_evaluation(dataclasses.replace(SMALL, sections=("noise", "separation")),
                            models["levels"]).report
    assert report["sections"]["noise"]["prior_sigmas"] == [0.05, 0.2]
    assert report["model"]["kind"] == "per-level"


# separation anchors


def test_oracle_goes_through_the_overlap_add_unchanged(models):
    priors = load_priors_under_test(models["clean"], "cpu").priors
    separator = Separator(priors, segment_length=64, overlap=16)
    sources = torch.randn(2, 4, 300)
    torch.testing.assert_close(oracle_estimates(sources, separator), sources)


# datasets


def _write_track(folder, stems: dict[str, np.ndarray], rate: int = 44100) -> None:
    folder.mkdir(parents=True)
    for stem, audio in stems.items():
        soundfile.write(folder / f"{stem}.wav", audio, rate, subtype="FLOAT")
    soundfile.write(folder / "mixture.wav", sum(stems.values()), rate, subtype="FLOAT")


def make_musdb_tree(root, seconds: float = 0.5, rate: int = 44100) -> None:
    """Two test tracks and one train track: every stem a gain times one shared stereo signal,
    so aligned crops of one track are multiples of each other; in track "b" the vocals are
    silent for the first quarter second."""
    rng = np.random.default_rng(0)
    time = np.arange(int(seconds * rate)) / rate
    gains = {"drums": 1.0, "bass": 0.5, "other": 0.25, "vocals": -0.8}
    for split, track, frequency in (("test", "a", 220.0), ("test", "b", 330.0),
                                    ("train", "c", 110.0)):
        left = 0.5 * np.sin(2 * np.pi * frequency * time) + 0.05 * rng.standard_normal(len(time))
        signal = np.stack([left, 0.5 * left], axis=1).astype(np.float32)  # (T, 2)
        stems = {stem: gain * signal for stem, gain in gains.items()}
        if track == "b":
            stems["vocals"][: int(0.25 * rate)] = 0.0
        _write_track(root / split / track, stems, rate)


def test_musdb_reader_downmixes_resamples_and_aligns(tmp_path):
    make_musdb_tree(tmp_path)
    data = MusdbWav(tmp_path, "test", sample_rate=16000)
    assert len(data) == 2 and data.track_names == ["a", "b"]
    whole = data.read(0)
    assert whole.shape == (4, 8000) and whole.dtype == torch.float32
    # mono is the mean of the channels, then resampled: compare with doing it by hand
    stereo, _ = soundfile.read(tmp_path / "test" / "a" / "drums.wav", dtype="float32")

    expected = resample(torch.from_numpy(stereo.mean(axis=1)), 44100, 16000)
    torch.testing.assert_close(whole[0], expected[:8000])
    # a crop from the middle matches the same span of the whole track (margins hide the edges)
    crop = data.read(0, start=0.1, length=1600)
    torch.testing.assert_close(crop, whole[:, 1600:3200], atol=2e-3, rtol=0)
    mixture = data.read(0, stems=("mixture",))
    torch.testing.assert_close(mixture[0], whole.sum(dim=0), atol=1e-4, rtol=0)

    crops = data.crops(4, 800, torch.Generator().manual_seed(0))
    assert crops.shape == (4, 4, 800)
    gains = torch.tensor([1.0, 0.5, 0.25, -0.8])[:, None]
    for example in crops:  # aligned: every stem is its gain times the same signal
        torch.testing.assert_close(example / gains, (example[0:1] / gains[0]).expand(4, -1),
                                   atol=1e-4, rtol=1e-3)
    # track "b" (odd crops) has silent vocals for 0.25 s: the crops avoid them
    assert all(float(crops[i, 3].pow(2).mean().sqrt()) >= SILENCE_RMS for i in (1, 3))


def test_musdb_reader_rejects_a_broken_tree(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        MusdbWav(tmp_path, "test")
    make_musdb_tree(tmp_path)
    (tmp_path / "test" / "a" / "bass.wav").unlink()
    with pytest.raises(DatasetError, match="missing bass.wav"):
        MusdbWav(tmp_path, "test")
    with pytest.raises(UsageError, match="not in the musdb dataset"):
        HeldOutData("musdb", tmp_path, ("sine",), 16000)
    with pytest.raises(UsageError, match="root is needed by the folder dataset"):
        HeldOutData("folder", None, ("sine",), 16000)


def test_musdb_evaluation_with_a_stems_model(tmp_path):
    make_musdb_tree(tmp_path / "musdb")
    torch.manual_seed(0)
    priors = SourcePriors(ModelConfig(sources=STEMS, architecture=TINY_FLOW, mixing="sum")).eval()
    save_model(priors, tmp_path / "model")
    notices: list[str] = []
    config = dataclasses.replace(SMALL, dataset="musdb", root=str(tmp_path / "musdb"),
                                 sections=("cross", "separation"))
    report = run_evaluation(config, str(tmp_path / "model"), notify=notices.append).report
    assert report["dataset"]["name"] == "musdb"
    assert np.shape(report["sections"]["cross"]["table"]) == (4, 4)
    separation = report["sections"]["separation"]
    assert separation["settings"]["mixing"] == "sum"
    # SiSEC SDR when museval imports, else a note saying why (and a notice)
    assert (separation["sisec"] is None) == (separation["sisec_note"] is not None)
    if separation["sisec"] is None:
        assert any("museval" in notice for notice in notices)
    else:
        assert set(separation["sisec"]["median_sdr"]) == set(STEMS)


def test_folder_evaluation(models, tmp_path):
    rng = np.random.default_rng(1)
    for source in ("sine", "sawtooth", "square", "triangle"):
        (tmp_path / source).mkdir()
        soundfile.write(tmp_path / source / "take.wav", rng.uniform(-0.5, 0.5, 4000), 8000)
    config = dataclasses.replace(SMALL, dataset="folder", root=str(tmp_path),
                                 sections=("cross", "separation"))
    report = run_evaluation(config, models["clean"]).report
    assert report["dataset"]["root"] == str(tmp_path)
    assert np.shape(report["sections"]["cross"]["table"]) == (4, 4)


# the command line


def test_cli_json_only_prints_the_report(models, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, [
        "evaluate", "--model", models["conditional"], "--out", str(out), "--sections",
        "cross,noise", "--n-examples", "2", "--length", "256", "--sigmas", "0.05,0.2",
        "--device", "cpu", "--json-only"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads((out / "report.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert "cross-likelihood" in result.stderr  # the Rich tables go to stderr


def test_cli_writes_the_report_folder(models, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, [
        "evaluate", "-m", models["clean"], "-o", str(out), "--sections", "samples,gaussian",
        "--n-examples", "2", "--length", "256", "--sample-seconds", "0.05", "--no-audio",
        "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # nothing on stdout unless asked
    assert (out / "report.md").is_file() and (out / "samples.png").is_file()
    assert not (out / "samples").exists()  # --no-audio


def test_cli_compares_models_side_by_side(models, tmp_path):
    """A flow and a WaveNet: a report per model in its own folder, and one report.md with a
    cross-likelihood table per model, the noise-conditioning figure with a row per model and a
    constant-input table with a column per model, each naming its model."""
    from priorsep.config import WaveNetConfig
    from priorsep.nn.registry import build_priors

    torch.manual_seed(0)
    wavenet = build_priors(ModelConfig(
        architecture=WaveNetConfig(n_blocks=1, n_layers=3, residual_channels=8,
                                   skip_channels=8, classes=32, embedding_channels=4),
        trained_sigma_min=0.01, trained_sigma_max=1.0))
    save_model(wavenet, tmp_path / "wavenet")
    out = tmp_path / "compared"
    result = runner.invoke(app, [
        "evaluate", "-m", models["conditional"], "-m", str(tmp_path / "wavenet"), "-o",
        str(out), "--sections", "cross,noise,constant", "--n-examples", "2", "--length", "256",
        "--sigmas", "0.05,0.2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    comparison = json.loads((out / "comparison.json").read_text())
    assert [(m["label"], m["family"]) for m in comparison["models"]] == [
        ("conditional", "flowavenet"), ("wavenet", "wavenet")]
    for label in ("conditional", "wavenet"):
        report = json.loads((out / label / "report.json").read_text())
        assert comparison["sections"]["cross"][label] == report["sections"]["cross"]
        assert (out / label / "report.md").is_file()
    markdown = (out / "report.md").read_text()
    assert "`conditional` (flowavenet, sigma-conditional), prior sigma = 0:" in markdown
    assert "`wavenet` (wavenet, sigma-conditional), prior sigma = 0:" in markdown
    assert "| input | prior | source | `conditional` | `wavenet` |" in markdown
    assert (out / "cross_likelihood_by_model.png").is_file()
    assert (out / "noise_conditioning_by_model.png").is_file()


@pytest.mark.parametrize("args, code, message", [
    (["--sections", "cross,bogus"], 2, "unknown section"),
    (["--dataset", "musdb"], 2, "--root: is needed by the musdb dataset"),
    (["--dataset", "folder", "--root", "/nonexistent"], 4, "no such folder"),
    (["--dataset", "musdb", "--root", "/nonexistent/musdb"], 4, "/nonexistent/musdb: no such"),
    (["--steps", "-3"], 2, "--steps"),
])
def test_cli_errors_are_one_line(models, tmp_path, args, code, message):
    result = runner.invoke(app, ["evaluate", "-m", models["clean"], "-o", str(tmp_path / "r"),
                                 "--device", "cpu", *args])
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_defaults_match_the_configuration():
    command = typer.main.get_command(app).commands["evaluate"]
    defaults = {param.name: param.default for param in command.params}
    config = EvaluationConfig()
    assert defaults["n_examples"] == config.n_examples
    assert defaults["length"] == config.length
    assert tuple(map(float, defaults["sigmas"].split(","))) == config.sigmas
    assert defaults["mixes"] == config.separation_mixes
    assert defaults["mix_seconds"] == config.separation_seconds
    assert defaults["steps"] == config.separation_steps
    assert defaults["sample_seconds"] == config.sample_seconds
    assert defaults["seed"] == config.seed
    assert defaults["dataset"] == config.dataset


# without matplotlib


def test_without_matplotlib_tables_only_and_one_notice(full_evaluation, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    notices: list[str] = []
    written = write_report(full_evaluation, tmp_path, notify=notices.append)
    assert not [path for path in written if path.suffix == ".png"]
    assert not list(tmp_path.glob("*.png"))
    assert len(notices) == 1 and "matplotlib" in notices[0]
    markdown = (tmp_path / "report.md").read_text()
    assert "## Cross-likelihood" in markdown and ".png" not in markdown


def test_configuration_is_checked():
    with pytest.raises(ValueError, match="unknown section"):
        EvaluationConfig(sections=("cross", "nope"))
    with pytest.raises(ValueError, match="unknown dataset"):
        EvaluationConfig(dataset="nope")
    with pytest.raises(ValueError, match="sigmas"):
        EvaluationConfig(sigmas=(0.1, -1.0))
