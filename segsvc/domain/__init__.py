"""Pure business rules: no I/O, no gRPC, no SQL. Everything here is unit-testable."""
