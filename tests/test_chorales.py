"""The chorales dataset: rendered into the cache on first use, read by training and evaluation.

Three short chorales stand in for the whole corpus (one per split), so the test renders in
seconds; the full list is `chorale_works()`.
"""

from __future__ import annotations

import json

import pytest

from priorsep.data import chorales
from priorsep.data.datasets import training_data
from priorsep.data.held_out import HeldOutData
from priorsep.errors import SynthesiserNotFoundError
from priorsep.render.layout import split_of

pytest.importorskip("mido")
pytest.importorskip("music21")
WORKS = {"bach/bwv286": "train", "bach/bwv290": "validation", "bach/bwv335": "test"}


@pytest.fixture
def small_chorales(tmp_path, monkeypatch):
    from priorsep.render.fluidsynth import _load_library, find_soundfont

    try:
        _load_library()
        find_soundfont()
    except SynthesiserNotFoundError as error:
        pytest.skip(str(error))
    monkeypatch.setenv(chorales.DATA_ENV, str(tmp_path / "data"))
    monkeypatch.setattr(chorales, "chorale_works", lambda: sorted(WORKS))
    return tmp_path / "data"


def test_splits_of_the_stand_ins():
    assert {work: split_of(work.split("/")[1]) for work in WORKS} == WORKS


def test_rendered_on_first_use_then_read_from_the_cache(small_chorales):
    lines: list[str] = []
    root = chorales.ensure_chorales(8000, lines.append)
    assert root == small_chorales / "chorales-8000" and lines[0].startswith("rendering")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["sources"] == list(chorales.SOURCES)
    assert {split: list(pieces) for split, pieces in manifest["pieces"].items()} == {
        "train": ["bwv286"], "validation": ["bwv290"], "test": ["bwv335"]}
    for source in chorales.SOURCES:
        assert (root / "solos" / "train" / source / "bwv286.wav").is_file()
    lines.clear()
    assert chorales.ensure_chorales(8000, lines.append) == root and not lines

    data, validation, info = training_data("chorales", None, "violin,bassoon", 8000, 512)
    assert data.sources == ("violin", "bassoon") and validation.shape == (16, 2, 512)
    assert "chorales" in info["training"]["dataset"]
    assert info["training"]["data (violin)"].startswith("1 file(s)")  # checked, as folders are

    held_out = HeldOutData("chorales", None, ("bassoon", "violin"), 8000)
    excerpts = held_out.excerpts(2, 1024, seed=0)
    assert excerpts.shape == (2, 2, 1024)
    assert float(excerpts.abs().amax(dim=-1).min()) > 1e-3  # no silent part in a crop
    report = held_out.describe()
    assert report["name"] == "chorales" and report["summary"]["dataset"] == "chorales"
    assert [source["files"] for source in report["summary"]["sources"]] == [1, 1]
