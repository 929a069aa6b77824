"""Transaction pooling at the edges of the extended protocol: a server connection goes back to the pool only once
the server has answered a Sync after the last extended-protocol message, pgwarden's own requests never leave a
connection skipping to a Sync, its statement cache survives what the server skipped, and a LISTEN that got past
the refusal does not leak notifications to the next client. Raw protocol messages over TLS, pools of one."""
import socket
import threading
import time

import pytest

import harness
from harness import (FLUSH_MESSAGE as FLUSH, SYNC_MESSAGE as SYNC, bind_message as bind, execute_message as execute,
                     message, parse_message as parse, query_message as query)

psycopg = pytest.importorskip("psycopg")


def login(pgw, env):
    return harness.tls_login(pgw.port, env.certs.ca_crt, "alice", "alice-pw", "app")


def read(w, n, timeout=5.0):
    w.sock.settimeout(timeout)
    return [w.read_message() for _ in range(n)]


def until_ready(w, timeout=5.0):
    """Messages up to and including ReadyForQuery; a timeout fails the test (the hang these tests look for)."""
    try:
        return w.until_ready(timeout)
    except (socket.timeout, TimeoutError):
        pytest.fail(f"no ReadyForQuery within {timeout}s")


def types(msgs):
    return "".join(t.decode() for t, _ in msgs)


def errors(msgs):
    return [harness.error_fields(b) for t, b in msgs if t == b"E"]


def fresh_table(env, name):
    env.cluster.sql(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (x int); ALTER TABLE {name} OWNER TO alice",
                    db="app")


def count(env, table):
    return int(env.cluster.sql(f"SELECT count(*) FROM {table}", db="app"))


def start(env, **pool):
    return env.start(pool={"mode": "transaction", "default_size": 1, **pool})


def select_42(pgw, env):
    b = login(pgw, env)
    b.send(query("SELECT 42"))
    got = until_ready(b)
    b.close()
    return got


def test_flush_without_sync_keeps_the_connection_until_sync(env):
    # Parse/Bind/Execute/Flush: answered, but the INSERT sits in an implicit transaction until the Sync. The
    # connection stays with this client, so a second client waits instead of running inside that transaction.
    fresh_table(env, "flush_kept")
    pgw = start(env, query_wait_timeout="30s")
    a = login(pgw, env)
    a.send(parse("", "INSERT INTO flush_kept VALUES (1)") + bind() + execute() + FLUSH)
    assert types(read(a, 3)) == "12C"
    result = {}

    def second_client():
        with psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True) as b:
            # Inside the first client's transaction this would see its xid (the INSERT took one).
            result["b"] = b.execute("SELECT count(*), pg_current_xact_id_if_assigned() IS NULL "
                                    "FROM flush_kept").fetchone()

    t = threading.Thread(target=second_client)
    t.start()
    time.sleep(0.5)
    assert "b" not in result, "the second client got the connection while the first still owed a Sync"
    a.send(SYNC)
    z = until_ready(a)
    assert types(z) == "Z" and z[-1][1] == b"I"
    t.join(timeout=15)
    assert result.get("b") == (1, True), "the second client ran inside the first one's transaction"
    assert count(env, "flush_kept") == 1
    a.close()


def test_client_gone_without_sync_commits_nothing(env):
    # PostgreSQL alone rolls back a Parse/Bind/Execute/Flush whose client disconnects: so must the pool.
    fresh_table(env, "flush_gone")
    pgw = start(env)
    a = login(pgw, env)
    a.send(parse("", "INSERT INTO flush_gone VALUES (7)") + bind() + execute() + FLUSH)
    assert types(read(a, 3)) == "12C"
    a.sock.close()
    time.sleep(0.3)
    got = select_42(pgw, env)
    assert types(got).endswith("CZ") and not errors(got)
    assert count(env, "flush_gone") == 0


