"""What is loaded, at a glance: catalogues, rows, labels per source, cutouts, models, predictions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from clustermass.db.models import Catalog, Cluster, Cutout, Field, Label, MassMeasurement, Model, Prediction


def status(conn: Connection) -> dict[str, Any]:
    """Plain-data summary of the database contents."""
    catalogs = [
        dict(r)
        for r in conn.execute(
            select(Catalog.id, Catalog.name, Catalog.kind, Catalog.n_rows, Catalog.n_skipped, Catalog.ingested_at)
            .order_by(Catalog.id)
        ).mappings()
    ]

    def count(model) -> int:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())

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
        "rows": {
            "clusters": count(Cluster),
            "mass_measurements": count(MassMeasurement),
            "fields": count(Field),
            "labels": count(Label),
            "cutouts": count(Cutout),
            "models": count(Model),
            "predictions": count(Prediction),
        },
        "labels_per_source": grouped(Label.source),
        "cutouts_per_status": grouped(Cutout.status),
        "models": models,
    }
