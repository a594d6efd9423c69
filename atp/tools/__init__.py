"""Operator tools: the `atp` command line, the embedded stack (`atp up`), the simulator, and
rebuilding and replaying from Kafka. They start the worker and the API as processes
(`python -m stream`, `python -m api`) and never import them."""
