"""Reading a request body within the size limits, before and after decompression."""

from __future__ import annotations

import asyncio
import zlib

from fastapi import HTTPException, Request

BODY_TIMEOUT_S = 60.0  # a whole body: 16 MB arrives well within this on any link a sender should use


async def read_body(request: Request, max_bytes: int, max_decompressed: int) -> bytes:
    """The body, gunzipped if Content-Encoding says so; 413 past either limit (a gzip bomb is a 413)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(408, f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s") from None
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower().strip()
    if encoding in ("gzip", "x-gzip", "deflate"):
        return inflate(body, max_decompressed)
    if encoding not in ("", "identity"):
        raise HTTPException(415, f"unsupported Content-Encoding {encoding!r}: use gzip or none")
    return body


def inflate(data: bytes, max_size: int) -> bytes:
    """gzip or zlib data, decompressed at most to max_size (413 beyond); concatenated gzip members too."""
    out: list[bytes] = []
    size = 0
    while data:
        wbits = 16 + zlib.MAX_WBITS if data[:2] == b"\x1f\x8b" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        try:
            piece = inflater.decompress(data, max_size - size + 1)
        except zlib.error as exc:
            raise HTTPException(400, f"body is not valid gzip/deflate data: {exc}") from exc
        size += len(piece)
        if size > max_size or inflater.unconsumed_tail:
            raise HTTPException(413, f"decompressed body is larger than {max_size} bytes")
        out.append(piece)
        data = inflater.unused_data
    return b"".join(out)
