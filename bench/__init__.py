"""segsvc benchmarks: `python -m bench.run` (or `make bench`). Not tests: nothing here
asserts a timing; it measures and prints, so that figures can be compared within one run
(absolute figures on shared 2-core machines drift between runs)."""
