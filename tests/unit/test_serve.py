"""The signal policy of `tasks-worker run`: graceful first, immediate second."""

import signal

import pytest

from worker import serve


async def test_the_first_signal_asks_for_a_graceful_stop() -> None:
    signals = serve._Signals()

    signals._on_signal(signal.SIGTERM)

    assert signals.received.is_set()


async def test_a_second_signal_exits_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(serve.os, "_exit", exits.append)
    signals = serve._Signals()

    signals._on_signal(signal.SIGINT)
    signals._on_signal(signal.SIGINT)

    assert exits == [128 + signal.SIGINT]
