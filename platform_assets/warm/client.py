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
import io
import json
import os
import signal
import socket
import sys

EXIT_MARKER = b"\0warm-exit"  # what ends an attached invocation's output (server.py)


def request(
    path: str, argv: list[str], *, detach: bool = False, timeout: float = 2.0
) -> tuple[socket.socket, io.BufferedReader, bytes]:
    """Send one invocation to the server on `path`: the connection, its reader, and the
    server's first line (`PID <pid>` when it forked). Raises OSError when nobody answers."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(timeout)
        connection.connect(path)
        body = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "detach": detach}
        connection.sendall(json.dumps(body).encode() + b"\n")
        stream = connection.makefile("rb")
        return connection, stream, stream.readline()
    except OSError:
        connection.close()
        raise


def fall_back(real_dbt: str, args: list[str]) -> None:
    os.execv(real_dbt, [real_dbt, *args])


def main(argv: list[str]) -> int:
    path, real_dbt, args = argv[0], argv[1], argv[2:]
    try:
        connection, stream, first = request(path, ["dbt", *args])
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
