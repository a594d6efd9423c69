"""Kafka knowledge shared by the worker and the operator tools: topic names and their creation,
the rejected-record format, and reading a topic to its end."""
