"""Output planning (`priorsep.outputs`), all-or-nothing writes (`priorsep.files`) and the
audio encodings (`priorsep.audio`), without a model."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import soundfile
import torch

from priorsep import files
from priorsep.audio import OutputFormat, encode_audio, limit, mp3_compression
from priorsep.errors import OutputExistsError, UsageError
from priorsep.outputs import check_template, plan_outputs, stem_path

SOURCES = ("sine", "square")


def test_templates_take_the_demucs_keys_and_need_the_source():
    check_template("{track}/{stem}.{trackext}.{ext}")
    assert stem_path("out", "{track}/{stem}.{ext}", "a/song.mp3", "sine", "wav") == (
        files.Path("out/song/sine.wav"))
    assert stem_path("out", "{track}.{trackext}-{source}.{ext}", "-", "sine", "flac") == (
        files.Path("out/stdin.wav-sine.flac"))
    for bad, message in (("{track}/{colour}.{ext}", "unknown key"), ("{track}.{ext}", "no {"),
                         ("/abs/{source}", "relative"), ("{track", "template")):
        with pytest.raises(UsageError, match=message):
            check_template(bad)


def test_plan_refuses_collisions_existing_files_and_things_in_the_way(tmp_path):
    plan = plan_outputs(["x/song.wav", "y/other.wav"], tmp_path, "{track}/{source}.{ext}",
                        SOURCES, "wav", overwrite=False)
    assert plan["y/other.wav"]["square"] == tmp_path / "other" / "square.wav"
    with pytest.raises(UsageError, match="trackext"):
        plan_outputs(["a/song.wav", "b/song.flac"], tmp_path, "{track}/{source}.{ext}",
                     SOURCES, "wav", overwrite=False)
    (tmp_path / "song").mkdir()
    (tmp_path / "song" / "sine.wav").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="sine.wav"):
        plan_outputs(["song.wav"], tmp_path, "{track}/{source}.{ext}", SOURCES, "wav", False)
    plan_outputs(["song.wav"], tmp_path, "{track}/{source}.{ext}", SOURCES, "wav", True)
    (tmp_path / "song" / "square.wav").mkdir()
    with pytest.raises(UsageError, match="is a folder"):
        plan_outputs(["song.wav"], tmp_path, "{track}/{source}.{ext}", SOURCES, "wav", True)
    (tmp_path / "flat").write_text("a file")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        plan_outputs(["song.wav"], tmp_path / "flat", "{track}/{source}.{ext}", SOURCES,
                     "wav", False)


def test_write_together_leaves_nothing_when_a_rename_fails(tmp_path, monkeypatch):
    payloads = {tmp_path / "t" / "deep" / f"{name}.wav": name.encode() for name in "abc"}
    real_replace, calls = os.replace, []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(OSError):
        files.write_together(payloads)
    assert not (tmp_path / "t").exists()  # the folder it made is gone too
    monkeypatch.setattr(files.os, "replace", real_replace)
    files.write_together(payloads)
    assert sorted(p.read_bytes() for p in (tmp_path / "t" / "deep").iterdir()) == [
        b"a", b"b", b"c"]


def test_clip_modes_and_encodings():
    loud = torch.tensor([[0.5, 2.0, -1.5]])
    assert torch.allclose(limit(loud, "rescale"), loud / 2.02)
    assert torch.equal(limit(loud, "clamp"), torch.tensor([[0.5, 1.0, -1.0]]))
    assert torch.equal(limit(loud, "none"), loud)
    quiet = torch.tensor([[0.5, -0.25]])
    assert torch.equal(limit(quiet, "rescale"), quiet)
    data, _ = soundfile.read(io.BytesIO(encode_audio(loud, 8000, OutputFormat(
        "wav", "float32", clip="none"))))
    np.testing.assert_allclose(data, [0.5, 2.0, -1.5])
    assert mp3_compression(320, 44100) == 0.0 and mp3_compression(32, 44100) == 1.0
    assert mp3_compression(500, 22050) == 0.0 and mp3_compression(84, 22050) == 0.5
    with pytest.raises(UsageError, match="FLAC holds integer"):
        OutputFormat("flac", "float32")
