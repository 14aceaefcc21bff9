"""The per-process read cache of users' segments and what keeps it coherent."""