def test_error_without_sync_does_not_hang_the_next_client(env):
    # After the error the server discards everything until a Sync; the next client must not get that connection.
    pgw = start(env)
    a = login(pgw, env)
    a.send(parse("", "SELECT 1/0") + bind() + execute() + FLUSH)
    got = read(a, 2)  # 1/0 is folded when the Bind plans the statement
    assert types(got) == "1E" and errors(got)[0]["C"] == "22012"
    a.sock.close()
    time.sleep(0.3)
    got = select_42(pgw, env)
    assert types(got) == "TDCZ", got


def test_suspended_portal_stays_with_its_client(env):
    # Execute with a row limit and Flush (drivers fetching in batches): the portal lives until the Sync.
    pgw = start(env, default_size=2)
    a = login(pgw, env)
    a.send(parse("", "SELECT generate_series(1, 5)") + bind() + execute(rows=2) + FLUSH)
    assert types(read(a, 4)) == "12DD"
    assert types(read(a, 1)) == "s"
    with psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True) as b:
        # A transaction of its own: not inside the first client's.
        assert b.execute("SELECT now() = statement_timestamp()").fetchone()[0] is True
    a.send(execute(rows=0) + SYNC)
    got = until_ready(a)
    assert types(got) == "DDDCZ", [(t, b[:40]) for t, b in got]
    a.close()


def test_failed_extended_copy_keeps_the_connection_until_sync(env):
    # COPY FROM STDIN by the extended protocol: the Sync sent with the Execute is ignored in copy-in, so after
    # an error in the data the server waits for another one.
    fresh_table(env, "copy_ext")
    pgw = start(env)
    a = login(pgw, env)
    a.send(parse("", "COPY copy_ext FROM STDIN") + bind() + execute() + SYNC)
    assert types(read(a, 3)) == "12G"
    a.send(message(b"d", b"notanint\n"))
    got = read(a, 1)
    assert types(got) == "E" and errors(got)[0]["C"] == "22P02"
    a.sock.close()
    time.sleep(0.3)
    assert types(select_42(pgw, env)) == "TDCZ"
    assert count(env, "copy_ext") == 0


def test_deallocate_of_a_statement_the_connection_lacks_in_a_failed_transaction(env):
    # DEALLOCATE of a protocol-level statement this connection never prepared, in an aborted transaction:
    # pgwarden prepares it first, and that fails too. The client gets PostgreSQL's answer to the DEALLOCATE
    # (25P02) and its ReadyForQuery; the connection is usable afterwards.
    pgw = start(env)
    a = login(pgw, env)
    a.send(parse("s1", "SELECT 1") + SYNC)  # answered by pgwarden: no server connection yet
    assert types(until_ready(a)) == "1Z"
    for sql, expect in (("BEGIN", "CZ"), ("SELECT 1/0", "EZ")):
        a.send(query(sql))
        assert types(until_ready(a)) == expect
    a.send(query("DEALLOCATE s1"))
    got = until_ready(a)
    assert types(got) == "EZ", got
    assert errors(got)[0]["C"] == "25P02"
    a.send(query("ROLLBACK"))
    assert types(until_ready(a)) == "CZ"
    a.close()
    assert types(select_42(pgw, env)) == "TDCZ"


def test_deallocate_of_a_statement_whose_parse_fails(env):
    # The statement was accepted on a syntax check only (no server connection then); preparing it before the
    # DEALLOCATE fails on the server. The client still gets a ReadyForQuery, and the next client is served.
    pgw = start(env)
    a = login(pgw, env)
    a.send(parse("s1", "SELECT * FROM no_such_table_here") + SYNC)
    assert types(until_ready(a)) == "1Z"
    a.send(query("SELECT 1") + query("DEALLOCATE s1"))
    assert types(until_ready(a)) == "TDCZ"
    got = until_ready(a)
    assert got[-1][0] == b"Z" and got[-1][1] == b"I"
    a.close()
    assert types(select_42(pgw, env)) == "TDCZ"


