"""The command bodies, validated the way the worker validates them: strict JSON."""

import json
import unicodedata
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts import CreateTask, DeleteTask, GetTask, ListTasks, TaskModels, TaskQuery
from contracts.commands import (
    MAX_DESCRIPTION_CHARS,
    MAX_LIST_LIMIT,
    MAX_MODEL_URI_CHARS,
    MAX_MODELS,
    MAX_NAME_CHARS,
)

CREATE = TypeAdapter(CreateTask)
DELETE = TypeAdapter(DeleteTask)
QUERY: TypeAdapter[GetTask | ListTasks | TaskModels] = TypeAdapter(TaskQuery)

Loc = tuple[int | str, ...]

NIL_UUID = "00000000-0000-0000-0000-000000000000"
TASK_ID = "5f0c6e2a-9b1d-4c3e-8a7f-2d4b6c8e0a1f"
BART = "hf://facebook/bart-large-cnn"

# The characters with the Unicode White_Space property: what pydantic trims. Python's
# own `str.strip()` also trims U+001C..U+001F, which pydantic keeps.
WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

padding = st.text(alphabet=WHITE_SPACE, max_size=4)
# Letters that show nothing, which names refuse along with the categories below.
BLANK_LETTERS = "\u115f\u1160\u2800\u3164\uffa0"
visible = st.characters(
    exclude_categories=("Cs", "Cc", "Cf", "Cn", "Mn", "Zs", "Zl", "Zp"),
    exclude_characters=BLANK_LETTERS,
)
# Any text the contract accepts: no surrogates, no control characters; in names,
# nothing invisible either (format characters, line breaks, variation selectors
# and other marks that show nothing alone).
anything = st.characters(exclude_categories=("Cs", "Cc"))
name_characters = st.characters(
    exclude_categories=("Cs", "Cc", "Cf", "Cn", "Mn", "Zl", "Zp"),
    exclude_characters=BLANK_LETTERS,
)
layout = st.sampled_from("\t\n\r")
description_text = st.text(
    alphabet=st.one_of(anything, layout), max_size=MAX_DESCRIPTION_CHARS
)


@st.composite
def task_names(draw: st.DrawFn) -> str:
    """A valid name, maybe padded with whitespace that validation trims."""
    first = draw(visible)
    rest = draw(st.text(alphabet=name_characters, max_size=MAX_NAME_CHARS - 1))
    return draw(padding) + first + rest + draw(padding)


@st.composite
def overlong_names(draw: st.DrawFn) -> str:
    """A name longer than the limit even once trimmed."""
    middle_chars = st.text(
        alphabet=anything, min_size=MAX_NAME_CHARS - 1, max_size=MAX_NAME_CHARS + 40
    )
    core = draw(visible) + draw(middle_chars) + draw(visible)
    return draw(padding) + core + draw(padding)


@st.composite
def model_uris(draw: st.DrawFn) -> str:
    scheme = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9+.\-]{0,11}", fullmatch=True))
    rest = draw(st.text(alphabet=visible, min_size=1, max_size=80))
    return f"{scheme}://{rest}"


task_ids = st.uuids().filter(lambda task_id: task_id.int != 0)
model_lists = st.lists(model_uris(), max_size=40, unique=True)
create_bodies = st.fixed_dictionaries(
    {"name": task_names(), "models": model_lists},
    optional={"description": description_text},
)
query_bodies = st.one_of(
    st.builds(lambda task_id: {"kind": "get", "id": str(task_id)}, task_ids),
    st.fixed_dictionaries(
        {"kind": st.just("list")},
        optional={
            "skip": st.integers(min_value=0, max_value=2**62),
            "limit": st.integers(min_value=1, max_value=MAX_LIST_LIMIT),
        },
    ),
    st.builds(lambda name: {"kind": "models", "name": name}, task_names()),
)


def validated(adapter: TypeAdapter[Any], body: object) -> Any:
    return adapter.validate_json(json.dumps(body), strict=True)


def error_locs(adapter: TypeAdapter[Any], body: object) -> set[Loc]:
    """Where validation found problems; fails the test if it found none."""
    with pytest.raises(ValidationError) as rejected:
        validated(adapter, body)
    return {error["loc"] for error in rejected.value.errors()}


def round_trip(adapter: TypeAdapter[Any], model: BaseModel) -> Any:
    return adapter.validate_json(model.model_dump_json(), strict=True)


def create_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "summarization", "models": [BART]}
    body.update(fields)
    return body


