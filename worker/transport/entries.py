"""Reading a stream entry in either wire format and validating its body.

Plain entries carry the JSON body in a `data` field next to optional `reply_to`,
`correlation_id` and `message_id` fields, so any Redis client can write them.
FastStream's `broker.publish` writes one `__data__` field holding its binary envelope
(headers, then the body).
"""

from dataclasses import dataclass
from enum import Enum
from typing import Any

from faststream.redis import BinaryMessageFormatV1
from pydantic import TypeAdapter, ValidationError

from contracts import (
    CREATE_STREAM,
    DELETE_STREAM,
    QUERY_STREAM,
    CreateTask,
    DeleteTask,
    ErrorBody,
    TaskQuery,
)
from contracts.streams import (
    CORRELATION_ID_FIELD,
    DATA_FIELD,
    MESSAGE_ID_FIELD,
    REPLY_TO_FIELD,
    SOURCE_FIELD,
)
from worker.service.batches import Command, CommandBody
from worker.service.outcomes import invalid, malformed

MAX_BODY_BYTES = 64 * 1024
MAX_ID_CHARS = 200

_FASTSTREAM_FIELD = b"__data__"
_MALFORMED_ROOT_ERRORS = {"json_invalid", "model_type", "dict_type"}
_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}


class WireFormat(Enum):
    PLAIN = "plain"
    FASTSTREAM = "faststream"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry as read, before its body is validated.

    `delivery_count` is how many times the group has handed this entry out, this time
    included; `fields` are the entry as written, kept for the dead-letter stream.
    """

    stream: str
    entry_id: str
    format: WireFormat
    body: bytes | None
    reply_to: str
    correlation_id: str
    message_id: str
    fields: dict[bytes, bytes]
    delivery_count: int = 1
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An entry whose body cannot be applied, and the error to answer it with."""

    delivery: Delivery
    error: ErrorBody


_BODY_TYPES: dict[str, TypeAdapter[Any]] = {
    CREATE_STREAM: TypeAdapter(CreateTask),
    DELETE_STREAM: TypeAdapter(DeleteTask),
    QUERY_STREAM: TypeAdapter(TaskQuery),
}


def read_entry(
    stream: str,
    entry_id: str,
    fields: dict[bytes, bytes],
    delivery_count: int = 1,
) -> Delivery:
    """The delivery an entry carries; its ids default to the entry id."""
    body: bytes | None
    if _FASTSTREAM_FIELD in fields:
        body, headers = BinaryMessageFormatV1.parse(fields[_FASTSTREAM_FIELD])
        wire_format = WireFormat.FASTSTREAM
        meta = {str(k): str(v) for k, v in headers.items()}
    else:
        body = fields.get(DATA_FIELD.encode())
        wire_format = WireFormat.PLAIN
        meta = {_text(k): _text(v) for k, v in fields.items() if k != b"data"}

    message_id = meta.get(MESSAGE_ID_FIELD) or entry_id
    return Delivery(
        stream=stream,
        entry_id=entry_id,
        format=wire_format,
        body=body,
        reply_to=meta.get(REPLY_TO_FIELD, ""),
        correlation_id=meta.get(CORRELATION_ID_FIELD) or message_id,
        message_id=message_id,
        fields=fields,
        delivery_count=delivery_count,
        source=meta.get(SOURCE_FIELD) or None,
    )


def parse_command(delivery: Delivery) -> Command | Rejection:
    """The validated command, or why the entry can never be applied."""
    problem = _envelope_problem(delivery)
    if problem is not None:
        return Rejection(delivery, malformed(problem))

    assert delivery.body is not None
    try:
        body: CommandBody = _BODY_TYPES[delivery.stream].validate_json(
            delivery.body, strict=True
        )
    except ValidationError as error:
        return Rejection(delivery, _body_error(delivery, error))

    return Command(
        stream=delivery.stream,
        entry_id=delivery.entry_id,
        source=delivery.source,
        message_id=delivery.message_id,
        correlation_id=delivery.correlation_id,
        body=body,
    )


def _envelope_problem(delivery: Delivery) -> str | None:
    if delivery.body is None:
        return f"the entry has no `{DATA_FIELD}` field holding the JSON body"
    if len(delivery.body) > MAX_BODY_BYTES:
        return (
            f"the body is {len(delivery.body)} bytes; "
            f"the limit is {MAX_BODY_BYTES} bytes"
        )
    if len(delivery.message_id) > MAX_ID_CHARS:
        return f"`{MESSAGE_ID_FIELD}` is longer than {MAX_ID_CHARS} characters"
    if delivery.source is not None and len(delivery.source) > MAX_ID_CHARS:
        return f"`{SOURCE_FIELD}` is longer than {MAX_ID_CHARS} characters"
    return None


def _body_error(delivery: Delivery, error: ValidationError) -> ErrorBody:
    first = error.errors(include_url=False)[0]
    if first["loc"] == () and first["type"] in _MALFORMED_ROOT_ERRORS:
        return malformed(f"the body is not a JSON object: {first['msg']}")
    if delivery.stream == QUERY_STREAM:
        return invalid(error, tagged_union=True)
    return invalid(error)


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
