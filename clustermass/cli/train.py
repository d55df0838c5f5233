"""`cmcat train`, `cmcat evaluate`, `cmcat models list`, `cmcat learning-curve`: the two-stage CNN."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from clustermass.cli._common import MAX_SEED, STATE, app, check_device, console, emit_json, progress, table
from clustermass.cli.choices import Device, Source, Stage
from clustermass.errors import InputError

models_app = typer.Typer(help="The model registry: trained models, their metrics and weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")



@contextmanager
def _progress_fn(enabled: bool = True) -> Iterator[Any]:
    """A callback on_progress(stage, step, total, info) that drives one Rich bar per stage."""
    if not enabled:
        yield None
        return
    with progress() as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, step: int, total: int, info: dict) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=step, total=total)

        yield update


@app.command("train")
def train(
    stage: Stage = typer.Option("all", "--stage", help="1 (band classifier), 2 (mass models on the newest/--trunk classifier) or all."),
    config: str = typer.Option("quick", "--config", help="Training config: quick, full, bcg (quick + BCG profile fits) or a TOML file."),
    device: Device = typer.Option("cpu", "--device", help="cpu or cuda."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of sampling, folds, initialisation and augmentation."),
    source: Source = typer.Option("mock", "--source", help="Where cutouts come from when not in the store: mock, local or sas."),
    frames: Optional[Path] = typer.Option(None, "--frames", help="Frame mirror folder for --source local."),
    universe: Optional[Path] = typer.Option(None, "--universe", help="Mock universe folder for --source mock."),
    mock_seed: int = typer.Option(0, "--mock-seed", min=0, max=MAX_SEED, help="Seed of the mock renderer (--source mock)."),
    trunk: Optional[str] = typer.Option(None, "--trunk", help="Band-classifier model for stage 2 (default: the one stage 1 just made, or the newest)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's choice)."),
    json_out: bool = typer.Option(False, "--json", help="Print the registered models as JSON."),
) -> None:
    """Train the band classifier (stage 1) and/or the k-fold CNN, hybrid and richness models (stage 2).

    Rerunning with the same data, config and seed finds the registered models instead of training again.
    """
    from clustermass.jobs.tiles import SourceChoice
    from clustermass.jobs.train import train_models
    from clustermass.model.trainconfig import load_train_config
    from clustermass.model.workflow import check_stage2

    check_device(device)
    check_stage2(load_train_config(config).stage2)  # a bad config: refused before the database starts
    chosen = SourceChoice(source, frames and str(frames), universe and str(universe), mock_seed)
    with _progress_fn(not json_out) as on_progress:
        done = train_models(STATE.database(), STATE.settings, stage, config, seed, chosen, trunk=trunk, device=device,
                            threads=threads, on_progress=on_progress)
    if json_out:
        emit_json(done.as_dict())
        return
    rows = [(r["id"], r["name"], r["kind"], "trained" if r["trained"] else "existing",
             r["band_accuracy"] if r["kind"] == "band-classifier" else r["mae"], r["n_labels"] or r["n_clusters"])
            for r in done.models]
    console.print(table("models", ["id", "name", "kind", "status", "band acc. / CV MAE [dex]", "clusters"], rows))
    console.print(f"config {done.config}, seed {seed}, {done.seconds:.0f} s. Compare them with `cmcat evaluate {done.models[-1]['name']}`.")


@app.command("evaluate")
def evaluate(
    model: str = typer.Argument(..., help="Model id, name or kind (newest of that kind)."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Mock truth table (CSV/Parquet) to score against true masses too."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the PNG plots (default: the output dir)."),
    detail: bool = typer.Option(False, "--detail", help="Show per-fold and per-source rows too."),
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON."),
) -> None:
    """Richness baseline vs CNN vs hybrid on the same folds: MAE, bias, NMAD, outliers, error coverage; PNG plots."""
    from clustermass.model import workflow
    from clustermass.mock.version import MOCK_VERSION
    from clustermass.model.truth import truth_of_clusters

    engine, settings = STATE.database(), STATE.settings
    truth_df = truth_of_clusters(engine, truth, MOCK_VERSION) if truth else None
    res = workflow.evaluate_model(engine, settings, model, out or settings.output_dir, truth_df)
    if json_out:
        emit_json({"models": res["models"], "band_accuracy": res["band_accuracy"],
                   "reference_band_accuracy": res["reference_band_accuracy"], "plots": res["plots"],
                   "rows": res["table"].to_dict(orient="records")})
        return
    _show_evaluation(res, detail)


def _show_evaluation(res: dict[str, Any], detail: bool) -> None:
    """The text tables of `cmcat evaluate`."""
    from clustermass.model.evaluate import COVERAGE_SUBSETS, UNLABELLED

    tab = res["table"]
    shown = tab if detail else tab[tab["subset"] == "all"]
    cols = ["model", "subset", "reference", "n", "mae", "bias", "nmad", "outlier_frac"]
    console.print(table("cross-validated scores (dex; outliers: |error| > 0.3 dex)", cols, shown[cols].itertuples(index=False)))
    gain = tab[(tab["subset"] == "all") & tab["ratio"].notna() & (tab["model"] != "richness")]
    console.print(table(
        "MAE ratio to richness and G, the fraction of the oracle's gain over richness (paired bootstrap "
        "intervals over clusters; '-': no oracle, or its gain <= 0)",
        ["model", "reference", "ratio [95%]", "G", "G 68%", "G 95%", "resamples with oracle gain <= 0"],
        [(r.model, r.reference, f"{r.ratio:.3f} {_ci(r.ratio_ci95)}", _num(r.gain), _ci(r.gain_ci68), _ci(r.gain_ci95),
          "-" if _num(r.gain_nonpositive) == "-" else int(r.gain_nonpositive)) for r in gain.itertuples(index=False)],
    ))
    _unlabelled(tab[tab["subset"] == UNLABELLED])
    cov = tab[tab["subset"].isin(COVERAGE_SUBSETS)]
    console.print(table(
        "error coverage: share of references within 1 / 1.96 x the error (against labels, combined with the "
        "label's error), binomial 95% interval, ok where it holds 68.3% / 95%",
        ["model", "reference", "subset", "n", "within 1 sigma", "within 1.96 sigma"],
        [(r.model, r.reference, r.subset, r.n, _coverage_cell(r.coverage68, r.coverage68_ci, 68),
          _coverage_cell(r.coverage95, r.coverage95_ci, 95)) for r in cov.itertuples(index=False)],
    ))
    if res["band_accuracy"] is not None:
        ref = res["reference_band_accuracy"]
        console.print(f"stage-1 held-out band accuracy: {res['band_accuracy']:.1%}"
                      + ("" if ref is None else f" (summary-statistics reference classifier: {ref:.1%})"))
    for p in res["plots"]:
        console.print(f"plot: {p}")


def _unlabelled(rows: Any) -> None:
    """The unlabelled clusters' table of `evaluate --truth` (none: nothing printed)."""
    if rows.empty:
        return
    console.print(table(
        "the catalogue's unlabelled clusters against the mock's true masses (image models: the masses `cmcat "
        "predict` wrote; '<kind> population': population_log10_m500); bias = median(predicted - true)",
        ["model", "n", "mae", "bias", "nmad", "within 1 sigma", "within 1.96 sigma"],
        [(r.model, r.n, f"{r.mae:.3f}", f"{r.bias:+.3f}", f"{r.nmad:.3f}", _coverage_cell(r.coverage68, r.coverage68_ci, 68),
          _coverage_cell(r.coverage95, r.coverage95_ci, 95)) for r in rows.itertuples(index=False)],
    ))


