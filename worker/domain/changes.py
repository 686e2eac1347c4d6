"""Changes to the registry, recorded by the service and published as events."""

from dataclasses import dataclass

from contracts import EventType, Task


@dataclass(frozen=True, slots=True)
class TaskChange:
    """`task` is the task after a create and as it was before a delete."""

    type: EventType
    task: Task
