"""What every part of the configuration shares: the one error class and the strict model base."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the portal and key."""


class StrictModel(BaseModel):
    """A section of the portals file: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
