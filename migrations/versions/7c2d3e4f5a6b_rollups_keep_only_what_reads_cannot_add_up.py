"""rollups keep only what reads can not add up quickly

Every rollup row costs the click shipper and the database, and a click on a link not yet
clicked in its hour wrote 26 of them. Statistics now add up what they can at read time:
unique visitors over several days are sums of the daily counts, and the 24-hour range
counts its visitors from daily_visitors. So the all-time visitor counts and the hourly
first- and last-visit counts go. Downgrading rebuilds them from the rows that stay.

Revision ID: 7c2d3e4f5a6b
Revises: 6a1b2c3d4e5f
Create Date: 2026-12-02

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '7c2d3e4f5a6b'
down_revision = '6a1b2c3d4e5f'
branch_labels = None
depends_on = None

# The bucket_start of the all-time rows, in the format each database stores it.
_ALL_TIME = {
    "postgresql": "TIMESTAMPTZ '1970-01-01 00:00:00+00'",
    "sqlite": "'1970-01-01 00:00:00.000000'",
}
_INSERT_ROLLUPS = (
    "INSERT INTO click_rollups"
    " (link_id, period, dimension, bucket_start, value, is_bot, is_internal, clicks) "
)


def upgrade():
    _no_statement_timeout()
    # One pass over the table, however large.
    op.execute(
        "DELETE FROM click_rollups WHERE (period = 'all' AND dimension = 'visitors')"
        " OR (period = 'hour' AND dimension IN ('first_visit', 'last_visit'))"
    )


def downgrade():
    _no_statement_timeout()
    all_time = _ALL_TIME[op.get_bind().dialect.name]
    # The all-time visitors, summed over the days.
    op.execute(
        _INSERT_ROLLUPS
        + f"SELECT link_id, 'all', 'visitors', {all_time}, value, false, false,"
        " sum(clicks) FROM click_rollups WHERE period = 'day' AND dimension = 'visitors'"
        " GROUP BY link_id, value"
    )
    # How many of each day's visitors came first, or last, in each hour.
    for dimension, column in (("first_visit", "first_hour"), ("last_visit", "last_hour")):
        op.execute(
            _INSERT_ROLLUPS
            + f"SELECT link_id, 'hour', '{dimension}', {column}, scope, false, false,"
            f" count(*) FROM daily_visitors GROUP BY link_id, scope, {column}"
        )


def _no_statement_timeout():
    """Lift the app's 5 s statement timeout (meant for requests) for this transaction:
    on a large database these statements run for minutes."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL statement_timeout = 0")
