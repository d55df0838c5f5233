"""SQLAlchemy 2 models of every cmcat table.

Table and column names are public interface: users write SQL against them. Masses are
log10(M500 / Msun) with h = 0.7 (H0 = 70 km/s/Mpc); angles are degrees unless the column
name says otherwise. Alembic migrations in `migrations/` create these tables; a test checks
that models and migrations agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LOG_MASS = "log10(M500 / Msun), h = 0.7"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONB, float: Double}


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _hpx() -> Any:
    return mapped_column(
        BigInteger, nullable=False, index=True, comment="HEALPix NESTED index at order 29 of (ra, dec)"
    )


class Catalog(Base):
    """One ingested source file."""

    __tablename__ = "catalogs"
    __table_args__ = {"comment": "one row per ingested catalogue file"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True, comment="catalogue name (default: file stem)")
    kind: Mapped[str] = mapped_column(Text, comment="redmapper | mcxc | psz2 | table | fields")
    path: Mapped[str] = mapped_column(Text, comment="absolute path of the source file at ingest time")
    sha256: Mapped[str] = mapped_column(Text, index=True, comment="sha256 of the source file")
    n_rows: Mapped[int] = mapped_column(Integer, comment="rows loaded")
    n_skipped: Mapped[int] = mapped_column(Integer, server_default="0", comment="rows rejected or skipped")
    meta: Mapped[dict[str, Any]] = mapped_column(server_default="{}", comment="reader options, column map")
    ingested_at: Mapped[datetime] = _now()


class Cluster(Base):
    """A cluster of a catalogue (redMaPPer or any table ingested as clusters)."""

    __tablename__ = "clusters"
    __table_args__ = (UniqueConstraint("catalog_id", "source_id"), {"comment": "galaxy clusters"})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    catalog_id: Mapped[int] = mapped_column(ForeignKey("catalogs.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[str] = mapped_column(Text, comment="the catalogue's own id (e.g. MEM_MATCH_ID)")
    name: Mapped[str | None] = mapped_column(Text, index=True, comment="cluster name, e.g. RMJ122513.3-002637.5")
    ra: Mapped[float] = mapped_column(comment="right ascension, deg (ICRS)")
    dec: Mapped[float] = mapped_column(comment="declination, deg (ICRS)")
    hpx29: Mapped[int] = _hpx()
    z: Mapped[float | None] = mapped_column(comment="redshift (photometric Z_LAMBDA for redMaPPer)")
    z_err: Mapped[float | None] = mapped_column(comment="redshift uncertainty")
    richness: Mapped[float | None] = mapped_column(comment="richness lambda (galaxies)")
    richness_err: Mapped[float | None] = mapped_column(comment="richness uncertainty (galaxies)")
    extra: Mapped[dict[str, Any]] = mapped_column(server_default="{}", comment="other source columns")


class MassMeasurement(Base):
    """An external mass (X-ray, SZ or other), independent of any cluster row."""

    __tablename__ = "mass_measurements"
    __table_args__ = (
        UniqueConstraint("catalog_id", "source_id"),
        {"comment": "external M500 measurements (MCXC, PSZ2, ...)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    catalog_id: Mapped[int] = mapped_column(ForeignKey("catalogs.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[str] = mapped_column(Text, comment="the catalogue's own id or name")
    name: Mapped[str | None] = mapped_column(Text, comment="object name")
    ra: Mapped[float] = mapped_column(comment="right ascension, deg")
    dec: Mapped[float] = mapped_column(comment="declination, deg")
    hpx29: Mapped[int] = _hpx()
    z: Mapped[float | None] = mapped_column(comment="redshift; NULL if unknown")
    log10_m500: Mapped[float | None] = mapped_column(comment=LOG_MASS + "; NULL if unknown")
    log10_m500_err_low: Mapped[float | None] = mapped_column(comment="lower 1-sigma error of log10_m500, dex")
    log10_m500_err_high: Mapped[float | None] = mapped_column(comment="upper 1-sigma error of log10_m500, dex")
    method: Mapped[str] = mapped_column(Text, comment="xray | sz | other")
    extra: Mapped[dict[str, Any]] = mapped_column(server_default="{}", comment="other source columns")


class Label(Base):
    """Cross-match result: the external mass adopted for a cluster (one per cluster)."""

    __tablename__ = "labels"
    __table_args__ = {"comment": "cluster <-> mass measurement cross-match, one label per cluster"}

    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True)
    measurement_id: Mapped[int] = mapped_column(
        ForeignKey("mass_measurements.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(Text, comment="label source: catalogue kind of the measurement (mcxc, psz2...)")
    separation_arcsec: Mapped[float] = mapped_column(comment="angular separation, arcsec")
    dz: Mapped[float | None] = mapped_column(comment="z_measurement - z_cluster")
    log10_m500: Mapped[float] = mapped_column(comment=LOG_MASS)
    log10_m500_err: Mapped[float | None] = mapped_column(comment="symmetrised 1-sigma error, dex")


class Field(Base):
    """SDSS imaging field index (window_flist columns): which frames cover which sky."""

    __tablename__ = "fields"
    __table_args__ = (
        UniqueConstraint("run", "rerun", "camcol", "field"),
        {"comment": "SDSS field index from window_flist"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    catalog_id: Mapped[int] = mapped_column(ForeignKey("catalogs.id", ondelete="CASCADE"), index=True)
    run: Mapped[int] = mapped_column(Integer)
    rerun: Mapped[str] = mapped_column(Text)
    camcol: Mapped[int] = mapped_column(Integer)
    field: Mapped[int] = mapped_column(Integer)
    ra: Mapped[float] = mapped_column(comment="field centre right ascension, deg")
    dec: Mapped[float] = mapped_column(comment="field centre declination, deg")
    hpx29: Mapped[int] = _hpx()
    score: Mapped[float | None] = mapped_column(comment="SDSS field quality score (0..1)")
    extra: Mapped[dict[str, Any]] = mapped_column(
        server_default="{}", comment="other window_flist columns (MU/NU bounds, INCL, NODE...)"
    )


class Cutout(Base):
    """A cluster's ugriz cutout in the cutout store."""

    __tablename__ = "cutouts"
    __table_args__ = (UniqueConstraint("cluster_id", "source"), {"comment": "cutout store index"})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(Text, comment="image source: sas | local | mock")
    bands: Mapped[str] = mapped_column(Text, server_default="ugriz", comment="band order of the array")
    size: Mapped[int] = mapped_column(Integer, comment="cutout side, pixels")
    pixel_scale: Mapped[float] = mapped_column(comment="arcsec per pixel")
    path: Mapped[str | None] = mapped_column(Text, comment="store file holding this cutout")
    sha256: Mapped[str | None] = mapped_column(Text, comment="sha256 of the store file")
    covered_fraction: Mapped[float | None] = mapped_column(comment="fraction of cutout pixels covered by frames")
    status: Mapped[str] = mapped_column(Text, comment="ok | partial | failed")
    error: Mapped[str | None] = mapped_column(Text, comment="why it failed")
    created: Mapped[datetime] = _now()


