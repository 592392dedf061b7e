"""Wall-clock dates and entropy under ``net.intercept()``: the virtual clock and the seed."""

from __future__ import annotations

import copy
import datetime
import os
import pickle
import random
import secrets
import sys
import threading
import time
import uuid
import warnings
from typing import Any

import pytest

from sockfake.errors import SockfakeTypeError
from sockfake.sim import SimNetwork
from sockfake.sim.intercept.clock import EPOCH

# -- datetime ------------------------------------------------------------------------------


def test_datetime_now_follows_the_virtual_clock(inet: SimNetwork) -> None:
    start = datetime.datetime.now()
    assert start == datetime.datetime.fromtimestamp(EPOCH)
    time.sleep(3600)
    assert datetime.datetime.now() - start == datetime.timedelta(hours=1)
    utc = datetime.datetime.now(datetime.timezone.utc)
    assert utc == datetime.datetime(2025, 1, 1, 1, tzinfo=datetime.timezone.utc)
    assert datetime.datetime.today() - start == datetime.timedelta(hours=1)
    assert datetime.date.today() == datetime.date.fromtimestamp(EPOCH + 3600)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert datetime.datetime.utcnow() == datetime.datetime(2025, 1, 1, 1)
    # Deprecated since 3.12, as the real one: the same warning, at the caller's line.
    assert [w.filename for w in caught] == ([__file__] if sys.version_info >= (3, 12) else [])


def test_a_simulated_thread_reads_the_virtual_date(inet: SimNetwork) -> None:
    seen: list[Any] = []
    time.sleep(60)
    thread = threading.Thread(target=lambda: seen.append(datetime.datetime.now()))
    thread.start()
    thread.join()
    assert seen == [datetime.datetime.fromtimestamp(EPOCH + 60)]


REAL_DATETIME = datetime.datetime
BY_REAL_CLASS = {REAL_DATETIME: "datetime", datetime.date: "date"}  # made at import


def test_values_made_under_interception_pass_for_the_module_s_classes(inet: SimNetwork
                                                                      ) -> None:
    value = datetime.datetime(2020, 1, 2, 3, 4, 5)
    assert type(value) is datetime.datetime  # the name as it is now
    assert isinstance(value, REAL_DATETIME)
    assert isinstance(REAL_DATETIME(2020, 1, 2), datetime.datetime)  # a real one too
    assert isinstance(value, datetime.date)
    assert isinstance(datetime.date.today(), datetime.date)
    assert not isinstance(datetime.date.today(), datetime.datetime)
    # A table keyed by the class, built before (or during) the interception, finds it.
    assert BY_REAL_CLASS[type(value)] == "datetime"
    assert BY_REAL_CLASS[type(datetime.date.today())] == "date"
    assert {datetime.datetime: 1}[REAL_DATETIME] == 1
    assert pickle.loads(pickle.dumps(value)) == value
    assert pickle.loads(pickle.dumps(REAL_DATETIME(2020, 1, 2))) == REAL_DATETIME(2020, 1, 2)
    assert copy.deepcopy(value) == value
    assert datetime.datetime.fromisoformat("2020-01-02T03:04:05") == value
    assert datetime.datetime.strptime("2020", "%Y").year == 2020
    assert (value + datetime.timedelta(days=1)).day == 3

    class Derived(datetime.datetime):
        pass

    derived = Derived.now()
    assert type(derived) is Derived
    assert derived == datetime.datetime.fromtimestamp(EPOCH)
    assert not isinstance(value, Derived)


def test_a_value_made_under_interception_pickles_after_it(net: SimNetwork) -> None:
    with net.intercept():
        value = datetime.datetime.now()
    data = pickle.dumps(value)  # by the real class's name, which is the real class again
    assert pickle.loads(data) == REAL_DATETIME.fromtimestamp(EPOCH)
    assert type(pickle.loads(data)) is REAL_DATETIME


def test_datetime_is_the_real_class_again_after_the_interception(net: SimNetwork) -> None:
    real = datetime.datetime
    with net.intercept():
        assert datetime.datetime is not real
    assert datetime.datetime is real
    lag = datetime.datetime.now() - datetime.datetime.fromtimestamp(time.time())
    assert abs(lag) < datetime.timedelta(minutes=1)  # the real clock


# -- entropy -------------------------------------------------------------------------------


def _draws(seed: int, seed_entropy: bool = True) -> list[Any]:
    net = SimNetwork(seed=seed)
    try:
        with net.intercept(seed_entropy=seed_entropy):
            drawn: list[Any] = [os.urandom(8), secrets.token_bytes(8), uuid.uuid4(),
                                random.random(), random.SystemRandom().getrandbits(32),
                                random.Random().random()]
            other: list[Any] = []
            thread = threading.Thread(target=lambda: other.append(os.urandom(8)))
            thread.start()
            thread.join()
            return drawn + other
    finally:
        net.close()


def test_the_same_seed_gives_the_same_random_bytes() -> None:
    assert _draws(5) == _draws(5)


def test_another_seed_gives_other_random_bytes() -> None:
    first, second = _draws(5), _draws(6)
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_seed_entropy_false_keeps_the_os_entropy() -> None:
    first, second = _draws(5, seed_entropy=False), _draws(5, seed_entropy=False)
    assert first[0] != second[0]
    assert first[2] != second[2]


def test_the_global_generator_is_put_back_after_the_interception() -> None:
    state = random.getstate()
    _draws(5)
    assert random.getstate() == state


def test_seed_entropy_must_be_a_bool() -> None:
    net = SimNetwork(seed=1)
    try:
        with pytest.raises(SockfakeTypeError, match="seed_entropy"):
            net.intercept(seed_entropy="yes")  # type: ignore[arg-type]
    finally:
        net.close()
