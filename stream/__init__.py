"""The stream worker: batch consumers that normalise source messages and apply them to Redis."""
