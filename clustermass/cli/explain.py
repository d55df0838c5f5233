"""`cmcat explain`: which pixels drive a cluster's predicted mass (IG x Grad-CAM), one or many."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clustermass.cli._common import MAX_SEED, STATE, app, console, emit_json, progress, table, tile_progress
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
    source: str = typer.Option("mock", "--source", help="Where missing cutouts come from: mock, local or sas."),
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
    from clustermass.pipeline.sources import check_frames_indexed, source_options
    from clustermass.db import migrate

    if (cluster is None) == (tiles is None):
        raise InputError("give a CLUSTER (id or name) or --tiles SPEC, not both and not neither")
    settings = STATE.settings
    engine = STATE.engine()
    migrate.upgrade(engine)
    opts = source_options(source, frames, universe, seed)
    check_frames_indexed(engine, source)
    out_dir = (out or settings.output_dir / "explain").resolve()
    if cluster is not None:
        _explain_single(engine, settings, cluster, model, out_dir, source, opts, radius, tta, json_out)
    else:
        _explain_tiles(engine, settings, tiles, model, out_dir, source, opts, radius, tta, workers, scheduler, rerun,
                       summary, json_out)


def _explain_single(engine, settings, ref, model_ref, out_dir, source, opts, radius, tta, json_out) -> None:
    from clustermass.images.base import BANDS
    from clustermass.model.preprocess import colour_composite
    from clustermass.plots.explain import plot_explanation
    from clustermass.pipeline.explain import explain_one, find_cluster, load_explain_model, save_maps
    from clustermass.db.engine import resolve_url
    from clustermass.pipeline.sources import image_source

    with progress(transient=True) as bar:
        task = bar.add_task("loading model and cutout", total=3)
        model = load_explain_model(engine, settings, model_ref, tta)
        row = find_cluster(engine, ref)
        src = image_source(source, resolve_url(settings), settings, opts)
        bar.update(task, advance=1, description="integrated gradients + Grad-CAM")
        ce = explain_one(engine, settings, model, row, src, radius)
        bar.update(task, advance=1, description="writing PNG and maps")
        c, s, e = ce.cluster, ce.scores, ce.explanation
        stem = f"explain-{int(c['id'])}-model{model.model_id}"
        png = plot_explanation(
            colour_composite(ce.image), e.joint, e.ig.attributions, e.cam, out_dir / f"{stem}.png",
            title=f"{c['name'] or c['id']} (id {c['id']}, z={c['z']:.3f}, lambda={c['richness']:.1f}), model {model.name}",
            predicted=s["log10_m500_pred"], labelled=s["log10_m500_label"], true=s["log10_m500_true"],
            members_xy=ce.members_xy, bands=BANDS,
        )
        npz = save_maps(ce, out_dir / f"{stem}.npz")
        bar.update(task, advance=1)
    result = {"cluster_id": int(c["id"]), "name": c["name"], "model": model.name, "png": png, "npz": npz,
              **{k: (None if isinstance(v, float) and v != v else v) for k, v in s.items()}}
    if json_out:
        emit_json(result)
        return
    rows = [(k, v) for k, v in result.items() if k not in ("cluster_id", "name")]
    console.print(table(f"explain cluster {c['id']} ({c['name']})", ["", ""], rows))


def _explain_tiles(engine, settings, tiles, model_ref, out_dir, source, opts, radius, tta, workers, scheduler, rerun,
                   summary, json_out) -> None:
    from clustermass import sky
    from clustermass.plots.explain import plot_enrichment
    from clustermass.model.registry import get_model
    from clustermass.pipeline.explain import explain_tile, read_results, summarise
    from clustermass.pipeline.runner import run_tiles
    from clustermass.pipeline.worker import torch_threads_for, worker_settings

    try:
        spec = sky.parse_tiles(tiles)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    model_id = get_model(engine, model_ref).id
    n_workers = workers or settings.workers
    ident = {"model_id": model_id, "source": source, "source_options": opts, "radius": radius, "tta": tta,
             "out": str(out_dir)}
    args = {**ident, "settings": worker_settings(settings),
            "torch_threads": torch_threads_for(scheduler, n_workers)}
    with tile_progress() as on_progress:
        run = run_tiles(settings, "explain", spec, explain_tile, args, identity=ident, model_id=model_id,
                        scheduler=scheduler, workers=n_workers, rerun=rerun, on_progress=on_progress)
    results = read_results(out_dir, run.run_id)
    result = {"run_id": run.run_id, "status": run.status, "tiles": run.n_tiles, "tiles_failed": run.n_tiles_failed,
              "n_explained": len(results), "results": out_dir / f"run-{run.run_id}"}
    if summary:
        result.update(summarise(results))
        if len(results):
            result["plot"] = plot_enrichment(results, out_dir / f"run-{run.run_id}" / "enrichment.png")
    if json_out:
        emit_json(result)
    else:
        console.print(table(f"explain run {run.run_id}", ["", ""], list(result.items())))
        for f in run.failures[:10]:
            console.print(f"[red]tile {f['norder']}/{f['npix']} failed:[/red] {f['error']}", highlight=False)
    if run.status != "done":
        raise typer.Exit(1)
