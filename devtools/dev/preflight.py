"""What `make dev` needs before it starts anything, each missing piece with its fix.

Every problem is found first and printed together, so one run says everything to fix.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
from pathlib import Path

from devtools.dev.settings import DevSettings
from devtools.services import ServiceError, pubsub_emulator_jar
from devtools.sourcedb.server import find_bin_dir
from platform_core.settings import PROJECT_ROOT

MANIFEST = PROJECT_ROOT / "dbt_project" / "target" / "manifest.json"


def problems(dev: DevSettings) -> list[str]:
    found: list[str] = []
    if shutil.which("java") is None:
        found.append(
            "Java 17 is missing (the Pub/Sub emulator runs on it): "
            "apt-get install openjdk-17-jre-headless"
        )
    for check in (pubsub_emulator_jar, find_bin_dir):
        try:
            check()
        except ServiceError as error:
            found.append(str(error))
    ports = [
        (dev.ui_port, "the Dagster UI", "DAGSTER_UI_URL=http://127.0.0.1:3001"),
        (dev.collector_port, "the collector", "COLLECTOR_PORT=8081"),
    ]
    if dev.postgres_port:
        ports.append((dev.postgres_port, "PostgreSQL", "DEV_POSTGRES_PORT=0 (any free port)"))
    for port, what, setting in ports:
        if not port_free(dev.ui_host if what == "the Dagster UI" else "127.0.0.1", port):
            found.append(
                f"port {port} ({what}) is in use: stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it; another `make dev`?) or set {setting}"
            )
    if not MANIFEST.exists():
        found.append("the dbt manifest is missing: run `make prepare` (make dev does)")
    if not writable(dev.data_dir):
        found.append(f"cannot write {dev.data_dir}: set DEV_DATA_DIR to a writable directory")
    return found


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # as the servers do: a port left in TIME_WAIT by the last `make dev` is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def writable(path: Path) -> bool:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK | os.X_OK)
