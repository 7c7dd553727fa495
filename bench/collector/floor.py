"""The floor: a bare ASGI endpoint that reads the body, parses the JSON and answers 200.

Served by the same uvicorn (one worker, same loop and HTTP parser) as the collector, so the
ratio collector/floor shows what the collector's own work costs on this machine.
"""

from __future__ import annotations

import orjson


async def app(scope, receive, send):  # noqa: ANN001, ANN201 - raw ASGI
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    payload = orjson.loads(b"".join(chunks))
    accepted = len(payload["batch"]) if isinstance(payload, dict) and "batch" in payload else 1
    body = b'{"success":true,"accepted":%d}' % accepted
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
