"""Logging for the service's processes: level and format from the settings.

Nothing here runs at import. The entry points (``tokensvc serve`` in every granian
worker, ``tokensvc worker`` and ``scheduler``) call it; ``create_app`` does not, so
an embedding program or a test keeps its own logging.

An event's fields travel as ``extra=`` keys: the text format writes them after the
message as ``key=value``, the json format as keys of the line's object (never a JSON
string inside the message).
"""

from __future__ import annotations

import copy
import json
import logging
import logging.config
import re
from typing import Any

from granian.log import LOGGING_CONFIG as GRANIAN_LOGGING
from pythonjsonlogger.json import JsonFormatter

from tokensvc.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
JSON_NAMES = {"levelname": "level", "name": "logger"}
# Every attribute a plain record has: whatever else a record carries came with extra=.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
# A value outside this is quoted, so a field cannot break or forge a text line.
_PLAIN_VALUE = re.compile(r"[\w.:/@+\-\[\]]+")


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record was given with ``extra=``."""
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in event_fields(record).items())
        return f"{line} {fields}" if fields else line


def _text_value(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text if _PLAIN_VALUE.fullmatch(text) else json.dumps(text)


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message and the event's fields."""
    # timestamp: the record's time as ISO 8601 UTC, under "time".
    return JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, timestamp="time")


def dict_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service, granian's own loggers included.

    Granian applies its ``log_dictconfig`` in the main process and again in each
    worker (spawned or forked), merging only its top-level keys: so this carries
    granian's formatters, handlers and loggers too. Those keep their stdout and do
    not propagate (no line twice); tokensvc and the libraries log to stderr through
    the root logger. In json format granian's lines are JSON objects as well.
    """
    config: dict[str, Any] = copy.deepcopy(GRANIAN_LOGGING)
    chosen = (
        {"()": "tokensvc.logs.json_formatter"}
        if settings.log_format == "json"
        else {"()": "tokensvc.logs.TextFormatter"}
    )
    config["formatters"]["tokensvc"] = chosen
    if settings.log_format == "json":
        config["formatters"]["generic"] = config["formatters"]["access"] = chosen
    config["handlers"]["tokensvc"] = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "tokensvc",
    }
    config["root"] = {"level": settings.log_level, "handlers": ["tokensvc"]}
    # Alembic's INFO lines ("Context impl ...") would come from every worker's schema
    # check at every start, and break the one-line errors of a refused start.
    config["loggers"]["alembic"] = {"level": "WARNING"}
    return config


def configure(settings: Settings) -> None:
    """Configure this process's logging (``serve`` before granian starts, the workers)."""
    logging.config.dictConfig(dict_config(settings))
