"""Reading stream entries in both wire formats, and answering them."""

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from faststream.redis import BinaryMessageFormatV1
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from contracts import (
    CREATE_STREAM,
    DELETE_STREAM,
    QUERY_STREAM,
    CreateTask,
    DeleteTask,
    ErrorBody,
    ErrorCode,
    ErrorReply,
    FieldProblem,
    GetTask,
    OkReply,
    Task,
)
from worker.service.batches import Command
from worker.service.outcomes import Outcome
from worker.transport.entries import (
    MAX_BODY_BYTES,
    MAX_ID_CHARS,
    Delivery,
    Rejection,
    WireFormat,
    parse_command,
    read_entry,
)

ENTRY_ID = "1733300000000-0"
TASK_ID = "5f0c6e2a-9b1d-4c3e-8a7f-2d4b6c8e0a1f"
SUMMARIZATION = {
    "name": "summarization",
    "description": "Summaries of long news articles",
    "models": ["hf://facebook/bart-large-cnn", "oai://gpt-4-turbo"],
}


def plain_fields(body: bytes | None = None, **meta: str) -> dict[bytes, bytes]:
    fields = {key.encode(): value.encode() for key, value in meta.items()}
    if body is not None:
        fields[b"data"] = body
    return fields


async def faststream_fields(
    body: dict[str, Any],
    *,
    correlation_id: str,
    reply_to: str | None = None,
    headers: dict[str, Any] | None = None,
) -> dict[bytes, bytes]:
    envelope = await BinaryMessageFormatV1.encode(
        message=body,
        reply_to=reply_to,
        headers=headers,
        correlation_id=correlation_id,
    )
    return {b"__data__": envelope}


def delivery(
    stream: str, body: bytes | None, message_id: str = "msg-summarization-1"
) -> Delivery:
    meta = {"message_id": message_id}
    return read_entry(stream, ENTRY_ID, plain_fields(body, **meta))


def rejected(stream: str, body: bytes | None, message_id: str = "m-1") -> ErrorBody:
    """The error an entry is answered with; fails the test if it is accepted."""
    parsed = parse_command(delivery(stream, body, message_id))
    assert isinstance(parsed, Rejection), parsed
    return parsed.error


def problem_fields(error: ErrorBody) -> set[str]:
    return {problem.field for problem in error.details}


def json_bytes(body: object) -> bytes:
    return json.dumps(body).encode()


class TestPlainEntries:
    def test_every_field_of_a_plain_entry_is_read(self) -> None:
        fields = plain_fields(
            json_bytes(SUMMARIZATION),
            reply_to="tasks.replies.newsroom",
            correlation_id="corr-newsroom-7",
            message_id="msg-newsroom-7",
        )

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)

        assert read.stream == CREATE_STREAM
        assert read.entry_id == ENTRY_ID
        assert read.format is WireFormat.PLAIN
        assert read.body == json_bytes(SUMMARIZATION)
        assert read.reply_to == "tasks.replies.newsroom"
        assert read.correlation_id == "corr-newsroom-7"
        assert read.message_id == "msg-newsroom-7"

    def test_a_plain_entry_without_ids_is_known_by_its_entry_id(self) -> None:
        read = read_entry(CREATE_STREAM, ENTRY_ID, plain_fields(b"{}"))

        assert read.message_id == ENTRY_ID
        assert read.correlation_id == ENTRY_ID
        assert read.reply_to == ""

    def test_empty_id_fields_count_as_absent(self) -> None:
        fields = plain_fields(b"{}", message_id="", correlation_id="")

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)

        assert read.message_id == ENTRY_ID
        assert read.correlation_id == ENTRY_ID

    def test_the_correlation_id_defaults_to_the_message_id(self) -> None:
        fields = plain_fields(b"{}", message_id="msg-translation-3")

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)

        assert read.correlation_id == "msg-translation-3"

    def test_an_entry_without_data_has_no_body(self) -> None:
        read = read_entry(CREATE_STREAM, ENTRY_ID, plain_fields(message_id="m-9"))

        assert read.body is None
        assert read.format is WireFormat.PLAIN


