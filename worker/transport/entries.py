"""Reading a stream entry in either wire format and validating its body.

Plain entries carry the JSON body in a `data` field next to optional `reply_to`,
`correlation_id`, `message_id` and `source` fields, so any Redis client can write
them. FastStream's `broker.publish` writes one `__data__` field holding its binary
envelope (headers, then the body).

Entries come from anyone who can write to Redis: nothing here assumes their bytes are
UTF-8, and ids that are unsafe to store, log or echo are refused, never passed on.
"""

import unicodedata
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
# The width of the id columns of the audit log and the processed commands.
MAX_ID_CHARS = 200

_DATA_FIELD = DATA_FIELD.encode()
_FASTSTREAM_FIELD = b"__data__"
_ENVELOPE_MARK = BinaryMessageFormatV1.IDENTITY_HEADER
_ID_FIELDS = (MESSAGE_ID_FIELD, CORRELATION_ID_FIELD, SOURCE_FIELD)
_HEADER_FIELDS = tuple((name, name.encode()) for name in (REPLY_TO_FIELD, *_ID_FIELDS))
# Characters that end or rewrite a log line or a terminal, or that a database
# refuses: C0 and C1 controls (NUL, newline, escape), format characters (bidi
# overrides), line and paragraph separators, and lone surrogates.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
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
    `problem` says why the entry can never be applied, when its envelope or its ids
    already tell; its ids are then safe stand-ins, never the unsafe values.
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
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class _Envelope:
    """A body and the headers around it, in either wire format, not yet checked."""

    format: WireFormat
    body: bytes | None
    headers: dict[str, object]
    problem: str | None = None


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
    """The delivery an entry carries; its ids default to the entry id.

    An entry that cannot be applied as written carries its `problem`. When one of
    its ids is unsafe, the entry id stands in for the message id, so that the
    refusal is remembered under an id that names this entry alone.
    """
    envelope = _open(fields)
    ids, id_problem = _safe_ids(envelope.headers)
    reply_to, reply_problem = _reply_channel(envelope.headers.get(REPLY_TO_FIELD))
    problem = envelope.problem or id_problem or reply_problem

    message_id = entry_id if problem else ids.get(MESSAGE_ID_FIELD, entry_id)
    correlation_id = ids.get(CORRELATION_ID_FIELD) or ids.get(MESSAGE_ID_FIELD)
    return Delivery(
        stream=stream,
        entry_id=entry_id,
        format=envelope.format,
        body=envelope.body,
        reply_to=reply_to,
        correlation_id=correlation_id or entry_id,
        message_id=message_id,
        fields=fields,
        delivery_count=delivery_count,
        source=ids.get(SOURCE_FIELD),
        problem=problem,
    )


def _open(fields: dict[bytes, bytes]) -> _Envelope:
    """The body and headers of an entry, in the wire format it was written in."""
    if _FASTSTREAM_FIELD not in fields:
        return _Envelope(WireFormat.PLAIN, fields.get(_DATA_FIELD), _headers(fields))

    if _DATA_FIELD in fields:
        # Two bodies and perhaps two reply channels: which one the publisher meant
        # cannot be told. Refused, and answered on the plain `reply_to` field.
        problem = (
            f"the entry has both a `{DATA_FIELD}` field and a FastStream "
            f"`{_FASTSTREAM_FIELD.decode()}` envelope; send one of them"
        )
        return _Envelope(
            WireFormat.PLAIN, fields[_DATA_FIELD], _headers(fields), problem
        )

    envelope = fields[_FASTSTREAM_FIELD]
    body, headers = BinaryMessageFormatV1.parse(envelope)
    # FastStream hands back the whole field when it cannot read the envelope.
    if body == envelope and envelope.startswith(_ENVELOPE_MARK):
        problem = (
            f"the `{_FASTSTREAM_FIELD.decode()}` envelope cannot be read: it is "
            "cut short or its headers are not UTF-8 text"
        )
        return _Envelope(WireFormat.FASTSTREAM, None, {}, problem)
    return _Envelope(WireFormat.FASTSTREAM, body, headers)


def _headers(fields: dict[bytes, bytes]) -> dict[str, object]:
    """The fields of a plain entry that play the part of FastStream's headers."""
    return {name: fields[key] for name, key in _HEADER_FIELDS if key in fields}


def _safe_ids(headers: dict[str, object]) -> tuple[dict[str, str], str | None]:
    """The ids that are safe to store, log and echo; and what is wrong with the rest.

    An empty id counts as absent.
    """
    ids: dict[str, str] = {}
    problems: list[str] = []
    for name in _ID_FIELDS:
        value = _text(headers.get(name, ""))
        problem = _id_problem(name, value)
        if problem is not None:
            problems.append(problem)
        elif value:
            ids[name] = value
    return ids, "; ".join(problems) or None


def _id_problem(name: str, value: str | None) -> str | None:
    if value is None:
        return f"`{name}` is not UTF-8 text"
    if len(value) > MAX_ID_CHARS:
        return f"`{name}` is longer than {MAX_ID_CHARS} characters"
    if _has_control_characters(value):
        return f"`{name}` holds control characters"
    return None


def _has_control_characters(text: str) -> bool:
    # Nearly every id is printable throughout, which one C-speed call tells.
    if text.isprintable():
        return False
    return any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in text)


def _reply_channel(value: object) -> tuple[str, str | None]:
    # A channel name is only passed back to Redis, whatever text it holds; one
    # that is not text at all cannot be named, so the entry goes unanswered.
    channel = _text(value or "")
    if channel is None:
        return "", f"`{REPLY_TO_FIELD}` is not UTF-8 text"
    return channel, None


def _text(value: object) -> str | None:
    """`value` as text; None for bytes that are not UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else str(value)


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
    if delivery.problem is not None:
        return delivery.problem
    if delivery.body is None:
        return f"the entry has no `{DATA_FIELD}` field holding the JSON body"
    if len(delivery.body) > MAX_BODY_BYTES:
        return (
            f"the body is {len(delivery.body)} bytes; "
            f"the limit is {MAX_BODY_BYTES} bytes"
        )
    return None


def _body_error(delivery: Delivery, error: ValidationError) -> ErrorBody:
    first = error.errors(include_url=False)[0]
    if first["loc"] == () and first["type"] in _MALFORMED_ROOT_ERRORS:
        return malformed(f"the body is not a JSON object: {first['msg']}")
    if delivery.stream == QUERY_STREAM:
        return invalid(error, tagged_union=True)
    return invalid(error)
