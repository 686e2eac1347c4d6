"""FastStream's batch message, built without decoding the entries it holds."""

from faststream.redis import BinaryMessageFormatV1
from faststream.redis.message import BatchStreamMessage
from faststream.redis.parser import RedisBatchStreamParser, SimpleParserConfig

from contracts import CREATE_STREAM
from worker.transport.app import parse_batch, read_deliveries


async def test_a_batch_with_bytes_that_are_not_utf8_is_parsed_entry_by_entry() -> None:
    envelope = await BinaryMessageFormatV1.encode(
        message={"name": "summarization"},
        reply_to="replies.fs\n",
        headers={"source": b"svc-\xff"},
        correlation_id="forged\nline",
    )
    batch = BatchStreamMessage(
        type="bstream",
        channel=CREATE_STREAM,
        message_ids=[b"1-0", b"1-1", b"1-2"],
        data=[{b"data": b"{}"}, {b"data": b"caf\xff"}, {b"__data__": envelope}],
    )
    faststream_parser = RedisBatchStreamParser(
        SimpleParserConfig(BinaryMessageFormatV1)
    )

    message = await parse_batch(batch, faststream_parser.parse_message)
    deliveries = await read_deliveries(message)

    assert message.raw_message is batch
    assert message.raw_message["message_ids"] == [b"1-0", b"1-1", b"1-2"]
    # Its log lines name a correlation id of the worker's, none from the wire.
    assert message.correlation_id.isprintable()
    assert message.reply_to == ""
    assert [delivery.entry_id for delivery in deliveries] == ["1-0", "1-1", "1-2"]
    assert deliveries[1].body == b"caf\xff"
