"""Model cards: the README.md of a model folder, as training writes it and as `export` writes
it for the Hub (one writer for both).

The YAML front matter (library name, license, tags, datasets, pipeline tag) is written by
`huggingface_hub.ModelCardData`, so the Hub reads it as it does any other card; training details
and evaluation figures come from `config.json`'s `info`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from huggingface_hub import ModelCardData

from priorsep.config import ModelConfig
from priorsep.layout import BAG_NAME, CONFIG_NAME, FORMAT_VERSION, POSTERIOR_NAME, WEIGHTS_NAME
from priorsep.nn.interface import SourcePrior
from priorsep.nn.registry import build_priors

TAGS = ("audio", "source-separation", "priorsep")
FAMILY_TAGS = {"flowavenet": ("normalizing-flow", "flowavenet"),
               "score": ("score-based", "diffusion"),
               "wavenet": ("autoregressive", "wavenet"),
               "wavetable": ("wavetable", "generator"),
               "nmf": ("nmf", "spectral"),
               "vae": ("vae", "spectral")}
REFERENCES = (
    "FloWaveNet: Kim et al. 2019, *FloWaveNet: A Generative Flow for Raw Audio*, arXiv:1811.02155",
    "BASIS: Jayaram & Thickstun 2020, *Source Separation with Deep Generative Priors*, "
    "arXiv:2002.07942",
    "EDM: Karras et al. 2022, *Elucidating the Design Space of Diffusion-Based Generative "
    "Models*, arXiv:2206.00364",
    "MSDM: Mariani et al. 2024, *Multi-Source Diffusion Models for Simultaneous Music "
    "Generation and Separation*, arXiv:2302.02257",
    "WaveNet: van den Oord et al. 2016, *WaveNet: A Generative Model for Raw Audio*, "
    "arXiv:1609.03499",
    "Wavetables: Shan et al. 2022, *Differentiable Wavetable Synthesis*, arXiv:2111.10003",
    "Composite model: Févotte, Bertin & Durrieu 2009, *Nonnegative Matrix Factorization with "
    "the Itakura-Saito Divergence*, Neural Computation 21(3)",
    "Supervised NMF: Smaragdis, Raj & Shashanka 2007, *Supervised and Semi-Supervised "
    "Separation of Sounds from Single-Channel Mixtures*, ICA",
    "VAE variance models: Bando et al. 2018, *Statistical Speech Enhancement Based on "
    "Probabilistic Integration of Variational Autoencoder and Non-Negative Matrix "
    "Factorization*, ICASSP",
    "MISI: Gunawan & Sen 2010, *Iterative Phase Estimation for the Synthesis of Separated "
    "Sources from Single-Channel Mixtures*, IEEE SPL",
)


def _front_matter(license: str, datasets: Sequence[str], tags: Sequence[str],
                  infos: Sequence[dict[str, Any]], configs: Sequence[ModelConfig]) -> str:
    known = [d for info in infos for d in info.get("datasets", []) if isinstance(d, str)]
    data = ModelCardData(
        library_name="priorsep", license=license, pipeline_tag="audio-to-audio",
        tags=list(dict.fromkeys([*TAGS, *(tag for config in configs
                                          for tag in FAMILY_TAGS.get(config.family, ())),
                                 *tags])),
        datasets=list(dict.fromkeys([*datasets, *known])))
    return f"---\n{data.to_yaml()}\n---\n"


def _usage(repo_id: str | None, n_sources: int) -> list[str]:
    name = repo_id or "OWNER/NAME"
    return [
        "## Usage", "",
        "```bash",
        "pip install priorsep",
        f"priorsep models download {name}        # once, for offline use later",
        f"priorsep separate mix.wav -o separated --model {name}",
        "```", "",
        "```python",
        "from priorsep.hub import load_priors",
        "",
        f'priors = load_priors("{name}")',
        f"score = priors.score(sources, sigma=0.1)  # (batch, {n_sources}, time), "
        "grad log p_sigma",
        "```",
    ]


def family_name(config: ModelConfig) -> str:
    """How a card names the priors' family."""
    return {"flowavenet": "FloWaveNet", "score": "Score-based",
            "wavenet": "Autoregressive WaveNet", "gaussian": "Analytic Gaussian",
            "wavetable": "Wavetable generator", "nmf": "NMF spectral",
            "vae": "Spectral VAE"}.get(
        config.family, config.family)


def _model_table(config: ModelConfig, info: dict[str, Any],
                 priors: SourcePrior | None = None) -> list[str]:
    priors = priors if priors is not None else build_priors(config)  # only to describe it
    field = priors.receptive_field()
    rows = [
        ("sources", ", ".join(config.sources)),
        ("sample rate", f"{config.sample_rate} Hz"),
        ("architecture", priors.summary()),
        ("receptive field", f"{field} samples ({1000 * field / config.sample_rate:.0f} ms)"),
        ("layout", "one grouped module" if config.grouped else "one module per source"),
        ("parameters", f"{info['parameters']:,}" if "parameters" in info else "unknown"),
        ("noise levels trained on",
         f"sigma in [{config.trained_sigma_min}, {config.trained_sigma_max}]"),
        ("mixing", config.mixing if config.gains is None
         else f"{config.mixing} {list(config.gains)}"),
        ("files", f"`{CONFIG_NAME}` (format version {FORMAT_VERSION}), `{WEIGHTS_NAME}`"),
    ]
    return ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)]


