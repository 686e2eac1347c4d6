"""Writing the dead-letter stream: entries that can never succeed as written.

A dead letter keeps the original entry's fields, so that it can be fixed and
published again (`tasks dead-letters replay`), plus `dead_letter.*` fields saying
where it came from and why (`contracts.dead_letters` reads them).
"""

from datetime import UTC, datetime

from redis.typing import EncodableT, FieldT

from contracts import ErrorBody
from contracts.streams import DEAD_LETTER_PREFIX
from worker.transport.entries import Delivery


def dead_letter_fields(
    delivery: Delivery, error: ErrorBody, consumer: str
) -> dict[FieldT, EncodableT]:
    """The entry to append to the dead-letter stream for `delivery`."""
    fields: dict[FieldT, EncodableT] = {
        name: value for name, value in delivery.fields.items()
    }
    about = {
        "stream": delivery.stream,
        "entry_id": delivery.entry_id,
        "code": error.code.value,
        "reason": error.message,
        "delivery_count": str(delivery.delivery_count),
        "consumer": consumer,
        "at": datetime.now(UTC).isoformat(),
    }
    for name, value in about.items():
        fields[f"{DEAD_LETTER_PREFIX}{name}"] = value
    return fields
