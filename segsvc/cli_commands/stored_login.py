"""The credential `segsvc login` keeps for the other client commands.

One JSON file in the user's configuration directory (platformdirs: $XDG_CONFIG_HOME/segsvc
on Linux), readable by its owner only (0600, in a 0700 directory), because it holds an
API key or an access token. A password is never stored: `login --username` keeps the
token SignIn returned, and the user logs in again when it expires.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

DEFAULT_TARGET = "localhost:50051"


@dataclass(frozen=True)
class StoredLogin:
    """Where to call and with which bearer credential."""

    target: str = DEFAULT_TARGET
    api_key: str | None = None
    access_token: str | None = None
    username: str | None = None
    expires_at: str | None = None
    tls: bool = False
    ca_file: str | None = None

    @property
    def bearer(self) -> str | None:
        """The credential to send (an API key or a token: both are bearer strings)."""
        return self.api_key or self.access_token


def path() -> Path:
    """The credentials file."""
    return Path(platformdirs.user_config_dir("segsvc")) / "credentials.json"


def load() -> StoredLogin | None:
    """The stored login, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path().read_text())
    except (OSError, ValueError):
        return None
    known = StoredLogin.__dataclass_fields__
    return StoredLogin(**{k: v for k, v in data.items() if k in known})


def save(login: StoredLogin) -> Path:
    """Write the login with owner-only permissions, replacing any earlier one."""
    file = path()
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file may have had wider permissions
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(login), out, indent=2)
    return file


def forget() -> bool:
    """Delete the stored login; False if there was none."""
    try:
        path().unlink()
    except FileNotFoundError:
        return False
    return True
