"""werkzeug's ``make_server(threaded=True)`` serving a Flask app, unmodified, through
the fixtures' ``server_factory=``: GET, POST JSON and a streaming response, with
``requests``, ``httpx`` and ``urllib3``, on both networks, under latency and
re-chunking, under loss, across a partition, and the same digest for the same seed.

Under loss the simulated TCP retransmits, as Linux's does: the requests are answered
whole, later.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
import web_scenarios as web  # type: ignore[import-not-found]
from compat_clients import CLIENTS, need  # type: ignore[import-not-found]

flask = need("flask")
serving = need("werkzeug.serving")


def make_app() -> Any:
    def hello(name: str) -> str:
        return f"hello {name}"

    def echo() -> Any:
        body = flask.request.get_json()
        return flask.jsonify(received=body, keys=sorted(body))

    def stream() -> Any:
        pause = float(flask.request.args.get("pause", "0.01"))

        def chunks() -> Any:
            for number in range(web.CHUNKS):
                time.sleep(pause)  # virtual on the simulation
                yield f"chunk {number}\n"

        return flask.Response(chunks(), mimetype="text/plain")

    app = flask.Flask("compat")
    app.add_url_rule("/hello/<name>", view_func=hello)
    app.add_url_rule("/json", view_func=echo, methods=["POST"])
    app.add_url_rule("/stream", view_func=stream)
    return app


def start(tcp_server: Any, **placement: Any) -> Any:
    app = make_app()
    return tcp_server(
        server_factory=lambda host, port: serving.make_server(host, port, app, threaded=True),
        **placement,
    )


@pytest.mark.sockfake(network="both")
def test_get_post_json_and_a_stream(tcp_server: Any, client: Any) -> None:
    srv = start(tcp_server)
    assert isinstance(srv.server, serving.ThreadedWSGIServer)
    web.exercise(srv, client)


@pytest.mark.sockfake(latency=0.05, jitter=0.02, chunk=7)
def test_under_latency_and_rechunking(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    web.under_latency(start, tcp_server, client, sockfake_network)


@pytest.mark.sockfake(seed=2)
def test_under_loss_every_request_is_answered_whole(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    web.under_loss(start, tcp_server, client, sockfake_network)


def test_a_partition_refuses_then_heals(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    web.a_partition_refuses_then_heals(start, tcp_server, client, sockfake_network)


def test_a_stream_survives_a_partition_shorter_than_its_timeout(
    tcp_server: Any, client: Any, sockfake_network: Any
) -> None:
    web.a_stream_survives_a_short_partition(start, tcp_server, client, sockfake_network)


@pytest.mark.parametrize("client_name", sorted(CLIENTS))
def test_the_same_seed_gives_the_same_digest(client_name: str) -> None:
    web.the_same_seed_gives_the_same_digest(start, client_name)


def test_replace_socketserver_rebuilds_werkzeug_on_sockfake_alone(inet: Any) -> None:
    """``replace_socketserver("werkzeug.serving")`` used to build a hybrid (sockfake's
    ThreadingMixIn over the stdlib's HTTPServer, imported earlier) that failed at its
    first request; the stdlib's dependants are now rebuilt with it."""
    import http.server  # imported before, as in most processes: what made the hybrid
    import urllib.request

    import sockfake

    assert http.server.HTTPServer.__mro__[1].__module__ == "socketserver"
    with sockfake.replace_socketserver("werkzeug.serving") as mods:
        server = mods["werkzeug.serving"].make_server("127.0.0.1", 0, make_app(), threaded=True)
        assert isinstance(server, sockfake.ThreadingMixIn)
        assert isinstance(server, sockfake.TCPServer)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/hello/rebuilt"
            with urllib.request.urlopen(url, timeout=5) as reply:
                assert reply.read() == b"hello rebuilt"
        finally:
            server.shutdown()
            thread.join()
            server.server_close()
    assert sys.modules["werkzeug.serving"] is serving  # put back
