"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 16:31:20.709180
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('catalogs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False, comment='catalogue name (default: file stem)'),
    sa.Column('kind', sa.Text(), nullable=False, comment='redmapper | mcxc | psz2 | table | fields'),
    sa.Column('path', sa.Text(), nullable=False, comment='absolute path of the source file at ingest time'),
    sa.Column('sha256', sa.Text(), nullable=False, comment='sha256 of the source file'),
    sa.Column('n_rows', sa.Integer(), nullable=False, comment='rows loaded'),
    sa.Column('n_skipped', sa.Integer(), server_default='0', nullable=False, comment='rows rejected or skipped'),
    sa.Column('meta', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False, comment='reader options, column map'),
    sa.Column('ingested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalogs')),
    sa.UniqueConstraint('name', name=op.f('uq_catalogs_name')),
    comment='one row per ingested catalogue file'
    )
    op.create_index(op.f('ix_catalogs_sha256'), 'catalogs', ['sha256'], unique=False)
    op.create_table('models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False, comment='band-classifier | cnn | hybrid | ...'),
    sa.Column('created', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('metrics', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('training', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False, comment='training data summary'),
    sa.Column('git_commit', sa.Text(), nullable=True),
    sa.Column('weights_path', sa.Text(), nullable=True),
    sa.Column('weights_sha256', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_models')),
    sa.UniqueConstraint('name', name=op.f('uq_models_name')),
    comment='trained models: config, metrics, weights'
    )
    op.create_table('clusters',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('catalog_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=False, comment="the catalogue's own id (e.g. MEM_MATCH_ID)"),
    sa.Column('name', sa.Text(), nullable=True, comment='cluster name, e.g. RMJ122513.3-002637.5'),
    sa.Column('ra', sa.Double(), nullable=False, comment='right ascension, deg (ICRS)'),
    sa.Column('dec', sa.Double(), nullable=False, comment='declination, deg (ICRS)'),
    sa.Column('hpx29', sa.BigInteger(), nullable=False, comment='HEALPix NESTED index at order 29 of (ra, dec)'),
    sa.Column('z', sa.Double(), nullable=True, comment='redshift (photometric Z_LAMBDA for redMaPPer)'),
    sa.Column('z_err', sa.Double(), nullable=True, comment='redshift uncertainty'),
    sa.Column('richness', sa.Double(), nullable=True, comment='richness lambda (galaxies)'),
    sa.Column('richness_err', sa.Double(), nullable=True, comment='richness uncertainty (galaxies)'),
    sa.Column('extra', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False, comment='other source columns'),
    sa.ForeignKeyConstraint(['catalog_id'], ['catalogs.id'], name=op.f('fk_clusters_catalog_id_catalogs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clusters')),
    sa.UniqueConstraint('catalog_id', 'source_id', name=op.f('uq_clusters_catalog_id_source_id')),
    comment='galaxy clusters'
    )
    op.create_index(op.f('ix_clusters_catalog_id'), 'clusters', ['catalog_id'], unique=False)
    op.create_index(op.f('ix_clusters_hpx29'), 'clusters', ['hpx29'], unique=False)
    op.create_index(op.f('ix_clusters_name'), 'clusters', ['name'], unique=False)
    op.create_table('fields',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('catalog_id', sa.Integer(), nullable=False),
    sa.Column('run', sa.Integer(), nullable=False),
    sa.Column('rerun', sa.Text(), nullable=False),
    sa.Column('camcol', sa.Integer(), nullable=False),
    sa.Column('field', sa.Integer(), nullable=False),
    sa.Column('ra', sa.Double(), nullable=False, comment='field centre right ascension, deg'),
    sa.Column('dec', sa.Double(), nullable=False, comment='field centre declination, deg'),
    sa.Column('hpx29', sa.BigInteger(), nullable=False, comment='HEALPix NESTED index at order 29 of (ra, dec)'),
    sa.Column('score', sa.Double(), nullable=True, comment='SDSS field quality score (0..1)'),
    sa.Column('extra', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False, comment='other window_flist columns (MU/NU bounds, INCL, NODE...)'),
    sa.ForeignKeyConstraint(['catalog_id'], ['catalogs.id'], name=op.f('fk_fields_catalog_id_catalogs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fields')),
    sa.UniqueConstraint('run', 'rerun', 'camcol', 'field', name=op.f('uq_fields_run_rerun_camcol_field')),
    comment='SDSS field index from window_flist'
    )
    op.create_index(op.f('ix_fields_catalog_id'), 'fields', ['catalog_id'], unique=False)
    op.create_index(op.f('ix_fields_hpx29'), 'fields', ['hpx29'], unique=False)
    op.create_table('mass_measurements',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('catalog_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=False, comment="the catalogue's own id or name"),
    sa.Column('name', sa.Text(), nullable=True, comment='object name'),
    sa.Column('ra', sa.Double(), nullable=False, comment='right ascension, deg'),
    sa.Column('dec', sa.Double(), nullable=False, comment='declination, deg'),
    sa.Column('hpx29', sa.BigInteger(), nullable=False, comment='HEALPix NESTED index at order 29 of (ra, dec)'),
    sa.Column('z', sa.Double(), nullable=True, comment='redshift; NULL if unknown'),
    sa.Column('log10_m500', sa.Double(), nullable=True, comment='log10(M500 / Msun), h = 0.7; NULL if unknown'),
    sa.Column('log10_m500_err_low', sa.Double(), nullable=True, comment='lower 1-sigma error of log10_m500, dex'),
    sa.Column('log10_m500_err_high', sa.Double(), nullable=True, comment='upper 1-sigma error of log10_m500, dex'),
    sa.Column('method', sa.Text(), nullable=False, comment='xray | sz | other'),
    sa.Column('extra', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False, comment='other source columns'),
    sa.ForeignKeyConstraint(['catalog_id'], ['catalogs.id'], name=op.f('fk_mass_measurements_catalog_id_catalogs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mass_measurements')),
    sa.UniqueConstraint('catalog_id', 'source_id', name=op.f('uq_mass_measurements_catalog_id_source_id')),
    comment='external M500 measurements (MCXC, PSZ2, ...)'
    )
    op.create_index(op.f('ix_mass_measurements_catalog_id'), 'mass_measurements', ['catalog_id'], unique=False)
    op.create_index(op.f('ix_mass_measurements_hpx29'), 'mass_measurements', ['hpx29'], unique=False)
    op.create_table('runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False, comment='predict | fetch | explain'),
    sa.Column('status', sa.Text(), nullable=False, comment='running | done | failed | interrupted'),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('started', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished', sa.DateTime(timezone=True), nullable=True),
    sa.Column('n_tiles', sa.Integer(), server_default='0', nullable=False),
    sa.Column('n_clusters', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_runs_model_id_models'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    comment='pipeline runs'
    )
    op.create_index(op.f('ix_runs_model_id'), 'runs', ['model_id'], unique=False)
    op.create_table('cutouts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('cluster_id', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False, comment='image source: sas | local | mock'),
    sa.Column('bands', sa.Text(), server_default='ugriz', nullable=False, comment='band order of the array'),
    sa.Column('size', sa.Integer(), nullable=False, comment='cutout side, pixels'),
    sa.Column('pixel_scale', sa.Double(), nullable=False, comment='arcsec per pixel'),
    sa.Column('path', sa.Text(), nullable=True, comment='store file holding this cutout'),
    sa.Column('sha256', sa.Text(), nullable=True, comment='sha256 of the store file'),
    sa.Column('covered_fraction', sa.Double(), nullable=True, comment='fraction of cutout pixels covered by frames'),
    sa.Column('status', sa.Text(), nullable=False, comment='ok | partial | failed'),
    sa.Column('error', sa.Text(), nullable=True, comment='why it failed'),
    sa.Column('created', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['cluster_id'], ['clusters.id'], name=op.f('fk_cutouts_cluster_id_clusters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cutouts')),
    sa.UniqueConstraint('cluster_id', 'source', name=op.f('uq_cutouts_cluster_id_source')),
    comment='cutout store index'
    )
    op.create_index(op.f('ix_cutouts_cluster_id'), 'cutouts', ['cluster_id'], unique=False)
    op.create_table('labels',
    sa.Column('cluster_id', sa.BigInteger(), nullable=False),
    sa.Column('measurement_id', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False, comment='label source: catalogue kind of the measurement (mcxc, psz2...)'),
    sa.Column('separation_arcsec', sa.Double(), nullable=False, comment='angular separation, arcsec'),
    sa.Column('dz', sa.Double(), nullable=True, comment='z_measurement - z_cluster'),
    sa.Column('log10_m500', sa.Double(), nullable=False, comment='log10(M500 / Msun), h = 0.7'),
    sa.Column('log10_m500_err', sa.Double(), nullable=True, comment='symmetrised 1-sigma error, dex'),
    sa.ForeignKeyConstraint(['cluster_id'], ['clusters.id'], name=op.f('fk_labels_cluster_id_clusters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['measurement_id'], ['mass_measurements.id'], name=op.f('fk_labels_measurement_id_mass_measurements'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cluster_id', name=op.f('pk_labels')),
    comment='cluster <-> mass measurement cross-match, one label per cluster'
    )
    op.create_index(op.f('ix_labels_measurement_id'), 'labels', ['measurement_id'], unique=False)
    op.create_table('predictions',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('cluster_id', sa.BigInteger(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('log10_m500', sa.Double(), nullable=False, comment='log10(M500 / Msun), h = 0.7'),
    sa.Column('log10_m500_err', sa.Double(), nullable=True, comment='1-sigma error, dex (ensemble spread + CV scatter)'),
    sa.Column('created', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['cluster_id'], ['clusters.id'], name=op.f('fk_predictions_cluster_id_clusters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_predictions_model_id_models'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_predictions_run_id_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_predictions')),
    sa.UniqueConstraint('cluster_id', 'model_id', name=op.f('uq_predictions_cluster_id_model_id')),
    comment='predicted masses'
    )
    op.create_index(op.f('ix_predictions_cluster_id'), 'predictions', ['cluster_id'], unique=False)
    op.create_index(op.f('ix_predictions_model_id'), 'predictions', ['model_id'], unique=False)
    op.create_index(op.f('ix_predictions_run_id'), 'predictions', ['run_id'], unique=False)
    op.create_table('run_tiles',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('norder', sa.Integer(), nullable=False, comment='HEALPix order of the tile'),
    sa.Column('npix', sa.BigInteger(), nullable=False, comment='NESTED pixel index at that order'),
    sa.Column('status', sa.Text(), server_default='pending', nullable=False, comment='pending | running | done | failed'),
    sa.Column('n_clusters', sa.Integer(), server_default='0', nullable=False),
    sa.Column('n_done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('n_failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('worker', sa.Text(), nullable=True),
    sa.Column('started', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished', sa.DateTime(timezone=True), nullable=True),
    sa.Column('seconds', sa.Double(), nullable=True, comment='wall time of the tile task, s'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_tiles_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_tiles')),
    sa.UniqueConstraint('run_id', 'norder', 'npix', name=op.f('uq_run_tiles_run_id_norder_npix')),
    comment='tiles of a run'
    )
    op.create_index(op.f('ix_run_tiles_run_id'), 'run_tiles', ['run_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_run_tiles_run_id'), table_name='run_tiles')
    op.drop_table('run_tiles')
    op.drop_index(op.f('ix_predictions_run_id'), table_name='predictions')
    op.drop_index(op.f('ix_predictions_model_id'), table_name='predictions')
    op.drop_index(op.f('ix_predictions_cluster_id'), table_name='predictions')
    op.drop_table('predictions')
    op.drop_index(op.f('ix_labels_measurement_id'), table_name='labels')
    op.drop_table('labels')
    op.drop_index(op.f('ix_cutouts_cluster_id'), table_name='cutouts')
    op.drop_table('cutouts')
    op.drop_index(op.f('ix_runs_model_id'), table_name='runs')
    op.drop_table('runs')
    op.drop_index(op.f('ix_mass_measurements_hpx29'), table_name='mass_measurements')
    op.drop_index(op.f('ix_mass_measurements_catalog_id'), table_name='mass_measurements')
    op.drop_table('mass_measurements')
    op.drop_index(op.f('ix_fields_hpx29'), table_name='fields')
    op.drop_index(op.f('ix_fields_catalog_id'), table_name='fields')
    op.drop_table('fields')
    op.drop_index(op.f('ix_clusters_name'), table_name='clusters')
    op.drop_index(op.f('ix_clusters_hpx29'), table_name='clusters')
    op.drop_index(op.f('ix_clusters_catalog_id'), table_name='clusters')
    op.drop_table('clusters')
    op.drop_table('models')
    op.drop_index(op.f('ix_catalogs_sha256'), table_name='catalogs')
    op.drop_table('catalogs')
