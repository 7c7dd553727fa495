"""The synthetic shop's clients: Segment messages as analytics.js and the mobile SDKs build
them (page or screen, track, identify; context by platform and campaign), server-side events,
and how each client sends them (batching, clock skew, offline delays, retry duplicates).

Every message becomes a `Delivery` on the shop's schedule, at the time the collector receives
it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devtools.shop import catalog
from devtools.shop.model import Delivery, ShopConfig
from devtools.shop.people import Visitor, random_uuid
from devtools.shop.schedule import Schedule
from platform_core.contract import isoformat_z


@dataclass
class Session:
    """One visit; its events wait here until the client sends them (`Clients.finish`)."""

    visitor: Visitor
    start: datetime
    traffic: str
    events: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)


def product_props(
    product: dict[str, Any], quantity: int | None = None, position: int | None = None
) -> dict[str, Any]:
    """A product row as Segment's e-commerce spec describes a product in event properties."""
    props: dict[str, Any] = {
        "product_id": str(product["product_id"]),
        "sku": product["sku"],
        "name": product["name"],
        "category": product["category"],
        "brand": product["brand"],
        "price": float(product["price"]),
        "currency": "USD",
    }
    if quantity is not None:
        props["quantity"] = quantity
    if position is not None:
        props["position"] = position
    return props


class Clients:
    def __init__(self, rng: random.Random, config: ShopConfig, schedule: Schedule) -> None:
        self.rng = rng
        self.config = config
        self.schedule = schedule

    # --- messages ----------------------------------------------------------------------

    def page(self, session: Session, at: datetime, name: str, path: str) -> None:
        """A page view on the web, a screen view in the apps."""
        if session.visitor.source == "web":
            message = self._base(session, at, "page")
            message["name"] = name
            message["properties"] = {
                "path": path,
                "url": f"https://shop.example.com{path}",
                "title": f"{name} | Shop",
            }
            message["context"]["page"].update(path=path, url=f"https://shop.example.com{path}")
        else:
            message = self._base(session, at, "screen")
            message["name"] = name
            message["properties"] = {}
        session.events.append((at, message))

    def track(self, session: Session, at: datetime, event: str, props: dict[str, Any]) -> None:
        message = self._base(session, at, "track")
        message["event"] = event
        message["properties"] = props
        session.events.append((at, message))

    def identify(self, session: Session, at: datetime, user: dict[str, Any]) -> None:
        message = self._base(session, at, "identify")
        message["userId"] = str(user["user_id"])
        message["traits"] = {
            "email": user["email"],
            "name": user["full_name"],
            "country": user["country"],
            "createdAt": isoformat_z(user["created_at"]),
        }
        session.events.append((at, message))

    def server_event(self, at: datetime, event: str, user_id: int, props: dict[str, Any]) -> None:
        """A track event the shop's backend sends (no session, no skew, sent at once)."""
        library = catalog.LIBRARIES["server"]
        message = {
            "type": "track",
            "event": event,
            "messageId": random_uuid(self.rng),
            "userId": str(user_id),
            "timestamp": at,
            "properties": props,
            "context": {"library": {"name": library[0], "version": library[1]}},
        }
        sent = at + timedelta(seconds=self.rng.uniform(0.05, 2))
        self._deliver(message, "server", sent, sent + timedelta(milliseconds=80))

    def _base(self, session: Session, at: datetime, kind: str) -> dict[str, Any]:
        visitor = session.visitor
        rng = self.rng
        library = catalog.LIBRARIES[visitor.source]
        context: dict[str, Any] = {
            "library": {"name": library[0], "version": library[1]},
            "locale": "en-US",
        }
        medium = catalog.TRAFFIC_SOURCES[session.traffic][3]
        referrer = catalog.TRAFFIC_SOURCES[session.traffic][2]
        if medium:
            context["campaign"] = {
                "source": session.traffic,
                "medium": medium,
                "name": f"{session.start:%b}-promo".lower(),
            }
        if visitor.source == "web":
            context["userAgent"] = visitor.user_agent
            context["page"] = {
                "url": "https://shop.example.com/",
                "path": "/",
                "referrer": referrer or "",
            }
        else:
            manufacturer, model = visitor.device or ("", "")
            context["device"] = {
                "id": visitor.anonymous_id,
                "type": visitor.device_type,
                "manufacturer": manufacturer,
                "model": model,
            }
            context["os"] = {
                "name": "iOS" if visitor.source == "ios" else "Android",
                "version": "18.1" if visitor.source == "ios" else "14",
            }
            context["app"] = {"name": "Shop", "version": "5.12.0", "build": "512"}
        message: dict[str, Any] = {
            "type": kind,
            "messageId": (
                f"ajs-next-{rng.getrandbits(128):032x}"
                if visitor.source == "web"
                else random_uuid(rng)
            ),
            "anonymousId": visitor.anonymous_id,
            "timestamp": at + visitor.clock_skew,
            "context": context,
            "integrations": {},
        }
        if visitor.user_id is not None:
            message["userId"] = str(visitor.user_id)
        return message

    # --- transport ---------------------------------------------------------------------

    def finish(self, session: Session) -> None:
        """Hand the session's events to its client's transport: batching, skew, retries."""
        rng = self.rng
        visitor = session.visitor
        is_app = visitor.source != "web"
        offline = is_app and rng.random() < self.config.offline_rate * 5
        pending: list[dict[str, Any]] = []
        for i, (at, message) in enumerate(session.events):
            last = i == len(session.events) - 1
            pending.append(message)
            # web sends each event at once; apps flush every 20 events or at session end
            if is_app and not last and len(pending) < 20:
                continue
            true_send = at + timedelta(seconds=rng.uniform(0.02, 1.5 if not is_app else 30))
            if offline:
                true_send += timedelta(hours=rng.uniform(1, 20))
            for queued in pending:
                self._deliver(
                    queued,
                    visitor.source,
                    true_send + visitor.clock_skew,
                    true_send + timedelta(milliseconds=rng.uniform(20, 400)),
                )
            pending = []
        session.events.clear()

    def _deliver(
        self, message: dict[str, Any], source: str, sent_client: datetime, received: datetime
    ) -> None:
        payload = dict(message)
        payload["timestamp"] = isoformat_z(message["timestamp"])
        payload["sentAt"] = isoformat_z(sent_client)
        self.schedule.add(received, Delivery(received, source, payload))
        if self.rng.random() < self.config.duplicate_rate:
            # the client did not see the 2xx and retried the same message later
            retry = timedelta(seconds=self.rng.uniform(1, 90))
            duplicate = {**payload, "sentAt": isoformat_z(sent_client + retry)}
            self.schedule.add(received + retry, Delivery(received + retry, source, duplicate))
