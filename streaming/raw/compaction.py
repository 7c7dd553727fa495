"""Compaction of the local raw lake: merge a partition's small Parquet files into one.

The streaming writer adds one file per table partition every few seconds; readers (dbt-duckdb,
the raw sensors) slow down as files pile up. Compaction rewrites them without losing or
duplicating a row, while the writer keeps appending:

- Only files older than a grace period are touched (`min_age_seconds`, by the later of mtime
  and ctime; a rename updates ctime). A writer never modifies a file after its rename, and new
  files keep arriving under new names, so the set of inputs is stable.
- One compaction per partition at a time (`flock` on `.compaction.lock` in the partition).
- Protocol: (1) journal `_compaction-<id>.json` naming the output and the inputs, written
  atomically; (2) the merged file `compacted-<stamp>-<id>.parquet` written atomically (temp +
  fsync + rename) and its row count checked against the inputs; (3) inputs deleted;
  (4) journal removed. A crash after (2) is finished by the next run (it deletes the inputs
  the journal names, so rows are never left doubled); a crash before (2) leaves the inputs
  untouched and the journal is discarded.
- Readers glob the partition. Between (2) and (3), a few milliseconds, a reader can see the
  merged file and its inputs: rows transiently twice, never missing (the opposite order would
  hide rows). This is accepted on purpose: staging deduplicates events by message_id and CDC
  by pk + LSN, exactly as it does for Pub/Sub redeliveries, and raw's contract already allows
  duplicate deliveries. A manifest would avoid it only for readers that read the manifest,
  which dbt's `read_parquet` glob does not.
- A reader that globbed before (3) and opens an input after it fails on the missing file. In
  Dagster the compaction job therefore carries the same run-concurrency tag as the dbt runs
  (the lake's readers), so the two never overlap.

The merged file records `compaction.max_input_ctime_ns` in its Parquet metadata so the raw
sensor can tell a rewrite of data it has already reported from new data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from platform_core.durable import fsync_dir, replace_atomically
from platform_core.raw.schema import RAW_TABLES, raw_table
from streaming.raw.writer import write_parquet_atomically

COMPACTED_PREFIX = "compacted-"
JOURNAL_PREFIX = "_compaction-"
LOCK_NAME = ".compaction.lock"
META_MAX_INPUT_CTIME = b"compaction.max_input_ctime_ns"
META_INPUTS = b"compaction.inputs"
META_RECENT_INPUTS = b"compaction.recent_inputs"
RECENT_INPUT_WINDOW_NS = 300 * 10**9  # inputs changed this close to the newest are listed
DEFAULT_MIN_AGE_SECONDS = 600.0
DEFAULT_TARGET_BYTES = 128 * 1024 * 1024


class CompactionError(RuntimeError):
    """A partition could not be compacted; its files are as they were."""


def is_data_file(path: Path) -> bool:
    """What readers read: `*.parquet` not hidden (`.` temp files) nor `_` (schema, journals)."""
    return path.suffix == ".parquet" and not path.name.startswith((".", "_"))


def data_files(directory: Path) -> list[Path]:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    return sorted(Path(e.path) for e in entries if e.is_file() and is_data_file(Path(e.path)))


def changed_ns(stat: os.stat_result) -> int:
    """When a file became what it is: the later of its last write and its rename (ctime)."""
    return max(stat.st_mtime_ns, stat.st_ctime_ns)


def partitions(lake: Path, table: str) -> list[Path]:
    root = Path(lake) / raw_table(table).name
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and "=" in p.name)


@dataclass
class PartitionResult:
    table: str
    partition: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    rows: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    recovered: int = 0
    skipped: str | None = None

    @property
    def files_removed(self) -> int:
        return len(self.inputs) - len(self.outputs)


@dataclass
class CompactionReport:
    results: list[PartitionResult] = field(default_factory=list)

    def for_table(self, table: str) -> list[PartitionResult]:
        return [r for r in self.results if r.table == table]

    @property
    def compacted(self) -> list[PartitionResult]:
        return [r for r in self.results if r.outputs]

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            s = out.setdefault(
                r.table,
                {
                    "partitions_compacted": 0,
                    "files_in": 0,
                    "files_out": 0,
                    "rows": 0,
                    "bytes_before": 0,
                    "bytes_after": 0,
                },
            )
            if r.outputs:
                s["partitions_compacted"] += 1
                s["files_in"] += len(r.inputs)
                s["files_out"] += len(r.outputs)
                s["rows"] += r.rows
                s["bytes_before"] += r.bytes_before
                s["bytes_after"] += r.bytes_after
        return out

    def as_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.results]


@contextlib.contextmanager
def partition_lock(directory: Path) -> Iterator[bool]:
    """Exclusive, non-blocking: yields False if another compaction holds this partition."""
    handle = open(directory / LOCK_NAME, "a+")  # noqa: SIM115 - held for the block
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _write_json_atomically(document: dict, target: Path) -> None:
    replace_atomically(target, lambda handle: handle.write(json.dumps(document).encode()))


def recover(directory: Path) -> int:
    """Finish or discard interrupted compactions in this partition; returns inputs deleted."""
    deleted = 0
    for journal in sorted(directory.glob(f"{JOURNAL_PREFIX}*.json")):
        try:
            document = json.loads(journal.read_text())
        except ValueError:
            journal.unlink(missing_ok=True)
            continue
        outputs = [directory / name for name in document.get("outputs", [])]
        if outputs and all(p.exists() for p in outputs):
            for name in document.get("inputs", []):
                path = directory / name
                if path.exists():
                    path.unlink()
                    deleted += 1
        else:
            # the merged file never landed completely: the inputs are the truth
            for p in outputs:
                p.unlink(missing_ok=True)
        fsync_dir(directory)
        journal.unlink(missing_ok=True)
    for stale in directory.glob(f".{COMPACTED_PREFIX}*.tmp"):
        stale.unlink(missing_ok=True)
    return deleted


def plan_groups(
    files: Sequence[tuple[Path, int]], target_bytes: int, min_files: int
) -> list[list[Path]]:
    """Consecutive small files, up to ~target_bytes per merged file; big files stay."""
    groups: list[list[Path]] = []
    current: list[Path] = []
    size = 0
    for path, nbytes in files:
        if nbytes >= target_bytes:
            continue
        if current and size + nbytes > target_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(path)
        size += nbytes
    if current:
        groups.append(current)
    return [g for g in groups if len(g) >= min_files]


def _merge(paths: Sequence[Path], table: str) -> pa.Table:
    spec = raw_table(table)
    tables = [pq.ParquetFile(p).read() for p in paths]
    try:
        merged = pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise CompactionError(f"{table}: files have incompatible schemas: {error}") from None
    if set(merged.column_names) == set(spec.column_names):
        merged = merged.select(list(spec.column_names)).cast(spec.arrow_schema)
    return merged


def compact_partition(
    directory: Path,
    table: str,
    *,
    min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
    target_bytes: int = DEFAULT_TARGET_BYTES,
    min_files: int = 2,
    now: float | None = None,
) -> PartitionResult:
    directory = Path(directory)
    result = PartitionResult(table=table, partition=directory.name)
    with partition_lock(directory) as locked:
        if not locked:
            result.skipped = "another compaction holds this partition"
            return result
        result.recovered = recover(directory)
        cutoff_ns = int(((time.time() if now is None else now) - min_age_seconds) * 1e9)
        candidates: list[tuple[Path, int]] = []
        ctimes: dict[Path, int] = {}
        for path in data_files(directory):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if changed_ns(stat) <= cutoff_ns:
                candidates.append((path, stat.st_size))
                ctimes[path] = changed_ns(stat)
        groups = plan_groups(candidates, target_bytes, min_files)
        if not groups:
            result.skipped = f"fewer than {min_files} small files older than {min_age_seconds:g}s"
            return result
        sizes = dict(candidates)
        for group in groups:
            _compact_group(directory, table, group, sizes, ctimes, result)
    return result


def _compact_group(
    directory: Path,
    table: str,
    group: list[Path],
    sizes: dict[Path, int],
    ctimes: dict[Path, int],
    result: PartitionResult,
) -> None:
    expected = sum(pq.read_metadata(p).num_rows for p in group)
    merged = _merge(group, table)
    if merged.num_rows != expected:
        raise CompactionError(f"{directory}: read {merged.num_rows} rows, footers say {expected}")
    ident = uuid.uuid4().hex[:12]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    output = directory / f"{COMPACTED_PREFIX}{stamp}-{ident}.parquet"
    journal = directory / f"{JOURNAL_PREFIX}{ident}.json"
    metadata = dict(merged.schema.metadata or {})
    newest = max(ctimes[p] for p in group)
    metadata[META_MAX_INPUT_CTIME] = str(newest).encode()
    metadata[META_INPUTS] = str(len(group)).encode()
    metadata[META_RECENT_INPUTS] = json.dumps(
        [
            [f"{directory.name}/{p.name}", ctimes[p]]
            for p in group
            if ctimes[p] > newest - RECENT_INPUT_WINDOW_NS
        ]
    ).encode()
    merged = merged.replace_schema_metadata(metadata)
    _write_json_atomically(
        {"outputs": [output.name], "inputs": [p.name for p in group], "rows": expected}, journal
    )
    write_parquet_atomically(merged, output)
    written = pq.read_metadata(output).num_rows
    if written != expected:
        output.unlink(missing_ok=True)
        journal.unlink(missing_ok=True)
        raise CompactionError(f"{output}: wrote {written} rows, expected {expected}")
    for path in group:
        path.unlink(missing_ok=True)
    fsync_dir(directory)
    journal.unlink(missing_ok=True)
    result.inputs += [p.name for p in group]
    result.outputs.append(output.name)
    result.rows += expected
    result.bytes_before += sum(sizes[p] for p in group)
    result.bytes_after += output.stat().st_size


def compact_lake(
    lake: Path | str,
    tables: Iterable[str] | None = None,
    *,
    min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS,
    target_bytes: int = DEFAULT_TARGET_BYTES,
    min_files: int = 2,
    now: float | None = None,
) -> CompactionReport:
    """Compact every partition of the given raw tables (default: all) of a local lake."""
    report = CompactionReport()
    for table in tables or RAW_TABLES:
        for directory in partitions(Path(lake), table):
            report.results.append(
                compact_partition(
                    directory,
                    table,
                    min_age_seconds=min_age_seconds,
                    target_bytes=target_bytes,
                    min_files=min_files,
                    now=now,
                )
            )
    return report


@dataclass(frozen=True)
class CompactedInputs:
    """What a merged file replaced: the newest input change time, and the inputs (path
    relative to the table, change time) changed within RECENT_INPUT_WINDOW_NS of it."""

    newest_ns: int
    recent: tuple[tuple[str, int], ...]


def compacted_inputs(path: Path) -> CompactedInputs | None:
    """For a merged file, what it replaced (None for any other file)."""
    if not path.name.startswith(COMPACTED_PREFIX):
        return None
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = metadata.get(META_MAX_INPUT_CTIME)
    if not value:
        return None
    recent = json.loads(metadata.get(META_RECENT_INPUTS, b"[]"))
    return CompactedInputs(int(value), tuple((str(n), int(c)) for n, c in recent))


def compaction_input_ctime(path: Path) -> int | None:
    """For a merged file: the newest ctime of the files it replaced (None for other files)."""
    inputs = compacted_inputs(path)
    return inputs.newest_ns if inputs else None
