"""What a long command is doing, on stderr: a bar on a terminal, timestamped lines in a log.

Commands open one `Progress` for their duration and hand its `say` (messages) and
`counter` (work counted, e.g. customers scored) to the library functions, which only
ever call such callbacks. On a terminal, counted work is a bar redrawn in place. Anywhere
else (a log file, a pipe, CI) nothing is redrawn: every message is a line stamped with
the time, and while the command runs, a line comes at least every
`PROPENSITY_PROGRESS_SECONDS` seconds (default 10) - the latest count with the time
left, or the stage still running - written by a thread that lives only inside the
`with Progress()` block.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TextIO

from propensity.config import ConfigError

SECONDS_ENV = "PROPENSITY_PROGRESS_SECONDS"
DEFAULT_SECONDS = 10.0

Counter = Callable[[int, int], None]  # (done, total)


def seconds_between_lines() -> float:
    """The longest quiet stretch in a log: `PROPENSITY_PROGRESS_SECONDS`, or 10."""
    text = os.environ.get(SECONDS_ENV, "").strip()
    if not text:
        return DEFAULT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"{SECONDS_ENV}={text!r}: give a number of seconds above 0, e.g. 10")
    return seconds


def duration(seconds: float) -> str:
    """A duration as a reader rounds it: '0.4 s', '45 s', '3 min', '1 h 20 min'."""
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    s = round(seconds)
    if s < 100:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {round(s % 3600 / 60)} min"


@dataclass
class _Count:
    label: str
    unit: str
    done: int
    total: int
    since: float  # when this count started

    def line(self, now: float) -> str:
        """e.g. 'scoring: 150,000 / 1,000,000 customers (15%), 32 s elapsed, ~3 min left'."""
        return f"{self.label}: {self.counted(now)}"

    def counted(self, now: float) -> str:
        share = self.done / self.total if self.total > 0 else 0.0
        text = f"{self.done:,} / {self.total:,} {self.unit} ({share:.0%}), {duration(now - self.since)} elapsed"
        if 0 < share < 1:
            text += f", ~{duration((now - self.since) / share * (1 - share))} left"
        return text


class Progress:
    """Progress messages and counts of one command (see the module docstring).

    Args:
        stream: where to write (default: stderr, so stdout stays clean for data).
        live: redraw a bar in place (default: when `stream` is a terminal).
        seconds: the longest quiet stretch in plain mode (default: `seconds_between_lines()`).
    """

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, seconds: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.seconds = seconds_between_lines() if seconds is None else seconds
        self.started = self._last_line = time.monotonic()
        self._stage, self._stage_since = "", self.started
        self._count: _Count | None = None
        self._bar_drawn = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self.started = self._last_line = self._stage_since = time.monotonic()
        if not self.live:
            self._thread = threading.Thread(target=self._keep_writing, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._end_bar()

    def say(self, message: str) -> None:
        """A message: what the command does now (a line; it also names the stage for later lines)."""
        with self._lock:
            self._stage, self._stage_since = message.strip(), time.monotonic()
            self._wipe_bar()
            self._write(message)
            self._draw_bar()

    def stage(self, name: str) -> None:
        """Name what runs now without writing a line: the lines that come if it runs long say it."""
        with self._lock:
            self._stage, self._stage_since = name, time.monotonic()

    def counter(self, label: str, unit: str) -> Counter:
        """A callback for (done, total) of one piece of counted work, e.g. ("scoring", "customers")."""

        def update(done: int, total: int) -> None:
            with self._lock:
                now = time.monotonic()
                if self._count is None or self._count.label != label or done < self._count.done:
                    self._end_bar()
                    self._count = _Count(label, unit, done, total, now)
                self._count.done, self._count.total = done, total
                self._draw_bar()
                if done >= total:  # finished: the next message starts a fresh line
                    self._end_bar()
                    self._count = None

        return update

    # -- writing (called with the lock held) ---------------------------------------------

    def _write(self, message: str) -> None:
        now = time.monotonic()
        self.stream.write(f"  [{datetime.now():%H:%M:%S} {now - self.started:6.1f}s] {message}\n")
        self.stream.flush()
        self._last_line = now

    def _draw_bar(self, width: int = 30) -> None:
        if not self.live or self._count is None:
            return
        c = self._count
        share = min(1.0, c.done / c.total) if c.total > 0 else 0.0
        filled = int(round(width * share))
        self.stream.write(f"\r\033[K  {c.label} [{'#' * filled}{'.' * (width - filled)}] {c.counted(time.monotonic())}")
        self.stream.flush()
        self._bar_drawn = True

    def _wipe_bar(self) -> None:
        if self._bar_drawn:
            self.stream.write("\r\033[K")
            self._bar_drawn = False

    def _end_bar(self) -> None:
        if self._bar_drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_drawn = False

    # -- plain mode: a line at least every `seconds` ------------------------------------

    def _keep_writing(self) -> None:
        while True:
            with self._lock:
                wait = self._last_line + self.seconds - time.monotonic()
                if wait <= 0:
                    self._write(self._status())
                    wait = self.seconds
            if self._stop.wait(wait):
                return

    def _status(self) -> str:
        now = time.monotonic()
        if self._count is not None:
            return self._count.line(now)
        if self._stage:
            return f"{self._stage} - still running, {duration(now - self._stage_since)} so far"
        return f"working, {duration(now - self.started)} so far"
