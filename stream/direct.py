"""One hop (`ATP_HOPS=1`): source messages straight into the ledger, and their canonical
movements still published to `stock.movements`.

    source topics --normalise, apply--> Redis
                  \\--> stock.movements (the log `atp rebuild` and audits read), stock.rejected,
                       stock.availability

The ledger function applies each SKU's movements atomically and skips event ids it has, so the
SKU no longer has to be on one partition and one worker, which the second hop (`stock.movements`
keyed by SKU) was for. A batch is committed only once both Redis (durably: stream.acks) and the
broker have it: a worker killed in between applies the batch again (nothing changes) and
publishes its movements again (duplicates on `stock.movements`, which a rebuild skips).
"""

from __future__ import annotations

from stream.apply import Applier
from stream.normalise import Normaliser
from stream.records import Records, Sink


class Direct:
    def __init__(self, normaliser: Normaliser, applier: Applier, sink: Sink) -> None:
        self._normaliser = normaliser
        self._applier = applier
        self._sink = sink

    async def handle(self, records: Records) -> None:
        """Apply one batch of source messages, then publish its movements, rejections and
        events; returns once the broker has all of them."""
        movements, out = self._normaliser.convert(records, applied=True)
        out += await self._applier.apply(movements)
        await self._sink.send(out)
