"""Speaker liveness for fast layer-2 failover."""
