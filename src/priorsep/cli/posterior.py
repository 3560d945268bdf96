"""`priorsep train-posterior`: an amortised posterior encoder trained against frozen priors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from priorsep.cli.app import (
    DeviceOption,
    QuietOption,
    ResumeOption,
    RootOption,
    TrainReporter,
    app,
    console,
    notice,
    option_error,
    reports_errors,
)
from priorsep.cli.data_summary import StrictOption, show_summary
from priorsep.cli.train_options import training_options
from priorsep.config import TrainConfig


@app.command("train-posterior")
@reports_errors
@training_options("eval_every")
def train_posterior_command(
    model: Annotated[str, typer.Argument(help="Model id of the (noise-conditioned) priors.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Model folder to write: the priors plus the encoder.")],
    dataset: Annotated[str, typer.Option(
        help="toy, folder (solos mixed on the fly, ROOT/<source>/*.wav), chorales (the same, "
             "from the rendered chorales) or mixes (mix recordings, ROOT/**/*.wav).")] = "toy",
    root: RootOption = None,
    sigma: Annotated[float, typer.Option(help="Noise level the frozen priors condition on.")
                     ] = 0.05,
    gamma: Annotated[float, typer.Option(help="Width of the likelihood of the mix.")] = 0.05,
    layers: Annotated[int, typer.Option(help="WaveNet layers of the encoder.")] = 8,
    width: Annotated[int, typer.Option(help="WaveNet width of the encoder.")] = 48,
    squeezes: Annotated[int, typer.Option(
        help="The encoder reads frames of 2**squeezes samples.")] = 3,
    train_options: dict[str, Any] | None = None,
    strict: StrictOption = False,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Train an amortised posterior q(s | m) against frozen priors, on mixes only (ELBO)."""
    from priorsep.amortised import train_posterior
    from priorsep.api import load_pretrained
    from priorsep.config import PosteriorConfig
    from priorsep.data.datasets import mix_training_data
    from priorsep.devices import resolve_device
    from priorsep.separation.mixing import Mixing

    try:
        posterior_config = PosteriorConfig(squeezes=squeezes, n_layers=layers,
                                           residual_channels=width, skip_channels=width,
                                           sigma=sigma, gamma=gamma)
        train_config = TrainConfig(**train_options)
    except ValueError as error:
        raise option_error(error, {"n_layers": "--layers", "residual_channels": "--width"}
                           ) from None
    priors, priors_info = load_pretrained(model, notify=notice)
    config = priors.config
    data, validation, info = mix_training_data(dataset, root, config.sources,
                                               config.sample_rate, Mixing.from_config(config),
                                               train_config.crop_length, notice,
                                               strict=strict,
                                               on_summary=show_summary(quiet, strict))
    info["training"]["priors"] = str(model)
    with TrainReporter(train_config.steps, quiet, train_config.checkpoint_every,
                       config.sources, loss_name="-ELBO") as reporter:
        train_posterior(priors, posterior_config, train_config, data, out,
                        priors_info=priors_info, resume=resume, device=resolve_device(device),
                        validation=validation, info=info["training"], on_progress=reporter)
    if not quiet:
        console.print(f"wrote {out} (priors + amortised posterior; separate with "
                      f"--model {out} --method posterior)", highlight=False)
