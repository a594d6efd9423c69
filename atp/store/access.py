"""What a process checks of Redis at start: that it lets this user in and run the service's
scripts. A wrong password, an untrusted certificate or a user without the commands stops the
process with a message that names the setting; a Redis that is down is not an error here (the
API serves 503 until it is back, the worker waits)."""

from __future__ import annotations

import ssl
from importlib import resources
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from atp.core.errors import ATPError
from atp.settings import Settings
from atp.store.client import REDIS_DOWN
from atp.store.scripts import load_script
from atp.tls import alert_when_reading_first, client_certificate_refused

ACL_DOC = "docs/operations.md, Redis ACL"


class StoreAccessError(ATPError):
    code = "redis_access"


def script_names() -> list[str]:
    """Every script the service runs by EVALSHA (the ledger's Redis Function is loaded apart)."""
    root = resources.files("atp.store").joinpath("lua")
    names = [p.name for p in root.iterdir() if p.name.endswith(".lua")]
    for group in root.iterdir():
        if group.is_dir() and group.name != "ledger":
            names += [
                f"{group.name}/{p.name}"
                for p in group.iterdir()
                if p.name.endswith(".lua") and not p.name.startswith("_")
            ]
    return sorted(names)


async def check_access(client: aioredis.Redis, settings: Settings) -> bool:
    """PING, then SCRIPT LOAD of every script. False when Redis cannot be reached now; raises
    StoreAccessError when it answers but refuses this user or its TLS."""
    user = settings.redis_username or "default"
    try:
        await client.ping()
        for name in script_names():
            await client.script_load(load_script(name))
    except AuthenticationError as exc:
        raise StoreAccessError(
            f"Redis refused the credentials of user {user!r} (ATP_REDIS_USERNAME, "
            f"ATP_REDIS_PASSWORD or the URL's): {exc}"
        ) from None
    except NoPermissionError as exc:
        raise StoreAccessError(
            f"Redis user {user!r} (ATP_REDIS_USERNAME) may not run what the service needs: "
            f"{exc}; give it the ACL in {ACL_DOC}"
        ) from None
    except ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise StoreAccessError(
                f"Redis wants a password for user {user!r}: set ATP_REDIS_PASSWORD (or "
                f"ATP_REDIS_PASSWORD_FILE): {exc}"
            ) from None
        raise
    except REDIS_DOWN as exc:
        cause = exc.__context__ or exc.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError) or "certificate verify" in str(exc):
            raise StoreAccessError(
                f"Redis at ATP_REDIS_URL: its TLS certificate is not trusted ({exc}); "
                f"ATP_REDIS_SSL_CAFILE={settings.redis_ssl_cafile or '(the system CAs)'}"
            ) from None
        alert = client_certificate_refused(exc) or await _alert_on_reset(settings, exc)
        if alert is not None:
            raise StoreAccessError(
                f"Redis at ATP_REDIS_URL refused this client's TLS certificate ({alert}): set "
                f"ATP_REDIS_SSL_CERTFILE and ATP_REDIS_SSL_KEYFILE to a certificate its CA "
                f"signed (now {settings.redis_ssl_certfile or 'none'})"
            ) from None
        return False
    return True


async def _alert_on_reset(settings: Settings, exc: BaseException) -> str | None:
    """A TLS connection reset at once may be a refused client certificate whose alert was lost
    (atp/tls.py): ask again, reading first."""
    if not settings.redis_url.startswith("rediss") or not _reset(exc):
        return None
    url = urlsplit(settings.redis_url.replace("+cluster", "", 1))
    context = ssl.create_default_context(cafile=settings.redis_ssl_cafile)
    context.check_hostname = settings.redis_ssl_check_hostname
    if settings.redis_ssl_certfile is not None:
        context.load_cert_chain(settings.redis_ssl_certfile, settings.redis_ssl_keyfile)
    return await alert_when_reading_first(url.hostname or "localhost", url.port or 6379, context)


def _reset(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, ConnectionResetError | BrokenPipeError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
