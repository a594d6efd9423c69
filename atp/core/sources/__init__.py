"""Source adapters: one module per input contract, each `parse(raw, network) -> [Movement]`.

Keyed by contract name (`wms`, `pos`, `3pl`); which topic carries which contract is Kafka's
business (atp.kafka.topics.SOURCES). Adding a source means an adapter module here, one line in
`ADAPTERS` and its topic there.
"""

from __future__ import annotations

from collections.abc import Callable

from atp.core.movements import Movement
from atp.core.network import Network
from atp.core.sources import pos, tpl, wms

Adapter = Callable[[bytes, Network], list[Movement]]

ADAPTERS: dict[str, Adapter] = {
    wms.SOURCE: wms.parse,
    pos.SOURCE: pos.parse,
    tpl.SOURCE: tpl.parse,
}

# The (source, kind) pairs movements can have.
KINDS: tuple[tuple[str, str], ...] = (
    *((wms.SOURCE, k) for k in wms.KINDS),
    *((pos.SOURCE, t) for t in pos.TYPES),
    (tpl.SOURCE, tpl.KIND),
)
