"""Layer-2 announcement: ARP/NDP responder and announcer election. Knows nothing of Kubernetes."""
