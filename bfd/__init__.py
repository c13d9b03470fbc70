"""BFD (RFC 5880/5881/5883) session library. Knows nothing of Kubernetes."""
