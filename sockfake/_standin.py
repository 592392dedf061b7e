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
    socketserver; pass module names to rebuild others (``"werkzeug.serving"``): the
    stdlib's are rebuilt first in any case, since a third-party server derives from
    theirs (werkzeug's from ``http.server.HTTPServer``). A rebuilt class that still
    derives from the real ``socketserver`` (through a module not rebuilt) would be a
    hybrid that fails at its first request: it is refused, naming the module to add.
    """
    import sockfake

    names = tuple(dict.fromkeys((*STDLIB_DEPENDANTS, *dependants)))
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
        real = saved["socketserver"]
        if real is not None:
            for name in names:
                _refuse_hybrids(rebuilt[name], real)
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


def _refuse_hybrids(module: ModuleType, real: ModuleType) -> None:
    """A class of ``module`` built on sockfake and on the real ``socketserver`` at once."""
    from sockfake.errors import SockfakeRuntimeError

    for value in list(vars(module).values()):
        if not isinstance(value, type) or value.__module__ != module.__name__:
            continue
        real_bases = [base for base in value.__mro__ if base.__module__ == real.__name__
                      and vars(real).get(base.__name__) is base]
        if not real_bases:
            continue
        via = next((base for base in value.__mro__[1:]
                    if real_bases[0] in base.__mro__ and base.__module__ != real.__name__),
                   real_bases[0])
        raise SockfakeRuntimeError(
            f"replace_socketserver(): {module.__name__}.{value.__qualname__} still derives "
            f"from the real socketserver.{real_bases[0].__name__} (through "
            f"{via.__module__}.{via.__qualname__}, a module not rebuilt): a hybrid that "
            f"would fail at its first request. Add {via.__module__!r} to "
            "replace_socketserver()'s arguments, or use the class as it is: under "
            "net.intercept() a server built on the stdlib's socketserver runs on the "
            "simulation unchanged (tcp_server(server_class=...) or server_factory=...)"
        )
