"""Model ids: bundled, local, Hub (against a real HTTP server on 127.0.0.1), lists and bags; the
`models` and `export` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile
import torch
import yaml
from huggingface_hub import constants
from typer.testing import CliRunner

from priorsep import hub as hub_module
from priorsep.cli import app
from priorsep.config import FlowConfig, ModelConfig
from priorsep.errors import (
    CacheError,
    HubUnreachableError,
    ModelFormatError,
    ModelIntegrityError,
    ModelNotCachedError,
    ModelNotFoundError,
    UsageError,
)
from priorsep.hub import load_priors, load_resolved, resolve_model
from priorsep.nn.prior import CombinedPriors, SourcePriors, SourceRef, combine_configs
from priorsep.storage import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, load_model, save_model
from tests.hub_server import FakeHub

TINY_FLOW = FlowConfig(early_squeezes=0, n_blocks=1, n_flows=1, n_layers=1, residual_channels=4,
                       skip_channels=4, cond_channels=2)
INFO = {
    "training": {"dataset": "toy (on the fly)", "steps": 3},
    "evaluation": {"validation log-likelihood (nats/sample)": {"a": 4.1, "b": 3.9}},
}


def tiny_model(folder: Path, sources: tuple[str, ...] = ("a", "b"), sample_rate: int = 16000,
               seed: int = 0, info: dict | None = None) -> Path:
    """Save a tiny model folder whose weights depend on `seed` (no coupling is the identity)."""
    priors = SourcePriors(ModelConfig(sources=sources, sample_rate=sample_rate,
                                      architecture=TINY_FLOW))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in priors.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return save_model(priors, folder, info)


def same_weights(left: torch.nn.Module, right: torch.nn.Module) -> bool:
    right_state = right.state_dict()
    return all(torch.equal(value, right_state[key]) for key, value in left.state_dict().items())


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fake Hub on 127.0.0.1 with HF_HOME, HF_ENDPOINT and `huggingface_hub`'s import-time
    paths pointed into tmp_path, and no bundled models unless a test saves one."""
    server = FakeHub().start()
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                 "HF_HUB_ETAG_TIMEOUT", "PRIORSEP_HUB_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    # read by huggingface_hub when it was imported: the URL template, its own files, offline mode
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        server.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / "agent_harnesses.json"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_module, "WEIGHTS_DIR", tmp_path / "weights")
    yield server
    server.stop()


def downloads(server: FakeHub) -> list[str]:
    return [path for method, path in server.requests if method == "GET"
            and "/resolve/" in path]


# Hub models


def test_first_download_fills_the_cache_and_loads(hub, tmp_path):
    folder = tiny_model(tmp_path / "model")
    commit = hub.publish_folder("owner/tiny", folder)
    resolved = resolve_model("owner/tiny")
    assert (resolved.kind, resolved.model_id, resolved.revision, resolved.commit) == (
        "hub", "owner/tiny@main", "main", commit)
    assert resolved.folder.is_relative_to(tmp_path / "hf" / "hub")
    assert {path.name for path in resolved.folder.iterdir()} == {CONFIG_NAME, WEIGHTS_NAME,
                                                                 CARD_NAME}
    assert len(downloads(hub)) == 3
    priors = load_resolved(resolved)
    assert isinstance(priors, SourcePriors) and same_weights(priors, load_model(folder))


def test_cached_model_needs_no_download_and_no_server_offline(hub, tmp_path, monkeypatch):
    hub.publish_folder("owner/tiny", tiny_model(tmp_path / "model"))
    first = resolve_model("owner/tiny")
    hub.requests.clear()
    assert resolve_model("owner/tiny").folder == first.folder
    assert downloads(hub) == []  # online, cached: the Hub is only asked for the commit
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notices: list[str] = []
    offline = resolve_model("owner/tiny", notify=notices.append)
    assert (offline.folder, offline.commit, notices) == (first.folder, first.commit, [])
    assert load_priors("owner/tiny").sources == ("a", "b")


