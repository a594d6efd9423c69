"""Inventory availability: stock movements in, available-to-promise counts out.

The modules of this package that import only the standard library form the pure core
(`movements`, `ledger`, `availability`, `network`, `errors`); everything with I/O lives
in `store`, `stream`, `api` and the command line.
"""
