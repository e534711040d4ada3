"""The Bitrix24 emulator: portals over real HTTP (webhook and OAuth REST, `/oauth/token/`, event
delivery, faults) following `reference/bitrix24/NOTES.md`, and `BitrixControl` for its
`/_control/` API. The modules next to this one are its parts; import only what is named here."""

from __future__ import annotations

from bridge.sandbox.bitrix.control_client import ENTRY_EVENTS, SECTION_EVENTS, BitrixControl
from bridge.sandbox.bitrix.emulator import BitrixEmulator
from bridge.sandbox.bitrix.php_query import http_build_query, parse_php_query

__all__ = [
    "ENTRY_EVENTS",
    "SECTION_EVENTS",
    "BitrixControl",
    "BitrixEmulator",
    "http_build_query",
    "parse_php_query",
]
