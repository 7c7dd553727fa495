"""The dbt executable dagster-dbt runs when the warm server is configured (`server.py`).

Standard library only, and started as `python -S` (no site-packages): its own start-up must
stay a few milliseconds, or it would eat what the warm server saves.

`warm_client.py SOCKET REAL_DBT [dbt arguments...]`: sends the invocation to the server on
SOCKET and behaves like the dbt process would (its output on stdout, SIGTERM/SIGINT forwarded
to the invocation, its exit code). When the server is not there or does not answer, it
replaces itself with REAL_DBT and the same arguments: never a failed refresh for want of an
optimisation.
"""

import contextlib
import json
import os
import signal
import socket
import sys

EXIT_MARKER = b"\0warm-exit"  # server.EXIT_MARKER (this file cannot import the package)


def fall_back(real_dbt: str, args: list[str]) -> None:
    os.execv(real_dbt, [real_dbt, *args])


def main(argv: list[str]) -> int:
    path, real_dbt, args = argv[0], argv[1], argv[2:]
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(2)
        connection.connect(path)
        request = {"argv": ["dbt", *args], "env": dict(os.environ), "cwd": os.getcwd()}
        connection.sendall(json.dumps(request).encode() + b"\n")
        stream = connection.makefile("rb")
        first = stream.readline()
    except OSError:
        fall_back(real_dbt, args)
        return 127  # not reached: execv replaced this process
    if not first.startswith(b"PID "):  # the server refused the request: say why, then fall back
        sys.stderr.write(first.decode(errors="replace"))
        fall_back(real_dbt, args)
        return 127
    child = int(first.split()[1])
    connection.settimeout(None)  # a dbt invocation takes as long as it takes

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    out = sys.stdout.buffer
    for line in stream:
        if line.startswith(EXIT_MARKER):
            return int(line.split()[1])
        out.write(line)
        out.flush()  # dagster-dbt reads dbt's events as they come
    sys.stderr.write("warm: the server closed the connection without an exit code\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