class TestValidBodies:
    @given(create_bodies)
    def test_a_create_keeps_its_fields_and_trims_and_normalizes_its_name(
        self, body: dict[str, Any]
    ) -> None:
        task = validated(CREATE, body)

        trimmed = body["name"].strip(WHITE_SPACE)
        assert task.name == unicodedata.normalize("NFC", trimmed)
        assert task.description == body.get("description", "")
        assert task.models == body["models"]

    @given(create_bodies)
    def test_a_create_survives_a_round_trip_through_json(
        self, body: dict[str, Any]
    ) -> None:
        task = validated(CREATE, body)

        assert round_trip(CREATE, task) == task

    @given(task_ids)
    def test_a_delete_survives_a_round_trip_through_json(self, task_id: UUID) -> None:
        command = validated(DELETE, {"id": str(task_id)})

        assert command.id == task_id
        assert round_trip(DELETE, command) == command

    @given(query_bodies)
    def test_a_query_survives_a_round_trip_through_json(
        self, body: dict[str, Any]
    ) -> None:
        query = validated(QUERY, body)

        assert query.kind == body["kind"]
        assert round_trip(QUERY, query) == query

    def test_a_list_query_defaults_to_the_first_hundred(self) -> None:
        query = validated(QUERY, {"kind": "list"})

        assert query == ListTasks(kind="list", skip=0, limit=100)

    def test_the_limits_themselves_are_allowed(self) -> None:
        body = create_body(
            name=" " + "n" * MAX_NAME_CHARS + " ",
            description="d" * MAX_DESCRIPTION_CHARS,
            models=[
                f"hf://{index:04d}".ljust(MAX_MODEL_URI_CHARS, "x")
                for index in range(MAX_MODELS)
            ],
        )

        task = validated(CREATE, body)

        assert len(task.name) == MAX_NAME_CHARS
        assert len(task.models) == MAX_MODELS


class TestNamesPeopleRead:
    def test_names_that_look_alike_are_one_name(self) -> None:
        composed = validated(CREATE, create_body(name="caf\u00e9"))
        decomposed = validated(CREATE, create_body(name="cafe\u0301"))

        assert composed.name == decomposed.name == "caf\u00e9"

    @pytest.mark.parametrize(
        "name",
        [
            "\u200b",  # zero-width space, nothing visible
            "summari\u200bzation",
            "\u202enoitazirammus",  # right-to-left override
            "\ufeffsummarization",  # byte order mark
            "summari\x85zation",  # C1 next line
            "summari\x9bzation",  # C1 control sequence introducer
            "n\u3164a",  # Hangul filler
            "n\u034fa",  # combining grapheme joiner
            "n\ufe0fa",  # variation selector
            "n\u2800a",  # blank braille cell
            "n\u2028a",  # line separator
        ],
    )
    def test_invisible_and_control_characters_are_refused_in_names(
        self, name: str
    ) -> None:
        assert error_locs(CREATE, create_body(name=name)) == {("name",)}

    def test_descriptions_refuse_c1_controls_and_keep_emoji_sequences(self) -> None:
        family = "\U0001f469\u200d\U0001f467"  # joined by a zero-width joiner

        task = validated(CREATE, create_body(description=f"for {family}"))

        assert task.description == f"for {family}"
        body = create_body(description="x\x9bz")
        assert error_locs(CREATE, body) == {("description",)}


class TestRejectedCreates:
    @given(padding)
    def test_a_name_that_is_only_whitespace_is_rejected(self, name: str) -> None:
        assert error_locs(CREATE, create_body(name=name)) == {("name",)}

    @given(overlong_names())
    def test_a_name_over_the_limit_after_trimming_is_rejected(self, name: str) -> None:
        assert error_locs(CREATE, create_body(name=name)) == {("name",)}

    def test_a_description_over_the_limit_is_rejected(self) -> None:
        body = create_body(description="d" * (MAX_DESCRIPTION_CHARS + 1))

        assert error_locs(CREATE, body) == {("description",)}

    @given(
        st.text(alphabet=visible, min_size=1, max_size=60).filter(
            lambda uri: "://" not in uri
        )
    )
    def test_a_model_without_a_scheme_is_rejected(self, uri: str) -> None:
        body = create_body(models=[BART, uri])

        assert error_locs(CREATE, body) == {("models", 1)}

    @pytest.mark.parametrize(
        "uri",
        [
            "://facebook/bart-large-cnn",
            "1hf://facebook/bart-large-cnn",
            "h_f://facebook/bart-large-cnn",
            "hf://",
            "hf://facebook/bart large cnn",
            "hf://facebook/bart-large-cnn\n",
            "hf:/facebook/bart-large-cnn",
        ],
    )
    def test_a_model_uri_not_shaped_like_scheme_and_rest_is_rejected(
        self, uri: str
    ) -> None:
        assert error_locs(CREATE, create_body(models=[uri])) == {("models", 0)}

    def test_a_model_uri_over_the_limit_is_rejected(self) -> None:
        uri = "hf://" + "b" * (MAX_MODEL_URI_CHARS - 4)

        assert error_locs(CREATE, create_body(models=[BART, uri])) == {("models", 1)}

    @given(model_lists.filter(bool), st.data())
    def test_a_model_listed_twice_is_rejected(
        self, models: list[str], data: st.DataObject
    ) -> None:
        repeated = data.draw(st.sampled_from(models))

        locs = error_locs(CREATE, create_body(models=[*models, repeated]))

        assert locs == {("models",)}

    def test_more_models_than_the_limit_are_rejected(self) -> None:
        models = [f"hf://model-{index}" for index in range(MAX_MODELS + 1)]

        assert error_locs(CREATE, create_body(models=models)) == {("models",)}

    @pytest.mark.parametrize("missing", ["name", "models"])
    def test_a_required_field_cannot_be_left_out(self, missing: str) -> None:
        body = create_body()
        del body[missing]

        assert error_locs(CREATE, body) == {(missing,)}


