"""The `mirror:` section of a portal: which sections become calendars, their names, sharing, and
what happens when a section goes (`on_delete`, the mass-delete guard)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from bridge.config.base import StrictModel

# Section fields a `mirror.name` template may use.
NAME_FIELDS = ("name", "type", "owner_id", "owner_name", "id")


class OnDelete(StrEnum):
    """What becomes of a calendar whose section is gone or left the selection."""

    DELETE = "delete"
    ARCHIVE = "archive"  # renamed, hidden and unshared, kept in Google
    KEEP = "keep"  # left as it is, no longer mapped


SectionType = Literal["company_calendar", "location", "resource", "group", "user"]
OwnerSelection = Literal["all"] | list[Annotated[int, Field(gt=0)]]


class ShareRule(StrictModel):
    """One Google ACL rule the bridge keeps on every mirrored calendar."""

    scope: Literal["user", "group", "domain", "default"]
    value: str | None = None
    role: Literal["freeBusyReader", "reader", "writerWithoutPrivateAccess", "writer", "owner"]

    @model_validator(mode="after")
    def _value_fits_scope(self) -> ShareRule:
        if self.scope == "default" and self.value:
            raise ValueError("scope default takes no value")
        if self.scope != "default" and not self.value:
            raise ValueError(f"scope {self.scope} needs a value (an e-mail or a domain)")
        return self

    @property
    def rule_id(self) -> str:
        """Google's id for the rule: `type:value`, or `default`."""
        return (
            "default" if self.scope == "default" else f"{self.scope}:{(self.value or '').lower()}"
        )


class DeleteGuard(StrictModel):
    """How many of a portal's calendars may be deleted or archived within a rolling window
    without `sync --force`: `max_share` of them, but at least `min_count` (so a hand deletion
    on a small portal goes through) and at most `max_count` (so a large portal is not emptied
    a quarter at a time). `bridge.mirror.removal_limit` is the rule."""

    window_hours: float = Field(default=24, gt=0)
    min_count: int = Field(default=3, ge=0)
    max_count: int = Field(default=50, ge=0)
    max_share: float = Field(default=0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> DeleteGuard:
        if self.min_count > self.max_count:
            raise ValueError(
                f"min_count ({self.min_count}) is more than max_count ({self.max_count}): "
                "min_count is the number of removals always allowed in the window, max_count "
                "the most ever allowed"
            )
        return self


class EntriesConfig(StrictModel):
    """`mirror.entries`: how the calendars' entries (events, bookings) are mirrored."""

    enabled: bool = True
    # The window for single entries; a recurring series is mirrored whole.
    past_days: int = Field(default=30, ge=0, le=3650)
    future_days: int = Field(default=365, ge=0, le=3650)
    # full: everything; busy_only: "Busy", no description or location; respect_private: entries
    # marked private in Bitrix24 are mirrored as busy only.
    privacy: Literal["full", "busy_only", "respect_private"] = "respect_private"
    attendees: Literal["none", "names"] = "none"  # never invite anyone; names go in the description
    reminders: bool = False  # copy Bitrix24's reminders
    link_back: bool = True  # a link to the entry in Bitrix24 in the description


class MirrorConfig(StrictModel):
    company: bool = True
    resources: bool = True
    locations: bool = True
    groups: OwnerSelection = Field(default_factory=list)
    users: OwnerSelection = Field(default_factory=list)
    name: str = "{name}"
    on_delete: OnDelete = OnDelete.DELETE
    share: list[ShareRule] = Field(default_factory=list)
    share_by_type: dict[SectionType, list[ShareRule]] = Field(default_factory=dict)
    share_notifications: bool = False
    include_google_synced: bool = False
    reconcile_interval_minutes: float = Field(default=15, ge=0)  # 0 turns it off
    delete_guard: DeleteGuard = Field(default_factory=DeleteGuard)
    entries: EntriesConfig = Field(default_factory=EntriesConfig)

    def share_for(self, section_type: str) -> list[ShareRule]:
        for kind, rules in self.share_by_type.items():
            if kind == section_type:
                return rules
        return self.share

    @field_validator("name")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format_map({f: "x" for f in NAME_FIELDS})
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"template {value!r} is invalid ({exc}); fields: {', '.join(NAME_FIELDS)}"
            ) from None
        return value
