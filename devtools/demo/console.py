"""What the demo prints: progress lines as they happen, and right-aligned tables."""

from __future__ import annotations

from collections.abc import Sequence


def say(message: str) -> None:
    print(message, flush=True)


def format_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """Rows under their headers, numbers with thousands separators, indented for the summary."""
    cells = [[str(h) for h in headers]] + [
        [
            f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
            for v in row
        ]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("      " + line for line in lines)
