"""The shop's source database for local runs: schema and migrations, a local PostgreSQL, and a
driver that replays the synthetic shop's transactions into it (so the CDC path sees real WAL).

Runtime code finds the database through `platform_core.settings.resolve_source_db_dsn`
(SOURCE_DB_DSN, else the DSN file `serve` writes under DATA_DIR)."""
