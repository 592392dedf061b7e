"""``os.stat``, ``os.lstat``, ``os.unlink``, ``os.remove``, ``os.rename`` and
``os.replace`` see the simulated Unix sockets' files (``sockfake.sim.net.unix_files``).

In a simulated thread, a path where a simulated socket is bound is a socket file
(``S_ISSOCK``, its own inode number) that these calls stat, remove or move, as they
would the file Linux makes; ``os.path.exists``, ``os.path.lexists`` and ``pathlib``
call them, so they follow. Every other path, a descriptor or a ``dir_fd`` gets the
real call; so does every thread outside the simulation.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

from sockfake.sim.intercept.dispatch import caller_network
from sockfake.sim.net.unix_files import UnixFiles

__all__ = ["CALLS", "file_call", "pathlib_accessor_calls"]

CALLS = ("stat", "lstat", "unlink", "remove", "rename", "replace")


def pathlib_accessor_calls() -> list[tuple[str, Callable[..., Any]]]:
    """Python 3.10's ``pathlib._NormalAccessor`` holds ``os.stat``, ``os.unlink``...
    as class attributes bound at import, so ``Path.unlink()`` never looks ``os`` up:
    its originals by name (none on 3.11 and later, which call ``os`` directly)."""
    accessor = getattr(pathlib, "_NormalAccessor", None)
    if accessor is None:
        return []
    return [(name, accessor.__dict__[name]) for name in CALLS if name in accessor.__dict__]


def _files(path: Any, kwargs: dict[str, Any]) -> UnixFiles | None:
    """The caller's network's socket files, if ``path`` may be one of them."""
    if path.__class__ is int or kwargs.get("dir_fd") is not None:
        return None  # a descriptor, or a path relative to one: real
    net = caller_network()
    if net is None:
        return None
    files = net.unix_files
    return files if files else None


def file_call(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``os.<name>`` that sees the simulated socket files first."""
    if name in ("stat", "lstat"):

        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            files = _files(path, kwargs)
            if files is not None and not args:
                found = files.stat(path)
                if found is not None:
                    return found
            return original(path, *args, **kwargs)

    elif name in ("unlink", "remove"):

        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            files = _files(path, kwargs)
            if files is not None and not args and files.unlink(path):
                return None
            return original(path, *args, **kwargs)

    else:  # rename, replace: (src, dst)

        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            files = _files(path, kwargs)
            if files is not None and len(args) == 1 and kwargs.get("src_dir_fd") is None \
                    and kwargs.get("dst_dir_fd") is None and files.rename(path, args[0]):
                return None
            return original(path, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = original.__doc__
    return call
