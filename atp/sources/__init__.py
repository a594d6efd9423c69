"""Source adapters: one module per input contract, each `parse(raw, network) -> [Movement]`.

Adding a source means adding one adapter module, its topic in `atp.topics` and one line in
`ADAPTERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from atp import topics
from atp.movements import Movement
from atp.network import Network
from atp.sources import pos, tpl, wms

Adapter = Callable[[bytes, Network], list[Movement]]

# Source topic (before the prefix) -> adapter.
ADAPTERS: dict[str, Adapter] = {
    topics.WMS: wms.parse,
    topics.POS: pos.parse,
    topics.TPL: tpl.parse,
}
