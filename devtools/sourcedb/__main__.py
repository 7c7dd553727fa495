"""`python -m devtools.sourcedb`: the shop's source database.

serve    start a local PostgreSQL (wal_level=logical) in DATA_DIR/sourcedb, apply the
         migrations, write its DSN to DATA_DIR/sourcedb/dsn and stay up until SIGTERM/Ctrl-C
migrate  apply pending migrations to SOURCE_DB_DSN (or the local database)
drive    run the synthetic shop into the database: the initial rows, then one database
         transaction per simulated transaction (--speed compresses simulated time)
status   the replication slots and migration history
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from datetime import date

from devtools.shop.simulator import ShopConfig, SyntheticShop
from devtools.sourcedb.driver import replay
from devtools.sourcedb.migrate import migrate
from devtools.sourcedb.server import LocalPostgres
from platform_core.settings import get_settings, resolve_source_db_dsn


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    data_dir = settings.data_path / "sourcedb"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = LocalPostgres(data_dir, port=args.port or None).start()
    try:
        applied = migrate(server.dsn())
        dsn_file = settings.source_db_dsn_file
        tmp = dsn_file.with_name(f".dsn.{os.getpid()}")
        tmp.write_text(server.dsn() + "\n")
        os.replace(tmp, dsn_file)
        _say(
            f"PostgreSQL ({server.bin_dir}) listening on {server.address}; "
            f"migrations applied now: {applied or 'none'}"
        )
        print(f"dsn={server.dsn()}", flush=True)
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                _say("PostgreSQL exited")
                return 1
    finally:
        settings.source_db_dsn_file.unlink(missing_ok=True)
        server.stop()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = migrate(resolve_source_db_dsn(get_settings(), args.dsn))
    _say(f"applied: {', '.join(applied) if applied else 'nothing (up to date)'}")
    return 0


def cmd_drive(args: argparse.Namespace) -> int:
    import psycopg

    dsn = resolve_source_db_dsn(get_settings(), args.dsn)
    config = ShopConfig(
        seed=args.seed,
        days=args.days,
        sessions_per_day=args.sessions_per_day,
        end_date=date.fromisoformat(args.end_date) if args.end_date else None,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        existing = conn.execute("select count(*) from users").fetchone()[0]
        if existing and not args.no_snapshot:
            _say(
                f"the database already holds {existing} users: use --no-snapshot to apply only "
                "the transactions, or start from an empty database"
            )
            return 2
        stats = replay(
            conn,
            SyntheticShop(config).run(),
            speed=args.speed,
            max_tps=args.max_tps,
            load_snapshot=not args.no_snapshot,
            limit=args.limit,
            should_stop=stop.is_set,
        )
    elapsed = time.monotonic() - started
    _say(
        f"applied {stats.transactions:,} transactions ({stats.changes:,} row changes: "
        f"{stats.by_op}) in {elapsed:.1f}s"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import psycopg

    with psycopg.connect(resolve_source_db_dsn(get_settings(), args.dsn)) as conn:
        for row in conn.execute(
            "select slot_name, plugin, active, restart_lsn, confirmed_flush_lsn, "
            "pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) "
            "from pg_replication_slots"
        ):
            print("slot", *row)
        for row in conn.execute(
            "select version, name, applied_at from schema_migrations order by version"
        ):
            print("migration", *row)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.sourcedb",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a local PostgreSQL for the shop")
    serve.add_argument("--port", type=int, default=0, help="default: a free port")
    serve.set_defaults(func=cmd_serve)
    for name, func in (("migrate", cmd_migrate), ("status", cmd_status)):
        sub = commands.add_parser(name)
        sub.add_argument("--dsn")
        sub.set_defaults(func=func)
    drive = commands.add_parser("drive", help="replay the synthetic shop into the database")
    drive.add_argument("--dsn")
    drive.add_argument("--days", type=int, default=30)
    drive.add_argument("--seed", type=int, default=42)
    drive.add_argument("--sessions-per-day", type=int, default=1000)
    drive.add_argument("--end-date")
    drive.add_argument(
        "--speed", type=float, help="simulated seconds per second (default: flat out)"
    )
    drive.add_argument("--max-tps", type=float, help="cap on transactions per second")
    drive.add_argument("--limit", type=int, help="stop after this many transactions")
    drive.add_argument(
        "--no-snapshot",
        action="store_true",
        help="skip the initial rows (the database holds them already)",
    )
    drive.set_defaults(func=cmd_drive)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
