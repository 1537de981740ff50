"""Runtime plumbing of long-running processes: stop signals, the health/metrics HTTP server,
OS thread names, reachability checks of Kafka and Redis."""
