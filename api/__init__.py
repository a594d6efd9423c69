"""The availability API (FastAPI): answers from Redis only, one round trip per request."""
