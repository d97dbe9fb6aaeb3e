"""`make bench-shipping`: what storing a spooled click costs the shipper and the database.

Not a test: it prints figures. It seeds a scratch database with --links links, then for
each traffic shape spools --clicks anonymous clicks with the app's own spool and ships
them in this process with the app's own shipper, in batches of CLICK_BATCH_SIZE, as
`flask ship-clicks` does:

  - spread: every click on a random link of all of them, by a new visitor, so nearly
    every click lands on a link with no click yet in its hour (the rollups' worst case,
    and what `make bench`'s random slugs make);
  - ten links: every click on one of ten links, by one of 40 visitors (real traffic
    concentrates like this).

Per shape: wall time, the shipper's own CPU and the database backends' CPU, per click,
and the clicks per second one shipper keeps up with. The clicks stored are checked
against the clicks spooled.

    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres make bench-shipping
    make bench-shipping                                         # SQLite in a temp directory
"""

import argparse
import contextlib
import logging
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from databases import Database, migrate, random_slugs, seed_links
from runs import app_environment
from servers import PostgresBackendCpu

from app import create_app
from app.services.click_shipping import ship_pending
from app.services.click_spool import ClickSpool, spool_directory
from app.services.clicks import VisitDetails, click_record

# What wrk's requests in `make bench` look like to the redirect.
DETAILS = VisitDetails(
    browser="Other",
    os="Other",
    device_type="other",
    is_bot=False,
    referrer_host=None,
    country=None,
    visitor_hash=None,
)


@dataclass
class Shipped:
    """One shape's clicks shipped: how long they took and what they cost."""

    label: str
    clicks: int
    batches: int
    wall: float
    own_cpu: float
    # None on SQLite, whose work counts as the shipper's own.
    database_cpu: float | None

    def row(self) -> str:
        per_click = 1e6 / self.clicks
        database = "-" if self.database_cpu is None else f"{self.database_cpu * per_click:.0f}"
        return (
            f"  {self.label:<12}{self.clicks:>8,}{self.batches:>9}"
            f"{self.wall * per_click:>11.0f}{self.own_cpu * per_click:>11.0f}"
            f"{database:>11}{self.clicks / self.wall:>12,.0f}"
        )


HEADER = (
    f"  {'shape':<12}{'clicks':>8}{'batches':>9}{'wall':>11}{'shipper':>11}"
    f"{'database':>11}{'clicks/s':>12}\n"
    f"  {'':<12}{'':>8}{'':>9}{'us/click':>11}{'CPU us':>11}{'CPU us':>11}{'':>12}"
)


def spool(app, link_ids: list[int], visitors: int | None) -> None:
    """Spool one anonymous click per entry of `link_ids`, each by a new visitor or by
    one of `visitors`."""
    spool = ClickSpool(spool_directory(app), max_file_bytes=app.config["CLICK_SPOOL_FILE_BYTES"])
    for n, link_id in enumerate(link_ids):
        visitor = n if visitors is None else n % visitors
        details = replace(DETAILS, visitor_hash=f"{visitor:064x}")
        spool.append(
            click_record(
                link_id=link_id,
                org_id=1,
                clicked_at=datetime.now(UTC),
                details=details,
                user_id=None,
            )
        )
    spool.close()


def ship(app, database: Database, label: str, link_ids: list[int], visitors: int | None):
    """Spool the clicks, then time shipping all of them."""
    spool(app, link_ids, visitors)
    backends = PostgresBackendCpu(database.name) if database.kind == "postgresql" else None
    batches = 0
    with app.app_context(), backends or contextlib.nullcontext():
        started, cpu_started = time.perf_counter(), time.process_time()
        while ship_pending():
            batches += 1
        wall, own_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    database_cpu = backends.seconds if backends else None
    return Shipped(label, len(link_ids), batches, wall, own_cpu, database_cpu)


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000, help="links to seed (100000)")
    parser.add_argument("--clicks", type=int, default=20_000, help="clicks per shape (20000)")
    parser.add_argument("--batch", type=int, default=5000, help="CLICK_BATCH_SIZE (5000)")
    return parser.parse_args()


def main() -> int:
    """Seed, ship each shape, print the figures."""
    args = parse_args()
    base_url = os.environ.get("BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="linkdeck-bench-") as tmp:
        workdir = Path(tmp)
        if base_url:
            database = Database.postgresql(base_url, "shipping")
        else:
            database = Database.sqlite(workdir)
        try:
            env = app_environment(database.url, workdir / "unused-slugs")
            env["CLICK_SPOOL_DIR"] = str(workdir / "spool")
            env["CLICK_BATCH_SIZE"] = str(args.batch)
            migrate(env)
            seed_links(database, random_slugs(args.links))
            database.vacuum_analyze()
            os.environ.update(env)
            app = create_app()
            # One line per batch and spool file would bury the figures.
            logging.getLogger("app").setLevel(logging.WARNING)
            rng = random.Random(2026)
            with contextlib.closing(database.connect()) as conn:
                link_ids = [row[0] for row in conn.execute("SELECT id FROM links ORDER BY id")]
            results = [
                ship(app, database, "spread", rng.choices(link_ids, k=args.clicks), None),
                ship(app, database, "ten links", rng.choices(link_ids[:10], k=args.clicks), 40),
            ]
            stored = database.scalar("SELECT count(*) FROM clicks")
        finally:
            database.drop()
    print(
        f"{database.kind}, {args.links:,} links, batches of {args.batch:,} clicks;"
        " shipper and database on the same cores"
    )
    print(HEADER)
    for result in results:
        print(result.row())
    spooled = sum(result.clicks for result in results)
    print(f"  clicks stored: {stored:,} of {spooled:,} spooled")
    return 0 if stored == spooled else 1


if __name__ == "__main__":
    sys.exit(main())
