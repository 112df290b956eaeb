"""Gnocchi-style pagination: ``limit`` + ``marker``, and a ``Link: <...>; rel="next"`` header."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, request


def link_next(response: Response, marker: str) -> None:
    """Point the client at the next page (gnocchiclient follows ``rel="next"``)."""
    args = {k: v for k, v in request.args.items(multi=True) if k != "marker"}
    query = urlencode([*args.items(), ("marker", marker)])
    response.headers["Link"] = f'<{request.base_url}?{query}>; rel="next"'
