"""The documented Redis ACL users (config/redis-users.acl; docs/operations.md, "Redis ACL"), with
passwords filled in: what `atp up --secure` and `atp compose-secrets` load into Redis."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

REDIS_ACL = Path(__file__).resolve().parents[2] / "config" / "redis-users.acl"
# role -> ACL user; the file's placeholder passwords are `CHANGE-ME-<role>`
REDIS_USERS = {"worker": "atp-worker", "api": "atp-api"}


def acl_with_passwords(passwords: Mapping[str, str]) -> str:
    """The ACL file with each role's password (role -> password) and no default user: a file
    that does not name `default` would leave it on, with no password and every command."""
    acl = REDIS_ACL.read_text(encoding="utf-8")
    for role in REDIS_USERS:
        acl = acl.replace(f">CHANGE-ME-{role}", f">{passwords[role]}")
    return acl + "user default off\n"
