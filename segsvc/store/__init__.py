"""All SQL of segsvc: psycopg 3 against PostgreSQL, one module per table family.

Functions take an open connection (usually inside a transaction the service layer
opened) and the current time as arguments; they never open transactions of their own,
so the caller decides what is atomic.
"""
