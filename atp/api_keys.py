"""API keys with scopes, as `ATP_API_KEYS` holds them.

Format: comma-separated `key_id:scope+scope:secret` entries; the secret is the token itself or
`sha256:<hex>` of it, so no plaintext needs to sit in the environment. Shared by the API (which
checks them, api/auth.py) and `atp up` (which makes one for a run).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from atp.core.errors import ATPError

SCOPES = ("read", "reserve", "admin")


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
    """A new random token (`atp up` makes one per run when no keys are configured)."""
    return "atp_" + secrets.token_urlsafe(24)


def digest_entry(key_id: str, scopes: str, token: str) -> str:
    """An `ATP_API_KEYS` entry that holds only the token's digest, e.g. for a child process."""
    return f"{key_id}:{scopes}:sha256:{hashlib.sha256(token.encode()).hexdigest()}"
