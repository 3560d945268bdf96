"""The options of `priorsep` itself, before any command: `--version` and `--list-models`."""

from __future__ import annotations

from typing import Annotated

import typer

from priorsep.cli.app import app
from priorsep.cli.models import show_models


def _version(value: bool) -> None:
    if value:
        from priorsep import __version__

        print(f"priorsep {__version__}")
        raise typer.Exit()


def _list_models(value: bool) -> None:
    if value:
        show_models()
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False,
    list_models: Annotated[bool, typer.Option(
        "--list-models", callback=_list_models, is_eager=True,
        help="List the bundled and cached models (as `priorsep models`) and exit.")] = False,
) -> None:
    """Source separation without (mix, sources) pairs: a generative prior per source class,
    learnt from its solo recordings (spectral models, generators, flows, WaveNets or score
    models)."""
