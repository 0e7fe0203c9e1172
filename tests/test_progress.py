"""Progress output: a bar redrawn in place on a terminal; in a log, timestamped lines at least every N seconds."""

from __future__ import annotations

import io
import re
import time

import pytest

from propensity.config import ConfigError
from propensity.progress import SECONDS_ENV, Progress, duration, seconds_between_lines

STAMPED = re.compile(r"  \[\d\d:\d\d:\d\d +(\d+\.\d)s\] (.+)")


def stamped_lines(text: str) -> list[tuple[float, str]]:
    """(seconds since the command started, message) of every line; fails on any other line."""
    out = []
    for line in text.splitlines():
        m = STAMPED.fullmatch(line)
        assert m, f"not a timestamped line: {line!r}"
        out.append((float(m.group(1)), m.group(2)))
    return out


def test_a_log_gets_a_timestamped_line_at_least_every_interval() -> None:
    log = io.StringIO()
    with Progress(stream=log, live=False, seconds=0.2) as progress:
        progress.say("features as of 2025-01-01")
        time.sleep(0.7)  # a step that reports nothing itself
        count = progress.counter("scoring", "customers")
        count(0, 1000)
        for done in (250, 500, 750):
            time.sleep(0.25)
            count(done, 1000)
        count(1000, 1000)
        progress.say("publishing")
    text = log.getvalue()
    assert "\r" not in text and "\033" not in text  # nothing redrawn
    lines = stamped_lines(text)
    gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:])]
    assert max(gaps) <= 0.2 + 0.3, lines  # 0.3 s for a busy machine
    messages = [m for _, m in lines]
    assert messages[0] == "features as of 2025-01-01" and messages[-1] == "publishing"
    assert any(re.fullmatch(r"features as of 2025-01-01 - still running, 0\.\d s so far", m) for m in messages)
    counted = [m for m in messages if m.startswith("scoring: ")]
    assert all(re.fullmatch(r"scoring: [\d,]+ / 1,000 customers \(\d+%\), \d\.\d s elapsed(, ~\d\.\d s left)?", m)
               for m in counted), counted
    assert any(re.fullmatch(r"scoring: (250|500|750) / 1,000 customers \(\d+%\), .* left", m) for m in counted)


def test_a_terminal_gets_a_bar_redrawn_in_place() -> None:
    screen = io.StringIO()
    with Progress(stream=screen, live=True, seconds=0.05) as progress:
        progress.say("scoring")
        count = progress.counter("scoring", "customers")
        count(0, 100)
        count(50, 100)
        progress.say("chunk 1 of 2 done")  # wipes the bar, then draws it again below
        time.sleep(0.2)  # no "still running" lines on a terminal: the bar is there
        count(100, 100)
        progress.say("publishing")
    out = screen.getvalue()
    bar = "\r\033[K  scoring [###############...............] 50 / 100 customers (50%), "
    assert out.count(bar) == 2
    wiped_then_redrawn = r"50%\), \d\.\d s elapsed, ~\d\.\d s left\r\033\[K  \[[^]]+\] chunk 1 of 2 done\n"
    assert re.search(wiped_then_redrawn + re.escape(bar), out)
    assert re.search(r"\[#{30}\] 100 / 100 customers \(100%\), \d\.\d s elapsed\n  \[[^]]+\] publishing\n$", out)
    assert "still running" not in out


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECONDS_ENV, raising=False)
    assert seconds_between_lines() == 10.0
    monkeypatch.setenv(SECONDS_ENV, "0.5")
    assert seconds_between_lines() == 0.5 and Progress(io.StringIO()).seconds == 0.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(SECONDS_ENV, bad)
        with pytest.raises(ConfigError, match=f"{SECONDS_ENV}='{bad}': give a number of seconds above 0"):
            seconds_between_lines()


@pytest.mark.parametrize(("seconds", "text"), [
    (0.04, "0.0 s"), (3.25, "3.2 s"), (9.96, "10 s"), (45.4, "45 s"), (99.4, "99 s"), (100, "2 min"),
    (185, "3 min"), (3599, "60 min"), (4800, "1 h 20 min"),
])
def test_durations_read_as_a_person_rounds_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_a_named_stage_writes_nothing_unless_it_runs_long() -> None:
    log = io.StringIO()
    with Progress(stream=log, live=False, seconds=0.3) as progress:
        progress.stage("importing sales.csv into transactions")
    assert log.getvalue() == ""  # a quick import: its result line is all the user sees
    with Progress(stream=log, live=False, seconds=0.2) as progress:
        progress.stage("importing sales.csv into transactions")
        time.sleep(0.5)
    lines = [m for _, m in stamped_lines(log.getvalue())]
    assert len(lines) >= 2 and all(
        re.fullmatch(r"importing sales.csv into transactions - still running, 0\.\d s so far", m) for m in lines)
