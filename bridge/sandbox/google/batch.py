"""Parse and serialise the `multipart/mixed` batch format of Google's JSON APIs (`POST /batch/...`).

google-api-python-client builds the request with the `email` package and bare LF line endings; the
answer uses CRLF inside each part because the client splits a part's status line and headers from
its body on CRLF CRLF.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus

MAX_PARTS = 1000

_BLANK_LINE = re.compile(r"\r?\n\r?\n")
_LINE_END = re.compile(r"\r?\n")


class BatchFormatError(ValueError):
    """The batch body is not a well-formed multipart/mixed message of application/http parts."""


@dataclass(frozen=True)
class BatchPart:
    content_id: str | None
    method: str
    target: str  # the request-target of the inner request line: a path with its query
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class PartResponse:
    content_id: str | None
    status: int
    headers: dict[str, str]
    body: bytes


def parse_batch(content_type: str, body: bytes) -> list[BatchPart]:
    boundary = _read_boundary(content_type)
    text = body.decode("utf-8", errors="surrogateescape")
    delimiter = re.compile(r"(?:\A|\r?\n)--" + re.escape(boundary) + r"(--)?[ \t]*(?:\r?\n|\Z)")
    parts: list[BatchPart] = []
    matches = list(delimiter.finditer(text))
    if not matches:
        raise BatchFormatError("no multipart boundary found in the body")
    for current, following in zip(matches, [*matches[1:], None], strict=True):
        if current.group(1):
            break
        end = following.start() if following is not None else len(text)
        parts.append(_parse_part(text[current.end() : end]))
    return parts


def serialise_batch(responses: list[PartResponse]) -> tuple[str, bytes]:
    """Return the `Content-Type` header value and the body of the batch answer."""
    boundary = f"batch_{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for response in responses:
        lines = [f"--{boundary}", "Content-Type: application/http"]
        if response.content_id is not None:
            lines.append(f"Content-ID: {_response_content_id(response.content_id)}")
        lines += ["", f"HTTP/1.1 {response.status} {_reason(response.status)}"]
        # The client reads the body after the first CRLF CRLF, so a part needs at least one header.
        headers = {**response.headers, "Content-Length": str(len(response.body))}
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += ["", ""]
        chunks.append("\r\n".join(lines).encode("utf-8") + response.body + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/mixed; boundary={boundary}", b"".join(chunks)


def _read_boundary(content_type: str) -> str:
    message = Message()
    message["Content-Type"] = content_type
    if message.get_content_type() != "multipart/mixed":
        raise BatchFormatError(f"expected multipart/mixed, got {content_type!r}")
    boundary = message.get_boundary()
    if not boundary:
        raise BatchFormatError("multipart/mixed without a boundary")
    return boundary


def _parse_part(text: str) -> BatchPart:
    mime_headers, http_message = _split_head(text)
    request_line, rest = _split_first_line(http_message.lstrip("\r\n"))
    fields = request_line.split()
    if len(fields) < 2:
        raise BatchFormatError(f"bad inner request line {request_line!r}")
    head_text, body = _split_head(rest, headers_only_if_blank=True)
    return BatchPart(
        content_id=mime_headers.get("content-id"),
        method=fields[0].upper(),
        target=fields[1],
        headers=head_text,
        body=body.encode("utf-8", errors="surrogateescape"),
    )


def _split_first_line(text: str) -> tuple[str, str]:
    pieces = _LINE_END.split(text, maxsplit=1)
    return pieces[0], pieces[1] if len(pieces) > 1 else ""


def _split_head(text: str, *, headers_only_if_blank: bool = False) -> tuple[dict[str, str], str]:
    if text.startswith(("\r\n", "\n")):
        return {}, text.removeprefix("\r").removeprefix("\n")
    pieces = _BLANK_LINE.split(text, maxsplit=1)
    if len(pieces) == 1 and not headers_only_if_blank:
        raise BatchFormatError("a batch part has no blank line after its headers")
    headers: dict[str, str] = {}
    for line in _LINE_END.split(pieces[0]):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers, pieces[1] if len(pieces) > 1 else ""


def _response_content_id(request_id: str) -> str:
    inner = (
        request_id[1:-1] if request_id.startswith("<") and request_id.endswith(">") else request_id
    )
    return f"<response-{inner}>"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