def test_offline_with_nothing_cached_says_how_to_fetch(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotCachedError, match="priorsep models download owner/tiny@v2"):
        resolve_model("owner/tiny@v2")
    assert hub.requests == []


def test_revision_pinning_picks_the_right_files(hub, tmp_path, monkeypatch):
    old = hub.publish_folder("owner/tiny", tiny_model(tmp_path / "v1"), refs=("v1",))
    new = hub.publish_folder("owner/tiny", tiny_model(tmp_path / "v2", ("a", "b", "c"), seed=1))
    assert resolve_model("owner/tiny@v1").sources == ("a", "b")
    assert resolve_model("owner/tiny", revision="v1").commit == old
    assert resolve_model("owner/tiny").sources == ("a", "b", "c")
    pinned = resolve_model(f"owner/tiny@{old}")
    assert (pinned.commit, pinned.sources) == (old, ("a", "b"))
    assert same_weights(load_resolved(pinned), load_model(tmp_path / "v1"))
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("owner/tiny@v1").commit == old
    assert resolve_model("owner/tiny@main").commit == new


def test_unknown_repo_or_revision_is_not_found(hub, tmp_path):
    hub.publish_folder("owner/tiny", tiny_model(tmp_path / "model"))
    with pytest.raises(ModelNotFoundError, match="owner/missing@main: no such model repository"):
        resolve_model("owner/missing")
    with pytest.raises(ModelNotFoundError, match="owner/tiny has no revision 'nope'"):
        resolve_model("owner/tiny@nope")
    hub.publish("owner/other-library", {"weights.bin": b"\0"})
    with pytest.raises(ModelNotFoundError, match="no config.json, sources.json or levels.json"):
        resolve_model("owner/other-library")


def test_corrupted_download_fails_its_integrity_check_and_is_fetched_again(hub, tmp_path):
    folder = tiny_model(tmp_path / "model")
    hub.publish_folder("owner/tiny", folder)
    hub.corrupt.add(WEIGHTS_NAME)
    with pytest.raises(ModelIntegrityError, match="owner/tiny@main: model.safetensors failed"):
        resolve_model("owner/tiny")
    hub.corrupt.clear()
    assert same_weights(load_priors("owner/tiny"), load_model(folder))


def test_file_that_does_not_parse_is_named(hub, tmp_path):
    folder = tiny_model(tmp_path / "model")
    hub.publish_folder("owner/bad-weights", folder, extra={WEIGHTS_NAME: b"not safetensors"})
    with pytest.raises(ModelFormatError, match=r"owner/bad-weights@main: .*model\.safetensors"):
        load_priors("owner/bad-weights")
    hub.publish_folder("owner/bad-config", folder, extra={CONFIG_NAME: b"{"})
    with pytest.raises(ModelFormatError, match=r"owner/bad-config@main: .*config\.json"):
        resolve_model("owner/bad-config")


def test_hanging_hub_times_out_to_the_cache_with_a_notice(hub, tmp_path):
    hub.publish_folder("owner/tiny", tiny_model(tmp_path / "model"))
    cached = resolve_model("owner/tiny")
    hub.hang = True
    notices: list[str] = []
    started = time.perf_counter()
    resolved = resolve_model("owner/tiny", timeout=1, notify=notices.append)
    assert resolved.folder == cached.folder
    assert len(notices) == 1 and "no answer within 1 s" in notices[0]
    assert "cached copy of owner/tiny@main" in notices[0]
    with pytest.raises(HubUnreachableError, match="owner/never-fetched@main: could not reach"):
        resolve_model("owner/never-fetched", timeout=1)
    assert time.perf_counter() - started < 10


# faults: each ends in one line and a documented exit, and the next run recovers


