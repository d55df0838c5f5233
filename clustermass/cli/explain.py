"""`cmcat explain`: which pixels drive a cluster's predicted mass (IG x Grad-CAM), one or many."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from clustermass.cli._common import MAX_SEED, STATE, app, console, emit_json, print_failures, progress, table, tile_progress
from clustermass.cli.choices import Source
from clustermass.errors import InputError


@app.command("explain")
def explain(
    cluster: Optional[str] = typer.Argument(None, help="Cluster id or exact name (leave out with --tiles)."),
    model: str = typer.Option("cnn", "--model", help="Model id, name, or kind (newest cnn or hybrid)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <data dir>/output/explain)."),
    tiles: Optional[str] = typer.Option(
        None, "--tiles", help="Batch mode: HEALPix tiles ORDER or ORDER:PIX,PIX; explains every cluster there, on Dask."
    ),
    summary: bool = typer.Option(False, "--summary", help="Batch mode: print the enrichment summary and plot it vs mass and z."),
    source: Source = typer.Option("mock", "--source", help="Where missing cutouts come from: mock, local or sas."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frame mirror folder for --source local."),
    universe: Optional[str] = typer.Option(None, "--universe", help="Mock universe folder (its truth gives member positions)."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of the mock renderer (--source mock)."),
    radius: float = typer.Option(1.5, "--radius", min=0.5, help="Pixels around each member's centre counted as member pixels."),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Explain the mean over the 8 rotations/flips (8x slower)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Batch mode: worker processes (default: setting `workers`)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Batch mode: address of a running Dask scheduler."),
    rerun: bool = typer.Option(False, "--rerun", help="Batch mode: recompute every tile in a new run."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Explain predicted masses: integrated gradients of the mass through the frozen trunk, Grad-CAM
    of the band classifier, and their joint map.

    One cluster: writes a PNG (colour composite, joint map over it, per-band maps; predicted and
    labelled masses in the title) and the raw maps as .npz. With --tiles: every cluster of the
    tiles on Dask; with the mock source, the enrichment of attribution on member and BCG pixels
    from the truth (plotted vs mass and redshift with --summary).
    """
    from clustermass.jobs.explain import ExplainSettings, explain_cluster, explain_tiles
    from clustermass.jobs.tiles import RunOptions, SourceChoice
    if (cluster is None) == (tiles is None):
        raise InputError("give a CLUSTER (id or name) or --tiles SPEC, not both and not neither")
    engine, settings = STATE.database(), STATE.settings
    how = ExplainSettings(model, SourceChoice(source, frames, universe, seed), radius, tta)
    out_dir = (out or settings.output_dir / "explain").resolve()
    if cluster is not None:
        with progress(transient=True) as bar:
            task = bar.add_task("loading model and cutout", total=3)
            one = explain_cluster(engine, settings, cluster, how, out_dir, lambda step: bar.update(task, advance=1, description=step))
            bar.update(task, advance=1)
        return _render(one.as_dict(), f"explain cluster {one.cluster_id} ({one.name})", json_out, ("cluster_id", "name"))
    with tile_progress() as on_progress:
        many = explain_tiles(engine, settings, tiles, how, out_dir, summary=summary, options=RunOptions(scheduler, workers, rerun), on_progress=on_progress)
    _render(many.as_dict(), f"explain run {many.run.run_id}", json_out, run=many.run)
    if many.run.status != "done":
        raise typer.Exit(1)


def _render(result: dict, title: str, json_out: bool, hidden: tuple[str, ...] = (), run: Any = None) -> None:
    """The result as JSON or a two-column table (without `hidden` keys), then a run's failed tiles."""
    if json_out:
        emit_json(result)
        return
    console.print(table(title, ["", ""], [(k, v) for k, v in result.items() if k not in hidden]))
    if run is not None:
        print_failures("explain", run, resume=False)
