"""A local stand-in for a Slack incoming webhook: accepts POSTed JSON, keeps and prints it.

For demos (`python -m devtools.slack_webhook --port 8765 --out payloads.jsonl`,
then `SLACK_WEBHOOK_URL=http://127.0.0.1:8765/`) and tests (`LocalWebhook` in a thread).
Binds 127.0.0.1 by default; answers "ok" like a Slack webhook (and `{"ok": true}` on
`.../chat.postMessage`, like the Web API the bot token uses).
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class LocalWebhook:
    """A webhook receiver on a free loopback port, in a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        out: str | Path | None = None,
        echo: bool = False,
        status: int = 200,
    ) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.out = Path(out) if out else None
        self.echo = echo
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {"raw": body.decode(errors="replace")}
                receiver._received(self.path, payload)
                api = self.path.rstrip("/").endswith("chat.postMessage")  # bot-token API
                ok = receiver.status < 300
                body = json.dumps({"ok": ok}).encode() if api else b"ok" if ok else b"error"
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json" if api else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def _received(self, path: str, payload: dict[str, Any]) -> None:
        self.paths.append(path)
        self.payloads.append(payload)
        if self.out:
            with open(self.out, "a") as handle:
                handle.write(json.dumps(payload) + "\n")
        if self.echo:
            print(f"[webhook {path}] {payload.get('text', '')}", flush=True)
            print(json.dumps(payload, indent=1), flush=True)

    def start(self) -> LocalWebhook:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LocalWebhook:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(host: str, port: int, out: str | None) -> None:
    hook = LocalWebhook(host, port, out, echo=True)
    print(f"Slack webhook stand-in listening on {hook.url} (Ctrl-C to stop)", flush=True)
    try:
        hook.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        hook.server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.slack_webhook", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", help="append each payload as a JSON line to this file")
    args = parser.parse_args(argv)
    serve_forever(args.host, args.port, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
