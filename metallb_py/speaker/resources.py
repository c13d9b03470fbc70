"""The REST resources the speaker reads and writes (beyond those in metallb_py.kube.rest)."""

from __future__ import annotations

from metallb_py.kube.rest import Resource

NODES = Resource("", "v1", "nodes", namespaced=False, kind="Node")
SECRETS = Resource("", "v1", "secrets", kind="Secret")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", kind="EndpointSlice")
L2ADVERTISEMENTS = Resource("metallb.io", "v1beta1", "l2advertisements", kind="L2Advertisement")
BGPADVERTISEMENTS = Resource("metallb.io", "v1beta1", "bgpadvertisements", kind="BGPAdvertisement")
BGPPEERS = Resource("metallb.io", "v1beta2", "bgppeers", kind="BGPPeer")
BFDPROFILES = Resource("metallb.io", "v1beta1", "bfdprofiles", kind="BFDProfile")
SERVICEL2STATUSES = Resource("metallb.io", "v1beta1", "servicel2statuses", kind="ServiceL2Status")
SERVICEBGPSTATUSES = Resource(
    "metallb.io", "v1beta1", "servicebgpstatuses", kind="ServiceBGPStatus"
)
BGPSESSIONSTATES = Resource("metallb.io", "v1beta1", "bgpsessionstates", kind="BGPSessionState")

# Labels on the status objects (MetalLB's, plus ours for BGPSessionState).
LABEL_NODE = "metallb.io/node"
LABEL_SERVICE_NAME = "metallb.io/service-name"
LABEL_SERVICE_NAMESPACE = "metallb.io/service-namespace"
LABEL_PEER = "metallb.io/peer"
