"""Opt-in: let sockfake stand in for the ``socketserver`` module.

The stdlib's own servers (``http.server``, ``xmlrpc.server``,
``wsgiref.simple_server``, ``logging.config``) subclass ``socketserver`` classes when
they are first imported. ``replace_socketserver()`` makes ``import socketserver``
return sockfake and re-imports those modules inside the block, so the classes they
define there are built on sockfake; on exit every module is put back as it was.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

# Stdlib modules that subclass socketserver classes at import time.
STDLIB_DEPENDANTS = (
    "http.server",
    "xmlrpc.server",
    "wsgiref.simple_server",
    "logging.config",
)


@contextlib.contextmanager
def replace_socketserver(
    *dependants: str,
) -> Iterator[dict[str, ModuleType]]:
    """Within the block, ``socketserver`` is sockfake and the dependants are rebuilt on it.

    Yields a dict of the rebuilt modules by name (``mods["http.server"].HTTPServer`` is
    a sockfake ``TCPServer``). ``dependants`` defaults to the stdlib's users of
    socketserver; pass module names to rebuild others.
    """
    import sockfake

    names = dependants or STDLIB_DEPENDANTS
    saved: dict[str, ModuleType | None] = {
        name: sys.modules.get(name) for name in ("socketserver", *names)
    }
    parents: dict[str, tuple[ModuleType, str, object]] = {}
    sys.modules["socketserver"] = sockfake
    rebuilt: dict[str, ModuleType] = {}
    try:
        for name in names:
            sys.modules.pop(name, None)
            parent_name, _, child = name.rpartition(".")
            if parent_name:
                parent = importlib.import_module(parent_name)
                parents[name] = (parent, child, getattr(parent, child, None))
            rebuilt[name] = importlib.import_module(name)
        yield rebuilt
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for parent, child, previous in parents.values():
            if previous is None:
                with contextlib.suppress(AttributeError):
                    delattr(parent, child)
            else:
                setattr(parent, child, previous)
