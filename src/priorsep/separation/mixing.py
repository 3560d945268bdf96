"""The known mixing function g(s) = sum_k a_k s_k that turns sources into the mix.

Three kinds, all linear with one weight per source: the mean (a_k = 1/N, the default and the toy
data's), the sum (a_k = 1) and fixed per-source gains (a_k = gains[k]). Being linear, g has a
closed-form adjoint, least-norm inverse and projection, which the sampler uses instead of autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from priorsep.config import ModelConfig

KINDS = ("mean", "sum", "gains")


@dataclass(frozen=True)
class Mixing:
    """A linear mixing function `mix = sum_k weights[k] * sources[:, k]`.

    Args:
        kind: "mean" (weights 1/N), "sum" (weights 1) or "gains" (weights `gains`).
        gains: one weight per source, required for (and only for) kind "gains".
    """

    kind: str = "mean"
    gains: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown mixing {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.kind == "gains":
            if not self.gains:
                raise ValueError("mixing 'gains' needs one gain per source")
            if not any(gain != 0 for gain in self.gains):
                raise ValueError("mixing gains must not all be zero")
            object.__setattr__(self, "gains", tuple(float(gain) for gain in self.gains))
        elif self.gains is not None:
            raise ValueError(f"mixing {self.kind!r} takes no gains (use kind 'gains')")

    @classmethod
    def from_config(cls, config: ModelConfig) -> Mixing:
        """The mixing a model was built for (`config.mixing`, `config.gains`)."""
        mixing = cls(config.mixing, config.gains)
        mixing.check(len(config.sources))
        return mixing

    def check(self, n_sources: int) -> None:
        """Raise ValueError if this mixing cannot combine `n_sources` sources."""
        if self.gains is not None and len(self.gains) != n_sources:
            raise ValueError(f"mixing has {len(self.gains)} gains for {n_sources} sources")

    def weights(self, n_sources: int, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
        """The weights a_k, shape (n_sources,)."""
        self.check(n_sources)
        if self.kind == "mean":
            values = [1.0 / n_sources] * n_sources
        elif self.kind == "sum":
            values = [1.0] * n_sources
        else:
            values = list(self.gains)
        return torch.tensor(values, dtype=dtype, device=device)

    def squared_norm(self, n_sources: int) -> float:
        """sum_k a_k**2: the curvature of ||mix - g(s)||**2 / 2 along the mixing direction."""
        return float(self.weights(n_sources, torch.float64).pow(2).sum())

    def _weights_like(self, sources: torch.Tensor) -> torch.Tensor:
        return self.weights(sources.shape[-2], sources.dtype, sources.device)[:, None]

    def __call__(self, sources: torch.Tensor) -> torch.Tensor:
        """Mix sources: (..., n_sources, time) -> (..., time)."""
        return (sources * self._weights_like(sources)).sum(dim=-2)

    def adjoint(self, signal: torch.Tensor, n_sources: int) -> torch.Tensor:
        """Transpose of the mixing: (..., time) -> (..., n_sources, time), a_k * signal."""
        weights = self.weights(n_sources, signal.dtype, signal.device)[:, None]
        return signal.unsqueeze(-2) * weights

    def least_norm_sources(self, mix: torch.Tensor, n_sources: int) -> torch.Tensor:
        """The least-norm sources that mix exactly to `mix`: a_k * mix / sum_j a_j**2.

        For the mean this is the mix itself in every source slot; for the sum, mix / N.

        Args:
            mix: (..., time).

        Returns:
            (..., n_sources, time).
        """
        return self.adjoint(mix, n_sources) / self.squared_norm(n_sources)

    def project(self, sources: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        """Closest sources (in squared error) to `sources` that satisfy g(sources) = mix.

        Args:
            sources: (..., n_sources, time).
            mix: (..., time).

        Returns:
            (..., n_sources, time).
        """
        return sources + self.least_norm_sources(mix - self(sources), sources.shape[-2])
