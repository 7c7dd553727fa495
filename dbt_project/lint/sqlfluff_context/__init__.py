"""Stand-ins for dbt's Jinja context, so SQLFluff's jinja templater can render the models.

`.sqlfluff` points the jinja templater's `library_path` here. SQLFluff's dbt builtins cover
ref/source/config/var/this/is_incremental; this adds what the project's models and macros
also use: `target`, `adapter.dispatch` (resolving duckdb__/default__ macros like dbt does),
dbt's cross-database macros (rendered as dbt-duckdb renders them), `modules`, `exceptions`
and a `var` that returns the default. Only linting uses this; dbt never imports it.
"""

from __future__ import annotations

import datetime as _datetime
import re as _re
from types import SimpleNamespace
from typing import Any

from jinja2 import pass_context

target = SimpleNamespace(
    type="duckdb",
    name="local",
    schema="main",
    database="warehouse",
    threads=2,
    profile_name="ecommerce",
)
modules = SimpleNamespace(re=_re, datetime=_datetime)


def var(name: str, default: Any = None) -> Any:
    """dbt's var(): the default (vars given on the command line do not exist when linting)."""
    return default


def env_var(name: str, default: str = "") -> str:
    return default


class _CompilerError(Exception):
    pass


exceptions = SimpleNamespace(
    raise_compiler_error=lambda message: (_ for _ in ()).throw(_CompilerError(message)),
    warn=lambda message: "",
)


@pass_context
def _dispatch(context: Any, macro_name: str, macro_namespace: str | None = None) -> Any:
    for prefix in ("duckdb__", "default__"):
        macro = context.get(prefix + macro_name)
        if macro is not None:
            return macro
    raise _CompilerError(f"no implementation of {macro_name} for duckdb")


adapter = SimpleNamespace(dispatch=_dispatch)


def _datediff(first: str, second: str, datepart: str) -> str:
    return f"date_diff('{datepart}', cast({first} as timestamp), cast({second} as timestamp))"


def _dateadd(datepart: str, interval: Any, from_date: str) -> str:
    return f"({from_date} + cast({interval} as bigint) * interval 1 {datepart})"


dbt = SimpleNamespace(
    safe_cast=lambda field, type_: f"try_cast({field} as {type_})",
    type_numeric=lambda: "numeric(28,6)",
    type_bigint=lambda: "bigint",
    type_int=lambda: "integer",
    type_float=lambda: "float",
    type_string=lambda: "varchar",
    type_boolean=lambda: "boolean",
    type_timestamp=lambda: "timestamp",
    datediff=_datediff,
    dateadd=_dateadd,
    date_trunc=lambda datepart, date: f"date_trunc('{datepart}', {date})",
    hash=lambda field: f"md5(cast({field} as varchar))",
    concat=lambda fields: f"concat({', '.join(fields)})",
    bool_or=lambda expression: f"bool_or({expression})",
    current_timestamp=lambda: "now()",
    string_literal=lambda value: f"'{value}'",
)


def log(message: str, info: bool = False) -> str:
    """dbt's log(): nothing to say when linting."""
    return ""
