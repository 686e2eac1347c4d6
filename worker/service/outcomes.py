"""What a command came to, in the JSON form replies carry and the worker remembers.

This is the one place where domain errors, validation errors and failures of the
worker itself become the `error` object of a reply.
"""

from dataclasses import dataclass

import orjson
from pydantic import BaseModel, ValidationError

from contracts import ErrorBody, ErrorCode, FieldProblem
from worker.domain.errors import TaskError, TaskNameTaken

_POISON = {ErrorCode.MALFORMED, ErrorCode.VALIDATION_ERROR, ErrorCode.INTERNAL}


@dataclass(frozen=True, slots=True)
class Outcome:
    """`body` is the JSON object `{"ok": ..., "result" | "error": ...}`.

    `error` is set on a failure made in this process; a remembered outcome keeps
    only its JSON.
    """

    ok: bool
    body: str
    error: ErrorBody | None = None

    @classmethod
    def success(cls, result: BaseModel) -> "Outcome":
        return cls(True, f'{{"ok":true,"result":{result.model_dump_json()}}}')

    @classmethod
    def failure(cls, error: ErrorBody) -> "Outcome":
        body = f'{{"ok":false,"error":{error.model_dump_json()}}}'
        return cls(False, body, error)

    @classmethod
    def remembered(cls, body: str) -> "Outcome":
        return cls(body.startswith('{"ok":true'), body)

    @property
    def error_code(self) -> ErrorCode | None:
        if self.ok:
            return None
        if self.error is not None:
            return self.error.code
        return ErrorCode(orjson.loads(self.body)["error"]["code"])

    @property
    def is_poison(self) -> bool:
        """Whether the entry can never succeed as written: it goes to dead letters."""
        return self.error is not None and self.error.code in _POISON

    def reply(self, correlation_id: str) -> bytes:
        """The reply JSON: this outcome with the request's correlation id first."""
        return b'{"correlation_id":%s,%s' % (
            orjson.dumps(correlation_id),
            self.body[1:].encode(),
        )


def refused(error: TaskError) -> ErrorBody:
    code = (
        ErrorCode.CONFLICT
        if isinstance(error, TaskNameTaken)
        else (ErrorCode.NOT_FOUND)
    )
    problem = FieldProblem(field=error.field, problem=error.message, type=code.value)
    return ErrorBody(code=code, message=error.message, details=[problem])


def invalid(error: ValidationError, tagged_union: bool = False) -> ErrorBody:
    """A `validation_error` naming every bad field.

    The errors of a tagged union (a query) lead with the tag, which is not a field:
    `("get", "id")` is field `id`, and an error at the root is about `kind`.
    """
    problems = [
        FieldProblem(
            field=_field_path(item["loc"], tagged_union),
            problem=item["msg"],
            type=item["type"],
        )
        for item in error.errors(include_url=False, include_input=False)
    ]
    fields = ", ".join(sorted({p.field for p in problems}))
    return ErrorBody(
        code=ErrorCode.VALIDATION_ERROR,
        message=f"the message body is invalid: check {fields}",
        details=problems,
    )


def _field_path(loc: tuple[int | str, ...], tagged_union: bool) -> str:
    if tagged_union:
        loc = loc[1:] if loc else ("kind",)
    return ".".join(str(part) for part in loc) or "body"


def malformed(reason: str) -> ErrorBody:
    return ErrorBody(code=ErrorCode.MALFORMED, message=reason)


def internal(correlation_id: str) -> ErrorBody:
    return ErrorBody(
        code=ErrorCode.INTERNAL,
        message=(
            "the worker failed to apply this message and moved it to the dead-letter "
            f"stream; its logs name correlation id {correlation_id}"
        ),
    )


def exhausted(delivery_count: int, max_deliveries: int) -> ErrorBody:
    return ErrorBody(
        code=ErrorCode.INTERNAL,
        message=(
            f"delivered {delivery_count} times without being acknowledged (limit "
            f"{max_deliveries}); moved to the dead-letter stream"
        ),
    )
