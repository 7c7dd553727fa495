"""Prometheus metrics of the source database's logical replication slots.

    python -m streaming.cdc.slot_monitor --port 9103 --host 0.0.0.0

A slot holds back every WAL segment its reader has not confirmed. If Debezium (or the local
capture) or Kafka is down, WAL grows until the disk is full, or, with
``max_slot_wal_keep_size`` set (it is: Terraform's Cloud SQL flags, the local server), until
the server invalidates the slot and changes are lost to CDC. Nothing else in the path notices:
the bridge's consumer lag stays 0 because nothing reaches Kafka. These metrics, read from
``pg_replication_slots`` at every scrape through a read-only login (SOURCE_DB_DSN), are what
the alerts CdcSlotWalRetainedHigh, CdcSlotInactive and CdcSlotLost watch
(infra/monitoring/prometheus/platform-rules.yaml):

  cdc_slot_up                          1 when the database answered the last scrape
  cdc_slot_retained_wal_bytes{slot}    WAL the slot keeps (current WAL position - restart_lsn)
  cdc_slot_confirmed_lag_bytes{slot}   WAL not yet confirmed by the reader
  cdc_slot_safe_wal_size_bytes{slot}   WAL that may still be written before the slot is lost
  cdc_slot_active{slot}                1 while a walsender streams it
  cdc_slot_lost{slot}                  1 once the server invalidated it (wal_status = lost)
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator

import psycopg
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from platform_core.settings import get_settings, resolve_source_db_dsn

log = logging.getLogger("streaming.cdc.slot_monitor")

# pg_wal_lsn_diff(...) is numeric; NULL restart_lsn means the slot was invalidated
SLOTS_SQL = """
select slot_name,
       active,
       wal_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 as retained,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 as unconfirmed,
       safe_wal_size::float8
from pg_replication_slots
where slot_type = 'logical'
order by slot_name
"""


class SlotCollector(Collector):
    """Reads the slots at every scrape (a scrape that cannot reach the database says so in
    cdc_slot_up rather than failing)."""

    def __init__(self, dsn: str, timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.timeout = timeout

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("cdc_slot_up", "1 when the source database answered")
        families = {
            "retained": GaugeMetricFamily(
                "cdc_slot_retained_wal_bytes", "WAL the slot holds back", labels=["slot"]
            ),
            "unconfirmed": GaugeMetricFamily(
                "cdc_slot_confirmed_lag_bytes",
                "WAL written since the reader's last confirmed position",
                labels=["slot"],
            ),
            "safe": GaugeMetricFamily(
                "cdc_slot_safe_wal_size_bytes",
                "WAL that may still be written before the slot is invalidated",
                labels=["slot"],
            ),
            "active": GaugeMetricFamily(
                "cdc_slot_active", "1 while a walsender streams the slot", labels=["slot"]
            ),
            "lost": GaugeMetricFamily(
                "cdc_slot_lost", "1 once the server invalidated the slot", labels=["slot"]
            ),
        }
        try:
            rows = self._read()
        except psycopg.Error as error:
            log.warning("cannot read replication slots: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, active, wal_status, retained, unconfirmed, safe in rows:
            families["active"].add_metric([name], 1 if active else 0)
            families["lost"].add_metric([name], 1 if wal_status == "lost" else 0)
            if retained is not None:
                families["retained"].add_metric([name], retained)
            if unconfirmed is not None:
                families["unconfirmed"].add_metric([name], unconfirmed)
            if safe is not None:  # NULL: max_slot_wal_keep_size is unlimited
                families["safe"].add_metric([name], safe)
        yield from families.values()

    def _read(self) -> list[tuple]:
        with psycopg.connect(
            self.dsn,
            connect_timeout=max(1, int(self.timeout)),
            autocommit=True,
            application_name="cdc-slot-monitor",
            options=f"-c statement_timeout={int(self.timeout * 1000)}",
        ) as conn:
            return conn.execute(SLOTS_SQL).fetchall()


def registry_for(dsn: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SlotCollector(dsn))
    return registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.cdc.slot_monitor", description=__doc__
    )
    parser.add_argument("--dsn", help="source database (default: SOURCE_DB_DSN or the local one)")
    parser.add_argument("--port", type=int, default=9103)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a pod, for Prometheus")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    dsn = resolve_source_db_dsn(get_settings(), args.dsn)
    server, thread = start_http_server(args.port, addr=args.host, registry=registry_for(dsn))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("serving replication slot metrics on %s:%d", args.host, args.port)
    stop.wait()
    server.shutdown()
    thread.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
