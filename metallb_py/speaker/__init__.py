"""Per-node announcements computed from cluster state and applied through bgp, bfd and l2."""
