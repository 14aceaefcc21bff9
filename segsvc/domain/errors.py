"""Domain errors: exceptions with meaning, mapped to gRPC statuses in one place
(segsvc.api.status_mapping). The store and the rules raise these; nobody below the api
layer knows about gRPC."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One reason a request field is unacceptable; `field` is a proto field path."""

    field: str
    description: str


class InvalidArgument(Exception):
    """The request itself is wrong; retrying it unchanged cannot succeed."""

    def __init__(self, violations: Iterable[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def single(cls, field: str, description: str) -> InvalidArgument:
        """Shortcut for the common one-field case."""
        return cls([FieldViolation(field, description)])


class NotFound(Exception):
    """Named resources do not exist (or were deleted)."""

    def __init__(self, resource: str, names: Iterable[str]) -> None:
        self.resource = resource
        self.names = tuple(names)
        plural = "s" if len(self.names) > 1 else ""
        super().__init__(f"{resource}{plural} not found: {', '.join(self.names)}")


class AlreadyExists(Exception):
    """A resource with that name exists already."""

    def __init__(self, resource: str, name: str) -> None:
        self.resource = resource
        self.name = name
        super().__init__(f"{resource} already exists: {name}")


class Unauthenticated(Exception):
    """The caller did not prove who it is (no, bad or expired token; wrong password)."""


class PermissionDenied(Exception):
    """The caller is known but may not do this."""


class ResourceExhausted(Exception):
    """A bounded resource is in use to its limit; try again after `retry_after_seconds`."""

    def __init__(self, resource: str, retry_after_seconds: int) -> None:
        self.resource = resource
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"too many concurrent {resource}; retry in {retry_after_seconds} s")


class FailedPrecondition(Exception):
    """The system is not in a state that allows the request (e.g. schema too new)."""


class Cancelled(Exception):
    """The caller went away (cancelled, or the server is stopping) before the call was
    complete: nothing it asked for was committed."""
