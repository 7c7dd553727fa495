"""What the behaviour marts must say, computed in plain Python from the synthetic shop's own
records: its deliveries with their truth (when each event happened and was sent, how wrong
the client's clock was), its catalogue of devices, and the metric definitions of the README.

Nothing here calls the platform's transformation code (the contract's skew correction, the
raw enrichment, SQL) or shares its constants: an event's time is derived from the
simulator's true clocks, a device type from the simulator's platform catalogue, a session
from the 30-minute rule applied to those times.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from devtools.shop import catalog
from devtools.shop.model import Delivery

SESSION_GAP = timedelta(minutes=30)
ATTRIBUTION_WINDOW = timedelta(days=30)
RECOVERY_WINDOW = timedelta(days=7)
FUNNEL = ("Product Viewed", "Product Added", "Checkout Started", "Payment Info Entered")
FUNNEL_END = "Order Completed"
_PLATFORM_OF_AGENT = {ua: p for p, agents in catalog.USER_AGENTS.items() for ua in agents}


def naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)


@dataclass
class Event:
    """One message as the warehouse should hold it (its first delivery)."""

    delivery: Delivery
    time: datetime  # naive UTC
    type: str
    name: str | None
    source: str
    message_id: str | None
    anonymous_id: str | None
    user_id: int | None
    device_type: str
    traffic_source: str
    campaign: str | None
    properties: dict[str, Any]

    @property
    def order_id(self) -> int | None:
        value = self.properties.get("order_id")
        return int(value) if isinstance(value, str) and value.isdigit() else None

    @property
    def product_id(self) -> int | None:
        value = self.properties.get("product_id")
        return int(value) if isinstance(value, str) and value.isdigit() else None

    def is_track(self, name: str) -> bool:
        return self.type == "track" and self.name == name


@dataclass
class Session:
    anonymous_id: str
    number: int
    events: list[Event] = field(default_factory=list)
    user_id: int | None = None

    @property
    def start(self) -> datetime:
        return self.events[0].time

    @property
    def end(self) -> datetime:
        return self.events[-1].time

    @property
    def first(self) -> Event:
        return self.events[0]

    @property
    def campaign(self) -> str:
        return self.first.campaign or "(none)"

    def reached(self) -> list[bool]:
        """The ordered funnel: each step counts at or after the time the step before was
        first reached, in this session, as a track event."""
        reached: list[bool] = []
        since: datetime | None = None
        for step in (*FUNNEL, FUNNEL_END):
            if reached and not reached[-1]:
                reached.append(False)
                continue
            times = [
                e.time
                for e in self.events
                if e.is_track(step) and (since is None or e.time >= since)
            ]
            if times:
                since = min(times)
            reached.append(bool(times))
        return reached

    def has(self, name: str) -> bool:
        return any(e.is_track(name) for e in self.events)


def event_time(d: Delivery) -> datetime:
    """Segment's definition (receivedAt - (sentAt - timestamp)) applied to the true clock
    readings: the true event time plus the network transit, less any correction of the
    client's clock between the event and the send."""
    assert d.happened_at and d.sent_at is not None
    assert d.clock_error_at_event is not None and d.clock_error_at_send is not None
    sent_reading = d.sent_at + d.clock_error_at_send
    happened_reading = d.happened_at + d.clock_error_at_event
    return naive(d.at - (sent_reading - happened_reading))


def device_type(payload: dict[str, Any]) -> str:
    context = payload.get("context") or {}
    device = context.get("device") or {}
    if device.get("type"):
        return device["type"]
    agent = context.get("userAgent")
    if agent in _PLATFORM_OF_AGENT:
        return catalog.PLATFORMS[_PLATFORM_OF_AGENT[agent]][2]
    return "unknown"


def traffic_source(payload: dict[str, Any]) -> str:
    """The README's rule: utm_source, else the referrer's host (when it is another site),
    else direct."""
    context = payload.get("context") or {}
    source = (context.get("campaign") or {}).get("source")
    if source:
        return source.strip().lower()
    page = context.get("page") or {}
    referrer = urlsplit(page.get("referrer") or "").hostname or ""
    own = urlsplit(page.get("url") or "").hostname or ""
    referrer, own = referrer.removeprefix("www."), own.removeprefix("www.")
    return referrer if referrer and referrer != own else "direct"


