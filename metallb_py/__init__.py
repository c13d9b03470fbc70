"""metallb-py: a bare-metal LoadBalancer for Kubernetes, drop-in compatible with MetalLB."""

__version__ = "0.1.0"
