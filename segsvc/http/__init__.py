"""The HTTP side port: metrics, probes and report downloads."""