class BehaviourTruth:
    """Events (first delivery per source and messageId), sessions, the funnel, attribution."""

    def __init__(self, deliveries: Iterable[Delivery]) -> None:
        self.events = self._first_deliveries(deliveries)
        self.sessions = self._sessionize()

    # --- events -----------------------------------------------------------------------

    @staticmethod
    def _first_deliveries(deliveries: Iterable[Delivery]) -> list[Event]:
        first: dict[Any, Delivery] = {}
        for d in sorted(deliveries, key=lambda d: d.at):
            key = (d.source, d.payload["messageId"]) if "messageId" in d.payload else id(d)
            first.setdefault(key, d)
        events = []
        for d in first.values():
            p = d.payload
            user = p.get("userId")
            events.append(
                Event(
                    delivery=d,
                    time=event_time(d),
                    type=p["type"],
                    name=p.get("event") if p["type"] == "track" else p.get("name"),
                    source=d.source,
                    message_id=p.get("messageId"),
                    anonymous_id=p.get("anonymousId"),
                    user_id=int(user) if user and user.isdigit() else None,
                    device_type=device_type(p),
                    traffic_source=traffic_source(p),
                    campaign=((p.get("context") or {}).get("campaign") or {}).get("name"),
                    properties=p.get("properties") or {},
                )
            )
        return events

    # --- sessions ---------------------------------------------------------------------

    def _sessionize(self) -> list[Session]:
        by_visitor: dict[str, list[Event]] = defaultdict(list)
        for e in self.events:
            if e.anonymous_id:
                by_visitor[e.anonymous_id].append(e)
        sessions: list[Session] = []
        for anonymous_id, events in by_visitor.items():
            events.sort(key=lambda e: (e.time, e.source, e.message_id or ""))
            visitor: list[Session] = []
            for e in events:
                if not visitor or e.time - visitor[-1].end > SESSION_GAP:
                    visitor.append(Session(anonymous_id, len(visitor) + 1))
                visitor[-1].events.append(e)
            identified = [e for e in events if e.user_id is not None]
            latest_ever = identified[-1].user_id if identified else None
            for s in visitor:
                known = [e for e in s.events if e.user_id is not None]
                s.user_id = known[-1].user_id if known else latest_ever
            sessions += visitor
        return sessions

    def session_of(self, event: Event) -> Session:
        for s in self.sessions:
            if s.anonymous_id == event.anonymous_id and s.start <= event.time <= s.end:
                return s
        raise LookupError(event)

    # --- marts ------------------------------------------------------------------------

    def funnel(self) -> dict[tuple[date, str, str], list[int]]:
        """(day, device, source) -> sessions, steps 1-5 reached, converting sessions."""
        rows: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0] * 7)
        for s in self.sessions:
            row = rows[(s.start.date(), s.first.device_type, s.first.traffic_source)]
            row[0] += 1
            for i, reached in enumerate(s.reached(), start=1):
                row[i] += reached
            row[6] += s.has(FUNNEL_END)
        return dict(rows)

    def abandonment(self) -> dict[date, list[int]]:
        """day -> carts, abandoned carts, recovered carts, checkouts, abandoned checkouts."""
        rows: dict[date, list[int]] = defaultdict(lambda: [0] * 5)
        by_visitor: dict[str, list[Session]] = defaultdict(list)
        for s in self.sessions:
            by_visitor[s.anonymous_id].append(s)
        for s in self.sessions:
            row = rows[s.start.date()]
            ordered = s.has(FUNNEL_END)
            if s.has("Product Added"):
                row[0] += 1
                if not ordered:
                    row[1] += 1
                    row[2] += any(
                        later.number > s.number
                        and later.start <= s.start + RECOVERY_WINDOW
                        and later.has(FUNNEL_END)
                        for later in by_visitor[s.anonymous_id]
                    )
            if s.has("Checkout Started"):
                row[3] += 1
                row[4] += not ordered
        return dict(rows)

    def order_sessions(self) -> dict[int, Session]:
        """order_id -> the session of its first Order Completed event received."""
        firsts: dict[int, Event] = {}
        for e in sorted(self.events, key=lambda e: (e.delivery.at, e.source, e.message_id or "")):
            if e.is_track(FUNNEL_END) and e.order_id is not None and e.anonymous_id:
                firsts.setdefault(e.order_id, e)
        return {order_id: self.session_of(e) for order_id, e in firsts.items()}

    def attribution(self) -> dict[int, tuple[str, str]]:
        """order_id -> (channel, campaign): the last non-direct session of the same device or
        user within 30 days before the order's session started, else direct."""
        credited = {}
        for order_id, placed in self.order_sessions().items():
            touches = [
                s
                for s in self.sessions
                if (
                    s.anonymous_id == placed.anonymous_id
                    or (placed.user_id is not None and s.user_id == placed.user_id)
                )
                and placed.start - ATTRIBUTION_WINDOW <= s.start <= placed.start
                and s.first.traffic_source != "direct"
            ]
            if touches:
                touch = max(touches, key=lambda s: s.start)
                credited[order_id] = (touch.first.traffic_source, touch.campaign)
            else:
                credited[order_id] = ("direct", "(none)")
        return credited

    def product_events(self) -> dict[int, list[int]]:
        """product_id -> views, add-to-carts (track events only)."""
        counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for e in self.events:
            if e.product_id is not None:
                if e.is_track("Product Viewed"):
                    counts[e.product_id][0] += 1
                elif e.is_track("Product Added"):
                    counts[e.product_id][1] += 1
        return dict(counts)

    def user_sessions(self) -> dict[int, tuple[int, datetime, datetime]]:
        """user_id -> sessions, first seen (start of first), last seen (end of last)."""
        out: dict[int, tuple[int, datetime, datetime]] = {}
        for s in self.sessions:
            if s.user_id is None:
                continue
            n, first, last = out.get(s.user_id, (0, s.start, s.end))
            out[s.user_id] = (n + 1, min(first, s.start), max(last, s.end))
        return out

    def latest_receipt(self) -> date:
        return max(naive(e.delivery.at) for e in self.events).date()
