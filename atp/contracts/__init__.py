"""The published contract of the service's topics: `asyncapi.yaml` beside this module (AsyncAPI
3.0; docs/asyncapi.yaml links to it), served by the API at /asyncapi.yaml and held to the code
by tests/unit/atp/test_contracts.py."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def document_bytes() -> bytes:
    return resources.files("atp.contracts").joinpath("asyncapi.yaml").read_bytes()


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(document_bytes())
    return loaded


def channel_messages() -> dict[str, list[str]]:
    """Topic (without the prefix) -> the names of the messages it carries."""
    return {
        channel["address"]: list(channel["messages"]) for channel in document()["channels"].values()
    }


def payload_schema(message: str) -> dict[str, Any]:
    """The JSON Schema (draft 7, AsyncAPI's default schema format) of a message's payload, with
    the document's components so its references resolve."""
    payload = document()["components"]["messages"][message]["payload"]
    return {"$schema": DRAFT_07, **payload, "components": document()["components"]}


def examples(message: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in document()["components"]["messages"][message]["examples"]]
