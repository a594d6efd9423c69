"""HTTP load on one URL, as a process of its own so that its CPU does not slow the test's
probes: `python -m tests.integration.load URL MODE N DURATION OUT`.

- `closed N`: N clients, each asking again as soon as it has an answer (finds the capacity);
- `open N`: N requests a second on a fixed schedule, however slowly they are answered (what
  shoppers do: more of them do not wait for each other), each timed from when it was due,
  so a client-side wait for a connection counts too; `lag` says how late this process got
  to send it (it shares the machine's cores with what it loads, and falls behind its
  schedule when that is fast).

Writes every answer's status, latency (`s`), `lag` and, for a 503, the problem's code and
Retry-After to OUT as JSON.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import orjson

MAX_CONNECTIONS = 800  # open mode: beyond this many in flight, requests wait for one


async def ask(session: aiohttp.ClientSession, url: str, due: float) -> dict[str, object]:
    lag = time.monotonic() - due
    try:
        async with session.get(url) as r:
            body = await r.read()
            answer: dict[str, object] = {"status": r.status, "s": time.monotonic() - due}
            answer["lag"] = lag
            if r.status == 503:
                answer["code"] = orjson.loads(body).get("code")
                answer["retry_after"] = r.headers.get("retry-after")
            return answer
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {"status": 0, "s": time.monotonic() - due, "lag": lag, "error": repr(exc)}


async def load(url: str, mode: str, n: int, duration_s: float) -> list[dict[str, object]]:
    start = time.monotonic()
    end = start + duration_s
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS if mode == "open" else 0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if mode == "closed":
            answers: list[dict[str, object]] = []

            async def client() -> None:
                while time.monotonic() < end:
                    answers.append(await ask(session, url, time.monotonic()))

            await asyncio.gather(*(client() for _ in range(n)))
            return answers
        pending = []
        for i in range(int(n * duration_s)):
            due = start + i / n
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pending.append(asyncio.create_task(ask(session, url, due)))
        return list(await asyncio.gather(*pending))


def main() -> None:
    url, mode, n, duration_s, out = sys.argv[1:6]
    answers = asyncio.run(load(url, mode, int(n), float(duration_s)))
    Path(out).write_bytes(orjson.dumps(answers))


if __name__ == "__main__":
    main()
