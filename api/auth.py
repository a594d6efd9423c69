"""API keys with scopes, from `ATP_API_KEYS`.

Format: comma-separated `key_id:scope+scope:secret` entries; the secret is the token itself or
`sha256:<hex>` of it, so no plaintext needs to sit in the environment. Clients send
`Authorization: Bearer <token>`. Tokens are compared as SHA-256 digests in constant time and
never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request

from atp.core.errors import ATPError

SCOPES = ("read", "reserve", "admin")


class AuthError(ATPError):
    """Missing or wrong credentials (401) or a key without the scope (403)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class ApiKeysError(ATPError):
    code = "settings"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    scopes: frozenset[str]
    digest: bytes  # sha256 of the token


def parse_api_keys(spec: str) -> list[ApiKey]:
    """Parse `ATP_API_KEYS`; errors say which entry is wrong but never echo a secret."""
    keys = []
    for n, entry in enumerate(filter(None, (e.strip() for e in spec.split(","))), 1):
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            raise ApiKeysError(f"ATP_API_KEYS entry {n}: expected key_id:scope+scope:secret")
        key_id, scopes, secret = parts
        wanted = frozenset(s for s in scopes.split("+") if s)
        if not wanted or not wanted <= set(SCOPES):
            raise ApiKeysError(
                f"ATP_API_KEYS entry {n} ({key_id}): scopes must be of {', '.join(SCOPES)}"
            )
        if secret.startswith("sha256:"):
            try:
                digest = bytes.fromhex(secret[len("sha256:") :])
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise ApiKeysError(f"ATP_API_KEYS entry {n} ({key_id}): sha256 needs 64 hex digits")
        else:
            digest = hashlib.sha256(secret.encode()).digest()
        keys.append(ApiKey(key_id, wanted, digest))
    return keys


def new_token() -> str:
    return "atp_" + secrets.token_urlsafe(24)


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
