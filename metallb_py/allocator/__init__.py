"""Pure IP allocation: pools, sharing, address families. No I/O."""
