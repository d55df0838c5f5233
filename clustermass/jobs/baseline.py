"""`richness_baseline`: the k-fold CV richness baseline every learned model must beat, with its plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from clustermass.catalogs.crossmatch import catalog_ids
from clustermass.db.queries import labelled_clusters
from clustermass.errors import InputError
from clustermass.model import baseline
from clustermass.plots.model import plot_baseline


@dataclass
class BaselineSummary:
    """Cross-validated scores (dex) overall, per fold and per label source; the fit on all; the plot."""

    n: int
    folds: int
    seed: int
    overall: dict[str, Any]
    per_fold: list[dict[str, Any]]
    per_source: dict[str, dict[str, Any]]
    coef_all: list[float]  # log10 M500 = a + b log10(lambda/40) + c x + d x^2, x = log10((1+z)/1.35)
    plot: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def richness_baseline(engine: Engine, folds: int, seed: int, catalogs: list[str] | None, plot: Path) -> BaselineSummary:
    """Fit and cross-validate the richness baseline on the labelled clusters (of `catalogs`); plot to `plot`."""
    with engine.connect() as conn:
        ids = catalog_ids(conn, catalogs) if catalogs else None
        df = labelled_clusters(conn, ids)
    if len(df) < 2 * folds:
        raise InputError(
            f"only {len(df)} labelled clusters with richness and z: too few for {folds}-fold CV. "
            "Ingest a cluster catalogue and mass catalogues, then run `cmcat crossmatch`"
        )
    richness, z, mass = df["richness"].to_numpy(), df["z"].to_numpy(), df["log10_m500"].to_numpy()
    try:
        cv = baseline.cross_validate(df["id"].to_numpy(), richness, z, mass, folds, seed, groups=df["source"].to_numpy())
    except ValueError as exc:
        raise InputError(str(exc)) from None
    coef = baseline.fit(richness, z, mass)
    o = cv["overall"]
    plot_baseline(plot, mass, cv["predicted"], df["source"].to_numpy(),
                  f"richness baseline, {folds}-fold CV: MAE {o['mae']:.3f} dex (N={o['n']})")
    return BaselineSummary(len(df), folds, seed, o, cv["folds"], cv["groups"], coef.tolist(), str(plot))