class TestFastStreamEntries:
    async def test_the_envelope_gives_body_correlation_id_and_reply_channel(
        self,
    ) -> None:
        fields = await faststream_fields(
            SUMMARIZATION,
            correlation_id="corr-faststream-1",
            reply_to="faststream.replies.newsroom",
        )

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)

        assert read.format is WireFormat.FASTSTREAM
        assert json.loads(read.body or b"") == SUMMARIZATION
        assert read.correlation_id == "corr-faststream-1"
        assert read.reply_to == "faststream.replies.newsroom"

    async def test_an_envelope_without_a_message_id_is_known_by_its_entry_id(
        self,
    ) -> None:
        fields = await faststream_fields(SUMMARIZATION, correlation_id="corr-2")

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)

        assert read.message_id == ENTRY_ID
        assert read.correlation_id == "corr-2"
        assert read.reply_to == ""

    async def test_a_message_id_header_names_the_message(self) -> None:
        fields = await faststream_fields(
            SUMMARIZATION,
            correlation_id="corr-3",
            headers={"message_id": "msg-from-faststream-3"},
        )

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)

        assert read.message_id == "msg-from-faststream-3"

    async def test_an_envelope_parses_into_the_same_command_as_a_plain_entry(
        self,
    ) -> None:
        envelope = await faststream_fields(
            SUMMARIZATION, correlation_id="corr-4", headers={"message_id": "msg-4"}
        )
        plain = plain_fields(
            json_bytes(SUMMARIZATION), correlation_id="corr-4", message_id="msg-4"
        )

        from_envelope = parse_command(read_entry(CREATE_STREAM, ENTRY_ID, envelope))
        from_plain = parse_command(read_entry(CREATE_STREAM, ENTRY_ID, plain))

        assert isinstance(from_envelope, Command)
        assert from_envelope == from_plain


class TestEntriesInBothFormats:
    async def test_an_entry_with_data_and_an_envelope_is_malformed(self) -> None:
        fields = await faststream_fields(
            SUMMARIZATION, correlation_id="corr-fs", reply_to="faststream.replies"
        )
        fields |= plain_fields(
            json_bytes(SUMMARIZATION),
            reply_to="tasks.replies.newsroom",
            correlation_id="corr-plain",
        )

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)
        parsed = parse_command(read)

        assert isinstance(parsed, Rejection)
        assert parsed.error.code is ErrorCode.MALFORMED
        assert "`data`" in parsed.error.message
        assert "`__data__`" in parsed.error.message
        # Answered like the plain entry it also is, where its publisher listens.
        assert read.format is WireFormat.PLAIN
        assert read.reply_to == "tasks.replies.newsroom"
        assert read.correlation_id == "corr-plain"


class TestAcceptedCommands:
    def test_a_create_becomes_a_command_with_its_ids(self) -> None:
        parsed = parse_command(delivery(CREATE_STREAM, json_bytes(SUMMARIZATION)))

        assert isinstance(parsed, Command)
        assert parsed.stream == CREATE_STREAM
        assert parsed.message_id == "msg-summarization-1"
        assert parsed.correlation_id == "msg-summarization-1"
        assert parsed.body == CreateTask.model_validate(SUMMARIZATION)

    def test_a_delete_becomes_a_delete_command(self) -> None:
        parsed = parse_command(delivery(DELETE_STREAM, json_bytes({"id": TASK_ID})))

        assert isinstance(parsed, Command)
        assert parsed.body == DeleteTask(id=UUID(TASK_ID))

    def test_a_query_becomes_a_command_of_its_kind(self) -> None:
        body = json_bytes({"kind": "get", "id": TASK_ID})

        parsed = parse_command(delivery(QUERY_STREAM, body))

        assert isinstance(parsed, Command)
        assert parsed.body == GetTask(kind="get", id=UUID(TASK_ID))

    def test_a_body_of_exactly_the_limit_is_accepted(self) -> None:
        body = json_bytes({"id": TASK_ID})
        padded = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"

        parsed = parse_command(delivery(DELETE_STREAM, padded))

        assert len(padded) == MAX_BODY_BYTES
        assert isinstance(parsed, Command)

    def test_a_message_id_of_exactly_the_limit_is_accepted(self) -> None:
        message_id = "m" * MAX_ID_CHARS

        parsed = parse_command(
            delivery(DELETE_STREAM, b'{"id":"%s"}' % TASK_ID.encode(), message_id)
        )

        assert isinstance(parsed, Command)
        assert parsed.message_id == message_id


class TestMalformedEntries:
    def test_an_entry_without_data_is_malformed(self) -> None:
        error = rejected(CREATE_STREAM, None)

        assert error.code is ErrorCode.MALFORMED
        assert "`data`" in error.message

    def test_a_body_over_the_limit_is_malformed(self) -> None:
        body = json_bytes({"id": TASK_ID})
        padded = body[:-1] + b" " * (MAX_BODY_BYTES + 1 - len(body)) + b"}"

        error = rejected(DELETE_STREAM, padded)

        assert error.code is ErrorCode.MALFORMED
        assert str(MAX_BODY_BYTES + 1) in error.message

    @pytest.mark.parametrize("stream", [CREATE_STREAM, DELETE_STREAM, QUERY_STREAM])
    @pytest.mark.parametrize("body", [b"", b"name=summarization", b"{", b"\xff\xfe"])
    def test_a_body_that_is_not_json_is_malformed(
        self, stream: str, body: bytes
    ) -> None:
        assert rejected(stream, body).code is ErrorCode.MALFORMED

    @pytest.mark.parametrize("stream", [CREATE_STREAM, DELETE_STREAM, QUERY_STREAM])
    @pytest.mark.parametrize("body", [b"[]", b'"summarization"', b"null", b"42"])
    def test_json_that_is_not_an_object_is_malformed(
        self, stream: str, body: bytes
    ) -> None:
        error = rejected(stream, body)

        assert error.code is ErrorCode.MALFORMED
        assert error.message.startswith("the body is not a JSON object")

    def test_an_overlong_message_id_is_malformed(self) -> None:
        body = json_bytes({"id": TASK_ID})

        error = rejected(DELETE_STREAM, body, message_id="m" * (MAX_ID_CHARS + 1))

        assert error.code is ErrorCode.MALFORMED
        assert "message_id" in error.message


