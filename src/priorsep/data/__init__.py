"""Datasets of solo sources (for training priors) and of mixes (for evaluation)."""
