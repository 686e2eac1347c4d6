"""The worker answering requests from `TaskClient`, on real Redis and both databases."""

from uuid import uuid4

import pytest

from contracts.client import TaskClient
from contracts.errors import TaskConflictError, TaskNotFoundError, TaskValidationError

TUTORIAL_MODELS = [
    "hf://facebook/bart-large-cnn",
    "mistral://open-mistral-7b",
    "oai://gpt-4-turbo",
]


async def test_a_created_task_can_be_read_back(client: TaskClient) -> None:
    created = await client.create("summarization", TUTORIAL_MODELS, "Summaries")

    fetched = await client.get(created.id)

    assert fetched == created
    assert fetched.models == TUTORIAL_MODELS
    assert fetched.created_at.utcoffset() is not None
    assert fetched.created_at.utcoffset().total_seconds() == 0


async def test_a_second_task_with_a_taken_name_conflicts(client: TaskClient) -> None:
    await client.create("summarization", TUTORIAL_MODELS)

    with pytest.raises(TaskConflictError) as refused:
        await client.create("summarization", ["hf://other/model"])

    assert refused.value.details[0].field == "name"


async def test_deleted_task_is_not_found(client: TaskClient) -> None:
    created = await client.create("translation", ["hf://t5-small"])

    deleted = await client.delete(created.id)

    assert deleted.id == created.id
    with pytest.raises(TaskNotFoundError):
        await client.get(created.id)
    with pytest.raises(TaskNotFoundError):
        await client.delete(created.id)


async def test_models_query_finds_the_task_by_name(client: TaskClient) -> None:
    await client.create("summarization", TUTORIAL_MODELS)

    models = await client.models("summarization")

    assert models.total == 3
    assert models.items == TUTORIAL_MODELS
    with pytest.raises(TaskNotFoundError):
        await client.models("no-such-task")


async def test_invalid_create_names_each_bad_field(client: TaskClient) -> None:
    with pytest.raises(TaskValidationError) as refused:
        await client.create("   ", ["not-a-uri", "hf://a"], "x" * 2001)

    fields = {problem.field for problem in refused.value.details}
    assert fields == {"name", "description", "models.0"}


async def test_list_pages_in_creation_order(client: TaskClient) -> None:
    names = [f"task-{index:02d}" for index in range(12)]
    for name in names:
        await client.create(name, [f"hf://{name}"])

    first = await client.list(skip=0, limit=5)
    rest = await client.list(skip=5, limit=100)

    assert first.total == rest.total == 12
    assert [task.name for task in first.items + rest.items] == names


async def test_unknown_id_is_not_found(client: TaskClient) -> None:
    with pytest.raises(TaskNotFoundError):
        await client.get(uuid4())
