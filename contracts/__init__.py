"""The wire contract of the tasks worker: streams, bodies, replies and events.

Other services depend on this package alone; `contracts.client.TaskClient` speaks the
contract over Redis so that callers never build entries by hand.
"""

from contracts.commands import (
    CreateTask,
    DeleteTask,
    GetTask,
    ListTasks,
    TaskModels,
    TaskQuery,
)
from contracts.events import EventType, TaskEvent
from contracts.replies import (
    DeletedTask,
    ErrorBody,
    ErrorCode,
    ErrorReply,
    FieldProblem,
    ModelList,
    OkReply,
    Task,
    TaskPage,
)
from contracts.streams import (
    CREATE_STREAM,
    DELETE_STREAM,
    EVENTS_STREAM,
    QUERY_STREAM,
)

__all__ = [
    "CREATE_STREAM",
    "DELETE_STREAM",
    "EVENTS_STREAM",
    "QUERY_STREAM",
    "CreateTask",
    "DeleteTask",
    "DeletedTask",
    "ErrorBody",
    "ErrorCode",
    "ErrorReply",
    "EventType",
    "FieldProblem",
    "GetTask",
    "ListTasks",
    "ModelList",
    "OkReply",
    "Task",
    "TaskEvent",
    "TaskModels",
    "TaskPage",
    "TaskQuery",
]