class Model(Base):
    """Model registry."""

    __tablename__ = "models"
    __table_args__ = {"comment": "trained models: config, metrics, weights"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text, comment="band-classifier | cnn | hybrid | ...")
    created: Mapped[datetime] = _now()
    config: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    metrics: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    training: Mapped[dict[str, Any]] = mapped_column(server_default="{}", comment="training data summary")
    git_commit: Mapped[str | None] = mapped_column(Text)
    weights_path: Mapped[str | None] = mapped_column(Text)
    weights_sha256: Mapped[str | None] = mapped_column(Text)


class Run(Base):
    """A predict / fetch / explain run."""

    __tablename__ = "runs"
    __table_args__ = {"comment": "pipeline runs"}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, comment="predict | fetch | explain")
    status: Mapped[str] = mapped_column(Text, comment="running | done | failed | interrupted")
    params: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), index=True)
    started: Mapped[datetime] = _now()
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    n_tiles: Mapped[int] = mapped_column(Integer, server_default="0")
    n_clusters: Mapped[int] = mapped_column(BigInteger, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)


class RunTile(Base):
    """One HEALPix tile of a run: what makes a run resumable and observable."""

    __tablename__ = "run_tiles"
    __table_args__ = (UniqueConstraint("run_id", "norder", "npix"), {"comment": "tiles of a run"})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    norder: Mapped[int] = mapped_column(Integer, comment="HEALPix order of the tile")
    npix: Mapped[int] = mapped_column(BigInteger, comment="NESTED pixel index at that order")
    status: Mapped[str] = mapped_column(Text, server_default="pending", comment="pending | running | done | failed")
    n_clusters: Mapped[int] = mapped_column(Integer, server_default="0")
    n_done: Mapped[int] = mapped_column(Integer, server_default="0")
    n_failed: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(Text)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float | None] = mapped_column(comment="wall time of the tile task, s")


class Prediction(Base):
    """A predicted mass; rerunning a model replaces, never duplicates."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("cluster_id", "model_id"), {"comment": "predicted masses"})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    log10_m500: Mapped[float] = mapped_column(comment=LOG_MASS)
    log10_m500_err: Mapped[float | None] = mapped_column(
        comment="1-sigma error on the true mass, dex (calibrated on the out-of-fold residuals)"
    )
    population_log10_m500: Mapped[float | None] = mapped_column(
        comment="posterior mean of log10(M500 / Msun) for the catalogue population given the score (log10_m500), "
        "z and the halo mass function; calibrated on mock universes, too low on the real catalogue "
        "(docs/model.md); NULL: the model has no population relation"
    )
    population_log10_m500_err: Mapped[float | None] = mapped_column(
        comment="posterior standard deviation of population_log10_m500, dex"
    )
    fold: Mapped[int | None] = mapped_column(
        Integer,
        comment="cross-validation fold that held this cluster's label out of training and whose model gave "
        "this prediction; NULL: the label was not used in training (prediction of the full model)",
    )
    created: Mapped[datetime] = _now()


TABLES = [t.name for t in Base.metadata.sorted_tables]
