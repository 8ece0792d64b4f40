"""Telemetry: what Baton processes tell their operators, in logs and metrics."""
