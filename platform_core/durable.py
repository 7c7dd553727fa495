"""Durable file replacement: a reader sees the old file or the whole new one, and the rename
survives a crash. Shared by the raw lake, compaction and the collector's spool; no heavy
imports (the collector loads it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (a create, rename or unlink) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write` fills a hidden temp file beside `target`, which is fsynced and renamed onto it."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)
