"""Who may call what: clients send `Authorization: Bearer <token>` with a key of `ATP_API_KEYS`
(atp/api_keys.py). Tokens are compared as SHA-256 digests in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from atp.api_keys import ApiKey
from atp.core.errors import ATPError


class Unauthorized(ATPError):
    """Missing or wrong credentials."""

    code = "unauthorized"


class Forbidden(ATPError):
    """A valid key without the scope the call needs."""

    code = "forbidden"


class Authenticator:
    def __init__(self, keys: list[ApiKey], public_reads: bool) -> None:
        self.keys = keys
        self.public_reads = public_reads

    def identify(self, request: Request) -> ApiKey:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send an API key as 'Authorization: Bearer <token>'")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for key in self.keys:  # compare with every key, so timing says nothing about which
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            raise Unauthorized("the API key is not valid")
        return found

    def require(self, request: Request, scope: str) -> ApiKey | None:
        if scope == "read" and self.public_reads:
            return None
        key = self.identify(request)
        if scope not in key.scopes and "admin" not in key.scopes:
            raise Forbidden(f"API key {key.key_id!r} lacks the {scope!r} scope")
        return key
