"""What decoding a body can fail with: nothing usable at all (400), or one bad part (a dead letter)."""

from __future__ import annotations


class UnusableBody(ValueError):
    """Nothing in the body could be used: the receiver answers 400 with this message."""


class BadPayload(ValueError):
    """A payload (or a part of one) that cannot be decoded; the message is the dead-letter reason."""
