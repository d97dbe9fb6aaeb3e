"""last used org moves to a browser cookie

Opening a page must not write to the database, so the org a person last opened is now
remembered by a cookie in their browser instead of a column on users.

Revision ID: b1a2d0ffb847
Revises: b98e71498fc3
Create Date: 2026-11-24

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b1a2d0ffb847'
down_revision = 'b98e71498fc3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_users_last_org_id_orgs'), type_='foreignkey')
        batch_op.drop_column('last_org_id')


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_org_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_users_last_org_id_orgs'), 'orgs', ['last_org_id'], ['id'],
            ondelete='SET NULL',
        )
