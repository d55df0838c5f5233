"""predictions.population_log10_m500 / _err: the mass for the catalogue population (posterior)

Revision ID: 0004_predictions_population
Revises: 0003_predictions_fold
Create Date: 2026-11-30 09:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_predictions_population'
down_revision = '0003_predictions_fold'
branch_labels = None
depends_on = None

MASS_COMMENT = ('posterior mean of log10(M500 / Msun) for the catalogue population given the score (log10_m500), '
                'z and the halo mass function; calibrated on mock universes, too low on the real catalogue '
                '(docs/model.md); NULL: the model has no population relation')
ERR_COMMENT = 'posterior standard deviation of population_log10_m500, dex'


def upgrade() -> None:
    op.add_column('predictions', sa.Column('population_log10_m500', sa.Double(), nullable=True, comment=MASS_COMMENT))
    op.add_column('predictions', sa.Column('population_log10_m500_err', sa.Double(), nullable=True, comment=ERR_COMMENT))


def downgrade() -> None:
    op.drop_column('predictions', 'population_log10_m500_err')
    op.drop_column('predictions', 'population_log10_m500')
