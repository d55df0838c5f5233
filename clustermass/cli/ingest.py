"""`cmcat ingest ...`, `cmcat crossmatch`, `cmcat baseline`, `cmcat status`: catalogues and labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer

from clustermass.cli._common import MAX_SEED, STATE, app, console, emit_json, progress, table
from clustermass.cli.choices import MassUnit, Method

if TYPE_CHECKING:
    from clustermass.catalogs.readers import Mapping

ingest_app = typer.Typer(
    help="Load a catalogue file (FITS, CSV, CSV.gz or Parquet) into the database. "
    "Loading the same file the same way again changes nothing; another --hdu or --name is another catalogue; "
    "another --mass-unit or --method needs --replace, which reloads it.",
    no_args_is_help=True,
)
app.add_typer(ingest_app, name="ingest")

FILE = typer.Argument(..., metavar="FILE", help="Catalogue file: FITS, CSV, CSV.gz or Parquet (format detected from its content).")
NAME = typer.Option(None, "--name", help="Catalogue name (default: the file name without extensions).")
REPLACE = typer.Option(
    False, "--replace",
    help="Reload the catalogue from this file with these options (rows upserted, stale rows removed, one transaction).",
)
SKIP_BAD = typer.Option(
    False, "--skip-bad", help="Load the valid rows; write the rejected ones with reasons to NAME.rejected.csv beside "
    "the input (or in the data dir if that folder is read-only).",
)
HDU = typer.Option(None, "--hdu", help="FITS extension name or number (default: the usual one, else the first table).")
MASS_UNIT = typer.Option("1e14msun", "--mass-unit", help="Unit of the mass columns: 1e14msun, 1e15msun, msun or log10msun.")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")


def _ingest(kind: str, path: Path, mapping: "Mapping", name: str | None, replace: bool, skip_bad: bool,
            hdu: str | None, json_out: bool) -> None:
    """Run one ingest with a progress bar and print its summary (or JSON)."""
    from clustermass.catalogs.ingest import STAGES, ingest_file

    engine = STATE.database()
    hdu_arg: str | int | None = int(hdu) if hdu is not None and hdu.isdigit() else hdu
    with progress(transient=True) as bar:
        task = bar.add_task(f"ingest {kind} {path.name}", total=len(STAGES))

        def on_stage(stage: str) -> None:
            bar.update(task, completed=STAGES.index(stage), description=f"{stage} {path.name}")

        result = ingest_file(engine, path, kind, mapping, name=name, replace=replace, skip_bad=skip_bad,
                             reject_dir=STATE.settings.data_dir / "rejected", hdu=hdu_arg, on_stage=on_stage)
        bar.update(task, completed=len(STAGES))
    if json_out:
        emit_json(result.as_dict())
        return
    verb = {"loaded": "loaded", "replaced": "reloaded", "unchanged": "already loaded, nothing changed:"}[result.status]
    console.print(f"{verb} [bold]{result.catalog}[/bold] ({kind}, id {result.catalog_id}): "
                  f"{result.n_rows} rows into {result.target} in {result.seconds:.1f} s")
    notes = []
    if result.n_skipped:
        notes.append(f"{result.n_skipped} rows rejected" + (f" -> {result.rejected_csv}" if result.rejected_csv else ""))
    if result.n_unknown_z:
        notes.append(f"{result.n_unknown_z} rows with unknown redshift (NULL)")
    if result.n_unknown_mass:
        notes.append(f"{result.n_unknown_mass} rows with unknown mass (NULL)")
    if result.n_removed:
        notes.append(f"{result.n_removed} rows no longer in the file removed")
    for note in notes:
        console.print(f"  {note}")
    if result.status == "replaced" and result.target != "fields":
        console.print("  run `cmcat crossmatch` to refresh the labels")


def _register(kind: str, doc: str, with_mass: bool) -> None:
    """Add `cmcat ingest KIND FILE` for a known catalogue kind."""
    from clustermass.catalogs.readers import KINDS, with_mass_unit

    if with_mass:
        def command(path: Path = FILE, name: Optional[str] = NAME, replace: bool = REPLACE, skip_bad: bool = SKIP_BAD,
                    hdu: Optional[str] = HDU, mass_unit: MassUnit = MASS_UNIT, json_out: bool = JSON) -> None:
            _ingest(kind, path, with_mass_unit(KINDS[kind], mass_unit), name, replace, skip_bad, hdu, json_out)
    else:
        def command(path: Path = FILE, name: Optional[str] = NAME, replace: bool = REPLACE, skip_bad: bool = SKIP_BAD,
                    hdu: Optional[str] = HDU, json_out: bool = JSON) -> None:
            _ingest(kind, path, KINDS[kind], name, replace, skip_bad, hdu, json_out)
    command.__doc__ = doc
    ingest_app.command(kind)(command)


_register(
    "redmapper",
    "redMaPPer clusters: the short form (ID, name, RA, dec, redshift, lambda) or the full FITS columns "
    "(MEM_MATCH_ID, RA, DEC, Z_LAMBDA, Z_LAMBDA_ERR, LAMBDA_CHISQ, LAMBDA_CHISQ_E).",
    with_mass=False,
)
_register(
    "mcxc",
    "MCXC X-ray masses (MCXC, Oname, RAdeg, DEdeg, z, M500 in 1e14 Msun), stored as log10 M500 with method 'xray'.",
    with_mass=True,
)
_register(
    "psz2",
    "Planck PSZ2 SZ masses (HDU PSZ2_UNION: NAME, RA, DEC, REDSHIFT, MSZ, MSZ_ERR_UP/LOW in 1e14 Msun); "
    "REDSHIFT=-1 and MSZ=0 are stored as unknown (NULL).",
    with_mass=True,
)


@ingest_app.command("fields")
def ingest_fields(
    path: Optional[Path] = typer.Argument(None, metavar="[FILE]", help="A window_flist.fits on disk (or give --sas)."),
    sas: bool = typer.Option(
        False, "--sas", help="Fetch DR12's window_flist.fits (~0.5 GB) from the SAS (setting sdss_window_flist_path), "
        "cached; a cut download resumes where it stopped.",
    ),
    name: Optional[str] = NAME, replace: bool = REPLACE, skip_bad: bool = SKIP_BAD, hdu: Optional[str] = HDU,
    json_out: bool = JSON,
) -> None:
    """SDSS field index (window_flist: RUN, RERUN, CAMCOL, FIELD, RA, DEC, SCORE, NODE, INCL, MU/NU bounds kept;
    its other columns are not stored). What --source sas and local use to find the frames of a cluster."""
    from clustermass.catalogs.readers import KINDS
    from clustermass.errors import InputError

    if (path is None) == (not sas):
        raise InputError("give a window_flist FILE or --sas (fetch it from the SAS), not both and not neither")
    if sas:
        from clustermass.images.window_flist import fetch_window_flist

        with progress(transient=True) as bar:
            task = bar.add_task("window_flist.fits", total=None)
            path = fetch_window_flist(STATE.settings, on_bytes=lambda done, total: bar.update(
                task, completed=done >> 20, total=None if total is None else total >> 20,
                description="window_flist.fits (MiB)"))
    _ingest("fields", path, KINDS["fields"], name, replace, skip_bad, hdu, json_out)


@ingest_app.command("table")
def ingest_table(
    path: Path = FILE,
    ra: str = typer.Option(..., "--ra", help="Column of right ascension, deg."),
    dec: str = typer.Option(..., "--dec", help="Column of declination, deg."),
    z: Optional[str] = typer.Option(None, "--z", help="Column of redshift."),
    id_col: Optional[str] = typer.Option(None, "--id", help="Column of the catalogue's own id (default: row number)."),
    name_col: Optional[str] = typer.Option(None, "--name-column", help="Column of object names."),
    richness: Optional[str] = typer.Option(None, "--richness", help="Column of richness (clusters only)."),
    mass: Optional[str] = typer.Option(
        None, "--mass", help="Column of M500: the table is then loaded as mass measurements instead of clusters."
    ),
    mass_err: Optional[str] = typer.Option(None, "--mass-err", help="Column of the symmetric M500 error (mass unit)."),
    mass_unit: MassUnit = MASS_UNIT,
    method: Method = typer.Option("other", "--method", help="Measurement method of the masses: xray, sz, wl, other."),
    name: Optional[str] = NAME,
    replace: bool = REPLACE,
    skip_bad: bool = SKIP_BAD,
    hdu: Optional[str] = HDU,
    json_out: bool = JSON,
) -> None:
    """Any table, with its columns named: clusters, or mass measurements when --mass is given."""
    from clustermass.catalogs.readers import table_mapping

    mapping = table_mapping(ra, dec, z=z, id=id_col, name=name_col, richness=richness, mass=mass,
                            mass_err=mass_err, mass_unit=mass_unit, method=method)
    _ingest("table", path, mapping, name, replace, skip_bad, hdu, json_out)


def _usage(parse: Callable[[str], float]) -> Callable[[str], float]:
    """An option parser that turns the library's InputError into a usage error (exit code 2)."""
    from clustermass.errors import InputError

    def parser(text: str) -> float:
        try:
            return parse(str(text))
        except InputError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parser


