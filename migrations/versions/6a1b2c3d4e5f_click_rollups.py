"""click rollups per hour, day and all time; daily visitors

Statistics now read per-link aggregates (click_rollups) that the click shipper keeps in
the same transaction as the clicks, and unique visitors come from one row per visitor
hash and UTC day (daily_visitors). Both are filled here from the clicks already stored,
with one INSERT ... SELECT ... GROUP BY per figure, in the shapes
app/services/rollups.py writes.

Revision ID: 6a1b2c3d4e5f
Revises: 5f0c1a2b3c4d
Create Date: 2026-12-02

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '6a1b2c3d4e5f'
down_revision = '5f0c1a2b3c4d'
branch_labels = None
depends_on = None


# Each table's keys: (primary key columns, foreign key). On PostgreSQL they are added after
# the backfill: building an index from the loaded rows, and checking a foreign key in one
# pass, is several times faster than maintaining both for each of millions of rows.
_KEYS = {
    'click_rollups': (
        ['link_id', 'period', 'dimension', 'bucket_start', 'value', 'is_bot', 'is_internal'],
        'fk_click_rollups_link_id_links',
    ),
    'daily_visitors': (
        ['link_id', 'day', 'scope', 'visitor_hash'],
        'fk_daily_visitors_link_id_links',
    ),
}


def upgrade():
    dialect = op.get_bind().dialect.name
    # SQLite can not add keys to a table afterwards (and its databases are small).
    keys_first = dialect != "postgresql"
    op.create_table('click_rollups',
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=4), nullable=False),
    sa.Column('dimension', sa.String(length=16), nullable=False),
    sa.Column('bucket_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('is_bot', sa.Boolean(), nullable=False),
    sa.Column('is_internal', sa.Boolean(), nullable=False),
    sa.Column('clicks', sa.BigInteger(), nullable=False),
    *_key_constraints('click_rollups', keys_first),
    )
    op.create_table('daily_visitors',
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False),
    sa.Column('visitor_hash', sa.String(length=64), nullable=False),
    sa.Column('first_hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_hour', sa.DateTime(timezone=True), nullable=False),
    *_key_constraints('daily_visitors', keys_first),
    )
    if dialect == "postgresql":
        # The app's 5 s statement timeout is for requests; a backfill over millions of
        # clicks runs for minutes, inside this migration's transaction only.
        op.execute("SET LOCAL statement_timeout = 0")
    _backfill(_TIME_SQL[dialect])
    if not keys_first:
        for table, (columns, foreign_key) in _KEYS.items():
            op.create_primary_key(op.f(f'pk_{table}'), table, columns)
            op.create_foreign_key(
                op.f(foreign_key), table, 'links', ['link_id'], ['id'], ondelete='CASCADE'
            )


def _key_constraints(table, wanted):
    """The table's primary and foreign key constraints, if `wanted` at creation."""
    if not wanted:
        return []
    columns, foreign_key = _KEYS[table]
    return [
        sa.ForeignKeyConstraint(['link_id'], ['links.id'], name=op.f(foreign_key), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint(*columns, name=op.f(f'pk_{table}')),
    ]


# Time expressions in the column formats the app's models store. PostgreSQL truncates in
# UTC whatever the session's time zone; SQLite keeps UTC times as text
# "YYYY-MM-DD HH:MM:SS.ffffff" and dates as "YYYY-MM-DD".
_TIME_SQL = {
    "postgresql": {
        "hour": "timezone('UTC', date_trunc('hour', timezone('UTC', clicked_at)))",
        "day": "timezone('UTC', date_trunc('day', timezone('UTC', clicked_at)))",
        "all": "TIMESTAMPTZ '1970-01-01 00:00:00+00'",
        "date": "CAST(timezone('UTC', clicked_at) AS date)",
        "date_start": "timezone('UTC', CAST(day AS timestamp))",
    },
    "sqlite": {
        "hour": "substr(clicked_at, 1, 13) || ':00:00.000000'",
        "day": "substr(clicked_at, 1, 10) || ' 00:00:00.000000'",
        "all": "'1970-01-01 00:00:00.000000'",
        "date": "substr(clicked_at, 1, 10)",
        "date_start": "day || ' 00:00:00.000000'",
    },
}
# The dimensions of click_rollups and the clicks column each one counts.
_DIMENSION_COLUMNS = {
    "referrer": "referrer_host",
    "browser": "browser",
    "os": "os",
    "device": "device_type",
    "country": "country",
}
_INSERT_ROLLUPS = (
    "INSERT INTO click_rollups"
    " (link_id, period, dimension, bucket_start, value, is_bot, is_internal, clicks) "
)


def _backfill(time_sql):
    """Fill click_rollups and daily_visitors from every stored click."""
    for period in ("hour", "day", "all"):
        bucket = time_sql[period]
        # Every click, bots and the team's own included.
        op.execute(
            _INSERT_ROLLUPS
            + f"SELECT link_id, '{period}', 'total', bucket_start, '', is_bot, is_internal,"
            " count(*) FROM"
            f" (SELECT link_id, {bucket} AS bucket_start, is_bot, is_internal FROM clicks) AS c"
            " GROUP BY link_id, bucket_start, is_bot, is_internal"
        )
        # People's clicks per value; an unknown value is stored as ''.
        for dimension, column in _DIMENSION_COLUMNS.items():
            op.execute(
                _INSERT_ROLLUPS
                + f"SELECT link_id, '{period}', '{dimension}', bucket_start, value, false,"
                " is_internal, count(*) FROM"
                f" (SELECT link_id, {bucket} AS bucket_start, coalesce({column}, '') AS value,"
                " is_internal FROM clicks WHERE NOT is_bot) AS c"
                " GROUP BY link_id, bucket_start, value, is_internal"
            )
    # A visitor is a person's visitor hash on one UTC day, with the first and last hour seen.
    for scope, condition in (("all", ""), ("external", " AND NOT is_internal")):
        op.execute(
            "INSERT INTO daily_visitors"
            " (link_id, day, scope, visitor_hash, first_hour, last_hour) "
            f"SELECT link_id, day, '{scope}', visitor_hash, min(hour), max(hour) FROM"
            f" (SELECT link_id, {time_sql['date']} AS day, visitor_hash,"
            f" {time_sql['hour']} AS hour FROM clicks"
            f" WHERE NOT is_bot AND visitor_hash IS NOT NULL{condition}) AS c"
            " GROUP BY link_id, day, visitor_hash"
        )
    visitor_counts = {
        ("day", "visitors"): (time_sql["date_start"], "day"),
        ("all", "visitors"): (time_sql["all"], None),
        ("hour", "first_visit"): ("first_hour", "first_hour"),
        ("hour", "last_visit"): ("last_hour", "last_hour"),
    }
    for (period, dimension), (bucket, grouped_by) in visitor_counts.items():
        group = f"link_id, scope, {grouped_by}" if grouped_by else "link_id, scope"
        op.execute(
            _INSERT_ROLLUPS
            + f"SELECT link_id, '{period}', '{dimension}', {bucket}, scope, false, false,"
            f" count(*) FROM daily_visitors GROUP BY {group}"
        )


def downgrade():
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_table('daily_visitors')
    op.drop_table('click_rollups')
    # ### end Alembic commands ###
