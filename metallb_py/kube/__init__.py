"""Kubernetes client layer and the embedded API server."""