def _size_list(sizes: str) -> list[int]:
    """The numbers of labelled clusters of `--sizes` ('25,50,100'); ValueError unless all are >= 1."""
    out = [int(s) for s in sizes.split(",") if s.strip()]
    if not out or min(out) < 1:
        raise ValueError(sizes)
    return out


def _check_sizes(sizes: str) -> str:
    """Option callback: a bad --sizes is a usage error (exit code 2)."""
    try:
        _size_list(sizes)
    except ValueError:
        raise typer.BadParameter(f"give comma-separated numbers of clusters >= 1 (e.g. 25,50,100), not {sizes!r}") from None
    return sizes


def _num(value: float | None) -> str:
    """A figure to 3 decimals, '-' where undefined."""
    return "-" if value is None or value != value else f"{value:.3f}"


def _ci(ci: list[float] | None) -> str:
    """'[lo, hi]' to 3 decimals, '-' where undefined."""
    return "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _coverage_cell(frac: float, ci: list[float], level: int) -> str:
    """'68.2% [63.6, 72.5] ok' (or 'MISS' where the interval misses the nominal coverage)."""
    from clustermass.model.calibration import passes

    if frac != frac:  # NaN: no errors
        return "-"
    return f"{frac:.1%} [{ci[0]:.1%}, {ci[1]:.1%}] {'ok' if passes(ci[0], ci[1], level) else 'MISS'}"


