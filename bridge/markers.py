"""The marker: the line the bridge writes last in a calendar's description to recognise its own.

It names the portal (its key, and its member_id through a hash), the section and the nonce of
the attempt that created the calendar. Pure: the planner (`mirror.py`, `purge_plan.py`) and the
steps (`apply.py`) read markers with these functions, `calendar_state.desired_state` writes one.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from bridge.config import PortalConfig

_MARKER = re.compile(
    r"\[bx24-bridge portal=([a-z0-9][a-z0-9_-]*)(?: member=([0-9a-f]{16}))?"
    r" section=(\d+) nonce=([0-9a-f]+)\]"
)
_MARKER_WORD = re.compile(r"bx24-bridge", re.IGNORECASE)


class Marker(NamedTuple):
    """The line the bridge writes last in a calendar's description: whose calendar it is."""

    portal_key: str
    section_id: str
    nonce: str
    member: str | None = None  # member_tag(member_id); None in markers of earlier versions

    @property
    def legacy(self) -> bool:
        return self.member is None


def member_tag(member_id: str) -> str:
    """Names the portal in a marker without showing its member_id to whoever sees the calendar:
    portal keys are only unique within one config, and deployments can share a Google subject."""
    return hashlib.sha256(f"bx24-bridge member {member_id}".encode()).hexdigest()[:16]


def marker(portal_key: str, member_id: str, section_id: str, nonce: str) -> str:
    tag = member_tag(member_id)
    return f"[bx24-bridge portal={portal_key} member={tag} section={section_id} nonce={nonce}]"


def read_marker(description: str) -> Marker | None:
    """The marker on the description's last line, the bridge's own position, if it is one.

    Marker-like text anywhere else is not a marker: the section's description comes first and is
    neutralised (`neutralise`) before it is written, so only the bridge can write that line.
    Markers written before the member tag existed (`[bx24-bridge portal=… section=… nonce=…]`) are
    still read, as `legacy`, because such calendars exist in the field. They name only the portal
    key, which another deployment sharing the Google subject may use too, so they are trusted
    less: adoption takes one only for the same key and section (and prefers a tagged one), an
    ambiguous insert never deletes one as a duplicate, and `purge` deletes one only through its
    mapping. The next update of a mapped calendar rewrites its marker in the current format.
    """
    lines = (description or "").rstrip().rsplit("\n", 1)
    match = _MARKER.fullmatch(lines[-1].strip())
    if match is None:
        return None
    portal_key, member, section_id, nonce = match.groups()
    return Marker(portal_key, section_id, nonce, member)


def marks_portal(found: Marker | None, portal: PortalConfig) -> bool:
    """A current-format marker of this portal: its key and its member_id (through the tag)."""
    return (
        found is not None
        and found.portal_key == portal.key
        and found.member == member_tag(portal.member_id)
    )


def marks_section(found: Marker | None, portal: PortalConfig, section_id: str) -> bool:
    """The marker names this portal's section: tagged with its member_id, or legacy."""
    return (
        found is not None
        and found.section_id == section_id
        and (marks_portal(found, portal) or (found.legacy and found.portal_key == portal.key))
    )


def neutralise(text: str) -> str:
    """Section text that cannot pass for a marker: the hyphen of `bx24-bridge` becomes U+2011
    (a non-breaking hyphen, which looks the same), wherever and in whatever case it appears."""
    return _MARKER_WORD.sub(lambda found: found.group(0).replace("-", "\u2011"), text)
