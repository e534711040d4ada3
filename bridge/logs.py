"""Logging: one JSON object per line for machines, plain lines on a terminal; never a secret.

Fields beyond the message come from `extra=` (portal, member_id, section_id, event, outcome,
duration_ms). Secrets known from the configuration are replaced in every line, whatever logged
them, as a second line of defence behind not logging them in the first place: in the message, the
fields, a formatted traceback (with its chained exceptions and notes) and a stack. So is the
secret code of any Bitrix24 incoming-webhook URL (`/rest/<user id>/<code>/`), configured or not:
one learnt at run time (a portal's new address, a webhook replaced but still in use somewhere)
is as secret as the configured one, and nothing else has that shape.
Uncaught exceptions (in the main thread or any other) are logged through the same handler.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType

FIELDS = ("portal", "member_id", "section_id", "event", "outcome", "duration_ms")
_NOISY = ("httpx", "httpcore", "googleapiclient.discovery_cache", "alembic", "uvicorn.access")
# The code in an incoming webhook's path: https://<portal>/rest/<user id>/<code>/<method>
_WEBHOOK_CODE = re.compile(r"(/rest/\d+/)[^/\s\"'<>?#&]+")


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
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
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
    """Replaces each known secret, and every webhook code, with *** in all the text a record
    carries to the output: message, fields, formatted exception and stack."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _WEBHOOK_CODE.sub(r"\1***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # wrong arguments for the format: keep both, readable, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None and not isinstance(value, int | float):
                setattr(record, field, self.redact(str(value)))
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_PLAIN = logging.Formatter()


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("bridge").critical("uncaught exception", exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    logging.getLogger("bridge").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


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
    sys.excepthook = _log_uncaught  # Python's own printing would bypass the redaction
    threading.excepthook = _log_uncaught_in_thread


def redact(secrets: Iterable[str]) -> None:
    """Add secrets (known once the config is loaded) to every root handler's redaction."""
    extra = {s for s in secrets if len(s) >= 6}
    for handler in logging.getLogger().handlers:
        for existing in handler.filters:
            if isinstance(existing, RedactSecrets):
                existing.secrets = sorted(set(existing.secrets) | extra, key=len, reverse=True)
