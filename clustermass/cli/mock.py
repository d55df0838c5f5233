"""`cmcat mock ...`: the simulated universe, its SDSS-format frames and calibration plots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from clustermass.cli._common import STATE, app, console, emit_json, progress, table

mock_app = typer.Typer(help="Mock universe: catalogues + truth, SDSS-format frames, calibration plots.",
                       no_args_is_help=True)
app.add_typer(mock_app, name="mock")


@mock_app.command("universe")
def universe(
    n: int = typer.Option(26350, "--n", help="Number of redMaPPer-like clusters (the real v5.10 has 26,350)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    out: Path = typer.Option(..., "--out", help="Folder to write the catalogues and truth table into."),
    area: Optional[float] = typer.Option(
        None, "--area", help="Sky area (deg^2) of a patch around RA=180, Dec=25; default: the SDSS footprint."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Draw a cluster population and write redMaPPer/MCXC/PSZ2-format catalogues plus the truth table.

    The files go through `cmcat ingest` like the real ones; truth.parquet is for evaluation only.
    """
    from clustermass.mock.population import build_universe
    from clustermass.mock.writers import write_universe

    with progress(transient=True) as bar:
        task = bar.add_task("drawing haloes", total=None)
        u = build_universe(n, seed, area)
        bar.update(task, description="writing catalogues")
        paths = write_universe(u, out, {"n": n, "seed": seed, "area_deg2": area})
    h = u.haloes
    rm = h[h.rm_id > 0]
    summary = {
        "out": str(out), "clusters": int(len(rm)), "haloes": int(len(h)), "area_deg2": round(u.area_deg2, 3),
        "mcxc_rows": int(h.in_mcxc.sum()), "psz2_rows": int(h.in_psz2.sum()),
        "mcxc_in_redmapper": int((rm.in_mcxc).sum()), "psz2_only_in_redmapper": int((rm.in_psz2 & ~rm.in_mcxc).sum()),
        "files": {k: str(v) for k, v in paths.items()},
    }
    if json_out:
        emit_json(summary)
        return
    rows = [(k, v) for k, v in summary.items() if k != "files"]
    console.print(table(f"mock universe (seed {seed})", ["", "value"], rows))
    console.print(f"files in [bold]{out}[/bold]: " + ", ".join(p.name for p in paths.values()))