def _parse_radius(text: str) -> float:
    from clustermass.catalogs.crossmatch import parse_angle_arcsec

    return parse_angle_arcsec(text)


def _parse_dz(text: str) -> float:
    from clustermass.catalogs.crossmatch import parse_dz

    return parse_dz(text)


@app.command("crossmatch")
def crossmatch_cmd(
    radius_arcsec: float = typer.Option(
        "2arcmin", "--radius", parser=_usage(_parse_radius), metavar="ANGLE",
        help="Match radius: 2arcmin, 120arcsec, 0.03deg... (beyond 10arcmin needs --force).",
    ),
    dz: float = typer.Option(
        "0.05", "--dz", parser=_usage(_parse_dz), metavar="DZ",
        help="Redshift tolerance: |z_mass - z_cluster| < dz * (1 + z_cluster) (beyond 0.5 needs --force).",
    ),
    priority: str = typer.Option(
        "mcxc,psz2", "--priority", help="Preferred label sources, best first (catalogue kinds; others rank last)."
    ),
    catalog: Optional[list[str]] = typer.Option(None, "--catalog", help="Cluster catalogue(s) to label (default: all)."),
    force: bool = typer.Option(
        False, "--force", help="Allow a radius beyond 10arcmin or dz beyond 0.5, and replacing the labels with none."
    ),
    json_out: bool = JSON,
) -> None:
    """Label clusters with the nearest external mass within the radius and redshift window (one per cluster)."""
    import dataclasses

    from clustermass.catalogs.crossmatch import crossmatch, parse_priority

    prio = parse_priority(priority)
    with progress(transient=True) as bar:
        task = bar.add_task("cross-match", total=1)
        summary = crossmatch(STATE.database(), radius_arcsec, dz, prio, tuple(catalog or ()), force=force)
        bar.update(task, completed=1)
    if json_out:
        emit_json(dataclasses.asdict(summary))
        return
    console.print(
        f"matched {summary.n_clusters} clusters against {summary.n_measurements} mass measurements "
        f"({summary.n_measurements_unusable} without z or mass) within {radius_arcsec:g} arcsec and "
        f"|dz| < {dz:g}(1+z), priority {' > '.join(prio)}"
    )
    rows = [(src, n) for src, n in summary.per_source.items()] + [("total", summary.n_labels)]
    console.print(table("labels per source", ["source", "labels"], rows))


