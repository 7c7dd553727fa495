"""`python -m devtools.shop`: generate the synthetic shop into the raw layer or NDJSON files."""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from datetime import date
from pathlib import Path

from devtools.shop.load import load_shop
from devtools.shop.simulator import Delivery, ShopConfig, Snapshot, SyntheticShop, Transaction
from platform_core.contract import isoformat_z
from platform_core.settings import get_settings
from streaming.cdc.debezium import encode_row
from streaming.raw.writer import writer_for


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _config(args: argparse.Namespace) -> ShopConfig:
    return ShopConfig(
        seed=args.seed,
        days=args.days,
        sessions_per_day=args.sessions_per_day,
        end_date=date.fromisoformat(args.end_date) if args.end_date else None,
    )


def _write_ndjson(config: ShopConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shop = SyntheticShop(config, progress=_progress)
    with (
        gzip.open(out / "events.ndjson.gz", "wt") as events,
        gzip.open(out / "changes.ndjson.gz", "wt") as changes,
    ):
        for item in shop.run():
            if isinstance(item, Delivery):
                events.write(
                    json.dumps(
                        {
                            "receivedAt": isoformat_z(item.at),
                            "source": item.source,
                            "message": item.payload,
                        }
                    )
                    + "\n"
                )
            elif isinstance(item, Snapshot):
                for table, rows in item.rows.items():
                    for row in rows:
                        changes.write(
                            json.dumps({"table": table, "op": "r", "after": encode_row(row)}) + "\n"
                        )
            elif isinstance(item, Transaction):
                for change in item.changes:
                    changes.write(
                        json.dumps(
                            {
                                "commitTs": isoformat_z(item.at),
                                "txId": item.tx_id,
                                "table": change.table,
                                "op": change.op,
                                "before": encode_row(change.before),
                                "after": encode_row(change.after),
                            }
                        )
                        + "\n"
                    )
    _progress(f"wrote {out / 'events.ndjson.gz'} and {out / 'changes.ndjson.gz'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.shop", description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sessions-per-day", type=int, default=1000)
    parser.add_argument("--end-date", help="last simulated day, YYYY-MM-DD (default: yesterday)")
    parser.add_argument(
        "--ndjson",
        type=Path,
        metavar="DIR",
        help="write events and changes as gzipped NDJSON here instead of raw",
    )
    args = parser.parse_args(argv)
    config = _config(args)
    started = time.monotonic()
    if args.ndjson:
        _write_ndjson(config, args.ndjson)
        return 0
    settings = get_settings()
    writer = writer_for(settings)
    target = settings.lake_path if settings.is_local else f"BigQuery {settings.gcp_project}"
    _progress(
        f"generating {config.days} days ({config.first_day} .. {config.last_day}) "
        f"seed {config.seed} into {target}"
    )
    _, stats = load_shop(writer, config, progress=_progress)
    _progress(
        f"landed {stats.events:,} events and {stats.changes:,} changes in raw "
        f"in {time.monotonic() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