class TestUnknownFields:
    @given(st.text(min_size=1).filter(lambda key: key not in CreateTask.model_fields))
    def test_a_create_with_an_unknown_field_is_rejected(self, field: str) -> None:
        assert error_locs(CREATE, create_body(**{field: 1})) == {(field,)}

    def test_a_delete_with_an_unknown_field_is_rejected(self) -> None:
        body = {"id": TASK_ID, "cascade": True}

        assert error_locs(DELETE, body) == {("cascade",)}

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"kind": "get", "id": TASK_ID, "name": "summarization"}, ("get", "name")),
            ({"kind": "list", "page": 2}, ("list", "page")),
            (
                {"kind": "models", "name": "summarization", "id": TASK_ID},
                ("models", "id"),
            ),
        ],
    )
    def test_a_query_with_a_field_of_another_kind_is_rejected(
        self, body: dict[str, Any], loc: Loc
    ) -> None:
        assert error_locs(QUERY, body) == {loc}


class TestRejectedIds:
    def test_the_nil_uuid_names_no_task_to_delete(self) -> None:
        assert error_locs(DELETE, {"id": NIL_UUID}) == {("id",)}

    def test_the_nil_uuid_names_no_task_to_get(self) -> None:
        assert error_locs(QUERY, {"kind": "get", "id": NIL_UUID}) == {("get", "id")}

    @pytest.mark.parametrize("task_id", ["", "task-42", TASK_ID[:-1], TASK_ID + "0"])
    def test_an_id_that_is_not_a_uuid_is_rejected(self, task_id: str) -> None:
        assert error_locs(DELETE, {"id": task_id}) == {("id",)}


class TestRejectedPaging:
    @given(st.integers(max_value=-1))
    def test_a_negative_skip_is_rejected(self, skip: int) -> None:
        body = {"kind": "list", "skip": skip}

        assert error_locs(QUERY, body) == {("list", "skip")}

    @given(
        st.one_of(
            st.integers(max_value=0),
            st.integers(min_value=MAX_LIST_LIMIT + 1),
        )
    )
    def test_a_limit_outside_one_to_a_thousand_is_rejected(self, limit: int) -> None:
        body = {"kind": "list", "limit": limit}

        assert error_locs(QUERY, body) == {("list", "limit")}


QUERY_KINDS = {"get", "list", "models", "history", "events"}


class TestQueryKinds:
    @given(st.text().filter(lambda kind: kind not in QUERY_KINDS))
    def test_an_unknown_kind_is_rejected_at_the_root(self, kind: str) -> None:
        assert error_locs(QUERY, {"kind": kind}) == {()}

    def test_a_query_without_a_kind_is_rejected_at_the_root(self) -> None:
        assert error_locs(QUERY, {"id": TASK_ID}) == {()}


class TestStrictTypes:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("name", 5),
            ("name", None),
            ("name", ["summarization"]),
            ("description", 0),
            ("description", None),
            ("models", BART),
            ("models", {"0": BART}),
        ],
    )
    def test_a_create_field_of_the_wrong_json_type_is_rejected(
        self, field: str, value: object
    ) -> None:
        assert error_locs(CREATE, create_body(**{field: value})) == {(field,)}

    @pytest.mark.parametrize("model", [5, None, {"uri": BART}, True])
    def test_a_model_that_is_not_a_string_is_rejected(self, model: object) -> None:
        assert error_locs(CREATE, create_body(models=[model])) == {("models", 0)}

    @pytest.mark.parametrize("field", ["skip", "limit"])
    @pytest.mark.parametrize("value", ["5", 5.0, True, None])
    def test_paging_numbers_must_be_json_integers(
        self, field: str, value: object
    ) -> None:
        body = {"kind": "list", field: value}

        assert error_locs(QUERY, body) == {("list", field)}

    @pytest.mark.parametrize("task_id", [5, None, [TASK_ID]])
    def test_an_id_must_be_a_json_string(self, task_id: object) -> None:
        assert error_locs(DELETE, {"id": task_id}) == {("id",)}

    def test_a_models_query_name_must_be_a_json_string(self) -> None:
        body = {"kind": "models", "name": 5}

        assert error_locs(QUERY, body) == {("models", "name")}
