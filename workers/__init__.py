"""Background work on RQ: per-host expiry, cache invalidation retries, the lease reaper."""
