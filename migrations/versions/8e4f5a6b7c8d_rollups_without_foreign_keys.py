"""rollups and daily visitors keep their link id without a foreign key

A foreign key check is a query per inserted row, and a click on a link not yet clicked in
its hour inserts about twenty rollup and visitor rows: the checks were a quarter of the
click shipper's time. Their rows are deleted with their link's org instead
(app/services/org_settings.py), which locks the links first so no batch adds to them
meanwhile.

Revision ID: 8e4f5a6b7c8d
Revises: 7c2d3e4f5a6b
Create Date: 2026-12-02

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '8e4f5a6b7c8d'
down_revision = '7c2d3e4f5a6b'
branch_labels = None
depends_on = None

_TABLES = ('click_rollups', 'daily_visitors')


def upgrade():
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f'fk_{table}_link_id_links'), type_='foreignkey')


def downgrade():
    for table in _TABLES:
        # Rows of links deleted without the key (none, if every org was deleted by the app).
        op.execute(f'DELETE FROM {table} WHERE link_id NOT IN (SELECT id FROM links)')
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                batch_op.f(f'fk_{table}_link_id_links'), 'links', ['link_id'], ['id'],
                ondelete='CASCADE',
            )
