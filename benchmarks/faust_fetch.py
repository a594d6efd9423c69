"""faust's aiokafka transport with a configurable consumer fetch wait, for the benchmarks' faust
floor (apply_rate.py: a do-nothing faust agent given the worker's fetch wait). The worker itself
consumes through its own aiokafka consumers (stream/consumer.py) and no longer needs this.

faust-streaming (0.15.3) builds the worker's aiokafka consumer with `fetch_max_wait_ms=1500`
hardcoded in `faust/transport/drivers/aiokafka.py` and has no setting for it. Tansu does not
answer a waiting fetch as soon as records arrive; it answers late in the wait. With 1500 ms a
single movement took about 1.2 s from the source topic to Redis on an otherwise idle worker
(two hops, each meeting a waiting fetch); with 100 ms about 0.12 s, at the cost of more idle
fetches (worker and broker together about 7 % of a core at 100 ms against 4 % at 1500 ms).
See benchmarks/README.md.

The classes below change only that number. They are selected through faust's public
`App.transport` setter (`use_fetch_wait`), not by patching faust or aiokafka. They subclass
faust's aiokafka driver (0.15.3) and override two of its underscore methods, the factories
`Consumer._new_consumer_thread` and `AIOKafkaConsumerThread._create_worker_consumer`, each
calling faust's own code. The one private attribute touched is aiokafka's
`_fetch_max_wait_ms`, which `AIOKafkaConsumer.__init__` stores and `start()` hands to its
fetcher (aiokafka 0.14.0); it is set in one function, before the consumer starts.
"""

from __future__ import annotations

import logging
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)


def set_fetch_max_wait(consumer: aiokafka.AIOKafkaConsumer, fetch_max_wait_ms: int) -> None:
    """Set the fetch wait of a consumer that has not started yet (aiokafka 0.14.0).

    AIOKafkaConsumer keeps the constructor argument as `_fetch_max_wait_ms` and passes it to the
    Fetcher it creates in `start()`. If a later aiokafka renames it, say so and leave faust's 1.5 s.
    """
    if not hasattr(consumer, "_fetch_max_wait_ms"):
        log.warning(
            "this aiokafka has no AIOKafkaConsumer._fetch_max_wait_ms; "
            "keeping faust's fetch wait of 1500 ms (see benchmarks/faust_fetch.py)"
        )
        return
    consumer._fetch_max_wait_ms = fetch_max_wait_ms


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        set_fetch_max_wait(consumer, transport.fetch_max_wait_ms)
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    fetch_max_wait_ms: int = 1500  # faust's own value


def use_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make `app` consume through faust's aiokafka transport with this fetch wait.

    Call it right after creating the app, before its topics or agents touch `app.transport`.
    """
    transport = Transport(app.conf.broker_consumer, app)
    transport.fetch_max_wait_ms = fetch_max_wait_ms
    app.transport = transport
