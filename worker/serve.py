"""Running the worker app until a signal: restarts, deadlines and a second signal."""

import asyncio
import logging
import os
import signal

from contracts.streams import COMMAND_STREAMS
from worker.settings import WorkerSettings
from worker.transport.app import WorkerApp, build_app

logger = logging.getLogger(__name__)

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 10.0


class _Signals:
    """The first SIGTERM or SIGINT asks for a graceful stop; a second one exits now."""

    def __init__(self) -> None:
        self.received = asyncio.Event()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        if self.received.is_set():
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            # Entries in flight stay pending; recovery on the next start takes them.
            os._exit(128 + signum)
        logger.info("%s: stopping gracefully", signal.Signals(signum).name)
        self.received.set()


async def serve(settings: WorkerSettings) -> int:
    """Run until signalled; returns the process exit code.

    When the app stops by itself (FastStream stops a subscriber whose consumer group
    vanished, after a Redis restart without data or a deleted stream) or cannot start
    (Redis or the database not there yet), it is built and started again with
    backoff: startup recreates the groups.
    """
    signals = _Signals()
    signals.install()
    delay_s = FIRST_RETRY_S

    while not signals.received.is_set():
        app = build_app(settings)
        if not await _start(app):
            await _wait(signals, delay_s)
            delay_s = min(delay_s * 2, MAX_RETRY_S)
            continue

        delay_s = FIRST_RETRY_S
        logger.info("worker ready: consuming %s", ", ".join(COMMAND_STREAMS))
        await _until_exit(app, signals)
        if not await _stop(app, settings.shutdown_timeout_s):
            return 1
        if not signals.received.is_set():
            logger.warning(
                "a subscriber stopped on its own (consumer group deleted or Redis "
                "lost its data?); restarting the worker app"
            )
    return 0


async def _start(app: WorkerApp) -> bool:
    try:
        await app.start()
        return True
    except (ConnectionError, OSError) as error:
        logger.warning("worker cannot start yet: %s; retrying", error)
    except Exception as error:
        logger.warning("worker start failed: %r; retrying", error)
    await app.stop()
    return False


async def _until_exit(app: WorkerApp, signals: _Signals) -> None:
    waits = [
        asyncio.create_task(signals.received.wait()),
        asyncio.create_task(app.exit_requested.wait()),
    ]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


async def _stop(app: WorkerApp, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(app.stop(), timeout_s)
        return True
    except TimeoutError:
        logger.error(
            "shutdown exceeded %.0fs (TASKS_SHUTDOWN_TIMEOUT_S); exiting with entries "
            "still pending, which the next start recovers",
            timeout_s,
        )
        return False


async def _wait(signals: _Signals, seconds: float) -> None:
    try:
        await asyncio.wait_for(signals.received.wait(), seconds)
    except TimeoutError:
        return
