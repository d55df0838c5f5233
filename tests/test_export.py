"""`cmcat export` round trips (parquet by tile, HATS read by LSDB, FITS with units, CSV) and `cmcat plot`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, text

from clustermass import sky
from clustermass.db.bulk import copy_upsert
from clustermass.db.models import Catalog, Label, MassMeasurement
from clustermass.model.registry import save_model
from clustermass.plots.results import healpix_map

from pipeline_helpers import add_clusters


@pytest.fixture
def predicted(db, settings):
    """300 clusters with predictions of model 'rich' and one X-ray label."""
    clusters = add_clusters(db, 300, ra=(100, 260), dec=(-10, 70))
    model = save_model(db, settings, name="rich", kind="richness", config={"coef": [14.3, 1.1, 0.0]}, metrics={}, training={})
    rng = np.random.default_rng(3)
    pred = pd.DataFrame(
        {
            "cluster_id": clusters["id"],
            "model_id": model.id,
            "log10_m500": 14.0 + rng.normal(0, 0.3, len(clusters)),
            "log10_m500_err": rng.uniform(0.1, 0.3, len(clusters)),
        }
    )
    with db.begin() as conn:
        copy_upsert(conn, "predictions", pred)
        cat = conn.execute(
            insert(Catalog).values(name="mcxc", kind="mcxc", path="x", sha256="y", n_rows=1).returning(Catalog.id)
        ).scalar_one()
        c0 = clusters.iloc[0]
        mid = conn.execute(
            insert(MassMeasurement).values(catalog_id=cat, source_id="m1", ra=float(c0.ra), dec=float(c0.dec), hpx29=int(c0.hpx29),
                                           z=float(c0.z), log10_m500=14.5, method="xray").returning(MassMeasurement.id)
        ).scalar_one()
        conn.execute(insert(Label).values(cluster_id=int(c0.id), measurement_id=mid, source="mcxc",
                                          separation_arcsec=1.0, dz=0.0, log10_m500=14.5))
    return clusters.merge(pred, left_on="id", right_on="cluster_id").drop(columns="id")


def _check_values(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.sort_values("cluster_id").reset_index(drop=True)
    want = want.sort_values("cluster_id").reset_index(drop=True)
    assert list(got["cluster_id"]) == list(want["cluster_id"])
    for col in ("ra", "dec", "z", "richness", "log10_m500", "log10_m500_err"):
        np.testing.assert_allclose(got[col].astype(float), want[col].astype(float), rtol=1e-12, err_msg=col)
    np.testing.assert_array_equal(got["hpx29"].astype(np.int64), want["hpx29"].astype(np.int64))


def test_parquet_partitioned_by_tile_round_trips(cli, predicted, tmp_path):
    out = tmp_path / "export"
    s = json.loads(cli("export", str(out), "--model", "rich", "--format", "parquet", "--order", "2", "--json").stdout)
    assert s["rows"] == 300
    tiles = np.unique(sky.tile_of(predicted["hpx29"].to_numpy(), 2))
    assert s["tiles"] == len(tiles)
    dirs = sorted(p.relative_to(out).as_posix() for p in out.glob("Norder=*/Dir=*/Npix=*"))
    assert dirs == sorted(f"Norder=2/Dir=0/Npix={p}" for p in tiles)
    df = pd.read_parquet(out)
    _check_values(df, predicted)
    npix = df["Npix"].astype(int).to_numpy()
    assert (npix == sky.tile_of(df["hpx29"].to_numpy(), 2)).all() and (df["Norder"].astype(int) == 2).all()
    labelled = df[df["label_log10_m500"].notna()]
    assert len(labelled) == 1 and labelled["label_source"].iloc[0] == "mcxc"
    # one tile through pyarrow's dataset API with a partition filter
    import pyarrow.dataset as ds

    one = ds.dataset(out, format="parquet", partitioning="hive").to_table(filter=ds.field("Npix") == int(tiles[0])).to_pandas()
    assert len(one) == int((sky.tile_of(predicted["hpx29"].to_numpy(), 2) == tiles[0]).sum())
    # exporting again replaces the earlier export (no stale tiles)
    cli("export", str(out), "--model", "rich", "--order", "1")
    assert not list(out.glob("Norder=2"))
    # refuses to clobber an unrelated folder
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    bad = cli("export", str(tmp_path / "mine"), "--model", "rich", ok=False)
    assert "not an earlier export" in str(bad.exception) and (tmp_path / "mine" / "notes.txt").exists()


@pytest.mark.filterwarnings("ignore:'log\\(solMass\\)' did not parse:astropy.units.UnitsWarning")
def test_fits_has_units_and_round_trips(cli, predicted, tmp_path):
    from astropy.io import fits
    from astropy.table import Table

    out = tmp_path / "pred.fits"
    cli("export", str(out), "--model", "rich", "--format", "fits")
    with fits.open(out) as hdul:
        h = hdul["PREDICTIONS"].header
        units = {h[f"TTYPE{i}"]: h.get(f"TUNIT{i}") for i in range(1, h["TFIELDS"] + 1)}
        comments = {h[f"TTYPE{i}"]: h.get(f"TCOMM{i}") for i in range(1, h["TFIELDS"] + 1)}
        assert h["MODEL"] == "rich" and h["H0"] == 70.0 and h["MASSDEF"] == "M500c" and h["NROWS"] == 300
    assert units["ra"] == "deg" and units["dec"] == "deg" and "dex" in comments["log10_m500_err"]
    assert units["log10_m500"] == "log(solMass)"
    t = Table.read(out, hdu="PREDICTIONS")
    _check_values(t.to_pandas(), predicted)
    assert str(t["ra"].unit) == "deg"


def test_csv_round_trips_and_empty_model_is_an_error(cli, predicted, db, settings, tmp_path):
    out = tmp_path / "pred.csv"
    cli("export", str(out), "--model", "rich", "--format", "csv")
    _check_values(pd.read_csv(out), predicted)
    save_model(db, settings, name="empty", kind="richness", config={"coef": [14, 1, 0]}, metrics={}, training={})
    bad = cli("export", str(tmp_path / "e.csv"), "--model", "empty", "--format", "csv", ok=False)
    assert "has no predictions" in str(bad.exception)
    bad = cli("export", str(tmp_path / "e.x"), "--model", "rich", "--format", "xml", ok=False)
    assert bad.exit_code == 2 and "'xml' is not one of" in bad.output  # a usage error


def test_healpix_map_counts_and_means():
    import healpy as hp

    hpx = sky.hpx29(np.array([10.0, 10.0, 200.0]), np.array([20.0, 20.0, -30.0]))
    counts = healpix_map(hpx, None, 1)
    means = healpix_map(hpx, np.array([14.0, 15.0, 13.0]), 1)
    pix = sky.tile_of(hpx, 1)
    assert counts[pix[0]] == 2 and counts[pix[2]] == 1 and (counts == hp.UNSEEN).sum() == 48 - 2
    assert means[pix[0]] == pytest.approx(14.5) and means[pix[2]] == pytest.approx(13.0)


def test_plots_write_pngs(cli, predicted, tmp_path):
    for args, name in (
        (("plot", "skymap", "--model", "rich", "--value", "count", "--order", "3"), "sky.png"),
        (("plot", "mass-richness", "--model", "rich"), "mr.png"),
    ):
        path = tmp_path / name
        cli(*args, "--out", str(path))
        raw = path.read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 10_000


@pytest.mark.filterwarnings("ignore:The inplace keyword", "ignore:The 'mode.chained_assignment' option")
def test_hats_export_opens_in_lsdb_and_its_crossmatch_gives_cmcats_mcxc_labels(cli, db, settings, real_data, tmp_path):
    """Real redMaPPer, MCXC and PSZ2 through cmcat; LSDB cross-matches the HATS export with MCXC (as HATS) at 2',
    and cmcat's rules applied to its pairs (|dz| < 0.05(1+z), nearest, MCXC before PSZ2) give exactly cmcat's MCXC labels."""
    import lsdb

    clusterdb = real_data / "clusterdb"
    cli("ingest", "table", str(clusterdb / "sdss_redmapper.csv.gz"), "--ra", "RA", "--dec", "dec", "--z", "redshift",
        "--id", "ID", "--name-column", "name", "--richness", "lambda", "--name", "redmapper")
    cli("ingest", "mcxc", str(clusterdb / "mcxc.csv.gz"))
    cli("ingest", "psz2", str(real_data / "HFI_PCCS_SZ-union_R2.08.fits"))
    cli("crossmatch", "--radius", "2arcmin")
    model = save_model(db, settings, name="rich", kind="richness", config={"coef": [14.3, 1.1, 0.0]}, metrics={}, training={})
    with db.begin() as conn:
        ids = pd.read_sql("SELECT id, richness FROM clusters", conn)
        copy_upsert(conn, "predictions", pd.DataFrame({"cluster_id": ids["id"], "model_id": model.id,
                                                       "log10_m500": 14.3 + 1.1 * np.log10(ids["richness"] / 40),
                                                       "log10_m500_err": 0.2}))
        cmcat = pd.read_sql("SELECT l.cluster_id, m.source_id AS mcxc FROM labels l JOIN mass_measurements m "
                            "ON m.id = l.measurement_id WHERE l.source = 'mcxc'", conn)
        n_psz2 = conn.execute(text("SELECT count(*) FROM labels WHERE source = 'psz2'")).scalar_one()
    assert len(cmcat) > 300 and n_psz2 > 50  # the real sample: hundreds of MCXC and PSZ2 labels

    out = tmp_path / "pred_hats"
    s = json.loads(cli("export", str(out), "--model", "rich", "--format", "hats", "--order", "3", "--json").stdout)
    assert s["format"] == "hats" and s["rows"] == len(ids)
    pred = lsdb.open_catalog(out)
    assert pred.hc_structure.catalog_info.total_rows == len(ids)
    assert {p.order for p in pred.get_healpix_pixels()} == {3} and len(pred.get_healpix_pixels()) == s["tiles"]
    whole = lsdb.open_catalog(out, columns="all").compute()
    assert whole.index.name == "_healpix_29" and (whole.index.to_numpy() == whole["hpx29"].to_numpy()).all()  # = hpx29

    raw = pd.read_csv(clusterdb / "mcxc.csv.gz")
    mcxc_dir = tmp_path / "mcxc_hats"
    lsdb.from_dataframe(raw[["MCXC", "RAdeg", "DEdeg", "z", "M500"]], ra_column="RAdeg", dec_column="DEdeg",
                        catalog_name="mcxc", margin_threshold=150.0).write_catalog(mcxc_dir)  # with a 150" margin
    mcxc = lsdb.open_catalog(mcxc_dir)
    pairs = pred.crossmatch(mcxc, radius_arcsec=120.0, n_neighbors=50, suffixes=("", "_mcxc"),
                            suffix_method="all_columns").compute()
    z = pairs["z"].to_numpy(float)
    pairs = pairs[np.abs(pairs["z_mcxc"].to_numpy(float) - z) < 0.05 * (1 + z)]
    nearest = pairs.sort_values(["cluster_id", "_dist_arcsec"]).drop_duplicates("cluster_id")  # one per cluster
    # MCXC first: any MCXC match beats PSZ2, so these clusters are exactly cmcat's MCXC-labelled ones
    got = sorted(zip(nearest["cluster_id"].astype(int), nearest["MCXC_mcxc"]))
    assert got == sorted(zip(cmcat["cluster_id"].astype(int), cmcat["mcxc"]))

    # exporting again replaces the catalogue; an unrelated folder is refused
    cli("export", str(out), "--model", "rich", "--format", "hats", "--order", "2")
    assert {p.order for p in lsdb.open_catalog(out).get_healpix_pixels()} == {2}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    bad = cli("export", str(tmp_path / "mine"), "--model", "rich", "--format", "hats", ok=False)
    assert "not an earlier export" in str(bad.exception) and (tmp_path / "mine" / "notes.txt").exists()