ID_FIELDS = ["message_id", "correlation_id", "source"]
UNSAFE_IDS = {
    "overlong": "m" * (MAX_ID_CHARS + 1),
    "nul": "msg\x00-7",
    "newline": "msg-7\n2026-03-14 15:09:26 ERROR worker: forged",
    "escape": "msg-\x1b[2J7",
    "c1 control": "msg-\x857",
    "line separator": "msg-\u20287",
    "bidi override": "msg-\u202e7",
}


class TestEntryIds:
    """Ids go to database columns of 200 characters, log lines and replies."""

    @pytest.mark.parametrize("field", ID_FIELDS)
    @pytest.mark.parametrize("value", UNSAFE_IDS.values(), ids=UNSAFE_IDS.keys())
    def test_an_unsafe_id_makes_the_entry_malformed_naming_the_field(
        self, field: str, value: str
    ) -> None:
        fields = plain_fields(json_bytes({"id": TASK_ID}), **{field: value})

        parsed = parse_command(read_entry(DELETE_STREAM, ENTRY_ID, fields))

        assert isinstance(parsed, Rejection)
        assert parsed.error.code is ErrorCode.MALFORMED
        assert f"`{field}`" in parsed.error.message

    @pytest.mark.parametrize("field", ID_FIELDS)
    def test_an_unsafe_id_leaves_safe_ids_downstream_and_the_fields_intact(
        self, field: str
    ) -> None:
        fields = plain_fields(
            json_bytes({"id": TASK_ID}),
            message_id="msg-7",
            correlation_id="corr-7",
            source="svc-7",
        )
        fields[field.encode()] = b"svc\x00\xff"

        read = read_entry(DELETE_STREAM, ENTRY_ID, fields)

        assert read.message_id == ENTRY_ID
        assert read.correlation_id == (
            "corr-7" if field != "correlation_id" else "msg-7"
        )
        assert read.source == (None if field == "source" else "svc-7")
        assert read.fields[field.encode()] == b"svc\x00\xff"

    def test_without_a_safe_correlation_id_the_reply_names_the_entry_id(self) -> None:
        fields = plain_fields(b"{}", message_id="m" * 201, correlation_id="c\x00")

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)

        assert read.message_id == read.correlation_id == ENTRY_ID

    @pytest.mark.parametrize("field", [*ID_FIELDS, "reply_to"])
    def test_a_field_that_is_not_utf8_makes_the_entry_malformed(
        self, field: str
    ) -> None:
        fields = plain_fields(json_bytes({"id": TASK_ID}), reply_to="replies.svc-7")
        fields[field.encode()] = b"svc-\xff"

        parsed = parse_command(read_entry(DELETE_STREAM, ENTRY_ID, fields))

        assert isinstance(parsed, Rejection)
        assert parsed.error.code is ErrorCode.MALFORMED
        assert f"`{field}` is not UTF-8" in parsed.error.message

    def test_an_unreadable_reply_channel_is_not_answered(self) -> None:
        fields = plain_fields(b"{}", reply_to="replies.svc-7")
        fields[b"reply_to"] = b"replies.\xff"

        assert read_entry(CREATE_STREAM, ENTRY_ID, fields).reply_to == ""

    def test_printable_unicode_ids_of_exactly_the_limit_are_accepted(self) -> None:
        fields = plain_fields(
            json_bytes({"id": TASK_ID}),
            message_id="é" * MAX_ID_CHARS,
            correlation_id="corr ☕ 7",
            source="équipe-données",
        )

        parsed = parse_command(read_entry(DELETE_STREAM, ENTRY_ID, fields))

        assert isinstance(parsed, Command)
        assert parsed.message_id == "é" * MAX_ID_CHARS
        assert parsed.correlation_id == "corr ☕ 7"
        assert parsed.source == "équipe-données"

    async def test_an_unsafe_id_in_a_faststream_header_is_malformed(self) -> None:
        fields = await faststream_fields(
            SUMMARIZATION, correlation_id="corr\r\nforged", reply_to="fs.replies"
        )

        read = read_entry(CREATE_STREAM, ENTRY_ID, fields)
        parsed = parse_command(read)

        assert isinstance(parsed, Rejection)
        assert "`correlation_id`" in parsed.error.message
        assert read.correlation_id == ENTRY_ID
        assert read.reply_to == "fs.replies"

    async def test_an_envelope_whose_headers_are_not_utf8_is_malformed(self) -> None:
        fields = await faststream_fields(
            SUMMARIZATION, correlation_id="corr-8", headers={"source": b"svc-\xff"}
        )

        parsed = parse_command(read_entry(CREATE_STREAM, ENTRY_ID, fields))

        assert isinstance(parsed, Rejection)
        assert parsed.error.code is ErrorCode.MALFORMED
        assert "`__data__`" in parsed.error.message


