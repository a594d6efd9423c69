"""The forwarder puts a keyed record on the partition faust's producer would (murmur2)."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from stream.forward import Forwarder


@given(key=st.binary(min_size=1, max_size=64), n=st.sampled_from([1, 4, 7, 64]))
def test_partition_is_murmur2_of_the_key(key, n):
    ids = list(range(n))
    forwarder = Forwarder({"bootstrap_servers": "127.0.0.1:1"}, client_id="t")
    expected = (murmur2(key) & 0x7FFFFFFF) % n
    assert forwarder._partition("t", key, ids) == expected
    assert forwarder._partition("t", key, ids) == expected  # cached
    assert DefaultPartitioner()(key, ids, ids) == expected


def test_the_cache_follows_a_change_in_partition_count():
    forwarder = Forwarder({"bootstrap_servers": "127.0.0.1:1"}, client_id="t")
    key = b"SKU-000001"
    four = forwarder._partition("t", key, [0, 1, 2, 3])
    eight = forwarder._partition("t", key, list(range(8)))
    assert four == (murmur2(key) & 0x7FFFFFFF) % 4
    assert eight == (murmur2(key) & 0x7FFFFFFF) % 8
