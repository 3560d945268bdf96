"""The method registry (`priorsep.methods`) and the settings map (`SeparationSettings`):
a method is found by name, reads its own sections, and `configure` routes every field to the
section it belongs to."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from priorsep.api import Separator
from priorsep.config import (
    SECTIONS,
    ExtractConfig,
    LangevinConfig,
    SeparationSettings,
    WienerConfig,
)
from priorsep.errors import UsageError
from priorsep.methods import METHODS, Context, build_strategy
from priorsep.storage import read_separation, write_separation
from tests.gaussian import GaussianPriors


def test_settings_round_trip_through_separation_json(tmp_path):
    settings = SeparationSettings(method="wiener", configs={
        "wiener": WienerConfig(phase="misi", magnitudes="model", misi_iterations=4),
        "langevin": LangevinConfig(n_levels=2, steps_per_level=3)})
    assert set(settings.configs) == set(SECTIONS)  # the sections not given take defaults
    write_separation(tmp_path, settings)
    assert read_separation(tmp_path) == settings
    assert SeparationSettings.from_dict(settings.to_dict()) == settings


def test_older_and_unknown_settings():
    older = SeparationSettings.from_dict({"n_levels": 3, "steps_per_level": 5})
    assert older.method is None and older["langevin"].total_steps == 15
    with pytest.raises(ValueError, match="unknown settings section"):
        SeparationSettings.from_dict({"method": "wiener", "griffin_lim": {}})
    with pytest.raises(ValueError, match="unknown settings section"):
        SeparationSettings(configs={"griffin_lim": WienerConfig()})


def test_every_method_builds_from_the_settings_alone():
    settings = SeparationSettings(configs={"extract": ExtractConfig(sweeps=1)})
    for name, kind in METHODS.items():
        if kind.needs_encoder:
            with pytest.raises(ValueError, match="needs an amortised posterior"):
                build_strategy(SeparationSettings(method=name), Context(2))
            continue
        strategy = build_strategy(dataclasses.replace(settings, method=name), Context(2))
        assert strategy.name == name
        assert strategy.evaluations >= 1
    with pytest.raises(ValueError, match="unknown method"):
        build_strategy(SeparationSettings(method="nope"), Context(2))


def test_configure_routes_each_field_to_its_section():
    separator = Separator(GaussianPriors(), method="extract")
    separator.configure(steps=40, sweeps=1, refine="langevin", seed=5)
    assert separator.settings["extract"] == ExtractConfig(sweeps=1, refine="langevin")
    assert separator.settings["langevin"].seed == 5  # the refinement's section
    assert separator.settings["langevin"].total_steps == 40
    separator.method = "wiener"  # a method without a sampler ignores the samplers' fields
    separator.configure(steps=7, seed=9, phase="misi", magnitudes="share")
    assert separator.settings["wiener"] == WienerConfig(phase="misi", magnitudes="share")
    assert separator.settings["langevin"].seed == 5
    with pytest.raises(UsageError, match="magnitudes"):
        separator.configure(magnitudes="loud")
    separator.method = "langevin"
    with pytest.raises(UsageError):
        separator.configure(no_such_field=1)
    with pytest.raises(UsageError, match="unknown method"):
        separator.method = "nope"
    with pytest.raises(UsageError, match="amortised posterior"):
        separator.method = "posterior"


def test_a_separator_keeps_its_settings_between_calls():
    separator = Separator(GaussianPriors(), settings=SeparationSettings(
        method="langevin", configs={"langevin": LangevinConfig(n_levels=2, steps_per_level=2,
                                                               seed=1)}),
        segment_length=64, overlap=16)
    mix = torch.randn(1, 128) * 0.1
    assert torch.equal(separator.separate_tensor(mix), separator.separate_tensor(mix))
