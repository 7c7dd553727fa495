"""Only a single read-only query gets past here.

The optimizer parses, qualifies and, to verify rewrites, executes SQL. Anything that could
write or change state is refused before any of that: DML, DDL, MERGE, scripting (DECLARE,
SET, BEGIN ... END, IF), EXPORT DATA, LOAD DATA, CALL, transactions, grants, and any input
holding more than one statement. The check is an allowlist: the statement must be a SELECT
or a set operation of SELECTs, and no node anywhere inside it may be a writing statement.
Input that does not parse is refused too: what cannot be read cannot be proved read-only.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

DIALECT = "bigquery"

READ_ONLY_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery)

# Statement classes of sqlglot that write, change state or run procedural code. A Command is
# what sqlglot falls back to for statements it does not model (CALL, EXECUTE IMMEDIATE,
# BEGIN ... END): unknown, so refused.
WRITING_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "TruncateTable",
        "Command", "Export", "LoadData", "Copy", "Set", "Declare", "Transaction", "Commit",
        "Rollback", "Grant", "Revoke", "Use", "Cache", "Uncache", "Refresh", "Pragma",
        "Analyze", "Attach", "Detach", "Install", "Summarize", "Describe", "Show", "Kill",
    )
    if hasattr(exp, name)
)  # fmt: skip


class Refused(ValueError):
    """The input is not a single read-only query; `reason` says why (for the analyst)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


LABELS = {
    "TruncateTable": "TRUNCATE", "LoadData": "LOAD DATA", "Export": "EXPORT DATA",
    "EndStatement": "END",
}  # fmt: skip


def _label(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    name = type(node).__name__
    return LABELS.get(name, name.upper())


def _statements(sql: str) -> list[exp.Expression]:
    # sqlglot logs a warning before falling back to a Command; the refusal says it better
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except (ParseError, TokenError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise Refused(
            f"does not parse as BigQuery SQL ({first}); only a single SELECT query is accepted"
        ) from None
    finally:
        logger.setLevel(level)


def parse_read_only(sql: str) -> exp.Expression:
    """The single read-only query in `sql`, parsed (BigQuery dialect), or `Refused`."""
    statements = _statements(sql)
    if not statements:
        raise Refused("no SQL statement found")
    if len(statements) > 1:
        kinds = ", ".join(_label(s) for s in statements)
        raise Refused(
            f"{len(statements)} statements ({kinds}): multi-statement input is refused; "
            "give one SELECT query"
        )
    statement = statements[0]
    for node in statement.walk():
        if isinstance(node, WRITING_NODES):
            raise Refused(
                f"{_label(node)} statement writes or changes state: the optimizer only reads "
                "(one SELECT query)"
            )
    if not isinstance(statement, READ_ONLY_ROOTS):
        raise Refused(f"{_label(statement)} is not a query: only a single SELECT is accepted")
    for select in statement.find_all(exp.Select):
        if select.args.get("into"):
            raise Refused("SELECT ... INTO writes a table: the optimizer only reads")
    return statement
