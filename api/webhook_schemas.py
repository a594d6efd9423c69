"""The request and response models of the webhook subscriptions (api/routes/webhooks.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class WebhookIn(BaseModel):
    url: str = Field(
        max_length=2048,
        description="https URL of the receiver (plain http only to ATP_WEBHOOK_ALLOWED_NETWORKS)",
    )
    events: list[str] = Field(
        min_length=1,
        max_length=20,
        description="Event types, or `availability.*`, `oversell.*`, `reservation.*`, `*`",
    )
    format: Literal["structured", "binary"] = Field(
        "structured",
        description="CloudEvents mode: the JSON envelope as the body, or the data as the body "
        "with `ce-*` headers",
    )


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    format: str
    created_at: str


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(
        description="Verifies the webhook-signature header (Standard Webhooks); shown only here"
    )


class WebhooksOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveriesOut(BaseModel):
    pending: int = Field(description="Messages waiting for their first or next attempt")
    attempts: list[dict[str, Any]] = Field(description="The newest attempts first (the last 100)")
    failed: list[dict[str, Any]] = Field(
        description="Messages given up on after the last retry, newest first (the last 1,000)"
    )
