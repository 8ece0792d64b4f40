"""Telemetry for Baton processes: logs whose lines never carry PII."""
