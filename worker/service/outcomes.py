"""What a command came to, in the JSON form replies carry and the worker remembers.

This is the one place where domain errors, validation errors and failures of the
worker itself become the `error` object of a reply.
"""

from dataclasses import dataclass

import orjson
from pydantic import BaseModel, ValidationError

from contracts import ErrorBody, ErrorCode, FieldProblem
from worker.domain.errors import TaskError, TaskNameTaken


@dataclass(frozen=True, slots=True)
class Outcome:
    """`body` is the JSON object `{"ok": ..., "result" | "error": ...}`."""

    ok: bool
    body: str

    @classmethod
    def success(cls, result: BaseModel) -> "Outcome":
        return cls(True, f'{{"ok":true,"result":{result.model_dump_json()}}}')

    @classmethod
    def failure(cls, error: ErrorBody) -> "Outcome":
        return cls(False, f'{{"ok":false,"error":{error.model_dump_json()}}}')

    @classmethod
    def remembered(cls, body: str) -> "Outcome":
        return cls(body.startswith('{"ok":true'), body)

    @property
    def error_code(self) -> str | None:
        if self.ok:
            return None
        return str(orjson.loads(self.body)["error"]["code"])

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
            "the worker failed to apply this message; its logs name correlation id "
            f"{correlation_id}"
        ),
    )
