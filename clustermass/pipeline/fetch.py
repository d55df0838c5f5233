"""The fetch tile task: cutouts of every cluster of one HEALPix tile into the cutout store.

Runs on the shared tile runner (clustermass.pipeline.runner): in the tile's one transaction it
reads the tile's clusters, gets their cutouts from the store or the image source
(`ensure_cutouts`: stored ones are checksum-verified, failed ones retried), writes the store
file and `cutouts` rows, and marks the tile done. The counts it returns (cached, fetched,
partial, failed and the failure reasons) feed `cmcat fetch`'s summary.
"""

from __future__ import annotations

from typing import Any

from clustermass.db.queries import clusters_in_tile
from clustermass.images.base import BANDS, CutoutGrid
from clustermass.images.store import ensure_cutouts
from clustermass.pipeline.runs import tile_transaction
from clustermass.pipeline.sources import image_source
from clustermass.pipeline.tiles import TileResult
from clustermass.pipeline.worker import task_settings


def fetch_tile(
    db_url: str,
    run_id: int,
    norder: int,
    npix: int,
    *,
    settings: dict[str, Any],
    source: str,
    source_options: dict | None = None,
    grid: dict | None = None,
    bands: str = BANDS,
    catalog_id: int | None = None,
) -> TileResult:
    """Tile task of `cmcat fetch` (see clustermass.pipeline.runner for the contract): load the
    tile's clusters, fetch and store their cutouts, count the outcome (`fetch_outcome`)."""
    cfg = task_settings(settings, db_url)
    src = image_source(source, db_url, cfg, source_options)
    cutout_grid = CutoutGrid(**(grid or {}))
    with tile_transaction(db_url, run_id, norder, npix) as tx:
        if tx.skipped:
            return tx.result
        clusters = clusters_in_tile(tx.conn, norder, npix, catalog_id)
        if clusters.empty:
            return tx.done(n_clusters=0, n_done=0, cached=0, fetched=0, partial=0, failed=0, errors={})
        res = ensure_cutouts(tx.conn, cfg.cutout_dir, clusters, src, cutout_grid, (norder, npix), bands)
        return tx.done(**fetch_outcome(res.status, res.counts()))


def fetch_outcome(status: list[str], counts: dict[str, Any]) -> dict[str, Any]:
    """A fetch tile's figures from its cutouts' status (ok | partial | failed) and the store's counts
    (cached, fetched, changed, failed, errors: reason -> cutouts), with a note on the failed ones."""
    n_failed = sum(st == "failed" for st in status)
    note = None
    if n_failed:
        reasons = "; ".join(f"{n} x {why}" for why, n in sorted(counts["errors"].items(), key=lambda kv: -kv[1])[:3])
        note = f"{n_failed} cluster(s) without cutout: {reasons}"[:2000]
    return {"n_clusters": len(status), "n_done": len(status) - n_failed, "n_failed": n_failed, "error": note,
            "cached": counts["cached"], "fetched": counts["fetched"], "changed": counts["changed"],
            "partial": sum(st == "partial" for st in status), "failed": counts["failed"], "errors": counts["errors"]}
