"""Prefixed logs: every child process writes its own file under the dev log directory; this
follows them all and prints each new line as `name | line`, like a Procfile runner."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import TextIO

WIDTH = 10  # the prefix column
# lines that say nothing a person watching needs (the run queue checks every second; each
# run's debug events are in the UI)
NOISE = (
    "Priority sorting and checking tag concurrency limits",
    "Checking for new runs for sensor",
    " - DEBUG - ",
)


class LogFollower:
    """Follows every `*.log` in a directory from where each file ends when first seen (a
    restart does not replay the previous run's logs), printing new lines with a prefix."""

    def __init__(self, log_dir: Path, out: TextIO = sys.stdout, interval: float = 0.3) -> None:
        self.log_dir = log_dir
        self.out = out
        self.interval = interval
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logs", daemon=True)
        self.lock = threading.Lock()
        for path in log_dir.glob("*.log"):  # what is there already is history
            self._offsets[path] = path.stat().st_size

    def start(self) -> LogFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.poll()  # the last lines

    def say(self, name: str, text: str) -> None:
        with self.lock:
            for line in text.splitlines() or [""]:
                self.out.write(f"{name[:WIDTH]:<{WIDTH}} | {line}\n")
            self.out.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        for path in sorted(self.log_dir.glob("*.log")):
            offset = self._offsets.get(path, 0)
            try:
                size = path.stat().st_size
                if size < offset:  # truncated: start over
                    offset = 0
                if size == offset:
                    continue
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read(size - offset)
            except OSError:
                continue
            self._offsets[path] = offset + len(chunk)
            text = self._partial.pop(path, "") + chunk.decode(errors="replace")
            lines = text.split("\n")
            if lines[-1]:
                self._partial[path] = lines[-1]  # no newline yet: wait for the rest
            complete = [
                line.rstrip("\r") for line in lines[:-1] if not any(n in line for n in NOISE)
            ]
            if complete:
                self.say(_name(path), "\n".join(complete))


def _name(path: Path) -> str:
    name = path.stem
    return "emulator" if name.startswith("pubsub-emulator") else name


class PrefixedHandler(logging.Handler):
    """This process's own log records (the shop's thread, the supervisor), printed like the
    children's lines: `shop | ...`."""

    def __init__(self, follower: LogFollower) -> None:
        super().__init__(logging.INFO)
        self.follower = follower
        self.setFormatter(logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name.rsplit(".", 1)[-1]
        self.follower.say("dev" if name == "supervisor" else name, self.format(record))
