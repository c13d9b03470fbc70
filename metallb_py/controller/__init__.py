"""Service reconciler: watch, allocate, write status, record events."""
