"""predictions.score: the label-trained regression's estimate; log10_m500 becomes the population posterior

Revision ID: 0004_predictions_score
Revises: 0003_predictions_fold
Create Date: 2026-11-30 09:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_predictions_score'
down_revision = '0003_predictions_fold'
branch_labels = None
depends_on = None

SCORE_COMMENT = ("the model's regression estimate of log10 M500 as fitted on the X-ray/SZ-selected labels, dex; "
                 "biased high for unlabelled clusters: use log10_m500")
OLD_MASS_COMMENT = 'log10(M500 / Msun), h = 0.7'
NEW_MASS_COMMENT = ('log10(M500 / Msun), h = 0.7: posterior mean for the catalogue population given the score, z and the '
                    'halo mass function (the score where the model has no population calibration)')
OLD_ERR_COMMENT = '1-sigma error on the true mass, dex (calibrated on the out-of-fold residuals)'
NEW_ERR_COMMENT = '1-sigma error on the true mass, dex (posterior standard deviation)'


def upgrade() -> None:
    op.add_column('predictions', sa.Column('score', sa.Double(), nullable=True, comment=SCORE_COMMENT))
    op.alter_column('predictions', 'log10_m500', existing_type=sa.Double(), existing_nullable=False,
                    comment=NEW_MASS_COMMENT, existing_comment=OLD_MASS_COMMENT)
    op.alter_column('predictions', 'log10_m500_err', existing_type=sa.Double(), existing_nullable=True,
                    comment=NEW_ERR_COMMENT, existing_comment=OLD_ERR_COMMENT)


def downgrade() -> None:
    op.alter_column('predictions', 'log10_m500_err', existing_type=sa.Double(), existing_nullable=True,
                    comment=OLD_ERR_COMMENT, existing_comment=NEW_ERR_COMMENT)
    op.alter_column('predictions', 'log10_m500', existing_type=sa.Double(), existing_nullable=False,
                    comment=OLD_MASS_COMMENT, existing_comment=NEW_MASS_COMMENT)
    op.drop_column('predictions', 'score')
