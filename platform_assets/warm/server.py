"""The warm process server: dbt invocations and Dagster runs fork from one process that has
already imported dbt and Dagster.

Every refresh used to start three Pythons: Dagster's run worker (the code server spawns a
new interpreter per run: ~5 s of CPU here to import Dagster, dagster-dbt and dbt before the
first step) and one dbt process per dbt step (~3 s each to import dbt-core and the DuckDB
adapter), all before any SQL ran. This server imports those libraries once; each invocation
is a `fork()` of it, so the child starts with them in memory and with a clean copy of their
global state (dbt does not support two invocations in one process at once and leaves state
behind between invocations: a fresh fork per invocation has neither problem). It is the
pattern of Python's `multiprocessing` forkserver, kept alive across runs. Only third-party
libraries are preloaded: the platform's own modules (and the settings they read) are
imported by each child, under the environment its caller sent.

With `--dbt-project DIR` the server also parses that project once before it serves (`dbt
parse` in this process, into a scratch directory): dbt builds much of its machinery on first
use (the JSON schemas it validates configs with, the deserializers of its manifest's nodes),
and a child inherits it built. That took a refresh's dbt step from 2.1 to 1.2 s here
(3 forked `dbt build`s of the marts, with and without the warm-up). dbt supports invocations
one after another in a process (not at once); the warm-up finishes before any fork, and the
server refuses to serve if it left a thread running.

Two kinds of request, one connection each (a JSON line `{"argv", "env", "cwd", "detach"}`;
`argv[0]` names the program):

- `dbt` (attached): what `client.py`, dagster-dbt's dbt executable, sends. The child writes
  `PID <pid>\\n`, then dbt's output on the connection; when it has exited the server writes
  `EXIT_MARKER <code>\\n` and closes.
- `dagster` (detached): what `launcher.py`, the local instance's run launcher, sends for
  `dagster api execute_run`. The child answers `PID <pid>\\n` and the connection closes; its
  output goes to the server's log, and Dagster's event log says how the run went.

The server is single-threaded (forking a threaded process is unsafe): one selector loop that
accepts connections, forks and reaps children. It exits after `--idle-seconds` without a
request, on SIGTERM/SIGINT (after stopping its children), or when its socket file is gone.
`make dev` and bench.freshness start it and stop it by pid, and name it in WARM_SOCKET.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import threading
import time
from multiprocessing import resource_tracker
from pathlib import Path

# what every child would otherwise import: dbt's CLI and the DuckDB adapter (BigQuery's, where
# used, is imported by dbt when a profile needs it), Dagster's CLI, the storage of its local
# instance (SQLAlchemy and Alembic: ~1.2 s of a run's start here, measured with cProfile in a
# fork of this server), dagster-dbt, and the heavier libraries the code location imports.
# Importing them starts no thread and opens no connection, so they are safe to fork; of the
# platform's own, only this package's stdlib client (its protocol) is imported here
import dagster._cli
import dagster._core.storage.event_log.sqlite.sqlite_event_log
import dagster._core.storage.local_compute_log_manager
import dagster._core.storage.runs.sqlite.sqlite_run_storage
import dagster._core.storage.schedules.sqlite.sqlite_schedule_storage
import dagster._core.storage.sqlite_storage  # noqa: F401
import dagster_dbt  # noqa: F401
import dbt.adapters.duckdb  # noqa: F401
import dbt.cli.main
import duckdb  # noqa: F401
import psycopg  # noqa: F401
import pyarrow  # noqa: F401
import sqlglot  # noqa: F401

from platform_assets.warm.client import EXIT_MARKER

REQUEST_LIMIT = 4 * 1024 * 1024  # argv + environment; a selection of every node fits
PROGRAMS = ("dbt", "dagster")


def run_program(argv: list[str]) -> int:
    """The console script `argv[0]` would have run, in this process."""
    sys.argv = list(argv)
    try:
        if argv[0] == "dbt":
            dbt.cli.main.cli(args=argv[1:], prog_name="dbt")
        else:
            dagster._cli.main()
        return 0
    except SystemExit as done:  # click ends every command with SystemExit(code)
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException as error:  # noqa: BLE001 - the child must always report a code
        print(f"warm: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 2


def become_the_invocation(connection: socket.socket, request: dict) -> None:
    """In the forked child: the process the caller would have started."""
    os.setpgid(0, 0)  # its own group: a stop signals the invocation, not the server
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if request.get("detach"):
        connection.sendall(f"PID {os.getpid()}\n".encode())
        connection.close()
    else:
        for stream in (1, 2):
            os.dup2(connection.fileno(), stream)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    if not request.get("detach"):
        print(f"PID {os.getpid()}", flush=True)


def read_request(connection: socket.socket) -> dict:
    connection.settimeout(10)
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the client closed the connection before its request")
        data += chunk
        if len(data) > REQUEST_LIMIT:
            raise ValueError("request too large")
    request = json.loads(data)
    argv, env = request.get("argv"), request.get("env")
    if not isinstance(argv, list) or not argv or argv[0] not in PROGRAMS:
        raise ValueError(f"argv must be a list starting with one of {PROGRAMS}")
    if not isinstance(env, dict) or not isinstance(request.get("cwd"), str):
        raise ValueError("a request has env (object) and cwd (string)")
    return request


class Server:
    def __init__(self, path: Path, idle_seconds: float) -> None:
        self.path = path
        self.idle_seconds = idle_seconds
        self.children: dict[int, socket.socket | None] = {}  # None: detached
        self.last_used = time.monotonic()
        self.stopping = False

    def serve(self) -> None:
        # dbt's invocations create multiprocessing locks; a tracker started by a child would
        # warn on its output about them when the child exits: they share the server's
        resource_tracker.ensure_running()
        listener = self.bind()
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        print(f"warm: serving on {self.path} (pid {os.getpid()})", flush=True)
        try:
            while not self.stopping and self.path.exists() and not self.idle():
                for _key, _events in selector.select(timeout=0.05):
                    self.accept(listener)
                self.reap()
        finally:
            listener.close()
            self.path.unlink(missing_ok=True)
            self.stop_children()
        print("warm: stopped", flush=True)

    def bind(self) -> socket.socket:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.fspath(self.path))
        os.chmod(self.path, 0o600)  # the socket runs commands as this user: only this user
        listener.listen(16)
        listener.setblocking(False)
        return listener

    def idle(self) -> bool:
        quiet = time.monotonic() - self.last_used > self.idle_seconds
        return quiet and not self.children

    def accept(self, listener: socket.socket) -> None:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return
        self.last_used = time.monotonic()
        try:
            connection.setblocking(True)
            request = read_request(connection)
        except (OSError, ValueError) as error:
            self.finish(connection, 2, f"warm: bad request: {error}")
            return
        pid = os.fork()
        if pid == 0:  # the child: never returns into the server's loop
            code = 2
            try:
                listener.close()
                become_the_invocation(connection, request)
                code = run_program(request["argv"])
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        if request.get("detach"):
            connection.close()  # the child answers with its pid and closes its copy
            self.children[pid] = None
        else:
            self.children[pid] = connection

    def reap(self) -> None:
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 2 << 8
            if done:
                code = os.waitstatus_to_exitcode(status)
                connection = self.children.pop(pid)
                if connection is not None:
                    self.finish(connection, code if code >= 0 else 128 - code)
                self.last_used = time.monotonic()

    @staticmethod
    def finish(connection: socket.socket, code: int, message: str = "") -> None:
        with contextlib.suppress(OSError), connection:  # a client gone: nothing to tell
            if message:
                connection.sendall(f"{message}\n".encode())
            connection.sendall(EXIT_MARKER + f" {code}\n".encode())

    def stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def stop_children(self) -> None:
        """SIGTERM every invocation (a Dagster run marks itself failed), then SIGKILL what is
        left after 10 s: nothing outlives the server."""
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            connection = self.children.pop(pid)
            if connection is not None:
                connection.close()


def warm_up_dbt(project: Path) -> None:
    """Parse `project` once in this process (see the module docstring). A failed warm-up
    costs only speed: it is reported, and the server serves anyway."""
    started, threads = time.monotonic(), os_threads()
    with tempfile.TemporaryDirectory(prefix="warm-dbt-") as scratch:
        # twice: a full parse, then one from the partial-parse file the first wrote, which is
        # how every refresh's dbt step starts. Without dbt's static parser: it is Rust code
        # that starts a thread pool, which a child would inherit without its threads and wait
        # on forever (a full parse in a child hung so)
        for _ in range(2):
            code = run_program(
                ["dbt", "parse", "--quiet", "--no-write-json", "--no-static-parser"]
                + ["--project-dir", str(project), "--profiles-dir", str(project)]
                + ["--target-path", scratch, "--log-path", scratch]
            )
            if code:
                break
    outcome = "done" if code == 0 else f"failed (exit {code}); dbt steps start cold"
    print(f"warm: dbt warm-up {outcome} in {time.monotonic() - started:.1f}s", flush=True)
    if os_threads() > threads:  # a fork would inherit the threads' locks, not the threads
        raise SystemExit(f"warm: the dbt warm-up left {os_threads() - threads} thread(s) running")


def os_threads() -> int:
    """Threads of this process, native ones included (Python's count only its own)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True, help="the Unix socket to serve")
    parser.add_argument(
        "--idle-seconds", type=float, default=3600, help="exit after this long unused"
    )
    parser.add_argument(
        "--dbt-project", type=Path, help="parse this dbt project once before serving"
    )
    args = parser.parse_args(argv)
    if args.dbt_project is not None:
        warm_up_dbt(args.dbt_project)
    Server(args.socket, args.idle_seconds).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
