"""Running suites: the suite schema, the benchmark registry, the planner, the executors and the run directory."""
