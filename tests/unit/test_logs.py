"""tokensvc.logs: the level and the two formats, in this process."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tokensvc import logs
from tokensvc.config import Settings

TOUCHED = ("", "_granian", "granian.access")


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """dictConfig replaces handlers process-wide: put them back after the test."""
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate)
        for name in TOUCHED
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def emit(level: int, **fields: object) -> None:
    logging.getLogger("tokensvc.sessions").log(level, "session connect", extra=fields)


def test_text_lines_carry_the_fields_and_cannot_be_forged(capsys, restored_logging):
    logs.configure(Settings())
    emit(logging.INFO, lease_id="abc", client="198.51.100.7 x\nFORGED line", reason=None)
    (line,) = capsys.readouterr().err.splitlines()
    assert " INFO tokensvc.sessions: session connect lease_id=abc " in line
    assert line.endswith('client="198.51.100.7 x\\nFORGED line" reason=-')


def test_json_lines_are_one_object_each(capsys, restored_logging):
    logs.configure(Settings(log_format="json"))
    emit(logging.INFO, lease_id="abc", duration=3)
    (line,) = capsys.readouterr().err.splitlines()
    parsed = json.loads(line)
    assert parsed["level"] == "INFO" and parsed["logger"] == "tokensvc.sessions"
    assert parsed["message"] == "session connect" and parsed["lease_id"] == "abc"
    assert parsed["duration"] == 3 and "time" in parsed


def test_the_level_drops_what_is_below_it(capsys, restored_logging):
    logs.configure(Settings(log_level="WARNING"))
    emit(logging.INFO, lease_id="dropped")
    emit(logging.WARNING, lease_id="kept")
    (line,) = capsys.readouterr().err.splitlines()
    assert " WARNING tokensvc.sessions: " in line and "lease_id=kept" in line
