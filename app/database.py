"""Bounded waits on PostgreSQL: a pooled connection is checked with a deadline before use.

`statement_timeout` and `lock_timeout` (see `database_engine_options` in app/config.py) are
enforced by the server, and `connect_timeout` bounds a new connection. None of them helps
when the server is frozen (SIGSTOP, a hung host): the kernel still accepts what a pooled
connection sends, and the driver waits for an answer forever. So, instead of SQLAlchemy's
pre-ping, which waits as long as it takes, each checkout sends `SELECT 1` through libpq's
non-blocking calls and gives up after a deadline; the pool then drops every connection and
opens a new one, which `connect_timeout` bounds, and the request answers 503.

Also here: how every new connection is set up (SQLite's pragmas, binary arrays on
PostgreSQL), batches of rows sent as arrays, the dialect's INSERT ... ON CONFLICT, and
migrations per dialect.
"""

import time
from select import select as wait_for_sockets

from psycopg.types.array import ListBinaryDumper
from sqlalchemy import ARRAY, ColumnElement, Subquery, Table, bindparam, cast, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType


class BinaryArray(list):
    """A list of values that psycopg sends to PostgreSQL as one binary array.

    In text, psycopg quotes each element in Python, about ten times slower, which is what
    the click shipper's rollup statements (arrays of thousands of values) spent most of
    their time on. Cast the parameter to its array type in SQL: an all-NULL array names
    no element type.
    """


def rows_from_arrays(names: list[str], rows: list[tuple], table: Table) -> Subquery:
    """The rows (each the values of `table`'s columns `names`) as a PostgreSQL subquery
    reading one array parameter per column.

    A batch's thousands of rows then make one statement with a few parameters, parsed and
    planned once; executemany or a multi-row VALUES would cost a round of work per row.
    The arrays go in binary (BinaryArray). The values must already be what the columns
    hold (aware UTC datetimes, say): no SQLAlchemy type processes them.
    """
    columns = zip(*rows, strict=True)
    return select(
        *(
            # The cast names the type even when every value is NULL (no element tells it).
            func.unnest(
                cast(
                    bindparam(f"{name}_values", BinaryArray(values), type_=NullType()),
                    ARRAY(table.c[name].type),
                )
            ).label(name)
            for name, values in zip(names, columns, strict=True)
        )
    ).subquery()


def any_array(values: list, element_type) -> ColumnElement:
    """`= ANY(...)` of one binary array parameter (PostgreSQL): a column compared with
    thousands of values without a parameter, and a round of work, per value."""
    return func.any(
        cast(bindparam("any_values", BinaryArray(values), type_=NullType()), ARRAY(element_type))
    )


@event.listens_for(Engine, "connect")
def _prepare_connection(dbapi_connection, connection_record) -> None:
    """Set up each new connection, whatever engine opened it.

    psycopg: send BinaryArray values in binary.

    SQLite: enforce foreign keys, and run in WAL mode so readers go on while one
    connection writes (its busy timeout comes from the engine's options). In SQLite's
    default journal mode a reader waits for a writer's commit: each worker's
    once-a-second link-cache refresh waited for the click shipper's batch, up to a second
    (a p99 of 1 s in `make bench`). In WAL mode readers see the last commit meanwhile.
    """
    module = type(dbapi_connection).__module__
    if module.startswith("psycopg"):
        dbapi_connection.adapters.register_dumper(BinaryArray, ListBinaryDumper)
    elif module.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


class PingTimedOut(InvalidatePoolError):
    """The database did not answer a ping in time: drop every pooled connection."""


def ping_answers_within(dbapi_connection, seconds: float) -> bool:
    """Send `SELECT 1` on a psycopg connection and tell whether the answer came in time.

    Uses psycopg's libpq interface (`psycopg.pq`) directly, so the wait is ours to bound.
    """
    pgconn = dbapi_connection.pgconn
    deadline = time.monotonic() + seconds
    if not pgconn.send_query(b"SELECT 1") and pgconn.error_message:
        return False
    while pgconn.flush() != 0:
        if not _wait(pgconn.socket, deadline, writing=True):
            return False
    while True:
        pgconn.consume_input()
        if pgconn.is_busy():
            if not _wait(pgconn.socket, deadline, writing=False):
                return False
            continue
        result = pgconn.get_result()
        if result is None:
            return True
        if result.error_message:
            return False


def _wait(fd: int, deadline: float, *, writing: bool) -> bool:
    """Wait until the socket can be read (or written) or the deadline passes."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    readable, writable, _ = wait_for_sockets(
        [] if writing else [fd], [fd] if writing else [], [], remaining
    )
    return bool(writable if writing else readable)


def bound_pings(engine: Engine, seconds: float) -> None:
    """Check each PostgreSQL connection taken from `engine`'s pool with a ping of at most
    `seconds`; a connection that does not answer in time invalidates the whole pool."""

    @event.listens_for(engine, "checkout")
    def ping_with_deadline(dbapi_connection, connection_record, connection_proxy):
        """Refuse a pooled connection whose server does not answer within the deadline."""
        if not ping_answers_within(dbapi_connection, seconds):
            raise PingTimedOut(f"the database did not answer a ping within {seconds} s")


def exists_on(dialect_name: str):
    """An Alembic `include_object` that leaves out schema items built only on other databases.

    Alembic's comparison ignores `ddl_if`, so without this a PostgreSQL-only index reads as
    missing on SQLite.
    """

    def include(item, name, type_, reflected, compare_to) -> bool:
        """Tell whether `item` is created on this kind of database."""
        condition = getattr(item, "_ddl_if", None)
        return condition is None or condition.dialect in (None, dialect_name)

    return include


def on_postgresql(session: Session) -> bool:
    """Tell whether the session's database is PostgreSQL (else it is SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def insert_on_conflict(session: Session, table):
    """An INSERT into `table` that can take an ON CONFLICT clause, for the session's
    database (PostgreSQL, else SQLite)."""
    return (postgresql if on_postgresql(session) else sqlite).insert(table)