@app.command("baseline")
def baseline_cmd(
    folds: int = typer.Option(5, "--folds", min=2, help="Number of cross-validation folds."),
    seed: int = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of the fold assignment (shared with the learned models)."),
    catalog: Optional[list[str]] = typer.Option(None, "--catalog", help="Cluster catalogue(s) to use (default: all)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG path (default: OUTPUT_DIR/baseline.png)."),
    json_out: bool = JSON,
) -> None:
    """The richness baseline: k-fold CV least squares of log10 M500 on log10(lambda/40), x = log10((1+z)/1.35), x^2.

    The bar every learned model must beat. Prints MAE (dex), median bias, NMAD scatter, fold by fold and per label source, and writes a predicted-vs-measured PNG.
    """
    from clustermass.jobs.baseline import richness_baseline

    done = richness_baseline(STATE.database(), folds, seed, catalog, plot or STATE.settings.output_dir / "baseline.png")
    if json_out:
        emit_json(done.as_dict())
        return
    cols = ["", "N", "MAE", "bias", "NMAD", "RMS", ">0.3 dex"]

    def row(label, m):
        return (label, m["n"], m["mae"], m["bias"], m["nmad"], m["rms"], m["outlier_frac"])

    rows = [row(f"fold {f['fold']}", f) for f in done.per_fold]
    rows += [row(f"source {s}", m) for s, m in done.per_source.items()]
    rows.append(row("all", done.overall))
    console.print(table(f"richness baseline, {folds}-fold CV (seed {seed}), dex", cols, rows))
    a, b, c, d = done.coef_all
    console.print(f"fit on all: log10 M500 = {a:.3f} {b:+.3f} log10(lambda/40) {c:+.3f} x {d:+.3f} x^2, "
                  "x = log10((1+z)/1.35)")
    console.print(f"MAE [bold]{done.overall['mae']:.3f} dex[/bold] over {done.overall['n']} clusters; plot: {done.plot}")


@app.command("status")
def status_cmd(json_out: bool = JSON) -> None:
    """What is loaded: catalogues, rows, labels per source, cutouts, models, predictions."""
    from clustermass.results.status import status

    with STATE.database().connect() as conn:
        info = status(conn)
    if json_out:
        emit_json(info)
        return
    console.print(table("catalogues", ["id", "name", "kind", "rows", "rejected", "ingested"],
                        [(c["id"], c["name"], c["kind"], c["n_rows"], c["n_skipped"],
                          c["ingested_at"].strftime("%Y-%m-%d %H:%M")) for c in info["catalogs"]]))
    console.print(table("rows", ["table", "rows"], info["rows"].items()))
    if info["labels_per_source"]:
        console.print(table("labels per source", ["source", "labels"], info["labels_per_source"].items()))
    if info["cutouts_per_status"]:
        console.print(table("cutouts per status", ["status", "cutouts"], info["cutouts_per_status"].items()))
    if info["models"]:
        console.print(table("models", ["id", "name", "kind", "predictions"],
                            [(m["id"], m["name"], m["kind"], m["n_predictions"]) for m in info["models"]]))
