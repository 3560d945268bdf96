"""Separation: mixing functions, the Langevin posterior sampler and overlap-add over long audio."""

from collections.abc import Callable

CountCallback = Callable[[int, int], None]
"""Called with (done, total) as work proceeds: sampler steps, segments, examples."""
