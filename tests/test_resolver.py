"""The resolver's description of a model id: one pass, each config.json read once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from priorsep.api import load_model_id
from priorsep.hub import resolve_model
from priorsep.layout import (
    BAG_NAME,
    CARD_NAME,
    CONFIG_NAME,
    LEVELS_NAME,
    SEPARATION_NAME,
    WEIGHTS_NAME,
)
from priorsep.storage import write_levels
from tests.test_hub import hub, tiny_model  # noqa: F401  (the fake Hub fixture)


@pytest.fixture
def config_reads(monkeypatch) -> list[Path]:
    """Every config.json read from now on."""
    reads: list[Path] = []
    original = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.name == CONFIG_NAME:
            reads.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    return reads


def test_a_bundled_model_is_described_with_its_files_and_info():
    resolved = resolve_model("toy")
    assert resolved.kind == "bundled"
    assert {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME} <= set(resolved.files)
    assert isinstance(resolved.info, dict) and resolved.info


def test_a_local_folder_is_resolved_and_loaded_reading_config_json_once(tmp_path, config_reads):
    folder = tiny_model(tmp_path / "model", info={"name": "tiny"})
    config_reads.clear()
    resolved = resolve_model(str(folder))
    assert (resolved.kind, resolved.folder, resolved.info["name"]) == (
        "local", folder.resolve(), "tiny")
    assert set(resolved.files) == {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME}
    priors, info, _, _ = load_model_id(str(folder))
    assert info["name"] == "tiny" and priors.sources == ("a", "b")
    assert len(config_reads) == 2  # once by each resolution, none by loading


def test_a_per_level_folder_is_described_with_its_levels(tmp_path, config_reads):
    top = tmp_path / "levels"
    for sigma in (0.1, 0.5):
        tiny_model(top / f"sigma-{sigma:g}")
    write_levels(top, [0.1, 0.5])
    (top / SEPARATION_NAME).write_text(json.dumps({"method": "langevin"}), encoding="utf-8")
    config_reads.clear()
    resolved = resolve_model(str(top))
    assert (resolved.kind, resolved.levels, resolved.top) == ("levels", (0.1, 0.5), top)
    assert set(resolved.files) == {LEVELS_NAME, SEPARATION_NAME} and resolved.info == {}
    assert [part.kind for part in resolved.parts] == ["local", "local"]
    assert len(config_reads) == 2  # one per level
    _, _, _, settings = load_model_id(str(top))
    assert settings.method == "langevin"


def test_a_bag_is_described_by_its_parts(tmp_path):
    tiny_model(tmp_path / "ab", ("a", "b"))
    tiny_model(tmp_path / "c", ("c",), seed=1)
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / BAG_NAME).write_text(json.dumps({"sources": {"b": "../ab", "c": "../c"}}),
                                encoding="utf-8")
    resolved = resolve_model(str(bag))
    assert (resolved.kind, resolved.sources, resolved.folder) == ("composite", ("b", "c"), None)
    assert [set(part.files) for part in resolved.parts] == [
        {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME}] * 2
    assert resolved.info == {}


def test_a_hub_model_is_described_with_its_revision_and_files(hub, tmp_path):  # noqa: F811
    commit = hub.publish_folder("owner/tiny", tiny_model(tmp_path / "model",
                                                         info={"name": "tiny"}))
    resolved = resolve_model("owner/tiny")
    assert (resolved.kind, resolved.revision, resolved.commit) == ("hub", "main", commit)
    assert set(resolved.files) == {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME}
    assert resolved.info["name"] == "tiny"
    offline = resolve_model("owner/tiny", offline=True)
    assert (offline.folder, offline.info) == (resolved.folder, resolved.info)
