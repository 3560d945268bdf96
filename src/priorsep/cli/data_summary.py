"""How the training commands show the data they checked: a line per skipped file, a table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from priorsep.cli.app import console, notice

if TYPE_CHECKING:  # the data checks import torch: not at start-up (`priorsep --version`)
    from priorsep.data.check import DataSummary

StrictOption = Annotated[bool, typer.Option(
    "--strict", help="Refuse to train when a data file is unusable (unreadable, NaN or "
                     "infinite samples, entirely silent, shorter than one crop) instead of "
                     "skipping it with a warning.")]


def summary_table(summary: DataSummary) -> Table:
    """Per source: files, duration, sample rates, channels, and what was skipped."""
    from priorsep.data.check import channel_name, format_duration

    title = f"{summary.dataset} data" + (f" in {summary.root}" if summary.root else "")
    view = Table(title=title, title_justify="left")
    for column in ("source", "files", "duration", "rates (Hz)", "channels", "skipped"):
        view.add_column(column, justify="right" if column in ("files", "duration") else "left")
    for source in summary.sources:
        skipped = ", ".join(f"{count} {reason}"
                            for reason, count in source.skipped_counts().items())
        view.add_row(
            source.name, "-" if source.generated else str(source.files),
            "on the fly" if source.generated else format_duration(source.seconds),
            ", ".join(map(str, source.sample_rates)) or "-",
            ", ".join(channel_name(n) for n in source.channels) or "-", skipped or "-")
    return view


def show_summary(quiet: bool, strict: bool) -> Callable[[DataSummary], None]:
    """A callback for `training_data`: a line per unusable file (also with --quiet: these
    are warnings), a note per source with files at full scale, then the table (not with
    --quiet)."""
    label = "[red]unusable:[/red]" if strict else "[yellow]skipped:[/yellow]"

    def show(summary: DataSummary) -> None:
        for problem in summary.skipped:
            console.print(f"{label} {problem}", highlight=False, soft_wrap=True)
        for source in summary.sources:
            if source.ignored and source.usable:
                notice(f"{source.name}: ignored {len(source.ignored)} entry(ies) that are not "
                       f"audio files directly in {source.folder}: "
                       + ", ".join(source.ignored[:3]) + (", ..." if len(source.ignored) > 3
                                                          else ""))
            if source.full_scale:
                notice(f"{source.name}: {len(source.full_scale)} file(s) reach full scale "
                       f"(clipped?), e.g. {source.full_scale[0]}; they are used")
        if not quiet:
            console.print(summary_table(summary), highlight=False)

    return show