def test_deallocate_of_a_statement_that_no_longer_prepares_keeps_the_transaction(env):
    # psycopg 3 drops a statement from its cache with DEALLOCATE inside the client's transaction. This connection
    # lacks the statement and its text no longer prepares (its table is gone): the DEALLOCATE succeeds, as it
    # would directly, and the transaction, with its INSERT, commits.
    fresh_table(env, "dealloc_keep")
    env.cluster.sql("DROP TABLE IF EXISTS dealloc_gone; CREATE TABLE dealloc_gone (x int); "
                    "ALTER TABLE dealloc_gone OWNER TO alice", db="app")
    pgw = start(env)
    a = login(pgw, env)
    a.send(parse("s1", "SELECT * FROM dealloc_gone") + SYNC)  # answered by pgwarden: no server connection yet
    assert types(until_ready(a)) == "1Z"
    env.cluster.sql("DROP TABLE dealloc_gone", db="app")
    for sql in ("BEGIN", "INSERT INTO dealloc_keep VALUES (1)", "DEALLOCATE s1", "COMMIT"):
        a.send(query(sql))
        got = until_ready(a)
        assert errors(got) == [] and got[-1][0] == b"Z", (sql, got)
    a.close()
    assert count(env, "dealloc_keep") == 1


def test_statement_cache_survives_a_failed_deallocate(env):
    # The DEALLOCATE fails in an aborted transaction, so the server keeps pgwarden's statement although the
    # connection's cache let it go: preparing it again must still work, for every client.
    pgw = start(env)
    a = login(pgw, env)
    a.send(parse("x", "SELECT 1") + bind("", "x") + execute() + SYNC)
    assert types(until_ready(a)) == "12DCZ"
    for sql in ("BEGIN", "SELECT 1/0", "DEALLOCATE x", "ROLLBACK"):
        a.send(query(sql))
        until_ready(a)
    a.close()
    b = login(pgw, env)
    for i in range(3):
        b.send(parse(f"y{i}", "SELECT 1") + bind("", f"y{i}") + execute() + SYNC)
        got = until_ready(b)
        assert types(got) == "12DCZ", errors(got)
    b.close()


def test_statement_cache_survives_a_skipped_eviction(env):
    # With room for one statement, preparing a second evicts the first with a Close; an error earlier in the
    # pipeline makes the server skip that Close. The first statement must still be preparable afterwards.
    pgw = start(env, max_prepared_statements=1)
    a = login(pgw, env)
    a.send(parse("x", "SELECT 1") + bind("", "x") + execute() + SYNC)
    assert types(until_ready(a)) == "12DCZ"
    a.send(parse("", "SELECT 1/0") + bind() + execute() + parse("y", "SELECT 2") + SYNC)
    assert types(until_ready(a)) == "1EZ"
    a.close()
    b = login(pgw, env)
    for i in range(3):
        b.send(parse(f"z{i}", "SELECT 1") + bind("", f"z{i}") + execute() + SYNC)
        got = until_ready(b)
        assert types(got) == "12DCZ", errors(got)
    b.close()


def test_listen_past_the_refusal_does_not_reach_the_next_client(env):
    # LISTEN is refused in transaction pooling, but a DO block can still run it. The notification must not
    # reach whichever client has that server connection next, and the connection must not stay listening.
    # (No liveness check before reuse, which would close it for its unread bytes: the relay sees it.)
    pgw = start(env, server_check_delay="30s")
    with psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True) as a:
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            a.execute("LISTEN ch1")
        a.execute("DO $$BEGIN EXECUTE 'LISTEN ch1'; END$$")
    b = login(pgw, env)
    b.send(query("SELECT 1"))
    assert types(until_ready(b)) == "TDCZ"
    env.cluster.sql("NOTIFY ch1, 'secret-payload'", db="app")
    # The notification reaches the connection asynchronously: query until pgwarden has seen it.
    deadline = time.monotonic() + 10
    while "a notification arrived in transaction pooling" not in pgw.log():
        assert time.monotonic() < deadline, "the notification never reached pgwarden"
        b.send(query("SELECT 2"))
        got = until_ready(b)
        assert b"A" not in [t for t, _ in got], "a notification for another client's LISTEN reached this one"
        assert types(got) == "TDCZ"
        time.sleep(0.1)
    b.close()
    c = login(pgw, env)
    c.send(query("SELECT count(*) FROM pg_listening_channels()"))
    got = until_ready(c)
    rows = [b for t, b in got if t == b"D"]
    assert rows and rows[0].endswith(b"0"), "the listening connection went back to the pool"
    c.close()


