"""The capture's view of the source database: the server settings it relies on (wal_level,
the publication, REPLICA IDENTITY FULL on every published table) and the published tables with
their primary keys (the Kafka message keys).

REPLICA IDENTITY FULL is what makes an update carry the whole old row: without it pgoutput
sends an unchanged TOASTed value (any text or JSON over ~2 kB) only as "unchanged", which
the capture has no old row to fill from, so the new row would say NULL; and a delete would
carry only the key. The capture refuses to start on such a table rather than write NULLs."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from streaming.cdc.capture_config import CaptureError
from streaming.cdc.debezium import topic_for

# pg_class.relreplident
_IDENTITY = {"d": "DEFAULT: the primary key", "n": "NOTHING", "i": "USING INDEX", "f": "FULL"}


@dataclass(frozen=True)
class TableInfo:
    schema: str
    table: str
    key_columns: tuple[str, ...]


class PublicationCatalog:
    """The publication's tables, read through the capture's ordinary (non-replication)
    connection."""

    def __init__(self, conn: psycopg.Connection, publication: str) -> None:
        self._conn = conn
        self.publication = publication
        self.tables: dict[tuple[str, str], TableInfo] = {}

    def check_server(self) -> None:
        level = self._conn.execute("show wal_level").fetchone()[0]
        if level != "logical":
            raise CaptureError(f"wal_level is {level!r}; logical decoding needs wal_level=logical")
        found = self._conn.execute(
            "select 1 from pg_publication where pubname = %s", (self.publication,)
        ).fetchone()
        if not found:
            raise CaptureError(
                f"publication {self.publication!r} does not exist (run the migrations: "
                "python -m devtools.sourcedb migrate, or the shop's own migrations)"
            )

    def current_database(self) -> str:
        return self._conn.execute("select current_database()").fetchone()[0]

    def load(self) -> None:
        rows = self._conn.execute(
            "select schemaname, tablename from pg_publication_tables where pubname = %s "
            "order by schemaname, tablename",
            (self.publication,),
        ).fetchall()
        self.tables = {}
        for schema, table in rows:
            self.tables[(schema, table)] = TableInfo(
                schema, table, self._key_columns(schema, table)
            )
        self.check_replica_identity(list(self.tables))

    def check_replica_identity(self, tables: list[tuple[str, str]]) -> None:
        """Every table must be REPLICA IDENTITY FULL (see the module doc for why)."""
        partial = []
        for schema, table in tables:
            identity = self._conn.execute(
                "select relreplident from pg_class "
                "where oid = format('%%I.%%I', %s::text, %s::text)::regclass",
                (schema, table),
            ).fetchone()[0]
            if identity != "f":
                partial.append((schema, table, _IDENTITY.get(identity, identity)))
        if partial:
            listed = ", ".join(f"{s}.{t} ({kind})" for s, t, kind in partial)
            fix = "; ".join(f'ALTER TABLE "{s}"."{t}" REPLICA IDENTITY FULL' for s, t, _ in partial)
            raise CaptureError(
                f"tables without REPLICA IDENTITY FULL: {listed}. Their updates would carry "
                f"unchanged TOASTed values (large text/JSON) as NULL and their deletes only the "
                f"key. Fix, as the tables' owner: {fix}"
            )

    def topics(self, prefix: str) -> list[str]:
        return [topic_for(prefix, schema, table) for schema, table in self.tables]

    def table(self, schema: str, table: str) -> TableInfo:
        info = self.tables.get((schema, table))
        if info is None:  # added to the publication while we run
            self.check_replica_identity([(schema, table)])
            info = TableInfo(schema, table, self._key_columns(schema, table))
            self.tables[(schema, table)] = info
        return info

    def _key_columns(self, schema: str, table: str) -> tuple[str, ...]:
        rows = self._conn.execute(
            """
            select a.attname
            from pg_index i
            join lateral unnest(i.indkey) with ordinality as k(attnum, ord) on true
            join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
            where i.indrelid = format('%%I.%%I', %s::text, %s::text)::regclass and i.indisprimary
            order by k.ord
            """,
            (schema, table),
        ).fetchall()
        return tuple(r[0] for r in rows)
