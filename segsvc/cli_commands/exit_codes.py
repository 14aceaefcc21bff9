"""Exit statuses of the client commands, one per kind of failure a script may handle.

Documented in the README ("Command line"); scripts may rely on them.
"""

from __future__ import annotations

import grpc

OK = 0
FAILED = 1
"""Anything not listed below (INTERNAL, ABORTED, ...)."""
USAGE = 2
"""Bad command line (argparse's own status)."""
NOT_FOUND = 3
INVALID_INPUT = 4
"""The server rejected a value (INVALID_ARGUMENT), or the input file is malformed."""
AUTH_FAILED = 5
"""No credential, a wrong/expired/revoked one, or a role that may not do this."""
UNAVAILABLE = 6
"""The server could not be reached or did not answer in time."""
ALREADY_EXISTS = 7

_BY_STATUS = {
    grpc.StatusCode.NOT_FOUND: NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: INVALID_INPUT,
    grpc.StatusCode.OUT_OF_RANGE: INVALID_INPUT,
    grpc.StatusCode.UNAUTHENTICATED: AUTH_FAILED,
    grpc.StatusCode.PERMISSION_DENIED: AUTH_FAILED,
    grpc.StatusCode.UNAVAILABLE: UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: UNAVAILABLE,
    grpc.StatusCode.ALREADY_EXISTS: ALREADY_EXISTS,
}


def for_status(code: grpc.StatusCode) -> int:
    """The exit status for a failed call's gRPC status."""
    return _BY_STATUS.get(code, FAILED)
