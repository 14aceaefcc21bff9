"""`segsvc key create|list|revoke`: API keys for services (an admin's commands)."""

from __future__ import annotations

import argparse

from segsvc.cli_commands import exit_codes, output
from segsvc.cli_commands.connection import client_for


def create(args: argparse.Namespace) -> int:
    """Create a key; it is printed once (stdout), the note about it goes to stderr."""
    with client_for(args) as client:
        key = client.create_api_key(args.name, args.role)
    if args.json:
        output.print_json(key)
    else:
        print(key.api_key)
        output.stderr.print(f"API key {key.key_id} ({args.role}); it is not shown again.")
    return exit_codes.OK


def list_all(args: argparse.Namespace) -> int:
    """Every key, without secrets."""
    with client_for(args) as client:
        keys = client.list_api_keys()
    if args.json:
        output.print_json(keys)
    else:
        output.print_table(
            ("id", "name", "role", "prefix", "created", "revoked"),
            [(k.key_id, k.name, k.role, k.prefix, k.create_time, k.revoke_time) for k in keys],
        )
    return exit_codes.OK


def revoke(args: argparse.Namespace) -> int:
    """Revoke a key by id."""
    with client_for(args) as client:
        key = client.revoke_api_key(args.key_id)
    if args.json:
        output.print_json(key)
    else:
        output.stderr.print(f"Revoked API key {key.key_id} ({key.name}).")
    return exit_codes.OK
