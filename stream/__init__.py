"""The stream worker: faust agents that normalise source messages and apply them to the ledger."""
