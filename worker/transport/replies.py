"""Encoding a reply in the wire format of the request it answers."""

from faststream.redis import BinaryMessageFormatV1

from worker.transport.entries import Delivery, WireFormat

_JSON_HEADERS = {"content-type": "application/json"}


async def encode_reply(delivery: Delivery, reply_json: bytes) -> bytes:
    """Plain JSON for a plain request; FastStream's envelope for `broker.request`."""
    if delivery.format is WireFormat.PLAIN:
        return reply_json
    return await BinaryMessageFormatV1.encode(
        message=reply_json,
        reply_to=None,
        headers=_JSON_HEADERS,
        correlation_id=delivery.correlation_id,
    )
