"""The synthetic shop's clients: Segment messages as analytics.js and the mobile SDKs build
them (page or screen, track, identify; context by platform and campaign), server-side events,
and how each client sends them (batching, clock skew, offline delays, retry duplicates).

Every message becomes a `Delivery` on the shop's schedule, at the time the collector receives
it, with the truth it approximates (when it happened, when it was sent, the clock's errors).
What clients get wrong on purpose: clocks off by seconds, hours or years; a device whose
clock is corrected between a send and its retry (the retry carries another event time); the
backend's events sometimes sent without a messageId (the collector derives one)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devtools.shop import catalog
from devtools.shop.model import Delivery, ShopConfig, local_price, whole_ms
from devtools.shop.people import Visitor, random_uuid
from devtools.shop.schedule import Schedule
from platform_core.contract import isoformat_z


@dataclass
class Session:
    """One visit; its events wait here until the client sends them (`Clients.finish`)."""

    visitor: Visitor
    start: datetime
    traffic: str
    currency: str  # of the visitor's market: prices shown and orders placed in it
    events: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)


def product_props(
    product: dict[str, Any],
    currency: str,
    quantity: int | None = None,
    position: int | None = None,
) -> dict[str, Any]:
    """A product row as Segment's e-commerce spec describes a product in event properties,
    priced in the visitor's currency."""
    props: dict[str, Any] = {
        "product_id": str(product["product_id"]),
        "sku": product["sku"],
        "name": product["name"],
        "category": product["category"],
        "brand": product["brand"],
        "price": float(local_price(product["price"], currency)),
        "currency": currency,
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
        """A track event the shop's backend sends (no session, no skew, sent at once). Its
        hand-rolled HTTP client often sends no messageId (the collector derives one), and
        never retries."""
        rng = self.rng
        library = catalog.LIBRARIES["server"]
        at = whole_ms(at)
        message: dict[str, Any] = {
            "type": "track",
            "event": event,
            "messageId": random_uuid(rng),
            "userId": str(user_id),
            "timestamp": at,
            "properties": props,
            "context": {"library": {"name": library[0], "version": library[1]}},
        }
        if rng.random() < self.config.missing_message_id_rate:
            del message["messageId"]
        sent = at + timedelta(milliseconds=rng.randint(50, 2000))
        self._deliver(
            message,
            "server",
            happened=at,
            sent=sent,
            received=sent + timedelta(milliseconds=80),
            clock_error=timedelta(0),
        )

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
        skew = visitor.clock_skew  # the clock's error while the session's events happened
        batches: list[tuple[datetime, list[tuple[datetime, dict[str, Any]]]]] = []
        pending: list[tuple[datetime, dict[str, Any]]] = []
        for i, (at, message) in enumerate(session.events):
            last = i == len(session.events) - 1
            pending.append((at, message))
            # web sends each event at once; apps flush every 20 events or at session end
            if is_app and not last and len(pending) < 20:
                continue
            true_send = at + timedelta(milliseconds=rng.randint(20, 1500 if not is_app else 30_000))
            if offline:
                true_send += timedelta(milliseconds=rng.randint(3_600_000, 72_000_000))
            batches.append((true_send, pending))
            pending = []
        for true_send, batch in batches:
            for happened, queued in batch:
                received = true_send + timedelta(milliseconds=rng.randint(20, 400))
                self._deliver(queued, visitor.source, happened, true_send, received, skew)
        if batches and abs(skew) >= timedelta(minutes=30):
            self._retry_after_clock_fix(visitor, batches[-1], skew)
        session.events.clear()

    def _retry_after_clock_fix(
        self,
        visitor: Visitor,
        batch: tuple[datetime, list[tuple[datetime, dict[str, Any]]]],
        skew: timedelta,
    ) -> None:
        """A device whose clock was hours off missed the answer to its last batch, had its
        clock corrected (NTP), and sent the batch again: same messages, same timestamps,
        a correct sentAt, so the collector's skew correction gives them another time."""
        rng = self.rng
        if rng.random() >= self.config.clock_fix_retry_rate:
            return
        true_send, messages = batch
        retry_send = true_send + timedelta(milliseconds=rng.randint(5_000, 600_000))
        for happened, message in messages:
            received = retry_send + timedelta(milliseconds=rng.randint(20, 400))
            payload = self._payload(message, retry_send)
            retry = Delivery(
                received, visitor.source, payload, happened, retry_send, skew, timedelta(0)
            )
            self.schedule.add(received, retry)
        visitor.clock_skew = timedelta(0)  # from now on the device's clock is right

    def _payload(self, message: dict[str, Any], sent_clock: datetime) -> dict[str, Any]:
        payload = dict(message)
        payload["timestamp"] = isoformat_z(message["timestamp"])
        payload["sentAt"] = isoformat_z(sent_clock)
        return payload

    def _deliver(
        self,
        message: dict[str, Any],
        source: str,
        happened: datetime,
        sent: datetime,
        received: datetime,
        clock_error: timedelta,
    ) -> None:
        """One message sent at `sent` (true time) by a client whose clock is `clock_error`
        off, received at `received`; now and then the client did not see the 2xx and
        retried the same message later (never a message without a messageId: nothing would
        tell the retry from a new event)."""
        payload = self._payload(message, sent + clock_error)
        self.schedule.add(
            received,
            Delivery(received, source, payload, happened, sent, clock_error, clock_error),
        )
        if "messageId" in message and self.rng.random() < self.config.duplicate_rate:
            retry = timedelta(milliseconds=self.rng.randint(1000, 90_000))
            duplicate = self._payload(message, sent + retry + clock_error)
            again, error = received + retry, clock_error
            self.schedule.add(
                again, Delivery(again, source, duplicate, happened, sent + retry, error, error)
            )
