"""gzip / zlib payloads inside a body (S3 objects, forwarders without Content-Encoding) and inside base64
fields (Firehose records, `awslogs.data`). Request-level Content-Encoding is handled before the parsers, in
collector/body.py.
"""

from __future__ import annotations

import base64
import binascii
import zlib

from fnscope.decoding.budget import RequestTooLarge, charge_inflated, inflate_allowance
from fnscope.decoding.errors import BadPayload, UnusableBody

# Payloads inside a body were compressed separately, so the request-level bomb limit does not cover them.
MAX_INFLATED_BYTES = 64 * 1024 * 1024


class TooLarge(BadPayload):
    """Compressed data that inflates past the size limit (a decompression bomb)."""


def is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def is_compressed(data: bytes) -> bool:
    """gzip magic, or a zlib header (CMF 0x78 and a valid FCHECK)."""
    return is_gzip(data) or (len(data) > 1 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0)


def inflate(data: bytes, max_size: int = MAX_INFLATED_BYTES) -> bytes:
    """gzip or zlib data, including several gzip members back to back (Firehose may concatenate them).

    Raises ``BadPayload`` for corrupt, truncated or trailing-garbage data and past ``max_size`` bytes.
    """
    out: list[bytes] = []
    allowed = inflate_allowance(max_size)
    budget = allowed
    while data:
        stream = zlib.decompressobj(47)  # 32 + 15: detect gzip or zlib header
        try:
            chunk = stream.decompress(data, budget + 1)
        except zlib.error as exc:
            raise BadPayload(f"cannot decompress: {exc}") from None
        budget -= len(chunk)
        if budget < 0:
            if allowed < max_size:  # the request's own budget ran out, not this payload's limit
                raise RequestTooLarge("payloads inside the request decompress to more than one request may")
            raise TooLarge(f"decompresses to more than {max_size} bytes")
        out.append(chunk)
        if not stream.eof:
            raise BadPayload("compressed data is truncated")
        data = stream.unused_data
        if data and not is_compressed(data):
            raise BadPayload(f"{len(data)} bytes of garbage after the compressed data")
    charge_inflated(allowed - budget)
    return b"".join(out)


def inflate_body(body: bytes) -> bytes:
    """A whole body that may itself be compressed; anything else is returned as is.

    Raises ``UnusableBody`` for gzip that does not inflate and for any bomb. A zlib header that does not
    inflate is taken as text: two bytes of text (``x^``) can look like one.
    """
    if not is_compressed(body):
        return body
    try:
        return inflate(body)
    except BadPayload as exc:
        if not is_gzip(body) and not isinstance(exc, TooLarge):
            return body
        raise UnusableBody(f"body looks gzip-compressed but does not decompress: {exc}") from exc


def inflate_base64(data: str, failure: str) -> bytes:
    """A base64 field's bytes, inflated if they are compressed; ``BadPayload("{failure}: {why}")`` for bad base64."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadPayload(f"{failure}: {exc}") from None
    return inflate(raw) if is_compressed(raw) else raw