class TestInvalidBodies:
    def test_every_bad_field_of_a_create_is_named_by_its_dotted_path(self) -> None:
        body = {
            "name": "   ",
            "description": "d" * 2001,
            "models": ["hf://facebook/bart-large-cnn", "bart-large-cnn"],
        }

        error = rejected(CREATE_STREAM, json_bytes(body))

        assert error.code is ErrorCode.VALIDATION_ERROR
        assert problem_fields(error) == {"name", "description", "models.1"}
        assert error.message.endswith("check description, models.1, name")

    def test_each_problem_names_its_pydantic_error_type(self) -> None:
        error = rejected(DELETE_STREAM, json_bytes({"id": TASK_ID, "force": True}))

        assert error.details == (
            FieldProblem(
                field="force",
                problem="Extra inputs are not permitted",
                type="extra_forbidden",
            ),
        )

    def test_a_query_problem_names_the_field_without_the_kind(self) -> None:
        error = rejected(QUERY_STREAM, json_bytes({"kind": "get", "id": "x"}))

        assert error.code is ErrorCode.VALIDATION_ERROR
        assert problem_fields(error) == {"id"}

    @pytest.mark.parametrize(
        "body", [{"kind": "search", "name": "summarization"}, {"name": "x"}]
    )
    def test_a_query_of_unknown_or_missing_kind_names_field_kind(
        self, body: dict[str, Any]
    ) -> None:
        error = rejected(QUERY_STREAM, json_bytes(body))

        assert error.code is ErrorCode.VALIDATION_ERROR
        assert problem_fields(error) == {"kind"}

    def test_a_list_query_with_a_string_skip_names_field_skip(self) -> None:
        body = json_bytes({"kind": "list", "skip": "5", "limit": 0})

        error = rejected(QUERY_STREAM, body)

        assert problem_fields(error) == {"skip", "limit"}

    def test_a_delete_of_the_nil_uuid_names_field_id(self) -> None:
        body = json_bytes({"id": "00000000-0000-0000-0000-000000000000"})

        assert problem_fields(rejected(DELETE_STREAM, body)) == {"id"}


TASK = Task(
    id=UUID(TASK_ID),
    name="summarization",
    description="Summaries of long news articles",
    created_at=datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC),
    models=["hf://facebook/bart-large-cnn"],
)
correlation_ids = st.text(min_size=1, max_size=200)


class TestReplies:
    @given(correlation_ids)
    def test_a_success_reply_is_an_ok_reply_with_the_correlation_id(
        self, correlation_id: str
    ) -> None:
        reply = Outcome.success(TASK).reply(correlation_id)

        parsed = TypeAdapter(OkReply[Task]).validate_json(reply, strict=True)

        assert parsed == OkReply[Task](correlation_id=correlation_id, result=TASK)

    @given(correlation_ids)
    def test_a_failure_reply_is_an_error_reply_with_the_correlation_id(
        self, correlation_id: str
    ) -> None:
        error = rejected(CREATE_STREAM, json_bytes({"name": "", "models": []}))

        reply = Outcome.failure(error).reply(correlation_id)

        parsed = TypeAdapter(ErrorReply).validate_json(reply, strict=True)
        assert parsed == ErrorReply(correlation_id=correlation_id, error=error)

    def test_a_remembered_outcome_replies_exactly_like_the_original(self) -> None:
        original = Outcome.success(TASK)

        remembered = Outcome.remembered(original.body)

        assert remembered == original
        assert remembered.reply("corr-5") == original.reply("corr-5")

    def test_a_remembered_failure_keeps_its_error_code(self) -> None:
        error = ErrorBody(code=ErrorCode.CONFLICT, message="name taken")

        remembered = Outcome.remembered(Outcome.failure(error).body)

        assert not remembered.ok
        assert remembered.error_code == "conflict"
