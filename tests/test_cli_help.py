"""Every command's --help reads as documentation, and the CLI starts without the heavy libraries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from propensity.cli import app

ROOT = Path(__file__).resolve().parents[1]
# config sections a help text may name, e.g. "(default: [training] promotion_margin in propensity.toml)"
SECTION = re.compile(r"\\?\[(training|features|serving|monitoring|import|mapping\.TABLE|warehouse|api|mlflow)\]")


def _commands(command, path: tuple[str, ...] = ()):
    """(path, command) for the app, every group and every command under it, depth first."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_walk_reaches_every_command() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "data import", "features snapshots", "explain customer", "tokens revoke", "serve", "monitor"} <= names
    assert len(names) == 26


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "propensity")
def test_help_has_no_placeholders(path: tuple[str, ...]) -> None:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for placeholder in ("<bool>", "<str>", "<list[", "(default:  ", "(default: )", "( "):
        assert placeholder not in res.output, f"{' '.join(path)} --help shows {placeholder!r}:\n{res.output}"
    # a "[section]" in a help text is text, not rich markup that swallows it
    command = dict(COMMANDS)[path]
    texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    for section in {m.group(1) for text in texts for m in SECTION.finditer(text)}:
        assert f"[{section}]" in res.output, f"{' '.join(path)} --help lost [{section}]:\n{res.output}"


def test_flags_and_choices_in_help() -> None:
    out = CliRunner().invoke(app, ["target", "--help"], env={"COLUMNS": "200"}).output
    assert "<auto|uplift|expected_profit|value_at_risk|value|churn>" in out
    assert re.search(r"\* +CAMPAIGN +A campaign id", out)
    out = CliRunner().invoke(app, ["promote", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--force +Promote even when", out)  # a flag: no value type beside it
    assert "(default: [training] promotion_margin in propensity.toml)" in out


def test_importing_the_cli_leaves_the_heavy_libraries_out() -> None:
    """`propensity --help` starts in well under a second: the commands import what they need when they run."""
    heavy = ["pandas", "numpy", "mlflow", "lightgbm", "shap", "sklearn", "duckdb", "fastapi", "pyarrow",
             "sqlalchemy", "matplotlib", "uvicorn", "optuna"]
    code = ("import sys, propensity.cli; "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_commands_are_registered_with_the_help_conventions() -> None:
    """Sub-apps are `propensity.console.App`s, so a new command gets the same help rendering."""
    from propensity.console import Command, Group

    for path, command in COMMANDS:
        assert isinstance(command, Group if hasattr(command, "commands") else Command), path