def test_a_flood_behind_unflushed_requests_is_flushed_not_stuck(env):
    # More requests pgwarden answers itself (Close of a statement) than it lets wait, behind an Execute whose
    # answers the server keeps in its buffer until a Flush or Sync: pgwarden stops reading the client, asks the
    # server to flush, and the whole pipeline completes.
    fresh_table(env, "flood")
    pgw = start(env)
    a = login(pgw, env)
    closes = 70000
    pipeline = (parse("", "INSERT INTO flood VALUES (1)") + bind() + execute() +
                harness.close_message("S", "x") * closes + SYNC)
    a.send(pipeline)  # under 1 MB: what pgwarden does not read yet waits in the loopback socket buffers
    got = until_ready(a, timeout=30)
    assert types(got) == "12C" + "3" * closes + "Z"
    assert count(env, "flood") == 1
    a.close()


def test_a_named_parse_that_failed_or_was_skipped_leaves_its_name_free(env):
    # node-postgres and PQprepare reuse a fixed name: after a Parse that failed (a missing table, a syntax error)
    # or that the server skipped (an earlier error in the pipeline), PostgreSQL has no such statement and a new
    # Parse of the name succeeds. It must through pgwarden too, not fail with 42P05 for ever.
    pgw = start(env)
    a = login(pgw, env)
    a.send(query("BEGIN"))  # attached: the Parse goes to the server (alone, pgwarden would answer it itself)
    until_ready(a)
    a.send(parse("fixed", "SELECT * FROM no_such_table_yet") + SYNC)
    got = until_ready(a)
    assert [e["C"] for e in errors(got)] == ["42P01"], got
    a.send(query("ROLLBACK"))
    until_ready(a)
    a.send(parse("skipped", "SELECT 1/0") + bind("", "skipped") + execute() +
           parse("after", "SELECT 'after'") + SYNC)
    got = until_ready(a)
    assert [e["C"] for e in errors(got)] == ["22012"], got  # "after" was never parsed by the server
    a.send(parse("fixed", "SELECT 'fixed now'") + bind("", "fixed") + execute() +
           parse("after", "SELECT 'after now'") + bind("", "after") + execute() + SYNC)
    got = until_ready(a)
    assert errors(got) == [], got
    rows = [b for t, b in got if t == b"D"]
    assert len(rows) == 2 and b"fixed now" in rows[0] and b"after now" in rows[1], got
    a.close()
    # Two names for one text: "a" succeeded, "b" (answered by pgwarden, since the connection has the text) was
    # skipped after the error. Only "b" is free again; "a" still runs (its error is the division's, not 26000).
    a = login(pgw, env)
    a.send(query("BEGIN"))
    until_ready(a)
    a.send(parse("a", "SELECT 1/0") + SYNC + bind("", "a") + execute() + parse("b", "SELECT 1/0") + SYNC)
    got = until_ready(a) + until_ready(a)
    assert types(got) == "1ZEZ" and errors(got)[0]["C"] == "22012", got
    a.send(query("ROLLBACK"))
    until_ready(a)
    a.send(bind("", "a") + execute() + SYNC)
    got = until_ready(a)
    assert [e["C"] for e in errors(got)] == ["22012"], got
    a.send(parse("b", "SELECT 'b'") + bind("", "b") + execute() + SYNC)
    got = until_ready(a)
    assert types(got) == "12DCZ", got
    a.close()
