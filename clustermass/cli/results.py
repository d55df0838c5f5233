"""`cmcat sql`, `cmcat export`, `cmcat plot ...`: reading the results."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Optional

import typer

from clustermass.cli._common import STATE, app, console, emit_json, err_console, table
from clustermass.cli.choices import Format

plot_app = typer.Typer(help="PNG plots of the predictions (sky map, mass vs richness).", no_args_is_help=True)
app.add_typer(plot_app, name="plot")


def _timeout_option(value: Optional[float]) -> Optional[float]:
    """--timeout: a number of seconds within config.SQL_TIMEOUT_RANGE_S, else a usage error (exit 2)."""
    from clustermass.config import check_sql_timeout

    try:
        return None if value is None else check_sql_timeout(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("sql")
def sql(
    query: str = typer.Argument(..., help='One read-only statement, e.g. "SELECT count(*) FROM predictions".'),
    csv_out: bool = typer.Option(False, "--csv", help="Print CSV (with a header) instead of a table."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list of row objects."),
    max_rows: int = typer.Option(10000, "--max-rows", min=1, help="Stop after this many rows (a note says when more exist)."),
    timeout: Optional[float] = typer.Option(
        None, "--timeout", callback=_timeout_option, help="Statement timeout, seconds (default: sql_timeout, 30)."
    ),
) -> None:
    """Run one read-only SQL query (READ ONLY transaction, statement timeout `sql_timeout`).

    Tables: clusters, catalogs, mass_measurements, labels, cutouts, models, predictions, runs,
    run_tiles. Writes, DDL and ';'-chained statements are refused; the query runs as a role that
    can only read them (cmcat_reader, or CMCAT_SQL_DATABASE_URL). Examples in docs/pipeline.md.
    """
    from clustermass.db.reader import sql_url
    from clustermass.results.sql import run_read_only

    settings = STATE.settings
    res = run_read_only(sql_url(settings), query, timeout or settings.sql_timeout, max_rows, warn=_warn)
    if json_out:
        emit_json([dict(zip(res.columns, r)) for r in res.rows])
    elif csv_out:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(res.columns)
        writer.writerows(res.rows)
    else:
        console.print(table(f"{len(res.rows)} row(s)", res.columns, res.rows))
    if res.truncated:
        typer.echo(f"note: output stopped at {max_rows} rows (--max-rows); add LIMIT/WHERE or raise it", err=True)


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def _model(engine, ref: str) -> dict:
    from clustermass.model.registry import get_model

    rec = get_model(engine, ref)
    return {"id": rec.id, "name": rec.name, "kind": rec.kind}


@app.command("export")
def export(
    out: Path = typer.Argument(..., help="Output path: a folder for parquet and hats, a file for fits/csv."),
    model: str = typer.Option(..., "--model", help="Model id, name or kind (newest of that kind)."),
    fmt: Format = typer.Option(
        "parquet", "--format", help="parquet (folder partitioned Norder=k/Dir=d/Npix=p), hats (a HATS catalogue LSDB "
        "opens), fits or csv.",
    ),
    order: int = typer.Option(3, "--order", min=0, max=12, help="HEALPix order of the parquet or HATS partitions."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Export a model's predicted masses with cluster positions, z, richness and any X-ray/SZ label."""
    from clustermass.results.export import export_predictions

    engine = STATE.database()
    with engine.connect() as conn:
        summary = export_predictions(conn, _model(engine, model), fmt, out, order)
    if json_out:
        emit_json(summary)
    else:
        extra = f" in {summary['tiles']} tiles (order {order})" if "tiles" in summary else ""
        console.print(f"exported {summary['rows']} predictions of model [bold]{summary['model']}[/bold] to {out}{extra}")


def _frame(engine, ref: str):
    from clustermass.errors import InputError
    from clustermass.results.export import predictions_frame

    model = _model(engine, ref)
    with engine.connect() as conn:
        df = predictions_frame(conn, model["id"])
    if df.empty:
        raise InputError(f"model {model['name']!r} has no predictions; run `cmcat predict --model {model['name']}` first")
    return model, df


def _out(path: Optional[Path], name: str) -> Path:
    return path or STATE.settings.output_dir / name


@plot_app.command("skymap")
def skymap(
    model: str = typer.Option("hybrid", "--model", help="Model id, name or kind (default: the newest hybrid model)."),
    value: str = typer.Option("mass", "--value", help="mass (mean predicted log10 M500 per pixel) or count."),
    order: int = typer.Option(4, "--order", min=0, max=10, help="HEALPix order of the map pixels."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path (default: output dir/skymap-MODEL-VALUE.png)."),
) -> None:
    """Healpy Mollweide map of predicted masses or cluster counts."""
    from clustermass.plots.results import plot_skymap

    model_d, df = _frame(STATE.database(), model)
    path = plot_skymap(df, _out(out, f"skymap-{model_d['name']}-{value}.png"), value, order)
    console.print(f"wrote {path} ({len(df)} clusters)")


@plot_app.command("mass-richness")
def mass_richness(
    model: str = typer.Option("hybrid", "--model", help="Model id, name or kind (default: the newest hybrid model)."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG path (default: output dir/mass-richness-MODEL.png)."),
) -> None:
    """Predicted log10 M500 vs richness, coloured by redshift (measured masses circled)."""
    from clustermass.plots.results import plot_mass_richness

    model_d, df = _frame(STATE.database(), model)
    path = plot_mass_richness(df, _out(out, f"mass-richness-{model_d['name']}.png"))
    console.print(f"wrote {path} ({len(df)} clusters)")
