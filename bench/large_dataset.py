"""The `make bench-reads` data set, made inside PostgreSQL with generate_series.

--links links across --orgs orgs, and --clicks clicks of which --big-link-clicks go to one
link over the past year. Every fifth link belongs to the first org ("acme"), the org the
dashboard is measured on; its first link is the big one. The other clicks fall on links
with a steep skew (a few links get tens of thousands, most get a handful or none), spread
over the past year.

Clicks are written first, by parallel sessions, with the (link_id, clicked_at) index
dropped and foreign key triggers off (session_replication_role, so a superuser such as
the default postgres): the data is consistent by construction and this is what makes
10 million rows take about a minute. The links follow with their click counts taken
from the clicks.
"""

import threading
import time
from dataclasses import dataclass

import psycopg

BIG_ORG_SLUG = "acme"
BIG_ORG_EVERY = 5
# The first link of the big org (ids are 1..links, every fifth is the big org's).
BIG_LINK_ID = BIG_ORG_EVERY
# A word per link title and destination path: searching for one matches 1 in 11 links.
WORDS = (
    "newsletter",
    "launch",
    "webinar",
    "pricing",
    "careers",
    "blog",
    "release",
    "promo",
    "survey",
    "handbook",
    "podcast",
)
DOMAINS = (
    "www.example.com",
    "shop.example.com",
    "docs.example.org",
    "blog.example.net",
    "events.example.io",
    "careers.example.com",
    "news.example.org",
    "app.example.com",
    "example.co.uk",
    "help.example.com",
    "store.example.de",
    "media.example.fr",
    "jobs.example.nl",
)
# Linked by a foreign key to links, so it can not be written before them otherwise.
_BULK_SESSION = (
    "SET session_replication_role = replica",
    "SET maintenance_work_mem = '512MB'",
    "SET synchronous_commit = off",
    "SET statement_timeout = 0",
)


@dataclass(frozen=True)
class Shape:
    """How big the data set is."""

    orgs: int
    links: int
    clicks: int
    big_link_clicks: int


def seed(url: str, shape: Shape, jobs: int = 2) -> dict[str, float]:
    """Fill an empty, migrated database; return seconds per step."""
    timings = {}
    with _bulk_connection(url) as conn:
        started = time.monotonic()
        _insert_orgs(conn, shape)
        # Built once over the loaded rows, an index costs a fraction of row-by-row upkeep
        # (the trigram GIN indexes on links most of all).
        deferred = _drop_plain_indexes(conn, "clicks") + _drop_plain_indexes(conn, "links")
        conn.commit()
        timings["orgs"] = time.monotonic() - started

    started = time.monotonic()
    _insert_clicks_in_parallel(url, shape, jobs)
    timings[f"clicks ({jobs} sessions)"] = time.monotonic() - started

    with _bulk_connection(url) as conn:
        started = time.monotonic()
        _insert_links(conn, shape)
        conn.commit()
        timings["links with their counts"] = time.monotonic() - started
        started = time.monotonic()
        for definition in deferred:
            conn.execute(definition)
        conn.commit()
        timings[f"{len(deferred)} indexes rebuilt"] = time.monotonic() - started
    return timings


