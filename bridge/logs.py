"""Logging: one JSON object per line for machines, plain lines on a terminal; never a secret.

Fields beyond the message come from `extra=` (portal, member_id, section_id, event, outcome,
duration_ms). Secrets known from the configuration are replaced in every line, whatever logged
them, as a second line of defence behind not logging them in the first place.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

FIELDS = ("portal", "member_id", "section_id", "event", "outcome", "duration_ms")
_NOISY = ("httpx", "httpcore", "googleapiclient.discovery_cache", "alembic", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{f}={getattr(record, f)}" for f in FIELDS if getattr(record, f, None) is not None
        )
        text = super().format(record)
        return f"{text} [{extras}]" if extras else text


class RedactSecrets(logging.Filter):
    """Replaces each known secret in the formatted message and its arguments with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, None
        for field in FIELDS:
            value = getattr(record, field, None)
            if isinstance(value, str):
                for secret in self.secrets:
                    value = value.replace(secret, "***")
                setattr(record, field, value)
        return True


def configure_logging(*, verbose: bool = False, secrets: Iterable[str] = ()) -> None:
    """JSON unless stderr is a terminal; LOG_FORMAT=json|text overrides."""
    wanted = os.environ.get("LOG_FORMAT", "").lower()
    as_json = wanted == "json" or (wanted != "text" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def redact(secrets: Iterable[str]) -> None:
    """Add secrets (known once the config is loaded) to every root handler's redaction."""
    extra = {s for s in secrets if len(s) >= 6}
    for handler in logging.getLogger().handlers:
        for existing in handler.filters:
            if isinstance(existing, RedactSecrets):
                existing.secrets = sorted(set(existing.secrets) | extra, key=len, reverse=True)
