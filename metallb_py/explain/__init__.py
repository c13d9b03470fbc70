"""`kubectl metallb explain|status`: MetalLB's decisions explained from the cluster state."""
