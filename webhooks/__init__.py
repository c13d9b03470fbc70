"""Validating admission webhooks for metallb.io resources."""
