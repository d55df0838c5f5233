"""Export a model's predictions with their cluster columns: Parquet by HEALPix tile, HATS, FITS, CSV.

Parquet goes into a hive-style tile layout ``OUT/Norder=k/Dir=d/Npix=p/part0.parquet``
(Dir = 10000 * (p // 10000), the HiPS/HATS convention), so `pandas.read_parquet(OUT)` or
`pyarrow.dataset.dataset(OUT, partitioning="hive")` read the whole catalogue or one tile.
HATS is written by the `hats-import` pipeline (on an in-process Dask client): properties,
partition info, parquet metadata and the `_healpix_29` spatial index column (equal to `hpx29`),
partitioned at one HEALPix order, so LSDB (`lsdb.open_catalog(OUT)`) opens and cross-matches it.
FITS gets units in TUNITn (FITS-standard strings: log10 masses are "log(solMass)", which
astropy reads with a harmless UnitsWarning), a description per column in TCOMMn, and the
model, cosmology and mass definition in the header.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from clustermass import sky
from clustermass.cosmology import COSMO
from clustermass.errors import InputError

FORMATS = ("parquet", "hats", "fits", "csv")

#: Column -> (FITS unit, description). Masses are log10(M500c / Msun) with h = 0.7.
COLUMNS: dict[str, tuple[str | None, str]] = {
    "cluster_id": (None, "cmcat cluster id"),
    "catalog": (None, "source catalogue name"),
    "source_id": (None, "the catalogue's own id"),
    "name": (None, "cluster name"),
    "ra": ("deg", "right ascension (ICRS)"),
    "dec": ("deg", "declination (ICRS)"),
    "hpx29": (None, "HEALPix NESTED index at order 29"),
    "z": (None, "redshift"),
    "richness": (None, "richness lambda (galaxies)"),
    "log10_m500": ("log(solMass)", "predicted log10(M500c/Msun), h=0.7"),
    "log10_m500_err": (None, "1-sigma error of log10_m500, dex"),
    "population_log10_m500": ("log(solMass)", "posterior log10(M500c/Msun) for the catalogue population (see docs)"),
    "population_log10_m500_err": (None, "1-sigma error of population_log10_m500, dex"),
    "label_log10_m500": ("log(solMass)", "external (X-ray/SZ) log10(M500c/Msun) where cross-matched"),
    "label_source": (None, "source of the external mass (mcxc, psz2, ...)"),
    "run_id": (None, "cmcat predict run that wrote the prediction"),
}

_QUERY = text(
    """
    SELECT p.cluster_id, cat.name AS catalog, c.source_id, c.name, c.ra, c.dec, c.hpx29, c.z, c.richness,
           p.log10_m500, p.log10_m500_err, p.population_log10_m500, p.population_log10_m500_err, l.log10_m500 AS label_log10_m500, l.source AS label_source, p.run_id
    FROM predictions p
    JOIN clusters c ON c.id = p.cluster_id
    JOIN catalogs cat ON cat.id = c.catalog_id
    LEFT JOIN labels l ON l.cluster_id = p.cluster_id
    WHERE p.model_id = :model_id
    ORDER BY c.hpx29
    """
)


def predictions_frame(conn: Connection, model_id: int) -> pd.DataFrame:
    """All predictions of a model joined with their clusters (and labels), ordered by hpx29."""
    df = pd.read_sql(_QUERY, conn, params={"model_id": model_id})
    return df.astype({"cluster_id": "int64", "hpx29": "int64", "run_id": "Int64"})


def tile_dir(norder: int, npix: int) -> str:
    """Relative folder of a tile in the hive layout."""
    return f"Norder={norder}/Dir={(npix // 10000) * 10000}/Npix={npix}"


def write_parquet(df: pd.DataFrame, out: Path, order: int) -> int:
    """Write one parquet file per tile of `order`; return the number of tiles written.

    `out` is replaced if it holds an earlier export (a folder with Norder=* entries).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    _prepare_dir(out, lambda entries: all(e.name.startswith("Norder=") for e in entries))
    tiles = sky.tile_of(df["hpx29"].to_numpy(), order) if len(df) else np.empty(0, dtype=np.int64)
    n = 0
    for pix, part in df.groupby(tiles, sort=True):
        folder = out / tile_dir(order, int(pix))
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False), folder / "part0.parquet")
        n += 1
    return n


