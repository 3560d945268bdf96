"""Neural building blocks: the WaveNet coupling network, the flow layers and the source priors."""
