"""What the replay server and its client agree on beyond the protobuf messages.

Metadata keys of the ``Insert`` stream and the ``InsertTimeout`` error, in a module of
their own so the client (``replay_service.client``, ``insert_stream``) imports none of the
server's modules (table, WAL, selectors).
"""

from __future__ import annotations

from herd.interfaces import RateLimitTimeout

INSERTED_KEYS_METADATA = "herd-inserted-keys"
"""Trailing metadata of an Insert that timed out part-way: comma-separated keys that did get in."""
PACKED_INSERTS_METADATA = "herd-insert-packed"
"""Initial metadata of an Insert stream: "1" when the server unpacks ``InsertRequest.packed``."""
INSERT_WINDOW_METADATA = "herd-insert-window"
"""Initial metadata of an Insert stream: how many unacknowledged requests a client should allow."""


class InsertTimeout(RateLimitTimeout):
    """An insert that timed out part-way: ``keys`` are the items that did get in."""

    def __init__(self, message: str, keys: list[int]) -> None:
        super().__init__(message)
        self.keys = keys