def _details(info: dict[str, Any], level: str = "##") -> list[str]:
    """The training and evaluation sections of a card, from config.json's `info`."""
    lines: list[str] = []
    training = info.get("training") or {}
    lines += ["", f"{level} Training", ""]
    if training:
        lines += [f"- {key}: {value}" for key, value in training.items()]
    else:
        lines += ["No training details were recorded with these weights."]
    for title, key in (("Trained before fine-tuning", "base training"),
                       ("Separation defaults", "separation")):  # older folders' info
        if isinstance(info.get(key), dict) and info[key]:
            lines += ["", f"{level} {title}", ""]
            lines += [f"- {name}: {value}" for name, value in info[key].items()]
    if isinstance(info.get("posterior"), dict):
        lines += ["", f"{level} Amortised posterior", "", *_posterior_lines(info["posterior"])]
    evaluation = info.get("evaluation") or {}
    lines += ["", f"{level} Evaluation", ""]
    bullets = [f"- {key}: {value}" for key, value in evaluation.items()
               if not isinstance(value, dict)]
    tables = [["| | " + " | ".join(map(str, value)) + " |", "|---|" + "---:|" * len(value),
               f"| {key} | " + " | ".join(map(str, value.values())) + " |"]
              for key, value in evaluation.items() if isinstance(value, dict)]
    blocks = ([bullets] if bullets else []) + tables  # a figure per source: a one-row table
    for index, block in enumerate(blocks):
        lines += ([""] if index else []) + block
    if not blocks:
        lines += ["No evaluation figures were recorded with these weights."]
    return lines


def _posterior_lines(posterior: dict[str, Any]) -> list[str]:
    """Model-card lines of the encoder stored in `posterior.safetensors`."""
    arch = posterior.get("config", {})
    lines = [
        f"- `{POSTERIOR_NAME}`: a WaveNet encoder q(s | m) on frames of "
        f"{2 ** arch.get('squeezes', 0)} samples, {arch.get('n_layers')} layers, width "
        f"{arch.get('residual_channels')}, {posterior.get('parameters', '?')} parameters; "
        f"trained on mixes only, priors frozen at sigma = {arch.get('sigma')}, "
        f"likelihood width gamma = {arch.get('gamma')}",
        "- use: the `posterior` method (one forward pass) or `posterior+langevin` "
        "(the encoder's estimate refined by Langevin)",
    ]
    for name, value in posterior.items():
        if name in ("config", "parameters"):
            continue
        if isinstance(value, dict):
            lines += [f"- {name}: " + "; ".join(f"{k}: {v}" for k, v in value.items())]
        else:
            lines += [f"- {name}: {value}"]
    return lines


def model_card(config: ModelConfig, info: dict[str, Any], *, title: str = "priorsep priors",
               repo_id: str | None = None, license: str = "mit", datasets: Sequence[str] = (),
               tags: Sequence[str] = (), priors: SourcePrior | None = None) -> str:
    """The README.md of one model folder (as training writes it, or exported for the Hub):
    front matter, usage, model, training, evaluation.

    Args:
        title: the heading when `info` has no "name".
        repo_id: the Hub repo the folder is for (usage lines; OWNER/NAME when unknown).
        license, datasets, tags: for the front matter (datasets also from info["datasets"]).
        priors: the priors themselves, when at hand (else built from `config` to describe them).
    """
    lines = [
        _front_matter(license, datasets, tags, [info], [config]),
        f"# {info.get('name', title)}", "",
        f"{family_name(config)} source priors for **{', '.join(config.sources)}** at "
        f"{config.sample_rate} Hz, for unsupervised source separation with `priorsep`. Each "
        "source has its own prior, learned from solo recordings of that source only; a mix "
        + ("is separated by extracting its sources one at a time, the best-explaining class "
           "first (`--method extract`)." if config.family == "wavetable" else
           "is separated by the posterior mean under the Gaussian composite model: each "
           "source's spectral variances are fitted to the mix and each source is its Wiener "
           "share of it (`--method wiener`)." if config.family in ("nmf", "vae") else
           "is separated by sampling the sources from the posterior under the mix."), "",
        *_usage(repo_id, len(config.sources)), "",
        "## Model", "",
        *_model_table(config, info, priors),
        *_details(info),
        "", "## References", "",
        *(f"- {reference}" for reference in REFERENCES),
    ]
    return "\n".join(lines).rstrip() + "\n"


def bag_card(config: ModelConfig, sources: Sequence[tuple[str, int]],
             sections: Sequence[tuple[str, str, ModelConfig, dict[str, Any]]], *, title: str,
             repo_id: str | None, license: str, datasets: Sequence[str],
             tags: Sequence[str]) -> str:
    """The README.md of an exported combination: one section per part (subfolder).

    Args:
        config: the combination's configuration.
        sources: per source of the combination, in order: (name, index of its part).
        sections: per part, in order: (subfolder, where it came from, config, info).
    """
    lines = [
        _front_matter(license, datasets, tags, [info for *_, info in sections],
                     [config for _, _, config, _ in sections]),
        f"# {title}", "",
        f"Source priors for **{', '.join(config.sources)}** at "
        f"{config.sample_rate} Hz, gathered from {len(sections)} models, for unsupervised "
        f"source separation with `priorsep`. `{BAG_NAME}` names the subfolder of each source; "
        "every subfolder is a complete model folder.", "",
        *_usage(repo_id, len(config.sources)), "",
        "## Sources", "",
        "| source | folder | exported from |", "|---|---|---|",
    ]
    for name, part in sources:
        folder, origin, _, _ = sections[part]
        lines.append(f"| {name} | `{folder}/` | {origin} |")
    for folder, _, part_config, info in sections:
        lines += ["", f"## `{folder}/`", "", *_model_table(part_config, info),
                  *_details(info, level="###")]
    lines += ["", "## References", "", *(f"- {reference}" for reference in REFERENCES)]
    return "\n".join(lines).rstrip() + "\n"