def _drop_plain_indexes(conn: psycopg.Connection, table: str) -> list[str]:
    """Drop the table's indexes that back no constraint; return their definitions."""
    rows = conn.execute(
        "SELECT ix.relname, pg_get_indexdef(ix.oid)"
        " FROM pg_index JOIN pg_class AS ix ON ix.oid = pg_index.indexrelid"
        " WHERE pg_index.indrelid = %s::regclass"
        "   AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = pg_index.indexrelid)",
        (table,),
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def _bulk_connection(url: str) -> psycopg.Connection:
    """A connection set up for bulk loading."""
    conn = psycopg.connect(url)
    for statement in _BULK_SESSION:
        conn.execute(statement)
    return conn


def _insert_orgs(conn: psycopg.Connection, shape: Shape) -> None:
    """The orgs, ids 1..orgs; the first is the big org."""
    conn.execute(
        "INSERT INTO orgs (id, name, slug, created_at, allow_private_destinations)"
        " SELECT n, CASE n WHEN 1 THEN 'Acme' ELSE 'Org ' || n END,"
        "        CASE n WHEN 1 THEN %(big)s ELSE 'org-' || n END,"
        "        now() - interval '3 years', false"
        " FROM generate_series(1, %(orgs)s::int) AS n",
        {"big": BIG_ORG_SLUG, "orgs": shape.orgs},
    )
    conn.execute("SELECT setval(pg_get_serial_sequence('orgs', 'id'), %s)", (shape.orgs,))


def _insert_clicks_in_parallel(url: str, shape: Shape, jobs: int) -> None:
    """Write the clicks from `jobs` sessions at once, each a slice of the numbers."""
    slices = [(shape.clicks * n // jobs + 1, shape.clicks * (n + 1) // jobs) for n in range(jobs)]
    failures: list[Exception] = []

    def insert(first: int, last: int, seed: float) -> None:
        try:
            with _bulk_connection(url) as conn:
                conn.execute("SELECT setseed(%s)", (seed,))
                _insert_clicks(conn, shape, first, last)
                conn.commit()
        except Exception as error:
            # Raised again in the calling thread, once every session has finished.
            failures.append(error)

    threads = [
        threading.Thread(target=insert, args=(first, last, (n + 1) / (jobs + 1)))
        for n, (first, last) in enumerate(slices)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _insert_clicks(conn: psycopg.Connection, shape: Shape, first: int, last: int) -> None:
    """Clicks numbered first..last: the big link's, then the skewed rest."""
    conn.execute(
        "INSERT INTO clicks (link_id, clicked_at, referrer_host, browser, os, device_type,"
        " is_bot, is_internal, country, visitor_hash)"
        " SELECT CASE WHEN g <= %(big_clicks)s THEN %(big_link)s"
        "             ELSE 1 + floor(%(links)s * power(random(), 3))::int END,"
        "        now() - random() * interval '365 days',"
        "        (ARRAY['www.google.com', 't.co', 'news.ycombinator.com', 'www.linkedin.com',"
        "               NULL, NULL, 'mail.google.com', 'duckduckgo.com'])[1 + mod(g, 8)],"
        "        (ARRAY['Chrome', 'Firefox', 'Safari', 'Edge', 'Mobile Safari',"
        "               'Chrome Mobile', 'Samsung Internet'])[1 + mod(g, 7)],"
        "        (ARRAY['Windows', 'Mac OS X', 'iOS', 'Android', 'Linux'])[1 + mod(g, 5)],"
        "        (ARRAY['desktop', 'desktop', 'mobile', 'mobile', 'tablet'])[1 + mod(g, 5)],"
        "        mod(g, 10) = 0,"
        "        mod(g, 50) = 1,"
        "        (ARRAY['US', 'DE', 'FR', 'GB', 'IN', 'BR', 'JP', 'NL', 'CA', 'ES', NULL,"
        "               'SE'])[1 + mod(g, 12)],"
        # 300,000 visitors; 64 hex characters like the app's HMAC-SHA256.
        "        md5(mod(g, 300000)::text) || md5(mod(g, 300000)::text || 'v')"
        " FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g",
        {
            "big_clicks": shape.big_link_clicks,
            "big_link": BIG_LINK_ID,
            "links": shape.links,
            "first": first,
            "last": last,
        },
    )


def _insert_links(conn: psycopg.Connection, shape: Shape) -> None:
    """Links 1..links, oldest first over two years, with click counts from the clicks."""
    conn.execute(
        "INSERT INTO links (id, org_id, slug, destination, title, created_at, updated_at,"
        " is_active, click_count, human_click_count, version)"
        " SELECT i,"
        "        CASE WHEN mod(i, %(every)s) = 0 THEN 1 ELSE 2 + mod(i, %(orgs)s - 1) END,"
        # A multiplicative hash mod 2**32 with an odd factor: 8 hex digits, none repeated.
        "        lpad(to_hex(mod(i::bigint * 2654435761, 4294967296)), 8, '0'),"
        "        'https://' || (%(domains)s::text[])[1 + mod(i, 13)] || '/'"
        "            || (%(words)s::text[])[1 + mod(i * 7, 11)] || '/' || i"
        "            || '?utm_source=linkdeck',"
        "        initcap((%(words)s::text[])[1 + mod(i * 7, 11)]) || ' ' || i,"
        "        created, created, true,"
        "        coalesce(counts.clicks, 0), coalesce(counts.human, 0), 0"
        " FROM generate_series(1, %(links)s::int) AS i"
        " CROSS JOIN LATERAL (SELECT now() - interval '730 days'"
        "                        * ((%(links)s - i)::float8 / %(links)s) AS created) AS t"
        " LEFT JOIN (SELECT link_id, count(*) AS clicks,"
        "                   count(*) FILTER (WHERE NOT is_bot AND NOT is_internal) AS human"
        "            FROM clicks GROUP BY link_id) AS counts ON counts.link_id = i",
        {
            "every": BIG_ORG_EVERY,
            "orgs": shape.orgs,
            "domains": list(DOMAINS),
            "words": list(WORDS),
            "links": shape.links,
        },
    )
    conn.execute("SELECT setval(pg_get_serial_sequence('links', 'id'), %s)", (shape.links,))
