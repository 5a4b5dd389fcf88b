"""The built-in benchmarks, one module each, found by the benchmark registry (attnzoo.harness.benchmark)."""
