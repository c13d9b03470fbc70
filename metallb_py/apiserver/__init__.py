"""The embedded Kubernetes-API-compatible server (`metallb-py apiserver`).

A single asyncio process that speaks enough of the Kubernetes REST API for the real kubectl and
kubernetes_asyncio to work unchanged: discovery and OpenAPI, CRUD with resourceVersion and
optimistic concurrency, status subresources, patches, selectors, paging, watches with bookmarks and
410 Gone, CRDs, admission webhooks, garbage collection, persistence and RBAC. See docs/apiserver.md.
"""
