"""Peering ([[peer]], proxy.peer_id): behind a load balancer, a client's CancelRequest may reach another instance
than the one serving it; the key says which instance handed it out and the cancel is forwarded there."""
import struct
import time

import harness
from conftest import render, toml_value


def start_pair(env):
    ports = [harness.free_port(), harness.free_port()]
    peers = [{"id": 1, "host": "127.0.0.1", "port": ports[0]}, {"id": 2, "host": "127.0.0.1", "port": ports[1]}]
    instances = []
    for i, port in enumerate(ports):
        sections = env.sections(proxy={"workers": 2, "peer_id": i + 1}, peer=peers)
        proxy = sections.pop("proxy")
        text = "\n".join(f"{k} = {toml_value(v)}" for k, v in proxy.items()) + "\n\n" + render(sections)
        p = harness.Pgwarden(env.tmp / f"pgw{i + 1}", text, port=port)
        env.instances.append(p)
        instances.append(p)
    return instances


def login(port, env):
    w = harness.tls_startup(port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    messages = harness.scram_login(w, "alice", "alice-pw")
    assert messages[-1][0] == b"Z", messages
    key = [body for t, body in messages if t == b"K"][0]
    pid, secret = struct.unpack("!ii", key)
    return w, pid, secret


def test_a_cancel_sent_to_the_other_instance_is_forwarded(env):
    a, b = start_pair(env)
    w, pid, secret = login(a.port, env)
    assert (pid >> 17) & 0x3fff == 1  # the key carries instance 1's id
    w.send(harness.message(b"Q", b"SELECT pg_sleep(30)\0"))
    time.sleep(0.5)
    started = time.monotonic()
    c = harness.Wire(b.port)  # the load balancer picked instance 2 for the cancel connection
    c.send(harness.cancel_request(pid, secret))
    c.close()
    t, body = w.read_message()
    while t not in (b"E", b"Z"):  # RowDescription comes before the statement runs
        t, body = w.read_message()
    assert t == b"E" and harness.error_fields(body)["C"] == "57014", (t, body)
    assert time.monotonic() - started < 10
    assert "forwarded to 127.0.0.1" in b.log()
    w.close()
    # A key naming an instance nobody lists, and a wrong secret for a real key: ignored, nothing cancelled.
    w, pid, secret = login(a.port, env)
    c = harness.Wire(b.port)
    c.send(harness.cancel_request((77 << 17) | 5, secret))
    c.close()
    c = harness.Wire(b.port)
    c.send(harness.cancel_request(pid, secret ^ 1))
    c.close()
    w.send(harness.message(b"Q", b"SELECT pg_sleep(1)\0"))
    seen = []
    while not seen or seen[-1] != b"Z":
        seen.append(w.read_message()[0])
    assert seen == [b"T", b"D", b"C", b"Z"], seen  # the query ran to completion
    w.close()
    assert "which no [[peer]] names" in b.log()
