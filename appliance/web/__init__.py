"""What the appliance serves over HTTP: ``api/`` (Gnocchi v1, Prometheus endpoints, the
query API, receivers) and ``ui/`` (the status page), siblings sharing ``context`` (the
handles every request needs: settings, store, token verifier, memo)."""
