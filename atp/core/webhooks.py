"""Webhooks: which events a topic record makes, their CloudEvents envelope, the Standard Webhooks
signature, the retry schedule and which targets may be called. Pure: no I/O, time passed in.

- Event types: `availability.changed` for every change of a SKU's channel answer on
  `stock.availability`, and beside it `availability.low_stock`, `availability.out_of_stock` or
  `availability.back_in_stock` when its status became that; `oversell.exposure`; and
  `reservation.<event>` for each event on `stock.reservations` (`held`, `confirmed`, ...). A
  subscription names types, or `reservation.*`, `availability.*`, `*`.
- The body is a CloudEvents 1.0 event, structured (the JSON envelope is the body) or binary (the
  data is the body, the attributes are `ce-*` headers); https://cloudevents.io.
- Signatures follow Standard Webhooks (https://www.standardwebhooks.com): `webhook-id`,
  `webhook-timestamp` (seconds), `webhook-signature: v1,<base64 HMAC-SHA256 of
  "<id>.<timestamp>.<body>">` keyed with the secret's bytes (`whsec_<base64>`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from atp.core.errors import ATPError

CHANGED = "availability.changed"
LOW = "availability.low_stock"
OUT = "availability.out_of_stock"
BACK = "availability.back_in_stock"
EXPOSURE = "oversell.exposure"
RESERVATION_EVENTS = (
    "held",
    "confirmed",
    "extended",
    "released",
    "expired",
    "fulfilled",
    "transferred",
    "changed",
)
EVENT_TYPES = (
    CHANGED,
    LOW,
    OUT,
    BACK,
    EXPOSURE,
    *(f"reservation.{e}" for e in RESERVATION_EVENTS),
)
PATTERNS = ("*", "availability.*", "oversell.*", "reservation.*")
SECRET_PREFIX = "whsec_"


class InvalidSubscription(ATPError):
    """A subscription the service will not make; `code` says which rule it broke."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_event_names(names: Sequence[str]) -> list[str]:
    """The subscription's event names, each a known type or pattern, without repeats."""
    if not names:
        raise InvalidSubscription("invalid_events", "events names no event type")
    unknown = [n for n in names if n not in EVENT_TYPES and n not in PATTERNS]
    if unknown:
        raise InvalidSubscription(
            "invalid_events",
            f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES + PATTERNS)}",
        )
    return list(dict.fromkeys(names))


def wants(names: Iterable[str], event_type: str) -> bool:
    """Whether a subscription to `names` gets an event of `event_type`."""
    family = event_type.split(".", 1)[0] + ".*"
    return any(n in ("*", event_type, family) for n in names)


@dataclass(frozen=True, slots=True)
class Event:
    """One webhook event made from a topic record: its type, the SKU it is about (the
    CloudEvents `subject`; a reservation's id for reservation events) and its data."""

    type: str
    subject: str
    data: Mapping[str, Any]


def availability_events(payload: Mapping[str, Any]) -> list[Event]:
    """The events a `stock.availability` record makes (its two kinds: a channel's change, and an
    oversell exposure)."""
    sku = str(payload.get("sku", ""))
    if payload.get("type") == "oversell_exposure":
        return [Event(EXPOSURE, sku, payload)]
    status, before = payload.get("status"), payload.get("previous_status")
    if status is None:
        return []
    out = [Event(CHANGED, sku, payload)]
    if status != before:
        if status == "low_stock":
            out.append(Event(LOW, sku, payload))
        elif status == "out_of_stock":
            out.append(Event(OUT, sku, payload))
    if before == "out_of_stock" and status != "out_of_stock":
        out.append(Event(BACK, sku, payload))
    return out


def reservation_events(payload: Mapping[str, Any]) -> list[Event]:
    """The event a `stock.reservations` record makes."""
    kind = payload.get("type")
    if kind not in RESERVATION_EVENTS:
        return []
    return [Event(f"reservation.{kind}", str(payload.get("reservation_id", "")), payload)]


def cloud_event(event: Event, event_id: str, source: str, at_ms: int) -> dict[str, Any]:
    """The CloudEvents 1.0 envelope of `event` (structured mode: this is the body)."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event.type,
        "subject": event.subject,
        "time": iso(at_ms),
        "datacontenttype": "application/json",
        "data": dict(event.data),
    }


def topic_value(
    payload: Mapping[str, Any],
    event_type: str,
    subject: str,
    source: str,
    at_ms: int,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A `stock.availability` or `stock.reservations` record's value in the cloudevents format
    (ATP_EVENT_FORMAT): the plain record is its `data`. Its id is `event_id`, or a digest of the
    payload, so the same record written twice (at least once) has the same id."""
    if event_id is None:
        digest = hashlib.blake2b(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), digest_size=12)
        event_id = "evt_" + digest.hexdigest()
    return cloud_event(Event(event_type, subject, payload), event_id, source, at_ms)


