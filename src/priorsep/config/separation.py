"""The separation settings a model stores (`separation.json`): its method and a map from each
settings section to its configuration.

A section is one method's configuration (`wiener`, `extract`) or one sampler's (`langevin`,
`diffusion`: the Langevin and posterior methods read `langevin`; extraction reads its
refinement sampler's as well). A new method with settings adds its dataclass to `SECTIONS`;
`priorsep.methods` says which sections each method reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from priorsep.config.diffusion import DiffusionConfig
from priorsep.config.extract import ExtractConfig
from priorsep.config.fields import from_dict
from priorsep.config.langevin import LangevinConfig
from priorsep.config.spectral import WienerConfig

SECTIONS: dict[str, type] = {"langevin": LangevinConfig, "diffusion": DiffusionConfig,
                             "extract": ExtractConfig, "wiener": WienerConfig}
"""Every settings section by the name `separation.json` gives it, and its dataclass."""


def _defaults() -> dict[str, Any]:
    return {name: kind() for name, kind in SECTIONS.items()}


@dataclasses.dataclass(frozen=True)
class SeparationSettings:
    """A method (None: the family's default) and every section's configuration
    (`settings["wiener"]`); sections not given take their defaults."""

    method: str | None = None
    configs: Mapping[str, Any] = dataclasses.field(default_factory=_defaults)

    def __post_init__(self) -> None:
        unknown = set(self.configs) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown settings section(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(SECTIONS)}")
        object.__setattr__(self, "configs", {**_defaults(), **self.configs})

    def __getitem__(self, section: str) -> Any:
        return self.configs[section]

    def with_config(self, section: str, config: Any) -> SeparationSettings:
        """The same settings with `section`'s configuration replaced."""
        return dataclasses.replace(self, configs={**self.configs, section: config})

    def to_dict(self) -> dict[str, Any]:
        """What `separation.json` holds: "method" and one dict per section."""
        return {"method": self.method,
                **{name: dataclasses.asdict(config) for name, config in self.configs.items()}}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> SeparationSettings:
        """Settings from `to_dict`'s form (sections missing take their defaults), or, from
        older folders, the Langevin fields alone.

        Raises:
            ValueError, TypeError: a field or section that is not valid.
        """
        if not any(key == "method" or key in SECTIONS for key in stored):
            return cls(configs={"langevin": from_dict(LangevinConfig, dict(stored))})
        unknown = set(stored) - {"method"} - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown settings section(s) {', '.join(sorted(unknown))}")
        return cls(method=stored.get("method"),
                   configs={name: from_dict(kind, stored.get(name) or {})
                            for name, kind in SECTIONS.items()})
