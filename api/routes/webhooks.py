"""Webhook subscriptions (scope `admin`): make, list, show, delete, and see their deliveries.

The worker sends the messages (stream/webhooks.py); this side checks a target before it is
stored: an http(s) URL with no credentials in it, whose host resolves only to addresses
webhooks may reach (public ones, or inside ATP_WEBHOOK_ALLOWED_NETWORKS; the worker checks
again on every attempt).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.deps import requiring, services_of
from api.problems import PROBLEM_JSON, InvalidRequest
from api.responses import FastJSON
from api.schemas import Problem
from api.webhook_schemas import (
    DeliveriesOut,
    WebhookCreatedOut,
    WebhookIn,
    WebhookOut,
    WebhooksOut,
)
from atp.core import webhooks as wh

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=requiring("admin"))

MAX_SUBSCRIPTIONS = 100
RESOLVE_TIMEOUT_S = 5.0
_PROBLEM = {"model": Problem, "content": {PROBLEM_JSON: {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {s: _PROBLEM for s in (401, 403, 404, 409, 422, 503)}


@router.post(
    "",
    status_code=201,
    response_class=FastJSON,
    responses={201: {"model": WebhookCreatedOut}, **_ERRORS},
    summary="Subscribe a URL to events; the answer holds the signing secret, shown only here",
)
async def create_webhook(request: Request, body: WebhookIn) -> Response:
    svc = services_of(request)
    try:
        events = wh.check_event_names(body.events)
        scheme, host, port = wh.check_url(body.url)
    except wh.InvalidSubscription as exc:
        raise InvalidRequest(exc.code, str(exc)) from None
    await check_addresses(body.url, scheme, host, port, svc.settings.webhook_allowed_networks)
    if len(await svc.webhooks.all()) >= MAX_SUBSCRIPTIONS:
        raise InvalidRequest(
            "too_many_webhooks",
            f"{MAX_SUBSCRIPTIONS} subscriptions exist, the limit; delete one first",
            status=409,
        )
    sub = wh.Subscription(
        id="wh_" + secrets.token_hex(8),
        url=body.url,
        events=tuple(events),
        format=body.format,
        secret=wh.new_secret(secrets.token_bytes(32)),
        created_ms=svc.clock(),
    )
    await svc.webhooks.create(sub)
    return FastJSON({**sub.view(), "secret": sub.secret}, status_code=201)


async def check_addresses(url: str, scheme: str, host: str, port: int, networks: str) -> None:
    """Refuse a host that does not resolve, or resolves to an address webhooks may not reach."""
    allowed = wh.parse_networks(networks)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        raise InvalidRequest(
            "webhook_target_unresolved", f"{host} does not resolve here ({exc}); check the URL"
        ) from None
    for address in sorted({str(info[4][0]) for info in infos}):
        reason = wh.refused(scheme, address, allowed)
        if reason:
            raise InvalidRequest("webhook_target_refused", f"{wh.redact(url)}: {reason}")


@router.get(
    "",
    response_class=FastJSON,
    responses={200: {"model": WebhooksOut}, **_ERRORS},
    summary="Every webhook subscription (without secrets)",
)
async def list_webhooks(request: Request) -> Response:
    subs = await services_of(request).webhooks.all()
    return FastJSON({"webhooks": [s.view() for s in subs]})


@router.get(
    "/{webhook_id}",
    response_class=FastJSON,
    responses={200: {"model": WebhookOut}, **_ERRORS},
    summary="One webhook subscription (without its secret)",
)
async def get_webhook(request: Request, webhook_id: str) -> Response:
    sub = await services_of(request).webhooks.get(webhook_id)
    if sub is None:
        raise not_found(webhook_id)
    return FastJSON(sub.view())


@router.delete(
    "/{webhook_id}",
    status_code=204,
    responses={204: {"description": "Deleted, with its pending messages"}, **_ERRORS},
    summary="Delete a subscription and what it has pending",
)
async def delete_webhook(request: Request, webhook_id: str) -> Response:
    if not await services_of(request).webhooks.delete(webhook_id):
        raise not_found(webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_class=FastJSON,
    responses={200: {"model": DeliveriesOut}, **_ERRORS},
    summary="Pending messages, the latest attempts and the messages given up on",
)
async def webhook_deliveries(request: Request, webhook_id: str) -> Response:
    store = services_of(request).webhooks
    if await store.get(webhook_id) is None:
        raise not_found(webhook_id)
    return FastJSON(
        {
            "pending": await store.pending(webhook_id),
            "attempts": await store.deliveries(webhook_id),
            "failed": await store.deliveries(webhook_id, failed=True),
        }
    )


def not_found(webhook_id: str) -> InvalidRequest:
    return InvalidRequest(
        "webhook_not_found", f"no webhook subscription {webhook_id!r}", status=404
    )
