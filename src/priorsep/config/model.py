"""A model's whole configuration: its sources, sample rate, mixing and one family's
architecture, as `config.json` stores it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from priorsep.config.fields import FieldError, from_dict
from priorsep.config.flow import FlowConfig
from priorsep.config.gaussian import GaussianConfig
from priorsep.config.score import ScoreConfig
from priorsep.config.spectral import NMFConfig, SpectralVAEConfig
from priorsep.config.wavenet import WaveNetConfig
from priorsep.config.wavetable import WavetableConfig

DEFAULT_MODEL = "chorales"
"""The bundled model every command and `Separator.from_pretrained` use when none is named."""


ARCHITECTURES: dict[str, type] = {"flowavenet": FlowConfig, "score": ScoreConfig,
                                  "gaussian": GaussianConfig, "wavenet": WaveNetConfig,
                                  "wavetable": WavetableConfig, "nmf": NMFConfig,
                                  "vae": SpectralVAEConfig}
"""Prior family name -> the dataclass of its architecture (the family is stored by name)."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a set of source priors from `config.json` alone.

    `architecture` is the configuration of one prior family; `family` names it and is filled in
    from the architecture's type when left empty.
    """

    RENAMED: ClassVar[dict[str, str]] = {"sigma_min": "trained_sigma_min",
                                         "sigma_max": "trained_sigma_max"}
    """Keys of older model folders and checkpoints and their names now."""

    sources: tuple[str, ...] = ("sine", "sawtooth", "square", "triangle")
    sample_rate: int = 16000
    architecture: (FlowConfig | ScoreConfig | GaussianConfig | WaveNetConfig
                   | WavetableConfig | NMFConfig | SpectralVAEConfig) = field(
        default_factory=FlowConfig)
    grouped: bool = True
    """One module for all sources (convolutions with groups=len(sources)), or one per source."""
    trained_sigma_min: float = 0.0
    trained_sigma_max: float = 0.0
    """Noise levels the priors were trained on (0, 0 for clean priors)."""
    mixing: str = "mean"
    gains: tuple[float, ...] | None = None
    family: str = ""

    def __post_init__(self) -> None:
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError("sources must be a non-empty list of distinct names")
        if self.sample_rate <= 0:
            raise FieldError("sample_rate", f"must be positive, got {self.sample_rate!r}")
        names = [name for name, cls in ARCHITECTURES.items()
                 if isinstance(self.architecture, cls)]
        if not names:
            raise ValueError(f"unknown architecture type {type(self.architecture).__name__}")
        if self.family and self.family != names[0]:
            raise ValueError(f"family {self.family!r} does not match a "
                             f"{type(self.architecture).__name__}")
        object.__setattr__(self, "family", names[0])

    @property
    def length_multiple(self) -> int:
        """Input lengths must be a multiple of this."""
        return self.architecture.length_multiple

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Rebuild from `asdict`; a dict with a "flow" entry and no family is a FloWaveNet
        model of format version 1."""
        values = dict(values)
        if "flow" in values:  # format version 1: only flows existed
            values["architecture"] = values.pop("flow")
        family = values.get("family") or "flowavenet"
        if family not in ARCHITECTURES:
            raise ValueError(f"unknown prior family {family!r}; "
                             f"known: {', '.join(ARCHITECTURES)}")
        values["family"] = family
        values["architecture"] = from_dict(ARCHITECTURES[family], values.get("architecture", {}))
        return from_dict(cls, values)
