"""Single-node telemetry appliance."""

__version__ = "0.2.0"
