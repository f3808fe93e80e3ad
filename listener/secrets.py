"""Secrets named in config files: read from a file, an environment variable or a systemd credential.

A secret's value is never written in a config file, never logged and never repr'd.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Secret(BaseModel):
    """A secret is never written in the config itself: name a file or an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = Field(None, description="Path of a file holding the secret (trailing newline ignored).")
    env: str | None = Field(None, description="Name of an environment variable holding the secret.")
    credential: str | None = Field(
        None, description="Name of a systemd credential (LoadCredential=), read from $CREDENTIALS_DIRECTORY."
    )

    def read(self) -> str | None:
        if self.credential:
            base = os.environ.get("CREDENTIALS_DIRECTORY")
            if base and (Path(base) / self.credential).is_file():
                return (Path(base) / self.credential).read_text(encoding="utf-8").rstrip("\r\n")
        if self.file:
            return Path(self.file).read_text(encoding="utf-8").rstrip("\r\n")
        if self.env:
            return os.environ.get(self.env)
        return None
