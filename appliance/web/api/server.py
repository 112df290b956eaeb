"""The API's gunicorn, run inside the appliance's preloaded parent (:mod:`appliance.workers`).

Why here and not as a program of supervisord's own: a gunicorn master started by
supervisord is an interpreter of its own, and it held again the ~45 MB of imported modules
(Flask, pydantic, numpy, the store) that the agents' parent already holds. Forked from that
parent instead, the arbiter and its workers share those pages with the agents. gunicorn
itself is unchanged: its own command-line parser reads the same options it always did
(in the parent, before the fork: :func:`preload`; the ``--preload`` app is the module the
parent imported, so loading it costs nothing), its arbiter still forks and replaces its
workers, and :mod:`.serving` still holds its hooks.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn

from appliance import tls
from appliance.config import Settings

if TYPE_CHECKING:
    from gunicorn.app.wsgiapp import WSGIApplication

#: gunicorn's own process titles: "gunicorn: master [<proc_name>]", "gunicorn: worker [...]".
PROC_NAME_PREFIX = "appliance-api"


def proc_name(settings: Settings) -> str:
    """gunicorn's ``--name``: tells two appliances on one machine apart in ``ps``."""
    return f"{PROC_NAME_PREFIX} {settings.data_dir}"


def gunicorn_argv(settings: Settings) -> list[str]:
    """The options the API's gunicorn runs with, as on its command line."""
    return [
        "--workers", str(settings.api.workers),
        # The app is imported once, before the fork, and its workers are forked from the
        # arbiter, sharing those pages (serving.py freezes them first and replaces a worker
        # holding more than api.worker_recycle_mb of its own).
        "--preload",
        "--config", "python:appliance.web.api.serving",
        # A backstop for slow growth the memory check does not catch; the jitter keeps two
        # workers from restarting together.
        "--max-requests", "20000", "--max-requests-jitter", "2000",
        # Sync workers, measured against gthread with one thread and keep-alive
        # (benchmarks/api.py): here gthread's hand-off of each request between its two
        # threads cost more than the TCP connection that keep-alive saves.
        "--bind", settings.api.listen,
        # Explicit: gunicorn's default is the directory it was imported in.
        "--chdir", str(settings.data_dir),
        "--graceful-timeout", "5",
        "--name", proc_name(settings),
        # gunicorn 27 would open a control socket at ~/.gunicorn/gunicorn.ctl, one path for
        # every appliance on the machine; nothing here uses it.
        "--no-control-socket",
        # Written after the response is sent; dropping it bought no measurable time.
        "--access-logfile", "-",
        "--error-logfile", "-",
        *tls.gunicorn_args(settings),
        "appliance.web.api.wsgi:application",
    ]


def preload(settings: Settings) -> WSGIApplication:
    """Import the app and gunicorn in the parent, before any fork (the app opens no store:
    see wsgi.py), and return gunicorn's application with our options parsed.

    gunicorn too, although only the API's child runs it: imported after the fork, by the
    arbiter, it cost that process 6.1 MB of its own, against 1.1 MB for the parent to hold
    it for everyone, because an import in a forked child writes to many pages it shares
    with the parent (the module table, the interned names, the classes it subclasses), and
    each page written is copied (benchmarks/README.md, footprint.py, session 9).
    """
    import gunicorn.glogging  # noqa: F401  (logging.config, loaded when the arbiter starts)
    import gunicorn.workers.sync  # noqa: F401  (the worker class and the HTTP parser)

    from appliance.web.api import wsgi

    # The status page's templates, compiled once here rather than by each worker at its
    # first page (Jinja keeps them; its lexer loads the unicode_escape codec as it goes).
    env = wsgi.application.jinja_env
    for name in env.list_templates():
        env.get_template(name)
    return _gunicorn(settings)


def _gunicorn(settings: Settings) -> WSGIApplication:
    """gunicorn's application as its command line makes it, built in the parent too: in
    the forked child, parsing its hundred options (its config, argparse) copied 5.6 MB of
    the pages it shares with the parent, where the parent spends 0.06 MB on it."""
    from gunicorn.app.wsgiapp import WSGIApplication

    argv, path, cwd = sys.argv, list(sys.path), os.getcwd()
    sys.argv = ["gunicorn", *gunicorn_argv(settings)]  # what gunicorn parses
    try:
        return WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn")
    finally:
        # Parsing also enters --chdir and puts it first on sys.path: for the arbiter only,
        # which supervisord starts in that directory anyway.
        sys.argv, sys.path[:] = argv, path
        os.chdir(cwd)


def serve(settings: Settings, application: WSGIApplication) -> NoReturn:
    """Run gunicorn's arbiter in this (forked) process until it is stopped."""
    # Its command line, as gunicorn keeps it for a re-exec; nothing else reads it here.
    sys.argv = ["gunicorn", *gunicorn_argv(settings)]
    application.run()
    sys.exit(0)
