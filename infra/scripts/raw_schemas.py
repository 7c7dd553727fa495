"""Render the raw layer's BigQuery tables for Terraform from `platform_core.raw.schema`.

`platform_core/raw/schema.py` is the one definition of the raw tables; Terraform reads the
JSON this script writes (`infra/terraform/schemas/raw_tables.json`), and
`tests/infra/test_infra.py` checks that the checked-in file is what this script renders today.

    uv run python infra/scripts/raw_schemas.py          # rewrite the JSON
    uv run python infra/scripts/raw_schemas.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "infra" / "terraform" / "schemas" / "raw_tables.json"


def raw_tables() -> dict[str, Any]:
    """{table name: {description, partition_column, clustering, schema}} in BigQuery terms."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from platform_core.raw.schema import RAW_TABLES

    return {
        name: {
            "description": spec.description,
            "partition_column": spec.partition_column,
            "clustering": list(spec.cluster_columns),
            "schema": [
                {
                    "name": column.name,
                    "type": column.bq_type,
                    "mode": "REQUIRED" if column.required else "NULLABLE",
                    "description": column.description,
                }
                for column in spec.columns
            ],
        }
        for name, spec in RAW_TABLES.items()
    }


def render() -> str:
    document = {
        "//": "Generated from platform_core/raw/schema.py by infra/scripts/raw_schemas.py.",
        "tables": raw_tables(),
    }
    return json.dumps(document, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run {Path(__file__).name}")
            return 1
        print(f"{OUTPUT.relative_to(ROOT)} is up to date")
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(json.loads(text)['tables'])} tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
