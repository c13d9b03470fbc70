"""MetalLB resource -> controller Deployment and speaker DaemonSet."""
