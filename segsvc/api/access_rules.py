"""The contract's access rules, read from the service descriptors once at start-up.

Every RPC of segmentation.v1 carries `option (segmentation.v1.access) = {...}`
(proto/segmentation/v1/auth_options.proto). The interceptor gets a plain
method-path -> AccessRule table from here, so a call costs a dict lookup and a
comparison, never a descriptor walk. An RPC without the option stops the server from
starting: a new RPC cannot ship without saying who may call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor

from segmentation.v1 import auth_options_pb2
from segsvc.domain.roles import AccessRule, Role


class MissingAccessRule(Exception):
    """An RPC of the contract declares no access rule."""


def method_path(method: MethodDescriptor) -> str:
    """The path gRPC routes by: /package.Service/Method."""
    return f"/{method.containing_service.full_name}/{method.name}"


def rule_of(method: MethodDescriptor) -> AccessRule:
    """The declared rule of one RPC; MissingAccessRule when it has none or it is empty."""
    options = method.GetOptions()
    if not options.HasExtension(auth_options_pb2.access):
        raise MissingAccessRule(f"{method_path(method)} declares no (segmentation.v1.access)")
    declared = options.Extensions[auth_options_pb2.access]
    role = Role(declared.role) if declared.role else None
    if role is None and not declared.public:
        raise MissingAccessRule(f"{method_path(method)} declares neither a role nor public")
    return AccessRule(role, declared.public, declared.anonymous_allowed)


def load(files: Iterable[FileDescriptor]) -> Mapping[str, AccessRule]:
    """Method path -> rule for every RPC of every service in `files`."""
    return {
        method_path(method): rule_of(method)
        for file in files
        for service in file.services_by_name.values()
        for method in service.methods
    }
