"""Separation: mixing functions, the Langevin posterior sampler and overlap-add over long audio."""
