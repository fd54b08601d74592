"""The fault-injecting proxy: each mode as a client sees it, and the simulated GPU node's faults."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from llmwatch.simulation.faults import FaultProxy, parse_mode
from llmwatch.simulation.nvml import apply_faults, read_faults, simulated_node, watch_faults
from llmwatch.simulation.server import FakeServer

BODY = b"".join(b"upstream line %05d\n" % i for i in range(2000))  # 38 KB


class Upstream(FakeServer):
    def answer(self, path, headers):
        return 200, "text/plain", BODY


@pytest.fixture
def upstream():
    with Upstream() as server:
        yield server


@pytest.fixture
def proxy(upstream):
    with FaultProxy(upstream.url, drip_seconds=0.001, huge_bytes=3_000_000, flap_seconds=0.2) as proxy:
        yield proxy


def request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: upstream\r\n\r\n")
    return sock


def test_ok_passes_the_upstream_answer_through(proxy):
    answer = httpx.get(proxy.url + "/metrics")
    assert answer.status_code == 200 and answer.content == BODY


def test_down_refuses_connections_and_ok_listens_again_on_the_same_port(proxy):
    port = proxy.port
    proxy.set_mode("down")
    with pytest.raises(httpx.ConnectError):
        httpx.get(proxy.url + "/metrics")
    proxy.set_mode("ok")
    assert proxy.port == port and httpx.get(proxy.url + "/metrics").content == BODY


def test_hang_accepts_and_never_answers(proxy):
    proxy.set_mode("hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(proxy.url + "/metrics", timeout=httpx.Timeout(5, read=0.3))


def test_drip_sends_the_real_answer_one_byte_at_a_time(proxy):
    proxy.set_mode("drip")
    with request(proxy.port) as sock:
        pieces = [sock.recv(65536) for _ in range(12)]
    assert all(len(piece) == 1 for piece in pieces)
    assert b"".join(pieces) == b"HTTP/1.1 200"


def test_huge_is_a_valid_looking_answer_of_the_configured_size(proxy):
    proxy.set_mode("huge")
    with httpx.stream("GET", proxy.url + "/metrics") as answer:
        assert answer.status_code == 200
        assert int(answer.headers["content-length"]) == 3_000_000
        pieces = list(answer.iter_bytes())
    assert pieces[0].startswith(b"# soak filler") and sum(map(len, pieces)) == 3_000_000


def test_garbage_answers_random_bytes_that_are_not_http(proxy):
    proxy.set_mode("garbage")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(proxy.url + "/metrics")
    with request(proxy.port) as sock:
        assert not sock.recv(65536).startswith(b"HTTP/")


def test_truncate_cuts_the_answer_in_its_body(proxy):
    proxy.set_mode("truncate")
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete|complete message body"):
        httpx.get(proxy.url + "/metrics")


def test_reset_resets_the_connection_after_the_request(proxy):
    proxy.set_mode("reset")
    with request(proxy.port) as sock, pytest.raises(ConnectionResetError):
        sock.recv(65536)


@pytest.mark.parametrize("code", [500, 401, 429])
def test_status_answers_that_error(proxy, code):
    proxy.set_mode(f"status:{code}")
    with httpx.Client() as client:  # kept alive: every request on the connection gets it
        assert [client.get(proxy.url + "/metrics").status_code for _ in range(2)] == [code, code]


def test_flap_alternates_between_answering_and_refusing(proxy):
    proxy.set_mode("flap")
    seen: set[str] = set()
    deadline = time.monotonic() + 10
    while seen != {"ok", "refused"} and time.monotonic() < deadline:
        try:
            seen.add("ok" if httpx.get(proxy.url + "/metrics").content == BODY else "other")
        except httpx.ConnectError:
            seen.add("refused")
    assert seen == {"ok", "refused"}


def test_switching_cuts_kept_alive_connections(proxy):
    with request(proxy.port) as sock:
        received = b""
        while len(received) < len(BODY):
            received += sock.recv(65536)
        assert proxy.open_connections == 1
        proxy.set_mode("status:500")
        assert sock.recv(65536) == b"" and proxy.open_connections == 0


@pytest.mark.parametrize("mode", ["status:99", "status:abc", "slow", ""])
def test_an_unknown_mode_is_named(mode):
    with pytest.raises(ValueError, match="unknown fault mode"):
        parse_mode(mode)


def test_the_simulated_node_loses_hangs_and_unloads_as_told():
    node = simulated_node()
    node.nvmlInit()
    apply_faults(node, {"lost": [1], "hung": [2], "driver_unloaded": False})
    with pytest.raises(node.NVMLError_GpuIsLost):
        node.nvmlDeviceGetHandleByIndex(1)
    handle = node.gpus[2].handle
    answered = threading.Event()
    blocked = threading.Thread(target=lambda: (node.nvmlDeviceGetName(handle), answered.set()), daemon=True)
    blocked.start()
    assert not answered.wait(0.05)
    apply_faults(node, {})  # recovered: the hung call returns, the lost GPU answers
    assert answered.wait(5)
    assert node.nvmlDeviceGetName(node.nvmlDeviceGetHandleByIndex(1)) == "NVIDIA H200"
    apply_faults(node, {"driver_unloaded": True})
    with pytest.raises(node.NVMLError_DriverNotLoaded):
        node.nvmlInit()
    apply_faults(node, {})
    node.nvmlInit()
    assert node.nvmlDeviceGetCount() == 8


def test_the_faults_file_is_followed_and_a_garbled_one_means_no_fault(tmp_path):
    path = tmp_path / "faults.json"
    assert read_faults(path) == {}
    path.write_text("{not json")
    assert read_faults(path) == {}
    node = simulated_node()
    path.write_text('{"lost": [3]}')
    watch_faults(node, path, interval=0.01)
    deadline = time.monotonic() + 5
    while not node.gpus[3].lost and time.monotonic() < deadline:
        time.sleep(0.01)
    assert node.gpus[3].lost
