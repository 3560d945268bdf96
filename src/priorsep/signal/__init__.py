"""Signal processing shared by the spectral families and their separation method.

`transforms`: the STFT analysis/synthesis pair (one place, with its exact-reconstruction test);
`filtering`: the Wiener filter of the Gaussian composite model and MISI phase reconstruction,
functions of tensors. Models never build their own STFT.
"""
