"""daily random salts for visitor hashes

Visitor hashes were keyed by SECRET_KEY and the date, so anyone holding the key and a
database copy could test guessed IP addresses against any day. Each day now gets a
random salt, and older salts are deleted.

Revision ID: 876a044d4b30
Revises: b1a2d0ffb847
Create Date: 2026-11-24

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '876a044d4b30'
down_revision = 'b1a2d0ffb847'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('visitor_salts',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_visitor_salts'))
    )


def downgrade():
    op.drop_table('visitor_salts')
