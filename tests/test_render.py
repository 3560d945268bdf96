"""Rendering MIDI to solos and mixes: parsing, part mapping, layout, determinism, the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from priorsep.cli import app
from priorsep.errors import (
    MidiReadError,
    PartMappingError,
    SynthesiserNotFoundError,
    UsageError,
)
from priorsep.render import RenderSettings, parse_instrument, render
from priorsep.render.inputs import expand
from priorsep.render.instruments import Instrument, assign
from priorsep.render.layout import split_of, wav_bytes
from priorsep.render.midi import read_midi

mido = pytest.importorskip("mido")
runner = CliRunner()
RATE = 16000


def write_midi(path: Path, parts: dict[str, list[tuple[int, float, float]]],
               tempo_bpm: float = 120.0, empty: tuple[str, ...] = (),
               programs: dict[str, int] | None = None, channels: dict[str, int] | None = None
               ) -> Path:
    """A type-1 MIDI file: a conductor track, then a track per part of (note, start beat,
    beats) notes, on channel 0, 1, ... (or `channels[name]`) with a program change to 0 (or
    `programs[name]`); parts named in `empty` get a program change and no note."""
    ticks = 480
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo",
                                                 tempo=mido.bpm2tempo(tempo_bpm), time=0)])
    midi.tracks.append(conductor)
    for index, (name, notes) in enumerate(parts.items()):
        channel = (channels or {}).get(name, index)
        program = (programs or {}).get(name, 0)
        events = []
        for note, start, beats in notes:
            events.append((int(start * ticks), mido.Message("note_on", channel=channel,
                                                            note=note, velocity=90)))
            events.append((int((start + beats) * ticks),
                           mido.Message("note_off", channel=channel, note=note)))
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0),
                                mido.Message("program_change", channel=channel,
                                             program=program)])
        now = 0
        for tick, message in sorted(events, key=lambda item: item[0]):
            track.append(message.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    for name in empty:
        midi.tracks.append(mido.MidiTrack([
            mido.MetaMessage("track_name", name=name, time=0),
            mido.Message("program_change", channel=9, program=0)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(path)
    return path


def duet(path: Path) -> Path:
    """Two parts of half a second each at 120 bpm; the lower starts a quarter second in."""
    return write_midi(path, {"Upper": [(72, 0.0, 0.5), (76, 0.5, 0.5)],
                             "Lower": [(48, 0.5, 0.5)]})


@pytest.fixture
def synthesiser():
    """Skip where FluidSynth or a soundfont is missing (CI installs both: see .ci/run)."""
    from priorsep.render.fluidsynth import _load_library, find_soundfont

    try:
        _load_library()
        find_soundfont()
    except SynthesiserNotFoundError as error:
        pytest.skip(str(error))


def test_parse_instrument():
    assert parse_instrument("violin=40") == Instrument("violin", 40, None)
    assert parse_instrument("bass=70@3") == Instrument("bass", 70, 3)
    assert parse_instrument("alto=71@Alto").part == "Alto"
    assert parse_instrument("kit=drums@4") == Instrument("kit", 0, 4, drums=True)
    assert parse_instrument("kit=drums:25") == Instrument("kit", 25, None, drums=True)
    assert parse_instrument("kit=drums:25").spec() == "kit=drums:25"
    for bad in ("violin", "=40", "violin=", "violin=x", "violin=128", "mixture=1", "a b=1",
                "violin=40@", "kit=drums:x", "kit=drums:200"):
        with pytest.raises(UsageError):
            parse_instrument(bad)


def test_read_midi_parts_and_tempo_map(tmp_path):
    path = write_midi(tmp_path / "t.mid", {"Upper": [(72, 0.0, 1.0)], "Lower": [(48, 2.0, 1.0)]},
                      tempo_bpm=60.0)
    score = read_midi(path.read_bytes(), "t", str(path))
    assert [part.name for part in score.parts] == ["Upper", "Lower"]  # the conductor is none
    assert [part.notes for part in score.parts] == [1, 1]
    lower = score.parts[1].events
    assert lower[0].kind == "note_on" and lower[0].seconds == pytest.approx(2.0)  # 60 bpm
    assert score.end == pytest.approx(3.0)
    assert all(event.kind != "program_change" for part in score.parts for event in part.events)


def test_unreadable_midi():
    with pytest.raises(MidiReadError, match="not a readable MIDI file"):
        read_midi(b"MThd nonsense", "x", "x.mid")


def test_assign_in_order_by_index_and_by_name(tmp_path):
    score = read_midi(duet(tmp_path / "d.mid").read_bytes(), "d", "d.mid")
    pairs = assign(score, [Instrument("a", 1), Instrument("b", 2)])
    assert [(i.name, p.name) for i, p in pairs] == [("a", "Upper"), ("b", "Lower")]
    pairs = assign(score, [Instrument("a", 1, "lower"), Instrument("b", 2)])
    assert [(i.name, p.name) for i, p in pairs] == [("a", "Lower"), ("b", "Upper")]
    pairs = assign(score, [Instrument("a", 1, 1), Instrument("b", 2, 0)])
    assert [p.index for _, p in pairs] == [1, 0]


def test_assign_errors(tmp_path):
    score = read_midi(duet(tmp_path / "d.mid").read_bytes(), "d", "d.mid")
    with pytest.raises(PartMappingError, match='part 1 \\("Lower"\\) maps to no instrument'):
        assign(score, [Instrument("a", 1)])
    with pytest.raises(PartMappingError, match="instrument c maps to no part"):
        assign(score, [Instrument("a", 1), Instrument("b", 2), Instrument("c", 3)])
    with pytest.raises(PartMappingError, match="taken by both"):
        assign(score, [Instrument("a", 1, 0), Instrument("b", 2, "Upper")])
    with pytest.raises(PartMappingError, match="asks for part 5"):
        assign(score, [Instrument("a", 1, 5), Instrument("b", 2)])
    path = write_midi(tmp_path / "e.mid", {"Upper": [(72, 0.0, 1.0)]}, empty=("Silent",))
    score = read_midi(path.read_bytes(), "e", "e.mid")
    with pytest.raises(PartMappingError, match='part 1 \\("Silent"\\).*has no notes'):
        assign(score, [Instrument("a", 1), Instrument("b", 2, "Silent")])
    with pytest.raises(PartMappingError,
                       match="instrument b maps to no part .the piece has 1 part.s. with notes"):
        assign(score, [Instrument("a", 1), Instrument("b", 2)])
    assert [p.name for _, p in assign(score, [Instrument("a", 1)])] == ["Upper"]  # none needed


def test_split_rule_is_the_documented_hash():
    for name in ("bwv66.6", "bwv269", "x", "ünïcode"):
        bucket = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % 10
        assert split_of(name) == {0: "test", 1: "validation"}.get(bucket, "train")
    counts = {split: 0 for split in ("train", "validation", "test")}
    for k in range(2000):
        counts[split_of(f"piece{k}")] += 1
    assert 0.07 < counts["test"] / 2000 < 0.13 and 0.07 < counts["validation"] / 2000 < 0.13


def test_float_wav_bytes_read_back_and_carry_no_timestamp(tmp_path):
    audio = np.linspace(-1.5, 1.5, 101, dtype=np.float32)
    payload = wav_bytes(audio, RATE)
    assert b"PEAK" not in payload and payload == wav_bytes(audio, RATE)
    (tmp_path / "a.wav").write_bytes(payload)
    read, rate = soundfile.read(tmp_path / "a.wav", dtype="float32")
    assert rate == RATE and np.array_equal(read, audio)


def test_render_is_deterministic_and_laid_out(tmp_path, synthesiser):
    pieces = expand([str(duet(tmp_path / "midi" / "duet.mid"))])
    instruments = [parse_instrument("flute=73"), parse_instrument("cello=42")]
    settings = RenderSettings(sample_rate=RATE, split="test", tail=0.5)
    summary = render(pieces, instruments, tmp_path / "a", settings)
    render(pieces, instruments, tmp_path / "b", settings)
    assert summary.rendered == 1 and summary.pieces["test"] == {"duet": 1.0}
    folder = tmp_path / "a" / "pieces" / "test" / "duet"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["cello.wav", "flute.wav", "mixture.wav"]
    for name in files:  # the same bytes on every run
        assert (folder / name).read_bytes() == (tmp_path / "b" / folder.relative_to(
            tmp_path / "a") / name).read_bytes()
    flute, rate = soundfile.read(folder / "flute.wav", dtype="float32")
    cello, _ = soundfile.read(folder / "cello.wav", dtype="float32")
    mixture, _ = soundfile.read(folder / "mixture.wav", dtype="float32")
    assert rate == RATE and len(flute) == len(cello) == len(mixture) == RATE
    np.testing.assert_allclose(mixture, (flute + cello) / 2, atol=1e-7)
    quarter = RATE // 4
    assert np.abs(cello[:quarter - 200]).max() < 1e-6  # the cello comes in at 0.25 s
    assert np.abs(cello[quarter:quarter + 4000]).max() > 0.01
    assert np.abs(flute[:2000]).max() > 0.01
    solo = tmp_path / "a" / "solos" / "test" / "cello" / "duet.wav"
    assert solo.read_bytes() == (folder / "cello.wav").read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["sources"] == ["flute", "cello"]
    assert manifest["pieces"]["test"] == {"duet": 1.0}


def test_render_writes_nothing_when_a_piece_fails(tmp_path, synthesiser):
    duet(tmp_path / "midi" / "a.mid")
    (tmp_path / "midi" / "b.mid").write_bytes(b"not midi")
    with pytest.raises(MidiReadError, match="b.mid"):
        render(expand([str(tmp_path / "midi")]),
               [parse_instrument("flute=73"), parse_instrument("cello=42")], tmp_path / "out",
               RenderSettings())
    assert not (tmp_path / "out").exists()


def test_render_resume_skips_complete_pieces(tmp_path, synthesiser):
    pieces = expand([str(duet(tmp_path / "duet.mid"))])
    instruments = [parse_instrument("flute=73"), parse_instrument("cello=42")]
    render(pieces, instruments, tmp_path / "out", RenderSettings(split="train"))
    summary = render(pieces, instruments, tmp_path / "out", RenderSettings(split="train"),
                     resume=True)
    assert (summary.rendered, summary.skipped) == (0, 1)
    with pytest.raises(UsageError, match="other settings"):
        render(pieces, instruments, tmp_path / "out", RenderSettings(split="train", gain=0.5),
               resume=True)


def test_cli_render_and_its_exit_codes(tmp_path, synthesiser):
    midi = duet(tmp_path / "duet.mid")
    out = tmp_path / "out"
    args = ["render", str(midi), "-o", str(out), "-i", "flute=73", "-i", "cello=42",
            "--split", "validation", "--int16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rendered 1 piece(s)" in result.output
    assert soundfile.info(out / "pieces" / "validation" / "duet" / "mixture.wav"
                          ).subtype == "PCM_16"
    assert (out / "solos" / "validation" / "flute" / "duet.wav").is_file()
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    cases = [
        (["render", str(midi), "-o", str(tmp_path / "x"), "-i", "flute=73"], 16),
        (["render", str(tmp_path / "none.mid"), "-o", str(tmp_path / "x"), "-i", "a=1"], 15),
        (["render", str(midi), "-o", str(tmp_path / "x"), "-i", "a=1", "-i", "b=2",
          "--soundfont", str(tmp_path / "none.sf2")], 14),
        (["render", str(midi), "-o", str(tmp_path / "x"), "-i", "a=1", "-i", "b=2",
          "--split", "sometimes"], 2),
    ]
    for arguments, code in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == code, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("error:")
    assert not (tmp_path / "x").exists()


def test_corpus_input_renders_a_chorale(tmp_path, synthesiser):
    pytest.importorskip("music21")
    pieces = expand(["corpus:bach/bwv66.6"])
    assert [piece.name for piece in pieces] == ["bwv66.6"]
    instruments = [parse_instrument(text) for text in
                   ("violin=40@Soprano", "clarinet=71@Alto", "sax=66@Tenor", "bassoon=70@Bass")]
    summary = render(pieces, instruments, tmp_path / "out", RenderSettings(split="test"))
    assert summary.pieces["test"]["bwv66.6"] == pytest.approx(23.5)  # 45 beats at 120 bpm + 1 s
    with pytest.raises(MidiReadError, match="no work"):
        expand(["corpus:bach/no-such-work*"])


@pytest.mark.parametrize("gain", ["nan", "inf", "-1", "0", "11"])
def test_a_gain_fluidsynth_cannot_use_is_refused(tmp_path, gain):
    (tmp_path / "piece.mid").write_bytes(b"MThd")  # never read: the options come first
    result = CliRunner().invoke(app, ["render", str(tmp_path / "piece.mid"), "-o",
                                      str(tmp_path / "out"), "-i", "violin=40", "--gain", gain])
    assert result.exit_code == 2, result.output
    assert "master gain" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


BAND = {"Keys": [(60, 0.0, 1.0), (64, 1.0, 1.0)], "First": [(76, 0.0, 2.0)],
        "Second": [(69, 0.0, 2.0)], "Bass": [(40, 0.0, 2.0)],
        "Kit": [(42, beat / 2, 0.25) for beat in range(4)] + [(36, 0.0, 0.5)]}
"""Four instruments (two on one program) and drums, as a sequencer writes them."""


def band(path: Path) -> Path:
    return write_midi(path, BAND, programs={"Keys": 0, "First": 40, "Second": 40, "Bass": 32},
                      channels={"Kit": 9}, empty=("Setup",))


def centroid(signal: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(signal))
    return float((np.fft.rfftfreq(len(signal), 1 / RATE) * spectrum).sum() / spectrum.sum())


def test_parts_as_written_are_named_by_their_programs(tmp_path):
    from priorsep.render.instruments import as_written, program_name

    score = read_midi(band(tmp_path / "band.mid").read_bytes(), "band", "band.mid")
    assert [part.program for part in score.parts] == [0, 40, 40, 32, 0, 0]
    assert [part.drums for part in score.parts] == [False] * 4 + [True, True]
    pairs = as_written(score)  # the set-up track has no notes: no part to play
    assert [instrument.spec() for instrument, _ in pairs] == [
        "acoustic_grand_piano=0@0", "violin_1=40@1", "violin_2=40@2", "acoustic_bass=32@3",
        "drums=drums@4"]
    assert program_name(24) == "acoustic_guitar_nylon"
    assert program_name(87) == "lead_8_bass_and_lead"


def test_midi_as_it_comes_renders_one_solo_per_part_and_drums_on_a_kit(tmp_path,
                                                                         synthesiser):
    midi = band(tmp_path / "band.mid")
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", str(midi), "-o", str(out), "--split", "test"])
    assert result.exit_code == 0, result.output
    piece = out / "pieces" / "test" / "band"
    names = ["acoustic_bass", "acoustic_grand_piano", "drums", "violin_1", "violin_2"]
    assert sorted(path.stem for path in piece.glob("*.wav")) == sorted([*names, "mixture"])
    solos = {name: soundfile.read(piece / f"{name}.wav")[0] for name in names}
    assert all(np.sqrt(np.mean(solo ** 2)) > 1e-3 for solo in solos.values())
    mixture = soundfile.read(piece / "mixture.wav")[0]
    assert np.allclose(mixture, np.mean(list(solos.values()), axis=0), atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"] == names and manifest["instruments"].startswith("as written")
    # the kit, not a piano playing the drum part's notes: hi-hats and a kick, bright
    score = read_midi(midi.read_bytes(), "band", str(midi))
    from priorsep.render.fluidsynth import Synthesiser, find_soundfont

    with Synthesiser(find_soundfont(), RATE) as synth:
        as_piano = synth.render(0, score.parts[4].events, len(solos["drums"]))
    assert centroid(solos["drums"]) > 1.5 * centroid(as_piano)
    # -i still overrides, drums included
    result = runner.invoke(app, ["render", str(midi), "-o", str(tmp_path / "given"), "-i",
                                 "kit=drums@4", "-i", "piano=0@0", "-i", "a=40@1", "-i",
                                 "b=41@2", "-i", "bass=33@3", "--split", "test"])
    assert result.exit_code == 0, result.output
    given = tmp_path / "given" / "pieces" / "test" / "band"
    assert np.array_equal(soundfile.read(given / "kit.wav")[0], solos["drums"])
