"""What a serving process checks before it builds anything: kept apart from
segsvc.server so that the supervisor, which serves nothing, checks the same things
without importing (and holding in memory) grpc and the whole service."""

from __future__ import annotations

import secrets

import structlog

from segsvc.config import Settings
from segsvc.domain import secret_strength

log = structlog.get_logger("segsvc.server")


class StartupError(Exception):
    """A setting or environment problem that stops the server from starting."""


def resolve_jwt_secret(settings: Settings) -> bytes:
    """The configured secret; in embedded development mode, a generated one kept in the
    data directory so tokens survive restarts. Outside dev mode a secret is required."""
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value().encode()
    elif settings.embedded:
        path = settings.data_dir / "jwt-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
            log.warning("generated_dev_jwt_secret", path=str(path))
        secret = path.read_text().strip().encode()
    else:
        raise StartupError(
            "SEGSVC_JWT_SECRET is required when SEGSVC_DATABASE_URL is set "
            "(only the embedded development mode generates one)"
        )
    problem = secret_strength.weakness(secret.decode(errors="replace"))
    if problem:
        raise StartupError(
            f"SEGSVC_JWT_SECRET {problem}: generate one with `openssl rand -base64 48`"
        )
    return secret
