"""What a client sends cannot make pgwarden allocate without limit: a flood of requests pgwarden answers itself
behind a slow one, prepared statements of any size, and one large statement bound to many portals with the audit
log on. pgwarden's resident memory is read from /proc while the client pushes."""
import socket
import time

import pytest

import harness
from harness import (SYNC_MESSAGE as SYNC, bind_message as bind, close_message, parse_message as parse,
                     query_message as query)

psycopg = pytest.importorskip("psycopg")


def close_statement(name):
    return close_message("S", name)


def rss_mb(pgw):
    with open(f"/proc/{pgw.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def login(pgw, env):
    return harness.tls_login(pgw.port, env.certs.ca_crt, "alice", "alice-pw", "app")


def until_ready(w):
    return w.until_ready(30.0)


def push_for(w, chunk, seconds):
    """Sends `chunk` again and again for `seconds` without reading; returns the bytes the socket took."""
    w.sock.settimeout(0.2)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            w.sock.sendall(chunk)
            sent += len(chunk)
        except (socket.timeout, TimeoutError, BlockingIOError):
            pass  # pgwarden stopped reading: the back-pressure this test wants
    return sent


def test_requests_answered_by_pgwarden_behind_a_slow_one_are_bounded(env):
    # Close of a statement is answered by pgwarden itself, but only after the server's answer to the query
    # before it: queued, they would grow with every 8 bytes the client sends. pgwarden stops reading instead.
    pgw = env.start(pool={"mode": "transaction", "default_size": 2})
    w = login(pgw, env)
    w.send(query("SELECT pg_sleep(4)"))
    time.sleep(0.3)
    before = rss_mb(pgw)
    sent = push_for(w, close_statement("a") * (1 << 16), 2.5)
    grown = rss_mb(pgw) - before
    assert grown < 48, f"pgwarden grew {grown:.0f} MB while the client sent {sent >> 20} MiB of Close messages"
    assert sent < (64 << 20), f"pgwarden kept reading: {sent >> 20} MiB taken"
    w.close()
    with psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_prepared_statements_are_bounded_in_bytes(env):
    # max_client_prepared_bytes caps what one client's statements hold, whatever their number: 54000.
    pgw = env.start(pool={"mode": "transaction", "max_client_prepared_bytes": "1MB"})
    w = login(pgw, env)
    text = "SELECT 1 -- " + "x" * (300 << 10)
    for i in range(3):
        w.send(parse(f"s{i}", text + str(i)) + SYNC)
        got = until_ready(w)
        assert [t for t, _ in got] == [b"1", b"Z"], got
    w.send(parse("s3", text + "3") + SYNC)
    got = until_ready(w)
    errors = [harness.error_fields(b) for t, b in got if t == b"E"]
    assert errors and errors[0]["C"] == "54000", got
    assert "max_client_prepared_bytes" in errors[0]["M"]
    # Closing one makes room again.
    w.send(close_statement("s0") + SYNC)
    until_ready(w)
    w.send(parse("s3", text + "3") + SYNC)
    assert [t for t, _ in until_ready(w)] == [b"1", b"Z"]
    w.close()


def test_one_statement_bound_to_many_portals_is_not_copied_per_portal(env):
    # With the audit log on, each portal knows its statement's text (to record an Execute of it): shared with
    # the statement, not copied per Bind.
    pgw = env.start(pool={"mode": "transaction"})
    w = login(pgw, env)
    w.send(query("BEGIN"))
    until_ready(w)
    w.send(parse("big", "SELECT 1 -- " + "x" * (4 << 20)) + SYNC)
    until_ready(w)
    time.sleep(0.3)
    before = rss_mb(pgw)
    w.send(b"".join(bind(f"p{i}", "big") for i in range(200)) + SYNC)
    got = until_ready(w)
    assert [t for t, _ in got].count(b"2") == 200, got[-3:]
    grown = rss_mb(pgw) - before
    assert grown < 64, f"200 portals of a 4 MiB statement grew pgwarden by {grown:.0f} MB"
    w.send(query("COMMIT"))
    until_ready(w)
    w.close()