def separate_with(hub_model: str, tmp_path: Path) -> list[str]:
    """The `separate` command line for a short mix and a Hub model."""
    mix = tmp_path / "mix.wav"
    if not mix.exists():
        soundfile.write(mix, 0.1 * torch.randn(800).numpy(), 16000)
    return ["separate", str(mix), "-o", str(tmp_path / "separated"), "--model", hub_model,
            "--steps", "1", "--quiet", "--overwrite"]


def one_error_line(result, error: type) -> str:
    assert result.exit_code == error.exit_code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_trickling_hub_ends_within_the_deadline_or_falls_back_to_the_cache(hub, tmp_path,
                                                                             monkeypatch):
    """A server that sends a byte now and then never trips the between-bytes timeout."""
    hub.publish_folder("owner/tiny", tiny_model(tmp_path / "model"))
    hub.publish_folder("owner/other", tiny_model(tmp_path / "other"))
    runner = CliRunner()
    assert runner.invoke(app, separate_with("owner/tiny", tmp_path)).exit_code == 0
    monkeypatch.setenv("PRIORSEP_HUB_DEADLINE", "1.5")
    hub.trickle, hub.trickle_seconds = True, 0.2
    started = time.perf_counter()
    result = runner.invoke(app, separate_with("owner/other", tmp_path))
    line = one_error_line(result, HubUnreachableError)
    assert "not done within 1.5 s, PRIORSEP_HUB_DEADLINE" in line
    result = runner.invoke(app, separate_with("owner/tiny", tmp_path))
    assert result.exit_code == 0, result.output
    assert "using the cached copy of owner/tiny@main" in result.stderr
    assert time.perf_counter() - started < 10


def test_stalled_download_ends_within_the_deadline_and_the_next_run_completes(hub, tmp_path,
                                                                               monkeypatch):
    folder = tiny_model(tmp_path / "model")
    hub.publish_folder("owner/tiny", folder)
    monkeypatch.setenv("PRIORSEP_HUB_DEADLINE", "1.5")
    hub.trickle_bodies, hub.trickle_seconds = True, 0.2
    runner = CliRunner()
    line = one_error_line(runner.invoke(app, separate_with("owner/tiny", tmp_path)),
                          HubUnreachableError)
    assert "downloading config.json failed (not done within 1.5 s" in line
    hub.trickle_bodies = False
    assert runner.invoke(app, separate_with("owner/tiny", tmp_path)).exit_code == 0
    assert same_weights(load_priors("owner/tiny", offline=True), load_model(folder))


def test_download_cut_halfway_is_retried_quietly_or_fails_in_one_line(hub, tmp_path):
    folder = tiny_model(tmp_path / "model")
    hub.publish_folder("owner/tiny", folder)
    runner = CliRunner()
    hub.cuts[WEIGHTS_NAME] = 1  # one cut, then the Hub serves it whole
    result = runner.invoke(app, separate_with("owner/tiny", tmp_path))
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert same_weights(load_priors("owner/tiny", offline=True), load_model(folder))
    hub.publish_folder("owner/again", folder)
    hub.cuts[WEIGHTS_NAME] = 1
    hub.status, hub.status_after = 503, hub._file_requests + 4  # the retry meets a failing Hub
    line = one_error_line(runner.invoke(app, separate_with("owner/again", tmp_path)),
                          HubUnreachableError)
    assert "owner/again@main: downloading model.safetensors failed" in line and "503" in line
    hub.status = None
    result = runner.invoke(app, separate_with("owner/again", tmp_path))
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert same_weights(load_priors("owner/again", offline=True), load_model(folder))


def test_a_file_where_the_cache_should_be_is_named(hub, tmp_path, monkeypatch):
    hub.publish_folder("owner/tiny", tiny_model(tmp_path / "model"))
    runner = CliRunner()
    home = Path(os.environ["HF_HOME"])
    home.write_text("not a folder")
    line = one_error_line(runner.invoke(app, separate_with("owner/tiny", tmp_path)), CacheError)
    assert f"{home} is a file, not a folder" in line
    home.unlink()
    home.mkdir()
    (home / "hub").write_text("not a folder")
    line = one_error_line(runner.invoke(app, ["models", "download", "owner/tiny"]), CacheError)
    assert f"{home / 'hub'} is a file, not a folder" in line
    (home / "hub").unlink()
    assert runner.invoke(app, separate_with("owner/tiny", tmp_path)).exit_code == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as a full disk")
