"""Labels on the status objects the speaker writes (the resources are in metallb_py.kube.rest)."""

from __future__ import annotations

# Labels on the status objects (MetalLB's, plus ours for BGPSessionState).
LABEL_NODE = "metallb.io/node"
LABEL_SERVICE_NAME = "metallb.io/service-name"
LABEL_SERVICE_NAMESPACE = "metallb.io/service-namespace"
LABEL_PEER = "metallb.io/peer"