def unwrapped(value: Any) -> Any:
    """A topic record's plain payload, in either format (a CloudEvent's `data`)."""
    if isinstance(value, dict) and value.get("specversion") and "data" in value:
        return value["data"]
    return value


def binary_headers(envelope: Mapping[str, Any]) -> dict[str, str]:
    """The `ce-*` headers of a CloudEvent in binary mode (the body is its `data`)."""
    headers = {
        f"ce-{k}": str(v) for k, v in envelope.items() if k not in ("data", "datacontenttype")
    }
    headers["content-type"] = str(envelope.get("datacontenttype", "application/json"))
    return headers


def iso(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")


def new_secret(random: bytes) -> str:
    """A secret of the Standard Webhooks form from `random` (at least 24 bytes)."""
    if len(random) < 24:
        raise ValueError("a webhook secret needs at least 24 random bytes")
    return SECRET_PREFIX + base64.b64encode(random).decode()


def sign(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    """The `webhook-signature` header of one attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp_s}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def retry_delay_s(attempts_made: int, schedule: Sequence[float]) -> float | None:
    """How long after a failed attempt the next one is due; None when it was the last.
    `schedule[i]` is the wait after the (i + 1)-th failed attempt."""
    if attempts_made < 1 or attempts_made > len(schedule):
        return None
    return schedule[attempts_made - 1]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_url(url: str) -> tuple[str, str, int]:
    """A target URL's scheme, host and port, or InvalidSubscription: http(s) (plain http only
    to an allowed network: `refused_scheme`, once the host's addresses are known); no
    credentials in the URL (they would be logged and shown by every reader of the
    subscription: a receiver checks the signature instead)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidSubscription("invalid_url", f"not a URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidSubscription("invalid_url", "the URL must be https://host/...")
    if parts.username or parts.password:
        raise InvalidSubscription(
            "invalid_url",
            "the URL holds credentials; receivers verify the webhook-signature header instead",
        )
    if parts.fragment:
        raise InvalidSubscription("invalid_url", "the URL must not have a #fragment")
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port or default


def refused_address(address: str, allowed_networks: Sequence[Network]) -> str | None:
    """Why a target address may not be called (None: it may). Loopback, private, link-local,
    multicast and reserved addresses only inside `allowed_networks` (ATP_WEBHOOK_ALLOWED_
    NETWORKS): a webhook must never be a way into the retailer's own network."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed_networks):
        return None
    if not ip.is_global or ip.is_multicast:
        return f"{ip} is not a public address (allow its network in ATP_WEBHOOK_ALLOWED_NETWORKS)"
    return None


def refused_scheme(scheme: str, address: str, allowed_networks: Sequence[Network]) -> str | None:
    """Plain http only to an address inside `allowed_networks`."""
    if scheme == "https":
        return None
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip in net for net in allowed_networks):
        return None
    return "plain http is allowed only to ATP_WEBHOOK_ALLOWED_NETWORKS; use https"


def refused(scheme: str, address: str, allowed_networks: Sequence[Network]) -> str | None:
    """Why a URL of `scheme` may not be sent to `address` (None: it may)."""
    return refused_address(address, allowed_networks) or refused_scheme(
        scheme, address, allowed_networks
    )


def redact(url: str) -> str:
    """The URL as logs and delivery records show it: no query (it may carry a token)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}" + ("?…" if parts.query else "")


def parse_networks(spec: str) -> list[Network]:
    """ATP_WEBHOOK_ALLOWED_NETWORKS: comma-separated CIDRs (`127.0.0.0/8,10.1.0.0/16`)."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"{item!r}: {exc}") from None
    return out


@dataclass(frozen=True, slots=True)
class Subscription:
    """A webhook subscription as it is stored. `secret` signs every delivery; the API shows it
    once, when the subscription is made."""

    id: str
    url: str
    events: tuple[str, ...]
    format: str
    secret: str
    created_ms: int

    def view(self) -> dict[str, Any]:
        """What GET /v1/webhooks/{id} shows: everything but the secret."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "format": self.format,
            "created_at": iso(self.created_ms),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "format": self.format,
            "secret": self.secret,
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Subscription:
        return cls(
            d["id"], d["url"], tuple(d["events"]), d["format"], d["secret"], int(d["created_ms"])
        )
