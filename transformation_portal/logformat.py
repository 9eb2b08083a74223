"""The portal's logging configuration: LOG_FORMAT=text (one line per record) or json (one JSON
object per line, python-json-logger: time, level, logger, message, plus every attribute a filter
or `extra=` put on the record). Every record goes through two filters: passwords masked
(kernel.security) and, while a run is triggered or executed, its run_id,
project, job and user added (runs/logcontext.py)."""

from __future__ import annotations

from typing import Any

TEXT_FORMATTER = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING for `log_format` ("text" or "json") at `level`."""
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"console": JSON_FORMATTER if log_format == "json" else TEXT_FORMATTER},
        "filters": {
            "mask_secrets": {"()": "kernel.security.MaskSecretsFilter"},
            "run_context": {"()": "runs.logcontext.RunContextFilter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "console",
                "filters": ["mask_secrets", "run_context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"pgserver": {"level": "WARNING"}},
    }
    if log_format == "json":
        # django-q2 adds a text handler of its own to its logger unless it already has one.
        config["loggers"]["django-q"] = {"handlers": ["console"], "level": level, "propagate": False}
    return config


def gunicorn_logging_config() -> dict[str, Any]:
    """gunicorn's own loggers (its start, worker boots, the access log) as JSON lines too, for
    `--log-config-json` when `runportal` starts it with LOG_FORMAT=json."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": JSON_FORMATTER},
        "handlers": {"console": handler},
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {
            name: {"handlers": ["console"], "level": "INFO", "propagate": False}
            for name in ("gunicorn.error", "gunicorn.access")
        },
    }
