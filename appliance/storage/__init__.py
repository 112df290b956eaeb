"""Measures: RRD files (one per metric) written through rrdcached."""