@app.command("learning-curve")
def learning_curve(
    model: str = typer.Option("hybrid", "--model", help="A stage-2 model whose trunk, config and seed to use."),
    sizes: str = typer.Option(
        "25,50,100,200,400", "--sizes", callback=_check_sizes, help="Comma-separated numbers of labelled clusters."
    ),
    source: Source = typer.Option("mock", "--source", help="Where cutouts come from when not in the store."),
    frames: Optional[Path] = typer.Option(None, "--frames", help="Frame mirror folder for --source local."),
    universe: Optional[Path] = typer.Option(None, "--universe", help="Mock universe folder for --source mock."),
    mock_seed: int = typer.Option(0, "--mock-seed", min=0, max=MAX_SEED, help="Seed of the mock renderer."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path (default: output dir/learning-curve.png)."),
    device: Device = typer.Option("cpu", "--device", help="cpu or cuda (features, and fine-tuning if the config asks)."),
    json_out: bool = typer.Option(False, "--json", help="Print the curve as JSON."),
) -> None:
    """Cross-validated MAE vs number of labelled clusters: richness vs CNN vs hybrid, as a table and plot."""
    from clustermass.model import registry, workflow
    from clustermass.model.data import fine_images_fn, source_images_fn
    from clustermass.pipeline.sources import check_frames_indexed, make_source, source_options

    size_list = _size_list(sizes)
    check_device(device)
    engine, settings = STATE.database(), STATE.settings
    record = registry.get_model(engine, model)
    if record.kind not in ("cnn", "hybrid"):
        raise InputError(f"--model must be a cnn or hybrid model, {record.name!r} is {record.kind!r}")
    cfg = record.train_config
    trunk = registry.get_model(engine, record.training["trunk_model"])
    opts = source_options(source, frames, universe, mock_seed)
    check_frames_indexed(engine, source)
    with _progress_fn(not json_out) as on_progress:
        src = make_source(engine, settings, source, opts)
        images_fn = source_images_fn(engine, settings, record.grid, src, on_progress)
        fine_fn = fine_images_fn(cfg.stage2.photometry, src)
        data = workflow.labelled_features(engine, settings, trunk, cfg, images_fn, device, fine_fn)
        curve = workflow.learning_curve(data, cfg.stage2, size_list, int(record.config["seed"]), on_progress,
                                        device, cfg.tta)
    path = workflow.save_learning_curve(curve, out or settings.output_dir / "learning-curve.png")
    if json_out:
        emit_json({"curve": curve.to_dict(orient="records"), "plot": path})
        return
    console.print(table("cross-validated MAE [dex] vs labelled clusters", list(curve.columns), curve.itertuples(index=False)))
    console.print(f"plot: {path}")


@models_app.command("list")
def list_models(
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind (band-classifier, cnn, hybrid, richness)."),
    json_out: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """Registered models with their kind, headline metric and training data."""
    from clustermass.model import registry

    models = [m.summary() for m in registry.list_models(STATE.database(), kind)]
    if json_out:
        emit_json(models)
        return
    rows = [(m["id"], m["name"], m["kind"], m["created"].strftime("%Y-%m-%d %H:%M") if m["created"] else None,
             m["band_accuracy"] if m["kind"] == "band-classifier" else m["mae"], m["n_labels"] or m["n_clusters"],
             (m["git_commit"] or "")[:8]) for m in models]
    console.print(table("models", ["id", "name", "kind", "created", "band acc. / CV MAE [dex]", "clusters", "commit"], rows))
    if not models:
        console.print("no models yet: train with `cmcat train`")
