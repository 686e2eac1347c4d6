"""The JSON Schemas of every body, reply and event, as committed in contracts/schemas.

Regenerate after changing a model: `python -m contracts.json_schemas`.
"""

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from contracts.commands import CreateTask, DeleteTask, TaskQuery
from contracts.events import TaskEvent
from contracts.replies import (
    DeletedTask,
    ErrorReply,
    ModelList,
    OkReply,
    Task,
    TaskPage,
)

SCHEMA_FOLDER = Path(__file__).parent / "schemas"

Mode = Literal["validation", "serialization"]

_SCHEMAS: dict[str, tuple[Any, Mode]] = {
    "task.create.json": (CreateTask, "validation"),
    "task.delete.json": (DeleteTask, "validation"),
    "task.query.json": (TaskQuery, "validation"),
    "reply.task.json": (OkReply[Task] | ErrorReply, "serialization"),
    "reply.task-page.json": (OkReply[TaskPage] | ErrorReply, "serialization"),
    "reply.model-list.json": (OkReply[ModelList] | ErrorReply, "serialization"),
    "reply.deleted-task.json": (OkReply[DeletedTask] | ErrorReply, "serialization"),
    "task.events.json": (TaskEvent, "serialization"),
}


def json_schemas() -> dict[str, str]:
    """File name to schema text, exactly as committed."""
    return {
        name: json.dumps(
            TypeAdapter(body_type).json_schema(mode=mode), indent=2, sort_keys=True
        )
        + "\n"
        for name, (body_type, mode) in _SCHEMAS.items()
    }


def write_json_schemas(folder: Path = SCHEMA_FOLDER) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in json_schemas().items():
        (folder / name).write_text(text)


if __name__ == "__main__":
    write_json_schemas()
    sys.stdout.write(f"wrote {len(_SCHEMAS)} schemas to {SCHEMA_FOLDER}\n")
