"""predictions.fold: which cross-validation fold's model predicted a trained-on cluster

Revision ID: 0003_predictions_fold
Revises: 0002_sql_reader_role
Create Date: 2026-11-26 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0003_predictions_fold'
down_revision = '0002_sql_reader_role'
branch_labels = None
depends_on = None

OLD_ERR_COMMENT = '1-sigma error, dex (ensemble spread + CV scatter)'
NEW_ERR_COMMENT = '1-sigma error on the true mass, dex (calibrated on the out-of-fold residuals)'


def upgrade() -> None:
    op.add_column('predictions', sa.Column(
        'fold', sa.Integer(), nullable=True,
        comment="cross-validation fold that held this cluster's label out of training and whose model gave "
                "this prediction; NULL: the label was not used in training (prediction of the full model)",
    ))
    op.alter_column('predictions', 'log10_m500_err', existing_type=sa.Double(), existing_nullable=True,
                    comment=NEW_ERR_COMMENT, existing_comment=OLD_ERR_COMMENT)


def downgrade() -> None:
    op.alter_column('predictions', 'log10_m500_err', existing_type=sa.Double(), existing_nullable=True,
                    comment=OLD_ERR_COMMENT, existing_comment=NEW_ERR_COMMENT)
    op.drop_column('predictions', 'fold')
