"""Names of the Redis keys that make up the bus, and the fields of a plain entry."""

CREATE_STREAM = "task.create"
DELETE_STREAM = "task.delete"
QUERY_STREAM = "task.query"
EVENTS_STREAM = "task.events"
DEAD_LETTER_STREAM = "task.dead-letter"

COMMAND_STREAMS = (CREATE_STREAM, DELETE_STREAM, QUERY_STREAM)

# Fields of a plain stream entry, the format any Redis client can write with XADD.
DATA_FIELD = "data"
REPLY_TO_FIELD = "reply_to"
CORRELATION_ID_FIELD = "correlation_id"
MESSAGE_ID_FIELD = "message_id"
# Optional: the name of the service that published the command, kept in the audit log.
SOURCE_FIELD = "source"

# Fields the worker adds to a dead-letter entry, next to the original entry's fields.
DEAD_LETTER_PREFIX = "dead_letter."