def test_disk_full_during_a_download_is_one_line_and_leaves_nothing_used(hub, tmp_path):
    """A file-size limit makes every write past 2000 bytes fail as a full disk does."""
    folder = tiny_model(tmp_path / "model")
    assert (folder / WEIGHTS_NAME).stat().st_size > 2000
    hub.publish_folder("owner/tiny", folder)

    def limit() -> None:
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    command = [sys.executable, "-m", "priorsep", *separate_with("owner/tiny", tmp_path)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    full = subprocess.run(command, env=env, capture_output=True, text=True, preexec_fn=limit,
                          timeout=120)
    assert full.returncode == CacheError.exit_code, full.stderr
    assert full.stderr.count("\n") == 1 and "the disk is full" in full.stderr
    assert not (tmp_path / "separated").exists()
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert same_weights(load_priors("owner/tiny", offline=True), load_model(folder))


@pytest.mark.parametrize(("variable", "value"), [("PRIORSEP_HUB_DEADLINE", "soon"),
                                                 ("PRIORSEP_HUB_DEADLINE", "-1"),
                                                 ("HF_HUB_ETAG_TIMEOUT", "nan"),
                                                 ("HF_HUB_ETAG_TIMEOUT", "0")])
def test_bad_hub_settings_are_usage_errors(hub, tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    line = one_error_line(CliRunner().invoke(app, separate_with("owner/tiny", tmp_path)),
                          UsageError)
    assert f"{variable}={value}: must be a number of seconds above 0" in line


def test_token_from_hf_token_is_sent(hub, tmp_path, monkeypatch):
    hub.publish_folder("owner/private", tiny_model(tmp_path / "model"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    resolve_model("owner/private")
    assert "Bearer hf_secret" in hub.authorizations


# bundled names and local folders


def test_bundled_names_never_touch_the_network(hub, tmp_path):
    with pytest.raises(ModelNotFoundError, match="bundled model 'chorales' is not installed"):
        resolve_model("chorales")  # the default: always a bundled name
    tiny_model(tmp_path / "weights" / "chorales")
    resolved = resolve_model()
    assert (resolved.kind, resolved.sources) == ("bundled", ("a", "b"))
    assert hub.requests == []


def test_local_folders(hub, tmp_path):
    folder = tiny_model(tmp_path / "model")
    assert resolve_model(str(folder)).kind == "local"
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        resolve_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match="not a priorsep model folder"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(UsageError, match="Hub id"):
        resolve_model(str(folder), revision="v1")
    assert hub.requests == []


# combinations


def test_list_of_hub_ids_combines_per_source_priors(hub, tmp_path):
    drums = tiny_model(tmp_path / "drums", ("drums",), seed=1)
    bass = tiny_model(tmp_path / "bass", ("bass",), seed=2)
    hub.publish_folder("owner/drums-prior", drums, refs=("v1",))
    hub.publish_folder("owner/bass-prior", bass)
    priors = load_priors("owner/drums-prior@v1, owner/bass-prior")
    assert isinstance(priors, CombinedPriors) and priors.sources == ("drums", "bass")
    assert priors.config.sample_rate == 16000
    sources = torch.randn(3, 2, 16)
    with torch.no_grad():
        expected = torch.cat([load_model(drums).log_prob(sources[:, :1], 0.1),
                              load_model(bass).log_prob(sources[:, 1:], 0.1)], dim=1)
        assert torch.allclose(priors.log_prob(sources, 0.1), expected)
    assert priors.sample(2, 20).shape == (2, 2, 20)


def test_bag_file_picks_and_renames_sources(hub, tmp_path):
    band = tiny_model(tmp_path / "band", ("a", "b"), seed=3)
    hub.publish_folder("owner/drums-prior", tiny_model(tmp_path / "drums", ("drums",), seed=1))
    bag = tmp_path / "bag.json"
    bag.write_text(json.dumps({"sources": {"b": "./band", "kick": "owner/drums-prior"}}))
    resolved = resolve_model(str(bag))
    assert resolved.sources == ("b", "kick")
    assert resolved.source_folders["b"] == band.resolve()
    priors = load_resolved(resolved)
    sources = torch.randn(2, 2, 16)
    with torch.no_grad():
        padded = torch.stack([torch.zeros(2, 16), sources[:, 0]], dim=1)  # band's a, b
        expected = load_model(band).log_prob(padded)[:, 1]
        assert torch.allclose(priors.log_prob(sources)[:, 0], expected)
    bag.write_text(json.dumps({"sources": {"c": "./band"}}))
    with pytest.raises(UsageError, match="has no source 'c'"):
        resolve_model(str(bag))


def test_combinations_need_one_sample_rate_and_distinct_names(hub, tmp_path):
    first = tiny_model(tmp_path / "first", ("a",))
    slow = tiny_model(tmp_path / "slow", ("b",), sample_rate=8000)
    with pytest.raises(UsageError, match="different sample rates"):
        resolve_model(f"{first},{slow}")
    with pytest.raises(UsageError, match="more than once"):
        resolve_model(f"{first},{first}")


def test_hub_repo_with_one_subfolder_per_source(hub, tmp_path, monkeypatch):
    drums = tiny_model(tmp_path / "drums", ("drums",), seed=1)
    bass = tiny_model(tmp_path / "bass", ("bass",), seed=2)
    bag = json.dumps({"sources": {"drums": "./drums", "bass": "./bass"}}).encode()
    files = {f"{name}/{path.name}": path.read_bytes()
             for name, folder in (("drums", drums), ("bass", bass)) for path in folder.iterdir()}
    commit = hub.publish("owner/band", {**files, "sources.json": bag})
    resolved = resolve_model("owner/band")
    assert (resolved.kind, resolved.commit, resolved.sources) == ("composite", commit,
                                                                  ("drums", "bass"))
    assert resolved.source_folders["bass"].name == "bass"
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert same_weights(load_priors("owner/band").parts[1], load_model(bass))


def test_per_level_models_resolve_locally_and_from_the_hub(hub, tmp_path, monkeypatch):
    """A folder of sigma-<value>/ models (with levels.json, or without as older versions wrote
    it) loads as per-level priors: each call uses the level nearest to its noise level; the
    same folder published on the Hub resolves the same way, offline afterwards too."""
    from priorsep.nn.levels import NearestLevelPriors
    from priorsep.storage import write_levels

    levels = tmp_path / "levels"
    low = tiny_model(levels / "sigma-0.01", seed=1)
    high = tiny_model(levels / "sigma-0.3", seed=2)
    for manifest in (False, True):
        if manifest:
            write_levels(levels, [0.01, 0.3])
        resolved = resolve_model(str(levels))
        assert (resolved.kind, resolved.levels, resolved.sources) == ("levels", (0.01, 0.3),
                                                                      ("a", "b"))
        priors = load_priors(str(levels))
        assert isinstance(priors, NearestLevelPriors)
        sources = torch.randn(2, 2, 256) * 0.3
        assert torch.equal(priors.log_prob(sources, 0.02),
                           load_model(low).log_prob(sources, 0.01))
        assert torch.equal(priors.log_prob(sources, 0.2), load_model(high).log_prob(sources, 0.3))
    files = {f"{folder.name}/{path.name}": path.read_bytes()
             for folder in (low, high) for path in folder.iterdir()}
    commit = hub.publish("owner/levels", {**files,
                                          "levels.json": (levels / "levels.json").read_bytes()})
    resolved = resolve_model("owner/levels")
    assert (resolved.kind, resolved.commit, resolved.levels) == ("levels", commit, (0.01, 0.3))
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    priors = load_priors("owner/levels")
    assert same_weights(priors.levels[1], load_model(high))
    with pytest.raises(UsageError, match="per-level"):
        resolve_model(f"{tiny_model(tmp_path / 'other', ('c',))},{levels}")


def test_levels_beside_a_clean_model_separate_with_the_levels(tmp_path):
    """A clean model at the top of a folder of levels: the resolver (so `separate`) takes the
    levels, and evaluation the same levels, with the clean model as its base priors."""
    from priorsep.evaluation.levels import load_priors_under_test
    from priorsep.nn.levels import NearestLevelPriors

    folder = tiny_model(tmp_path / "levels", seed=3)
    high = tiny_model(folder / "sigma-0.3", seed=2)
    tiny_model(folder / "sigma-0.01", seed=1)
    assert resolve_model(str(folder)).levels == (0.01, 0.3)
    priors = load_priors(str(folder))
    assert isinstance(priors, NearestLevelPriors) and same_weights(priors.levels[1],
                                                                   load_model(high))
    under_test = load_priors_under_test(str(folder), "cpu")
    assert (under_test.kind, under_test.base_sigma) == ("per-level", 0.0)
    assert [level.sigma for level in under_test.levels] == [0.01, 0.3]
    assert same_weights(under_test.priors, load_model(folder))


# command line


def test_cli_models_lists_bundled_and_cached_models(hub, tmp_path):
    tiny_model(tmp_path / "weights" / "toy")
    commit = hub.publish_folder("owner/tiny", tiny_model(tmp_path / "model", ("x",)))
    runner = CliRunner()
    result = runner.invoke(app, ["models", "download", "owner/tiny", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(commit)
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    rows = {row["model_id"]: row for row in listing["models"]}
    assert rows["toy"]["kind"] == "bundled" and rows["toy"]["sources"] == ["a", "b"]
    cached = rows["owner/tiny"]
    assert (cached["revisions"], cached["commit"], cached["sources"], cached["sample_rate"]) == (
        ["main"], commit, ["x"], 16000)
    assert cached["size_bytes"] > 0 and cached["problem"] is None
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0 and "owner/tiny" in table.stdout


def test_cli_errors_are_one_line_with_their_exit_code(hub, tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["models", "download", "owner/missing"])
    assert result.exit_code == ModelNotFoundError.exit_code
    assert result.stderr.count("\n") == 1 and "owner/missing@main" in result.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["export", "owner/missing", str(tmp_path / "out")])
    assert result.exit_code == ModelNotCachedError.exit_code
    assert "priorsep models download owner/missing@main" in result.stderr


def test_cli_export_writes_a_hub_ready_folder(hub, tmp_path):
    folder = tiny_model(tmp_path / "model", info=INFO)
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", str(folder), str(out), "--dataset",
                                      "someone/toy-sources", "--repo-id", "me/toy-priors"])
    assert result.exit_code == 0, result.output
    card = (out / CARD_NAME).read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "priorsep" and front["license"] == "mit"
    assert "source-separation" in front["tags"] and front["datasets"] == ["someone/toy-sources"]
    assert "## Training" in card and "toy (on the fly)" in card
    assert "| validation log-likelihood (nats/sample) | 4.1 | 3.9 |" in card
    assert "--model me/toy-priors" in card
    assert (out / WEIGHTS_NAME).read_bytes() == (folder / WEIGHTS_NAME).read_bytes()
    hub.publish_folder("me/toy-priors", out)  # what `huggingface-cli upload` would push
    assert same_weights(load_priors("me/toy-priors"), load_model(folder))


def test_cli_export_of_a_combination_writes_a_bag_folder(hub, tmp_path):
    first = tiny_model(tmp_path / "first", ("a", "b"), seed=1)
    second = tiny_model(tmp_path / "second", ("c",), seed=2)
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", f"{first},{second}", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "sources.json").read_text()) == {
        "sources": {"a": "./a-b", "b": "./a-b", "c": "./c"}}
    assert resolve_model(str(out)).sources == ("a", "b", "c")
    assert (out / CARD_NAME).read_text().startswith("---\n")
    result = CliRunner().invoke(app, ["export", str(first), str(out)])
    assert result.exit_code == UsageError.exit_code and "not empty" in result.stderr


def test_cli_separate_with_a_pinned_hub_model_end_to_end(hub, tmp_path):
    hub.publish_folder("owner/tiny", tiny_model(tmp_path / "v1"), refs=("v1",))
    hub.publish_folder("owner/tiny", tiny_model(tmp_path / "v2", ("x", "y", "z")))
    mix = tmp_path / "mix.wav"
    soundfile.write(mix, 0.1 * torch.randn(800).numpy(), 16000)
    out = tmp_path / "separated"
    result = CliRunner().invoke(app, ["separate", str(mix), "-o", str(out), "--model",
                                      "owner/tiny@v1", "--steps", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (out / "mix").iterdir()) == ["a.wav", "b.wav"]


def test_combined_config_keeps_what_the_parts_share():
    gains = ModelConfig(sources=("a", "b"), architecture=TINY_FLOW, mixing="gains",
                        gains=(0.5, 2.0), trained_sigma_min=0.01, trained_sigma_max=0.5)
    deeper = FlowConfig(early_squeezes=0, n_blocks=2, n_flows=1, n_layers=1, residual_channels=4,
                        skip_channels=4, cond_channels=2)
    other = ModelConfig(sources=("c",), architecture=deeper, mixing="gains", gains=(3.0,),
                        trained_sigma_min=0.1, trained_sigma_max=1.0)
    config = combine_configs([gains, other], [SourceRef("b", 0, "b"), SourceRef("c", 1, "c")])
    assert (config.sources, config.gains, config.length_multiple) == (("b", "c"), (2.0, 3.0),
                                                                          4)
    assert (config.trained_sigma_min, config.trained_sigma_max) == (0.1, 0.5)
    mean = ModelConfig(sources=("d",), architecture=TINY_FLOW)
    with pytest.raises(ValueError, match="different mixing"):
        combine_configs([gains, mean], [SourceRef("a", 0, "a"), SourceRef("d", 1, "d")])


def test_generator_priors_round_trip_through_export_and_the_hub(hub, tmp_path):
    from priorsep.api import Separator
    from priorsep.config import ExtractConfig, WavetableConfig
    from priorsep.data.toy import ToyDataset
    from priorsep.export import export_model
    from priorsep.metrics import si_sdr
    from priorsep.nn.registry import build_priors
    from priorsep.storage import SeparationSettings, write_separation

    torch.set_num_threads(1)
    priors = build_priors(ModelConfig(architecture=WavetableConfig(exact=True)))
    save_model(priors, tmp_path / "model")
    write_separation(tmp_path / "model", SeparationSettings(
        method="extract", configs={"extract": ExtractConfig(sweeps=1)}))
    exported = export_model(str(tmp_path / "model"), tmp_path / "export", repo_id="owner/wt")
    hub.publish_folder("owner/wt", exported)
    separator = Separator.from_pretrained("owner/wt")
    assert separator.method == "extract" and separator.settings["extract"].sweeps == 1
    loaded = separator.priors
    assert loaded.config == priors.config and torch.equal(loaded.gain_range, priors.gain_range)
    truth = ToyDataset("test", n_examples=2).batch(range(2))[..., :4096]
    estimates = separator.separate_tensor(truth.mean(1))
    assert si_sdr(estimates, truth).mean() > 20


def test_listing_the_cache_never_reads_the_online_settings(hub, monkeypatch):
    monkeypatch.setenv("PRIORSEP_HUB_DEADLINE", "soon")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "never")
    for args in (["models"], ["--list-models"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
