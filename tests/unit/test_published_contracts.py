"""The committed JSON Schemas and AsyncAPI page must match the code that serves them."""

import json
from pathlib import Path

import pytest

from contracts.json_schemas import SCHEMA_FOLDER, json_schemas
from worker.cli import asyncapi_document
from worker.settings import WorkerSettings

ASYNCAPI_FILE = Path(__file__).parents[2] / "contracts" / "asyncapi.json"


@pytest.mark.parametrize("name", sorted(json_schemas()))
def test_committed_json_schema_matches_the_model(name: str) -> None:
    committed = (SCHEMA_FOLDER / name).read_text()

    assert committed == json_schemas()[name], (
        f"contracts/schemas/{name} is stale: run `python -m contracts.json_schemas`"
    )


def test_no_stale_schema_files_remain() -> None:
    committed = {path.name for path in SCHEMA_FOLDER.glob("*.json")}

    assert committed == set(json_schemas())


def test_committed_asyncapi_matches_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("TASKS_REDIS_URL", "TASKS_GROUP", "TASKS_EVENTS_MAXLEN"):
        monkeypatch.delenv(variable, raising=False)
    generated = asyncapi_document(WorkerSettings())

    assert ASYNCAPI_FILE.read_text() == generated + "\n", (
        "contracts/asyncapi.json is stale: run "
        "`env -u TASKS_REDIS_URL tasks-worker asyncapi > contracts/asyncapi.json`"
    )


def test_asyncapi_documents_each_command_body() -> None:
    document = json.loads(ASYNCAPI_FILE.read_text())
    payloads = document["components"]["schemas"]

    create = payloads["CreateTasks:Message:Payload"]
    query = payloads["AnswerQueries:Message:Payload"]
    assert set(create["properties"]) == {"name", "description", "models"}
    kinds = {option["properties"]["kind"]["const"] for option in query["oneOf"]}
    assert kinds == {"get", "list", "models", "history", "events"}
