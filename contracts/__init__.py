"""The wire contract of the tasks worker: streams, bodies, replies and events.

Other services depend on this package alone; `contracts.client.TaskClient` speaks the
contract over Redis so that callers never build entries by hand.
"""

from contracts.commands import (
    AuditEvents,
    CreateTask,
    DeleteTask,
    GetTask,
    ListTasks,
    TaskHistory,
    TaskModels,
    TaskQuery,
)
from contracts.events import EventPage, EventType, TaskEvent
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
    "AuditEvents",
    "CreateTask",
    "DeleteTask",
    "DeletedTask",
    "ErrorBody",
    "ErrorCode",
    "ErrorReply",
    "EventPage",
    "EventType",
    "FieldProblem",
    "GetTask",
    "ListTasks",
    "ModelList",
    "OkReply",
    "Task",
    "TaskEvent",
    "TaskHistory",
    "TaskModels",
    "TaskPage",
    "TaskQuery",
]
