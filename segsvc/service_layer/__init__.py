"""Use cases: validate with domain rules, open one transaction, call the store.

Each public method is one RPC's worth of work and one transaction (or one read), so
atomicity is decided here and nowhere else.
"""
