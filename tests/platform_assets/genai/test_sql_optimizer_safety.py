"""Nothing that writes gets past the optimizer, and the warehouse is only ever read."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from platform_assets.genai.sql_optimizer.cli import main
from platform_assets.genai.sql_optimizer.safety import Refused, parse_read_only

ROOT = Path(__file__).resolve().parents[3]

# (statement, words the reason must contain)
WRITES = [
    ("INSERT INTO mart.fct_orders (order_id) VALUES (1)", "INSERT"),
    ("UPDATE mart.fct_orders SET status = 'paid' WHERE TRUE", "UPDATE"),
    ("DELETE FROM mart.fct_orders WHERE order_date < '2026-01-01'", "DELETE"),
    (
        "MERGE mart.fct_orders t USING staging.stg_orders s ON t.order_id = s.order_id "
        "WHEN MATCHED THEN DELETE",
        "MERGE",
    ),
    ("CREATE TABLE mart.copy AS SELECT * FROM mart.fct_orders", "CREATE"),
    ("CREATE OR REPLACE VIEW mart.v AS SELECT 1 AS x", "CREATE"),
    ("DROP TABLE mart.fct_orders", "DROP"),
    ("ALTER TABLE mart.fct_orders ADD COLUMN note STRING", "ALTER"),
    ("TRUNCATE TABLE mart.fct_orders", "TRUNCATE"),
    (
        "EXPORT DATA OPTIONS (uri = 'gs://bucket/orders-*.csv', format = 'CSV') AS "
        "SELECT * FROM mart.fct_orders",
        "EXPORT DATA",
    ),
    ("LOAD DATA INTO mart.fct_orders FROM FILES (format = 'CSV', uris = ['gs://b/x'])", "LOAD"),
    ("CALL mart.refresh_orders()", "CALL"),
    ("DECLARE cutoff DATE DEFAULT '2026-11-01'", "DECLARE"),
    ("SET @@dataset_id = 'mart'", "SET"),
    ("BEGIN SELECT 1; END", "BEGIN"),
    ("EXECUTE IMMEDIATE 'DELETE FROM mart.fct_orders WHERE TRUE'", "EXECUTE"),
    ("BEGIN TRANSACTION", "TRANSACTION"),
    ("GRANT `roles/bigquery.dataViewer` ON TABLE mart.fct_orders TO 'user:a@b.c'", "GRANT"),
    ("SELECT 1; DELETE FROM mart.fct_orders WHERE TRUE", "multi-statement"),
    ("SELECT 1 AS a; SELECT 2 AS b", "multi-statement"),
    ("SELECT * FROM mart.fct_orders WHERE", "does not parse"),
    ("-- just a comment", "no SQL statement"),
]


@pytest.mark.parametrize(
    ("sql", "words"), WRITES, ids=[w[1] + str(i) for i, w in enumerate(WRITES)]
)
def test_writing_or_scripted_input_is_refused_with_its_reason(sql: str, words: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_read_only(sql)
    assert words.lower() in refused.value.reason.lower()


@pytest.mark.parametrize("sql", [w[0] for w in WRITES[:14]])
def test_optimize_exits_2_on_every_write(sql: str, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "q.sql"
    path.write_text(sql)
    assert main(["optimize", str(path)]) == 2
    assert "REFUSED" in capsys.readouterr().out


def test_read_only_queries_pass_the_gate() -> None:
    for sql in (
        "select 1",
        "with a as (select 1 as x) select x from a",
        "select 1 union all select 2",
        "(select order_id from mart.fct_orders)",
        "select 1;",
    ):
        parse_read_only(sql)


def test_module_runs_without_dagster_and_refuses_from_stdin() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = (
        "import sys; import platform_assets.genai.sql_optimizer.optimizer, "
        "platform_assets.genai.sql_optimizer.cli; assert 'dagster' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, env=env, cwd=ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "platform_assets.genai.sql_optimizer", "optimize", "-", "--json"],
        input="DROP TABLE mart.fct_orders",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert '"refused": true' in done.stdout


def test_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["sql-optimizer"] == (
        "platform_assets.genai.sql_optimizer.cli:main"
    )
    assert any(d.startswith("sqlglot") for d in project["project"]["dependencies"])


def test_the_warehouse_connection_only_reads(shop_warehouse: Any) -> None:
    import duckdb

    from platform_assets.genai.sql_optimizer.warehouse import open_warehouse
    from platform_core.settings import get_settings

    con = open_warehouse(get_settings())
    try:
        assert con.execute("select count(*) from mart.fct_orders").fetchone()[0] > 0
        lake = shop_warehouse.lake / "events" / "**" / "*.parquet"
        assert con.execute(f"select count(*) from read_parquet('{lake}')").fetchone()[0] > 0
        for statement in (
            "create table mart.stolen as select 1 as x",
            "delete from mart.fct_orders",
            "copy (select 1) to '/tmp/optimizer-leak.csv'",
            "select * from read_csv('/etc/passwd')",
            f"attach '{shop_warehouse.data_dir / 'other.duckdb'}' as other",
            "set enable_external_access = true",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(statement)
    finally:
        con.close()
    assert not Path("/tmp/optimizer-leak.csv").exists()


def test_the_optimizer_reads_the_snapshot_while_dbt_holds_the_warehouse(
    shop_warehouse: Any,
) -> None:
    """A writer (dbt) holding the warehouse file must neither stall the optimizer nor be held
    up by it: the optimizer reads the published snapshot, as every reader does."""
    from platform_assets.genai.sql_optimizer.warehouse import open_warehouse
    from platform_core.settings import get_settings

    writer = subprocess.Popen(
        [
            sys.executable, "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('open', flush=True);"
            " sys.stdin.read()",
            str(shop_warehouse.warehouse),
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        con = open_warehouse(get_settings(), lock_timeout=1.0)
        try:
            assert con.execute("select count(*) from mart.fct_orders").fetchone()[0] > 0
        finally:
            con.close()
    finally:
        writer.communicate("", timeout=30)
