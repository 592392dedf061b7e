"""``datetime`` under interception: ``now()``, ``today()`` and ``utcnow()`` read the virtual clock.

``datetime.datetime`` and ``datetime.date`` are C types whose ``now``/``today`` read
the OS clock in C, so patching ``time.time`` does not reach them. While an
interception is active, the ``datetime`` module's ``datetime`` and ``date`` names are
subclasses whose ``now()``, ``utcnow()``, ``today()`` (and ``date.today()``) read
``time.time()``'s virtual value (``EPOCH`` plus the virtual clock) in a simulated
thread, and the real clock in every other thread.

They stand in for the real classes as freezegun's do: values made while they are the
module's names (by ``now()``, the constructors, arithmetic) are instances of the
stand-ins, which are subclasses of the real classes; ``isinstance`` of a real value
against a stand-in holds too, and a stand-in is equal to its real class, with its hash
(a metaclass answers for it), so ``type(value) is datetime.datetime`` holds and a table
keyed by the class (xmlrpc's marshaller, singledispatch) finds the value's type, whether
it was built before the interception or during it. A value pickles by the name
``datetime.datetime`` (or ``date``) as it stands when pickled, so the bytes are the
usual ones and unpickle anywhere. What stays real: a name bound at import (``from
datetime import datetime`` before ``intercept()``), as for ``time``; and ``type(value)
is`` that name for a value made during the interception, as C code that wants the
exact type (orjson) does not take such a value: the price freezegun pays too.
"""

from __future__ import annotations

import datetime as _datetime
import sys
import warnings
from typing import Any

from sockfake.sim.intercept.clock import wall_seconds
from sockfake.sim.intercept.dispatch import _internal, caller_network

__all__ = ["REDUCERS", "SimDate", "SimDatetime"]

RealDatetime = _datetime.datetime
RealDate = _datetime.date


def _virtual_timestamp() -> float | None:
    """``time.time()`` in virtual time for a simulated caller (two frames up), else None."""
    net = caller_network()
    if net is None or _internal(2):
        return None
    return wall_seconds(net)


class _StandIn(type):
    """The metaclass of the stand-ins: a real instance (or subclass) counts as theirs.
    A class derived from a stand-in (defined while the patch is active) checks as usual."""

    def __instancecheck__(cls, instance: object) -> bool:
        real = cls.__dict__.get("_sf_real")
        if real is None:
            return type.__instancecheck__(cls, instance)
        return isinstance(instance, real)

    def __subclasscheck__(cls, subclass: type) -> bool:
        real = cls.__dict__.get("_sf_real")
        if real is None:
            return type.__subclasscheck__(cls, subclass)
        return issubclass(subclass, real)

    # Equal to the real class, with its hash: a table keyed by the class (xmlrpc's
    # marshaller, a singledispatch registry) built while the stand-in was the module's
    # name finds a real value's type(), and one built before finds the stand-in.
    def __eq__(cls, other: object) -> bool:
        return other is cls or other is cls.__dict__.get("_sf_real", cls)

    def __ne__(cls, other: object) -> bool:
        return not cls == other

    def __hash__(cls) -> int:
        return hash(cls.__dict__.get("_sf_real", None)) if "_sf_real" in cls.__dict__ \
            else type.__hash__(cls)


class _Today:
    """What the two stand-ins share: ``today()``, and pickling by the current name."""

    __slots__ = ()  # no __dict__, as the real values (xmlrpc's marshaller looks)

    @classmethod
    def today(cls) -> Any:
        timestamp = _virtual_timestamp()
        if timestamp is None:
            parent: Any = super()
            return parent.today()
        stand_in: Any = cls
        return stand_in.fromtimestamp(timestamp)

    def __reduce_ex__(self, protocol: Any) -> Any:
        parent: Any = super()
        reduced = parent.__reduce_ex__(protocol)
        real = type(self).__dict__.get("_sf_real")
        if real is None:  # a class derived from a stand-in pickles as usual
            return reduced
        # By the module's name as it is now (the stand-in, or the real class once the
        # interception is over): pickle checks that the name finds the same object.
        return (getattr(_datetime, real.__name__), *reduced[1:])


class SimDate(_Today, RealDate, metaclass=_StandIn):
    """``datetime.date`` under interception (see the module docstring)."""

    _sf_real = RealDate
    __slots__ = ()


class SimDatetime(_Today, RealDatetime, metaclass=_StandIn):
    """``datetime.datetime`` under interception (see the module docstring)."""

    _sf_real = RealDatetime
    __slots__ = ()

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        timestamp = _virtual_timestamp()
        if timestamp is None:
            return super().now(tz)
        return cls.fromtimestamp(timestamp, tz)

    @classmethod
    def utcnow(cls) -> Any:
        timestamp = _virtual_timestamp()
        if timestamp is None:
            with warnings.catch_warnings():  # the one below, at the caller's line
                warnings.simplefilter("ignore", DeprecationWarning)
                value = super().utcnow()
        else:
            value = cls.fromtimestamp(timestamp, _datetime.timezone.utc).replace(tzinfo=None)
        if sys.version_info >= (3, 12):
            warnings.warn(
                "datetime.datetime.utcnow() is deprecated and scheduled for removal in a "
                "future version. Use timezone-aware objects to represent datetimes in UTC: "
                "datetime.datetime.now(datetime.UTC).",
                DeprecationWarning,
                stacklevel=2,
            )
        return value


def _reduce_datetime(value: Any) -> Any:
    return SimDatetime, value.__reduce__()[1]


def _reduce_date(value: Any) -> Any:
    return SimDate, value.__reduce__()[1]


# For copyreg.dispatch_table while the stand-ins are the module's names: a real value
# pickles (and deep-copies) by the name ``datetime.datetime``/``datetime.date``, which
# now finds the stand-in, not the real class (pickle checks the two are one object).
# The bytes are the usual ones: unpickled anywhere, they make a real datetime.
REDUCERS: dict[type, Any] = {RealDatetime: _reduce_datetime, RealDate: _reduce_date}

for _stand_in, _real in ((SimDate, RealDate), (SimDatetime, RealDatetime)):
    _stand_in.__name__ = _stand_in.__qualname__ = _real.__name__
    _stand_in.__module__ = "datetime"
    _stand_in.__doc__ = _real.__doc__
