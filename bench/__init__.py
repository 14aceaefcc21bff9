"""segsvc benchmarks: `python -m bench.run` (or `make bench`). Not tests: nothing here
asserts a timing; it measures and prints, so figures can be compared within one run."""
