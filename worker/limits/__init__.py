"""The fleet-wide rate limit: GCRA buckets in Redis, admitting a job, adaptive slow-downs."""
