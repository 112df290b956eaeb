"""Gnocchi v1 API blueprints, one module per resource kind."""
