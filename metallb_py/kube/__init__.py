"""Kubernetes client layer: REST, informers, caches, work queue, leases, status writes, events.

The embedded API server lives beside it in `metallb_py.apiserver`; this package never imports it.
"""
