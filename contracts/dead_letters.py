"""Entries on stream `task.dead-letter`: the original fields plus `dead_letter.*`."""

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.streams import DEAD_LETTER_PREFIX

_PREFIX = DEAD_LETTER_PREFIX.encode()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered entry: where it came from, why, and what it held."""

    entry_id: str
    notes: dict[str, str]
    original: dict[bytes, bytes]

    @property
    def stream(self) -> str:
        return self.notes.get("stream", "")

    @classmethod
    def from_entry(cls, entry_id: str, fields: Mapping[bytes, bytes]) -> "DeadLetter":
        notes = {
            name[len(_PREFIX) :].decode(): value.decode(errors="replace")
            for name, value in fields.items()
            if name.startswith(_PREFIX)
        }
        return cls(entry_id, notes, original_fields(fields))


def original_fields(fields: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The fields of the entry as first published, without the dead-letter notes."""
    return {
        name: value for name, value in fields.items() if not name.startswith(_PREFIX)
    }
