"""A one-line progress indicator on stderr: the phase, a counter and elapsed time."""

import sys
import time
from typing import TextIO

REDRAW_INTERVAL_S = 0.1


class Progress:
    """Redraws one line in a terminal; elsewhere prints one line per phase."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._redraws = stream.isatty()
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._phase = ""

    def phase(self, text: str) -> None:
        """Start a phase; its counter starts again from nothing."""
        self._phase = text
        if self._redraws:
            self._draw(text)
        else:
            self._stream.write(f"[{self._elapsed()}] {text}\n")
            self._stream.flush()

    def count(self, done: int, total: int) -> None:
        """Show `done` of `total` for the current phase, at most ten times a second."""
        now = time.monotonic()
        if not self._redraws or (now - self._drawn_at < REDRAW_INTERVAL_S):
            return
        self._drawn_at = now
        width = 20
        filled = width * done // max(total, 1)
        bar = "#" * filled + "." * (width - filled)
        self._draw(f"{self._phase} [{bar}] {done:,}/{total:,}")

    def close(self) -> None:
        if self._redraws:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def _draw(self, text: str) -> None:
        self._stream.write(f"\r\x1b[K[{self._elapsed()}] {text}")
        self._stream.flush()

    def _elapsed(self) -> str:
        minutes, seconds = divmod(int(time.monotonic() - self._started), 60)
        return f"{minutes:02d}:{seconds:02d}"
