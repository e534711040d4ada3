"""The Google Calendar API v3 emulator and Google's OAuth token endpoint over real HTTP, and
`GoogleControl` for its `/_control/` API. The modules next to this one are its parts; import only
what is named here."""

from __future__ import annotations

from bridge.sandbox.google.control_client import GoogleControl
from bridge.sandbox.google.emulator import GoogleEmulator
from bridge.sandbox.google.oauth import generate_service_account

__all__ = ["GoogleControl", "GoogleEmulator", "generate_service_account"]
