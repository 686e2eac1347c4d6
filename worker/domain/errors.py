"""The errors the registry's rules raise; the transport maps each to a reply code."""

from uuid import UUID


class TaskError(Exception):
    """A command that the registry refuses; nothing was changed."""

    field: str = ""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TaskNotFound(TaskError):
    field = "id"

    def __init__(self, task_id: UUID) -> None:
        super().__init__(f"no task has id {task_id}")
        self.task_id = task_id


class TaskNameNotFound(TaskError):
    field = "name"

    def __init__(self, name: str) -> None:
        super().__init__(f"no task is named {name!r}")
        self.name = name


class TaskNameTaken(TaskError):
    field = "name"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a task named {name!r} already exists; pick another name "
            "or delete that task first"
        )
        self.name = name