def _check_replaceable(out: Path, earlier_export: Callable[[list[Path]], bool]) -> None:
    """InputError unless `out` is absent, an empty folder, or a folder `earlier_export` recognises from its entries."""
    if out.exists():
        if not out.is_dir():
            raise InputError(f"{out} exists and is not a folder; this export writes a folder")
        entries = list(out.iterdir())
        if entries and not earlier_export(entries):
            raise InputError(f"{out} is a non-empty folder that is not an earlier export; choose a new path")


def _prepare_dir(out: Path, earlier_export: Callable[[list[Path]], bool]) -> None:
    """Make `out` an empty folder, emptying an earlier export there (see _check_replaceable)."""
    _check_replaceable(out, earlier_export)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def write_hats(df: pd.DataFrame, out: Path, order: int, model: dict) -> int:
    """A HATS catalogue at `out` from hats-import, partitions at HEALPix `order`; returns their number.

    Built in a temporary folder beside `out`, which then replaces `out`: an earlier HATS export
    there stays whole until the new one is complete; any other non-empty folder is refused.
    """
    import hats
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    _check_replaceable(out, lambda entries: (out / "hats.properties").is_file())
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        table = Path(tmp) / "predictions.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), table)
        args = ImportArguments(
            input_file_list=[table], file_reader="parquet", ra_column="ra", dec_column="dec",
            output_path=Path(tmp) / "catalog", output_artifact_name=out.name, constant_healpix_order=order,
            tmp_dir=Path(tmp) / "work", resume=False, progress_bar=False,
            addl_hats_properties={
                "obs_title": f"cmcat predicted log10 M500c (h=0.7) of model {model['name']}",
                "hats_cols_default": "cluster_id,name,ra,dec,z,richness,log10_m500,log10_m500_err",
            },
        )
        with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
            pipeline_with_client(args, client)
        if out.exists():
            shutil.rmtree(out)
        os.replace(Path(tmp) / "catalog" / out.name, out)
    return len(hats.read_hats(out).get_healpix_pixels())


def write_fits(df: pd.DataFrame, out: Path, model: dict) -> None:
    """A binary-table FITS file with units per column and model/cosmology keywords."""
    from astropy.io import fits
    from astropy.table import Table

    table = Table.from_pandas(df.assign(run_id=df["run_id"].fillna(-1).astype("int64")))
    for col in table.colnames:
        if table[col].dtype.kind == "O":
            table[col] = table[col].astype(str)
    hdu = fits.BinTableHDU(table, name="PREDICTIONS")
    for i, col in enumerate(table.colnames, start=1):
        unit = COLUMNS.get(col, (None, ""))[0]
        if unit:
            hdu.header[f"TUNIT{i}"] = unit
        hdu.header[f"TCOMM{i}"] = COLUMNS.get(col, (None, ""))[1]
    hdu.header["MODEL"] = (str(model["name"]), "cmcat model name")
    hdu.header["MODELID"] = (int(model["id"]), "cmcat model id")
    hdu.header["MODKIND"] = (str(model["kind"]), "model kind")
    hdu.header["MASSDEF"] = ("M500c", "mass within r500 (500 x critical density)")
    hdu.header["H0"] = (float(COSMO.H0.value), "Hubble constant, km/s/Mpc")
    hdu.header["OM0"] = (float(COSMO.Om0), "matter density, flat LCDM")
    hdu.header["NROWS"] = (len(df), "clusters with a prediction")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(out, overwrite=True)


def export_predictions(conn: Connection, model: dict, fmt: str, out: Path, order: int = 3) -> dict:
    """Export the predictions of `model` (dict with id, name, kind) to `out`; return a summary."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    df = predictions_frame(conn, int(model["id"]))
    if df.empty:
        raise InputError(f"model {model['name']!r} has no predictions; run `cmcat predict --model {model['name']}` first")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"model": model["name"], "format": fmt, "path": str(out), "rows": len(df)}
    if fmt in ("parquet", "hats"):
        summary["tiles"] = write_parquet(df, out, order) if fmt == "parquet" else write_hats(df, out, order, model)
        summary["order"] = order
    elif fmt == "fits":
        write_fits(df, out, model)
    else:
        df.to_csv(out, index=False)
    return summary
