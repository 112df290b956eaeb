"""Single-node telemetry appliance."""

__version__ = "0.1.0"
