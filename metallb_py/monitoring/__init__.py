"""Monitoring that ships with metallb-py: alert rules, Prometheus Operator monitors and a Grafana
dashboard, each generated from Python data so the Operator and plain-Prometheus forms agree."""
