"""Who may call what: clients send `Authorization: Bearer <token>` with a key of `ATP_API_KEYS`
(atp/api_keys.py). Tokens are compared as SHA-256 digests in constant time and never logged.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from atp.api_keys import ApiKey
from atp.core.errors import ATPError


class AuthError(ATPError):
    """Missing or wrong credentials (401) or a key without the scope (403)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class Authenticator:
    def __init__(self, keys: list[ApiKey], public_reads: bool) -> None:
        self.keys = keys
        self.public_reads = public_reads

    def identify(self, request: Request) -> ApiKey:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(
                "unauthorized", "send an API key as 'Authorization: Bearer <token>'", 401
            )
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for key in self.keys:  # compare with every key, so timing says nothing about which
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            raise AuthError("unauthorized", "the API key is not valid", 401)
        return found

    def require(self, request: Request, scope: str) -> ApiKey | None:
        if scope == "read" and self.public_reads:
            return None
        key = self.identify(request)
        if scope not in key.scopes and "admin" not in key.scopes:
            raise AuthError("forbidden", f"API key {key.key_id!r} lacks the {scope!r} scope", 403)
        return key


def requires(scope: str):  # type: ignore[no-untyped-def]
    """A FastAPI dependency: `Depends(requires("reserve"))`."""

    # async, so FastAPI calls it on the event loop instead of hopping to a thread pool (it
    # only hashes and compares).
    async def check(request: Request) -> ApiKey | None:
        return request.app.state.auth.require(request, scope)  # type: ignore[no-any-return]

    return check
