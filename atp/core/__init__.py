"""The pure core: domain rules in plain Python. Standard library and bundled data only (and
orjson, a codec); no I/O, no clock: time comes in as an argument. tests/unit/test_layout.py
checks it."""
