"""Exceptions the client raises: one per reply error code, plus timeouts."""

from contracts.replies import ErrorBody, ErrorCode, FieldProblem


class TaskClientError(Exception):
    """Base of everything `TaskClient` raises."""


class RequestTimeout(TaskClientError):
    """No reply arrived in time: the worker is down, busy, or the stream is wrong."""


class TaskRequestError(TaskClientError):
    """The worker answered `ok: false`; `code`, `message` and `details` say why."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, details: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class TaskValidationError(TaskRequestError):
    code = ErrorCode.VALIDATION_ERROR


class TaskNotFoundError(TaskRequestError):
    code = ErrorCode.NOT_FOUND


class TaskConflictError(TaskRequestError):
    code = ErrorCode.CONFLICT


class MalformedRequestError(TaskRequestError):
    code = ErrorCode.MALFORMED


class WorkerInternalError(TaskRequestError):
    code = ErrorCode.INTERNAL


_BY_CODE: dict[ErrorCode, type[TaskRequestError]] = {
    error.code: error
    for error in (
        TaskValidationError,
        TaskNotFoundError,
        TaskConflictError,
        MalformedRequestError,
        WorkerInternalError,
    )
}


def error_from_reply(error: ErrorBody) -> TaskRequestError:
    """The exception that stands for a reply's `error` object."""
    return _BY_CODE[error.code](error.message, error.details)
