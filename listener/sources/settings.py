"""Per-platform source settings (config: `sources:`): endpoints, credentials, limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SourcesConfig(BaseModel):
    """One optional section per platform; a platform without a section is not polled."""

    model_config = ConfigDict(extra="forbid", frozen=True)
