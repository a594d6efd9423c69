"""Source adapters: one module per input contract, each `parse(raw, network) -> [Movement]`.

Adding a source means adding one adapter module and one line in `ADAPTERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from atp.movements import Movement
from atp.network import Network
from atp.sources import wms

Adapter = Callable[[bytes, Network], list[Movement]]

# Source name (the topic suffix after the prefix) -> adapter.
ADAPTERS: dict[str, Adapter] = {
    "stock.wms": wms.parse,
}
