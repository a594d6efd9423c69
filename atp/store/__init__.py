"""Redis, and only Redis: every Redis command and server-side script of the service lives in
this package (keys, clients, scripts, the ledger, served stock, reservations, the outbox,
durability)."""
