"""What is loaded, at a glance: catalogues, rows, labels per source, cutouts, models, predictions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from clustermass.db.migrate import row_counts
from clustermass.db.models import Catalog, Cutout, Label, Model, Prediction

#: The tables whose rows `status` counts, in its order.
COUNTED = ("clusters", "mass_measurements", "fields", "labels", "cutouts", "models", "predictions")


def status(conn: Connection) -> dict[str, Any]:
    """Plain-data summary of the database contents."""
    catalogs = [
        dict(r)
        for r in conn.execute(
            select(Catalog.id, Catalog.name, Catalog.kind, Catalog.n_rows, Catalog.n_skipped, Catalog.ingested_at)
            .order_by(Catalog.id)
        ).mappings()
    ]

    def grouped(column) -> dict[str, int]:
        rows = conn.execute(select(column, func.count()).group_by(column).order_by(column)).all()
        return {str(k): int(n) for k, n in rows}

    models = [
        dict(r)
        for r in conn.execute(
            select(Model.id, Model.name, Model.kind, func.count(Prediction.id).label("n_predictions"))
            .outerjoin(Prediction, Prediction.model_id == Model.id)
            .group_by(Model.id)
            .order_by(Model.id)
        ).mappings()
    ]
    return {
        "catalogs": catalogs,
        "rows": row_counts(conn, COUNTED),
        "labels_per_source": grouped(Label.source),
        "cutouts_per_status": grouped(Cutout.status),
        "models": models,
    }
