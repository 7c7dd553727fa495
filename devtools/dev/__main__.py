"""`python -m devtools.dev` (`make dev`): the whole platform live on one machine, until Ctrl-C.

    python -m devtools.dev            start (or restart, keeping the data) and supervise
    python -m devtools.dev query SQL  query staging and the marts through the read path
    python -m devtools.dev reset      delete everything `make dev` keeps (`make dev-reset`)

Settings: devtools/dev/settings.py (DEV_EVENTS_PER_SECOND, DEV_BACKFILL_DAYS, DEV_DATA_DIR,
DEV_POSTGRES_PORT) and the platform's own (DAGSTER_UI_URL, COLLECTOR_PORT).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import duckdb

from devtools.dev.settings import DevSettings
from devtools.dev.supervisor import Supervisor, running_supervisor
from platform_core.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.dev",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("up", help="start and supervise (the default)")
    query = commands.add_parser("query", help="run SQL on the read path, print the rows")
    query.add_argument("sql")
    commands.add_parser("reset", help="delete DEV_DATA_DIR (stop make dev first)")
    args = parser.parse_args(argv)
    try:
        dev = DevSettings.from_env()
    except SettingsError as error:
        print(f"make dev: {error}", file=sys.stderr)
        return 2
    # every setting of the platform now points at the dev data directory, in this process
    # and in every child it starts
    os.environ.update(dev.platform_env())
    get_settings.cache_clear()
    if args.command == "query":
        return run_query(args.sql)
    if args.command == "reset":
        return reset(dev)
    return Supervisor(dev).run()


def run_query(sql: str) -> int:
    """Read-only, on the snapshot of the last completed refresh: never blocks a refresh."""
    path = get_settings().warehouse_read_path
    if not path.exists():
        print(f"no read snapshot yet at {path}: is make dev up and built?", file=sys.stderr)
        return 1
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            con.sql(sql).show(max_rows=200, max_width=200)
        except duckdb.Error as error:
            print(f"{type(error).__name__}: {error}", file=sys.stderr)
            return 1
    return 0


def reset(dev: DevSettings) -> int:
    running = running_supervisor(dev.data_dir)
    if running:
        print(f"make dev is running (pid {running}): stop it first", file=sys.stderr)
        return 1
    if dev.data_dir.exists():
        shutil.rmtree(dev.data_dir)
        print(f"deleted {dev.data_dir}: the next `make dev` starts over")
    else:
        print(f"nothing to delete at {dev.data_dir}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # every child is stopped and every file written: skip the interpreter's teardown of
    # Dagster, Beam and gRPC (seconds on a busy machine) so a stop is over when it says so
    os._exit(code)
