"""One root exception for the project; each subclass carries a stable machine-readable code."""

from __future__ import annotations


class ATPError(Exception):
    """Root of every error this project raises on purpose."""

    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidMovement(ATPError):
    """A source message that cannot become a movement; the stream rejects it with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NetworkConfigError(ATPError):
    """The network file is not valid; `path` names the offending entry."""

    code = "network_config"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class UnknownChannel(ATPError):
    code = "unknown_channel"

    def __init__(self, channel: str, known: list[str]) -> None:
        super().__init__(f"unknown channel {channel!r}; known channels: {', '.join(known)}")
        self.channel = channel
        self.known = known


class StoreUnavailable(ATPError):
    """Redis could not be reached or answered with an error."""

    code = "store_unavailable"
