"""The local warehouse's read path: a copy of the DuckDB file, published after each dbt run.

DuckDB allows one writer per file, and a reader in another process blocks it: dbt fails
after ~30 s with the reader's PID. So nobody reads the file dbt writes. When a dbt
invocation has exited, `publish_read_snapshot` copies the file to a temp file beside the read
path and renames it into place (`Settings.warehouse_read_path`). Readers (analysts, the
quality checks, the CDC reconciliation) open that path read-only:

- a reader never blocks a refresh: the publisher never opens or locks the read path; it
  only renames a new file over it;
- a connection keeps the file it opened (the old inode stays alive until it closes), so a
  reader sees one consistent refresh, and a new connection sees the last completed one;
- the copy is taken under a shared `fcntl` lock on the warehouse file, the lock DuckDB
  itself uses: it waits while a writer has the file open and never copies a half-written
  one; other readers of the warehouse file are not blocked.

The copy costs one in-kernel file copy (`os.copy_file_range`) of the warehouse: about 2 ms
per MB here (50 ms for the 25 MB of `make dev` after its 14-day backfill; `bench/read_path`
measures it under load). The file is not fsynced: the snapshot is derived data and the next
refresh publishes it again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb


class PublishError(RuntimeError):
    """The read snapshot could not be published (readers keep the previous one)."""


@dataclass(frozen=True)
class PublishReport:
    target: Path
    bytes: int
    seconds: float
    waited_seconds: float  # of `seconds`, spent waiting for a writer to let go

    def describe(self) -> str:
        waited = f", {self.waited_seconds * 1000:.0f} ms waiting for a writer" * (
            self.waited_seconds >= 0.001
        )
        return (
            f"published the read snapshot {self.target} ({self.bytes / 1e6:.1f} MB) "
            f"in {self.seconds * 1000:.0f} ms{waited}"
        )


def publish_read_snapshot(
    source: Path, target: Path, *, lock_timeout: float = 60.0
) -> PublishReport:
    """Copy the warehouse `source` to `target` atomically (see the module docstring)."""
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        with _shared_lock(source, lock_timeout) as (fd, waited):
            if not _wal(source).exists():
                size = os.fstat(fd).st_size
                tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
                try:
                    _copy(fd, tmp, size)
                    os.replace(tmp, target)
                finally:
                    tmp.unlink(missing_ok=True)
                return PublishReport(target, size, time.monotonic() - started, waited)
        # no writer has the file, yet there is a log: one died before its checkpoint
        if attempt:
            break
        _checkpoint(source)
    raise PublishError(f"{source} has a write-ahead log no checkpoint applied")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


@contextlib.contextmanager
def _shared_lock(source: Path, timeout: float) -> Iterator[tuple[int, float]]:
    """An fd of `source` holding a shared fcntl lock: no DuckDB writer has the file open."""
    try:
        fd = os.open(source, os.O_RDONLY)
    except FileNotFoundError:
        raise PublishError(f"no warehouse at {source} to publish") from None
    started = time.monotonic()
    pause = 0.05
    try:
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() - started > timeout:
                    raise PublishError(
                        f"a writer kept {source} open for more than {timeout:.0f}s; readers "
                        "keep the previous snapshot"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
        yield fd, time.monotonic() - started
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _copy(fd: int, target: Path, size: int) -> None:
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        offset = 0
        while offset < size:
            copied = os.copy_file_range(fd, out, size - offset, offset, offset)
            if copied == 0:
                raise PublishError(f"the warehouse shrank while it was copied ({offset}/{size})")
            offset += copied
    finally:
        os.close(out)


def _checkpoint(source: Path) -> None:
    try:
        with duckdb.connect(str(source)) as con:
            con.execute("checkpoint")
    except duckdb.IOException as error:
        raise PublishError(f"cannot checkpoint {source}: {error}") from error
