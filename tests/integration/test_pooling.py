"""Pooling against a real PostgreSQL 15: transaction, session and statement modes, limits, timeouts, faults."""
import concurrent.futures
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import harness
from harness import psql, wait_until

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def bench_db(cluster):
    return cluster.pgbench_database("bench")


def bench_database(env):
    return {"name": "bench", "host": "localhost", "port": env.cluster.port}


def app_database(env, **extra):
    return {"name": "app", "host": "localhost", "port": env.cluster.port, **extra}


def server_connections(cluster, db="app", user="alice"):
    return int(cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND usename = '{user}' "
                           "AND pid <> pg_backend_pid()"))


def fresh_table(cluster, name):
    cluster.sql(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (x int); ALTER TABLE {name} OWNER TO alice",
                db="app")


def balances(cluster):
    return [int(cluster.sql(f"SELECT coalesce(sum({col}), 0) FROM {table}", db="bench"))
            for table, col in (("pgbench_accounts", "abalance"), ("pgbench_branches", "bbalance"),
                               ("pgbench_tellers", "tbalance"), ("pgbench_history", "delta"))]


def pgbench(pgw, env, *args, timeout=180):
    e = dict(os.environ, PGPASSWORD="alice-pw")
    return harness.run(["pgbench", "-n", *args, env.via(pgw, dbname="bench")], env=e, timeout=timeout)


@pytest.mark.parametrize("protocol", ["simple", "extended", "prepared"])
def test_pgbench_100_clients_on_a_pool_of_5(env, bench_db, protocol):
    before = balances(env.cluster)
    assert len(set(before)) == 1
    pgw = env.start(pool={"mode": "transaction", "default_size": 5}, database=[bench_database(env)],
                    proxy={"workers": 2, "max_client_conn": 200}, log={"level": "info"})
    r = pgbench(pgw, env, "-M", protocol, "-c", "100", "-j", "4", "-t", "20")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "number of transactions actually processed: 2000/2000" in r.stdout, r.stdout
    assert "number of failed transactions: 0 (0.000%)" in r.stdout, r.stdout
    after = balances(env.cluster)
    assert len(set(after)) == 1, f"TPC-B invariant broken: {after}"
    assert after != before
    # The pool never went over its budget.
    assert server_connections(env.cluster, db="bench") <= 5


def test_pipeline_mode(env, bench_db, tmp_path):
    script = tmp_path / "pipeline.sql"
    script.write_text("\\set aid random(1, 100000)\n\\startpipeline\n"
                      "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
                      "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n"
                      "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
                      "\\endpipeline\n")
    pgw = env.start(pool={"mode": "transaction", "default_size": 2}, database=[bench_database(env)])
    for protocol in ("extended", "prepared"):
        r = pgbench(pgw, env, "-M", protocol, "-c", "8", "-j", "2", "-t", "50", "-f", str(script))
        assert r.returncode == 0, r.stderr + r.stdout
        assert "number of failed transactions: 0" in r.stdout


def test_psycopg3_automatic_prepares_past_threshold(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    conns = [psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True, prepare_threshold=2)
             for _ in range(3)]
    try:
        for i in range(30):
            for n, c in enumerate(conns):
                # Same text on every connection would be shared; different text per client tests the names.
                got = c.execute(f"SELECT %s::int + {n}", (i,)).fetchone()[0]
                assert got == i + n
        # psycopg prepared them (past prepare_threshold) and the server connection knows them under pgwarden's names.
        assert any(c._prepared._names for c in conns)  # noqa: SLF001 - psycopg's own record of what it prepared
        names = conns[0].execute("SELECT array_agg(name) FROM pg_prepared_statements").fetchone()[0] or []
        assert any(n.startswith("pgw_") for n in names), names
    finally:
        for c in conns:
            c.close()


def test_timezone_follows_each_client_on_a_pool_of_one(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    a = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    b = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        a.execute("SET TIME ZONE 'Asia/Tokyo'")
        b.execute("SET TIME ZONE 'America/New_York'")
        for _ in range(20):
            assert a.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
            assert b.execute("SHOW TimeZone").fetchone()[0] == "America/New_York"
            assert a.info.parameter_status("TimeZone") == "Asia/Tokyo"
        # Both really share one server backend.
        assert a.execute("SELECT pg_backend_pid()").fetchone()[0] == b.execute("SELECT pg_backend_pid()").fetchone()[0]
    finally:
        a.close()
        b.close()


def test_clients_with_equal_settings_skip_the_comparison_but_never_inherit_a_change(env):
    # Equal settings let an attach skip the per-setting comparison; a change by one client must still not
    # reach the others on the same server connection.
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    five = env.via(pgw, options="'-c work_mem=5MB'")
    x1 = psycopg.connect(five, password="alice-pw", autocommit=True)
    x2 = psycopg.connect(five, password="alice-pw", autocommit=True)
    y = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        zone = y.execute("SHOW TimeZone").fetchone()[0]
        assert zone != "Asia/Tokyo"
        for _ in range(5):
            assert x1.execute("SHOW work_mem").fetchone()[0] == "5MB"
            assert x2.execute("SHOW work_mem").fetchone()[0] == "5MB"
            assert y.execute("SHOW work_mem").fetchone()[0] == "4MB"
        x1.execute("SET TIME ZONE 'Asia/Tokyo'")
        for _ in range(5):
            assert x2.execute("SHOW TimeZone").fetchone()[0] == zone
            assert x1.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
            assert x2.execute("SHOW work_mem").fetchone()[0] == "5MB"
            assert y.execute("SHOW TimeZone").fetchone()[0] == zone
        x1.execute("RESET TimeZone")
        for c in (x1, x2, y):
            assert c.execute("SHOW TimeZone").fetchone()[0] == zone
        assert x1.execute("SHOW work_mem").fetchone()[0] == "5MB"
        assert y.execute("SHOW work_mem").fetchone()[0] == "4MB"
    finally:
        for c in (x1, x2, y):
            c.close()


def test_a_tracked_parameter_the_server_does_not_report_is_set_at_every_attach(env):
    # PostgreSQL 15 reports no search_path: a SET of it shows no ParameterStatus, so a client's value must be
    # set again on every attach, whatever an earlier client with equal settings left on the connection.
    pgw = env.start(pool={"mode": "transaction", "default_size": 1, "track_extra_parameters": ["search_path"]})
    public = env.via(pgw, options="'-c search_path=public'")
    x1 = psycopg.connect(public, password="alice-pw", autocommit=True)
    x2 = psycopg.connect(public, password="alice-pw", autocommit=True)
    try:
        for _ in range(3):
            assert x2.execute("SHOW search_path").fetchone()[0] == "public"
            assert x1.execute("SHOW search_path").fetchone()[0] == "public"
        x1.execute("SET search_path = pg_catalog")
        for _ in range(3):
            assert x2.execute("SHOW search_path").fetchone()[0] == "public"
    finally:
        x1.close()
        x2.close()


def test_startup_settings_are_applied_and_checked(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    r = psql(env.via(pgw, options="'-c search_path=pg_catalog,public -c work_mem=5MB'", application_name="myapp"),
             "SHOW work_mem; SHOW search_path; SHOW application_name", password="alice-pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["5MB", "pg_catalog,public", "myapp"]
    # The next client did not ask for work_mem: it gets the default again, not the previous client's.
    r = psql(env.via(pgw), "SHOW work_mem", password="alice-pw")
    assert r.stdout.strip() == "4MB"
    bad = psql(env.via(pgw, options="'-c TimeZone=Nowhere/Land'"), "SELECT 1", password="alice-pw")
    assert bad.returncode != 0
    assert "invalid startup setting" in bad.stderr
    env.assert_serves(pgw)


def test_session_mode_runs_the_reset_query_between_clients(env):
    pgw = env.start(pool={"mode": "session", "default_size": 1})
    first = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    pid = first.execute("SELECT pg_backend_pid()").fetchone()[0]
    first.execute("SET work_mem = '7MB'")
    first.execute("CREATE TEMP TABLE leftover (x int)")
    first.execute("PREPARE old_plan AS SELECT 1")
    first.close()
    second = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        assert second.execute("SELECT pg_backend_pid()").fetchone()[0] == pid, "the same server connection"
        assert second.execute("SHOW work_mem").fetchone()[0] == "4MB"
        assert second.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
        assert second.execute("SELECT to_regclass('pg_temp.leftover')").fetchone()[0] is None
    finally:
        second.close()


def test_session_mode_closes_a_connection_whose_reset_query_failed(env):
    # The client's own statement_timeout cancels the reset (DISCARD ALL): the next client must not inherit the
    # search_path and the timeout it left behind.
    pgw = env.start(pool={"mode": "session", "default_size": 1,
                          "server_reset_query": "SELECT pg_sleep(0.2); DISCARD ALL"})
    first = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    pid = first.execute("SELECT pg_backend_pid()").fetchone()[0]
    first.execute("SET search_path = evil, public")
    first.execute("SET statement_timeout = 50")
    first.close()
    wait_until(lambda: "cleaning the server connection failed" in pgw.log(), 10, "the reset to fail")
    second = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        assert second.execute("SELECT pg_backend_pid()").fetchone()[0] != pid, "a new server connection"
        assert second.execute("SHOW search_path").fetchone()[0] == '"$user", public'
        assert second.execute("SHOW statement_timeout").fetchone()[0] == "0"
    finally:
        second.close()


def test_startup_options_come_back_after_a_reset_all_and_read_only_does_not_leak(env):
    # asyncpg's pool resets with RESET ALL; both clients asked for search_path at startup and share one server
    # connection with equal settings: after the first one's RESET ALL, the next transaction of either one runs
    # with its search_path again. A client's SET default_transaction_read_only stays its own.
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    opts = "-c search_path=tenant_a,public"
    first = psycopg.connect(env.via(pgw, options=opts.replace(" ", "\\ ")), password="alice-pw", autocommit=True)
    second = psycopg.connect(env.via(pgw, options=opts.replace(" ", "\\ ")), password="alice-pw", autocommit=True)
    plain = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        assert first.execute("SHOW search_path").fetchone()[0] == "tenant_a,public"
        first.execute("RESET ALL")
        assert second.execute("SHOW search_path").fetchone()[0] == "tenant_a,public"
        assert first.execute("SHOW search_path").fetchone()[0] == "tenant_a,public"
        first.execute("SET default_transaction_read_only = on")
        assert plain.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
        assert plain.execute("SHOW search_path").fetchone()[0] == '"$user", public'
        assert first.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    finally:
        first.close()
        second.close()
        plain.close()


def test_statement_mode(env):
    pgw = env.start(pool={"mode": "statement", "default_size": 1})
    c = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        assert c.execute("SELECT 1").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.FeatureNotSupported) as exc:
            c.execute("BEGIN")
        assert "statement pooling mode" in str(exc.value)
        # The client is still usable and no transaction was left open on the server.
        assert c.execute("SELECT now() = statement_timestamp()").fetchone()[0] is True
        r = psql(env.via(pgw), "SELECT 1; SELECT 2", password="alice-pw")  # an implicit transaction is fine
        assert r.returncode == 0, r.stderr
        r = psql(env.via(pgw), "START TRANSACTION", password="alice-pw")
        assert r.returncode != 0 and "statement pooling mode" in r.stderr
    finally:
        c.close()


def test_listen_refused_in_transaction_mode_but_not_in_session_mode(env):
    txn = env.start("txn", pool={"mode": "transaction"})
    c = psycopg.connect(env.via(txn), password="alice-pw")
    try:
        c.execute("SELECT 1")  # a transaction is open: the refusal must abort it, as an error would
        with pytest.raises(psycopg.errors.FeatureNotSupported) as exc:
            c.execute("LISTEN updates")
        assert "LISTEN is not supported in transaction pooling mode" in str(exc.value)
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT 'LISTEN in a string is fine'").fetchone()[0].startswith("LISTEN")
    finally:
        c.close()
    sess = env.start("session", pool={"mode": "session"})
    r = psql(env.via(sess), "LISTEN updates", password="alice-pw")
    assert r.returncode == 0, r.stderr


def test_copy_in_and_out_in_transaction_mode(env, tmp_path):
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    src = tmp_path / "in.csv"
    src.write_text("".join(f"{i},row {i}\n" for i in range(20000)))
    out = tmp_path / "out.csv"
    r = psql(env.via(pgw), None, password="alice-pw", extra_args=[
        "-c", "DROP TABLE IF EXISTS copy_txn", "-c", "CREATE TABLE copy_txn (a int, b text)",
        "-c", f"\\copy copy_txn FROM '{src}' WITH csv", "-c", f"\\copy (SELECT * FROM copy_txn ORDER BY a) TO '{out}' "
                                                           "WITH csv"])
    assert r.returncode == 0, r.stderr
    assert out.read_text() == src.read_text()
    env.assert_serves(pgw)


def test_min_size_and_idle_timeout(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 4, "min_size": 2, "server_idle_timeout": "10m"})
    env.assert_serves(pgw)  # creates the pool
    wait_until(lambda: server_connections(env.cluster) == 2, what="min_size connections")


def test_server_idle_timeout_and_lifetime_close_idle_connections(env):
    idle = env.start("idle", pool={"mode": "transaction", "default_size": 3, "server_idle_timeout": "1s"})
    conns = [psycopg.connect(env.via(idle), password="alice-pw") for _ in range(3)]
    for c in conns:
        c.execute("SELECT 1")  # three transactions open at once: three server connections
    for c in conns:
        c.commit()
    assert server_connections(env.cluster) == 3
    wait_until(lambda: server_connections(env.cluster) == 0, what="server_idle_timeout")
    for c in conns:
        c.close()
    old = env.start("old", pool={"mode": "transaction", "default_size": 1, "server_lifetime": "1s",
                                 "server_idle_timeout": "0s"})
    c = psycopg.connect(env.via(old), password="alice-pw", autocommit=True)
    first = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    time.sleep(1.5)  # lifetime passes (the janitor runs every second)
    wait_until(lambda: c.execute("SELECT pg_backend_pid()").fetchone()[0] != first, what="server_lifetime")
    c.close()


def test_reserve_pool_opens_after_reserve_timeout(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 1, "reserve_size": 1, "reserve_timeout": "1s",
                          "query_wait_timeout": "20s"})
    holder = psycopg.connect(env.via(pgw), password="alice-pw")
    holder.execute("SELECT 1")  # holds the only regular connection in a transaction
    start = time.monotonic()
    r = psql(env.via(pgw), "SELECT 'reserve'", password="alice-pw", timeout=30)
    waited = time.monotonic() - start
    assert r.returncode == 0 and r.stdout.strip() == "reserve", r.stderr
    assert 0.9 <= waited < 10, waited
    holder.rollback()
    holder.close()


def test_max_db_connections_across_users(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 5, "max_db_connections": 1,
                          "query_wait_timeout": "2s"})
    alice = psycopg.connect(env.via(pgw), password="alice-pw")
    alice.execute("SELECT 1")  # holds the database's only connection
    r = psql(env.via(pgw, user="bob"), "SELECT 1", password="bob-pw", timeout=30)
    assert r.returncode != 0 and "query_wait_timeout" in r.stderr, r.stderr
    alice.commit()  # alice's connection goes idle: bob's pool may take the slot by closing it
    r = psql(env.via(pgw, user="bob"), "SELECT current_user", password="bob-pw", timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "bob", r.stderr
    alice.close()


def test_max_user_connections(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 5, "max_user_connections": 1,
                          "query_wait_timeout": "2s"},
                    database=[app_database(env), {"name": "bench2", "host": "localhost", "port": env.cluster.port,
                                                  "dbname": "app"}])
    a = psycopg.connect(env.via(pgw), password="alice-pw")
    a.execute("SELECT 1")
    r = psql(env.via(pgw, dbname="bench2"), "SELECT 1", password="alice-pw", timeout=30)
    assert r.returncode != 0 and "query_wait_timeout" in r.stderr
    a.rollback()
    a.close()


def test_query_wait_timeout_gives_57014(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 1, "query_wait_timeout": "1s"})
    waiting = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)  # logged in while it was free
    holder = psycopg.connect(env.via(pgw), password="alice-pw")
    holder.execute("SELECT 1")  # now holds the only connection
    start = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as exc:  # a FATAL: the session ends
        waiting.execute("SELECT 1")
    assert "query_wait_timeout" in str(exc.value)
    assert 0.9 <= time.monotonic() - start < 10
    # A login that needs a server connection waits the same way; on the wire the FATAL says 57014.
    w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    t, body = harness.scram_login(w, "alice", "alice-pw")[-1]
    assert t == b"E" and harness.error_fields(body)["C"] == "57014"
    w.close()
    holder.rollback()
    holder.close()
    waiting.close()


def test_client_idle_timeout(env):
    pgw = env.start(pool={"mode": "transaction", "client_idle_timeout": "1s"})
    c = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    c.execute("SELECT 1")
    time.sleep(2.5)
    with pytest.raises(psycopg.OperationalError) as exc:
        c.execute("SELECT 1")
    assert "client_idle_timeout" in str(exc.value) or "closed" in str(exc.value)
    c.close()


def test_server_side_is_woken_between_transactions_retires_when_idle_and_ends_with_its_client(env):
    # Between transactions a client's server side parks until its next attach wakes it, ends after a second
    # without one, and a client that leaves while it is parked ends its session all the same.
    pgw = env.start(pool={"mode": "transaction", "default_size": 1},
                    proxy={"workers": 1, "max_client_conn": 2, "max_client_conn_per_address": 2})
    a = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    b = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    started = time.monotonic()
    for i in range(50):  # one server connection, handed back and forth: every attach wakes a parked side
        assert a.execute("SELECT %s::int", (i,)).fetchone()[0] == i
        assert b.execute("SELECT %s::int + 1000", (i,)).fetchone()[0] == i + 1000
    # A wake that went missing would show as the park's one-second limit on every transaction.
    assert time.monotonic() - started < 20
    time.sleep(1.5)  # past the park limit: both server sides have ended, and the next attach starts anew
    assert a.execute("SELECT 'after idle'").fetchone()[0] == "after idle"
    assert b.execute("SELECT 'after idle too'").fetchone()[0] == "after idle too"
    a.close()  # right after a transaction: its server side is parked

    def third_gets_in():  # max_client_conn = 2: only once a's session has ended
        try:
            c = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as e:
            assert "max_client_conn" in str(e)
            return False
        assert c.execute("SELECT 3").fetchone()[0] == 3
        c.close()
        return True

    wait_until(third_gets_in, timeout=10, what="the session of a client that left while parked to end")
    assert b.execute("SELECT 2").fetchone()[0] == 2
    b.close()


def test_idle_transaction_timeout_rolls_back(env):
    fresh_table(env.cluster, "idle_tx")
    pgw = env.start(pool={"mode": "transaction", "default_size": 1, "idle_transaction_timeout": "1s"})
    c = psycopg.connect(env.via(pgw), password="alice-pw")
    c.execute("INSERT INTO idle_tx VALUES (1)")
    time.sleep(2.5)
    with pytest.raises(psycopg.OperationalError) as exc:
        c.execute("SELECT 1")
    assert "idle_transaction_timeout" in str(exc.value) or "closed" in str(exc.value)
    c.close()
    assert env.cluster.sql("SELECT count(*) FROM idle_tx", db="app") == "0"
    # The same server connection serves the next client, out of any transaction.
    d = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    assert d.execute("SELECT now() = statement_timestamp()").fetchone()[0] is True
    d.close()


def test_idle_timeouts_count_from_the_answer_not_from_the_question(env):
    # A statement that runs longer than the timeouts leaves its client idle only once its answer came: the
    # client that goes on a second later is not idle, in a transaction or out of one.
    pgw = env.start(pool={"mode": "transaction", "default_size": 2, "idle_transaction_timeout": "2s",
                          "client_idle_timeout": "2s"})

    def long_statement_then_more(autocommit):
        c = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=autocommit)
        try:
            c.execute("SELECT pg_sleep(3)")
            time.sleep(1.2)  # the janitor looks every second: at least once a second after the answer
            return c.execute("SELECT 'still here'").fetchone()[0]
        finally:
            c.close()

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        in_tx = ex.submit(long_statement_then_more, False)
        outside = ex.submit(long_statement_then_more, True)
        assert in_tx.result(timeout=30) == "still here"
        assert outside.result(timeout=30) == "still here"


def test_a_client_that_leaves_while_waiting_for_a_connection_runs_nothing(env):
    # Its INSERT waits for the pool's one connection; the client gives up and closes. When the connection
    # frees up, the INSERT must not run for nobody (a client that retried elsewhere would see it twice).
    fresh_table(env.cluster, "left_waiting")
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    w = harness.tls_login(pgw.port, env.certs.ca_crt, "alice", "alice-pw", "app")  # a login needs it too
    holder = psycopg.connect(env.via(pgw), password="alice-pw")
    holder.execute("SELECT 1")  # holds the only connection in its transaction
    w.send(harness.query_message("INSERT INTO left_waiting VALUES (99)"))
    time.sleep(0.3)  # queued behind the holder
    w.close()
    time.sleep(0.3)
    holder.commit()
    holder.close()
    env.assert_serves(pgw)
    assert env.cluster.sql("SELECT count(*) FROM left_waiting", db="app") == "0"


def console(env, pgw):
    """The admin console as bob (simple protocol: psycopg2)."""
    psycopg2 = pytest.importorskip("psycopg2")
    c = psycopg2.connect(host="localhost", port=pgw.port, dbname="pgwarden", user="bob", password="bob-pw",
                         sslmode="verify-full", sslrootcert=str(env.certs.ca_crt), connect_timeout=10)
    c.autocommit = True
    return c


def console_run(c, sql):
    with c.cursor() as cur:
        cur.execute(sql)
        if cur.description is None:
            return cur.statusmessage
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


def one_connection_pool_with_console(env, table):
    """A fresh table and a transaction pool of one connection; returns (pgwarden, its console)."""
    fresh_table(env.cluster, table)
    pgw = env.start(pool={"mode": "transaction", "default_size": 1}, proxy={"admin_users": ["bob"]})
    return pgw, console(env, pgw)


def waiting_clients(c):
    return sum(int(r["cl_waiting"]) for r in console_run(c, "SHOW POOLS") if r["database"] == "app")


def run_in_thread(fn):
    """Starts fn in a thread; returns (thread, result dict with "ok" or "error")."""
    result = {}

    def body():
        try:
            result["ok"] = fn()
        except psycopg.Error as exc:
            result["error"] = exc

    t = threading.Thread(target=body)
    t.start()
    return t, result


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_a_cancel_while_queued_for_a_connection_abandons_the_request(env, protocol):
    # The client's INSERT waits for the pool's one connection; its CancelRequest finds no server query to
    # cancel. The INSERT must not run later: the client is answered 57014 at once, as PostgreSQL answers a
    # cancelled statement, and its session goes on.
    pgw, admin = one_connection_pool_with_console(env, f"cancel_queued_{protocol}")
    w = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)  # logs in while the pool is free
    holder = psycopg.connect(env.via(pgw), password="alice-pw")
    holder.execute("SELECT 1")  # holds the only connection in its transaction
    try:
        if protocol == "simple":
            t, result = run_in_thread(lambda: w.execute(f"INSERT INTO cancel_queued_{protocol} VALUES (99)"))
        else:
            t, result = run_in_thread(lambda: w.execute(f"INSERT INTO cancel_queued_{protocol} VALUES (%s)", (99,)))
        wait_until(lambda: waiting_clients(admin) == 1, what="the INSERT to queue")
        w.cancel()
        t.join(10)
        assert not t.is_alive(), "answered while the holder still has the connection"
        assert getattr(result.get("error"), "sqlstate", None) == "57014", result
        holder.commit()
        assert w.execute("SELECT %s::int + 1", (1,)).fetchone()[0] == 2  # the session goes on
        assert w.execute("SELECT 40 + 2").fetchone()[0] == 42
        assert env.cluster.sql(f"SELECT count(*) FROM cancel_queued_{protocol}", db="app") == "0"
    finally:
        holder.close()
        w.close()
        admin.close()


def raw_client_behind_a_holder(env, pgw):
    """A raw protocol client (with its cancel key) and a psycopg client holding the pool's one connection in
    its transaction; returns (wire, key, holder)."""
    w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    key = next(body for t, body in harness.scram_login(w, "alice", "alice-pw") if t == b"K")
    holder = psycopg.connect(env.via(pgw), password="alice-pw")
    holder.execute("SELECT 1")
    return w, key, holder


def send_cancel(pgw, key):
    """A plaintext CancelRequest with the key from BackendKeyData; returns once pgwarden closed it."""
    with socket.create_connection(("127.0.0.1", pgw.port), timeout=10) as c:
        c.sendall(harness.cancel_request(*struct.unpack("!ii", key)))
        c.recv(1)


def test_a_cancelled_pipeline_is_skipped_up_to_its_sync(env):
    # Extended protocol without a Sync yet: after the 57014 everything up to the Sync is skipped, as PostgreSQL
    # skips after an error, however it arrives; the next pipeline waits for a connection again and runs.
    pgw, admin = one_connection_pool_with_console(env, "cancel_pipeline")
    w, key, holder = raw_client_behind_a_holder(env, pgw)
    try:
        insert = "INSERT INTO cancel_pipeline VALUES (1)"
        w.send(harness.parse_message("", insert) + harness.bind_message() + harness.execute_message()
               + harness.FLUSH_MESSAGE)
        wait_until(lambda: waiting_clients(admin) == 1, what="the pipeline to queue")
        send_cancel(pgw, key)
        t, body = w.read_message()
        assert t == b"E" and harness.error_fields(body)["C"] == "57014", (t, body)
        # More of the same pipeline, then its Sync in a later packet: all skipped, one ReadyForQuery.
        w.send(harness.bind_message() + harness.execute_message())
        time.sleep(0.2)
        w.send(harness.SYNC_MESSAGE)
        assert w.until_ready() == [(b"Z", b"I")]
        assert waiting_clients(admin) == 0
        w.send(harness.parse_message("", "INSERT INTO cancel_pipeline VALUES (2)") + harness.bind_message()
               + harness.execute_message() + harness.SYNC_MESSAGE)
        wait_until(lambda: waiting_clients(admin) == 1, what="the next pipeline to queue")
        holder.commit()
        msgs = w.until_ready()
        assert [t for t, _ in msgs] == [b"1", b"2", b"C", b"Z"], msgs
        assert env.cluster.sql("SELECT string_agg(x::text, ',') FROM cancel_pipeline", db="app") == "2"
    finally:
        holder.close()
        w.close()
        admin.close()


def test_a_cancel_is_answered_before_the_next_request_in_the_packet_waits(env):
    # One packet: a COPY FROM STDIN with its data, then an INSERT, all queued behind the pool's one connection.
    # The cancel abandons the COPY: its 57014 goes out at once (not after the INSERT's own wait), the COPY's data
    # is ignored as PostgreSQL ignores it outside a COPY, and the INSERT runs once the connection frees up.
    pgw, admin = one_connection_pool_with_console(env, "cancel_packet")
    w, key, holder = raw_client_behind_a_holder(env, pgw)
    try:
        w.send(harness.query_message("COPY cancel_packet FROM STDIN") + harness.message(b"d", b"5\n")
               + harness.message(b"c") + harness.query_message("INSERT INTO cancel_packet VALUES (7)"))
        wait_until(lambda: waiting_clients(admin) == 1, what="the COPY to queue")
        send_cancel(pgw, key)
        msgs = w.until_ready(timeout=5)  # the holder still has the connection
        assert [t for t, _ in msgs] == [b"E", b"Z"], msgs
        assert harness.error_fields(msgs[0][1])["C"] == "57014"
        wait_until(lambda: waiting_clients(admin) == 1, what="the INSERT to queue")
        holder.commit()
        msgs = w.until_ready()
        assert [t for t, _ in msgs] == [b"C", b"Z"], msgs
        w.send(harness.query_message("SELECT 42"))
        assert [t for t, _ in w.until_ready()] == [b"T", b"D", b"C", b"Z"]
        assert env.cluster.sql("SELECT string_agg(x::text, ',') FROM cancel_packet", db="app") == "7"
    finally:
        holder.close()
        w.close()
        admin.close()


def test_a_cancel_while_paused_abandons_the_request(env):
    pgw, admin = one_connection_pool_with_console(env, "cancel_paused")
    w = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        assert console_run(admin, "PAUSE app") == "PAUSE"
        t, result = run_in_thread(lambda: w.execute("INSERT INTO cancel_paused VALUES (1)"))
        wait_until(lambda: waiting_clients(admin) == 1, what="the INSERT to wait")
        w.cancel()
        t.join(10)
        assert not t.is_alive(), "answered while still paused"
        assert getattr(result.get("error"), "sqlstate", None) == "57014", result
        assert console_run(admin, "RESUME app") == "RESUME"
        assert w.execute("SELECT 1").fetchone()[0] == 1
        assert env.cluster.sql("SELECT count(*) FROM cancel_paused", db="app") == "0"
    finally:
        admin.close()
        w.close()


def keepalive_timers(pid):
    """{(local port, remote port): timer kind} of the process's TCP sockets, from /proc/net/tcp (2 = keepalive)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    timers = {}
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[9] in inodes and f[3] == "01":  # ESTABLISHED
            timers[(int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16))] = int(f[5].split(":")[0])
    return timers


def test_client_and_server_sockets_keep_tcp_keepalive_on(env):
    # A peer that vanished without a FIN (host powered off) is only ever found by keepalive: an idle
    # established socket with SO_KEEPALIVE has the kernel's keepalive timer running.
    pgw = env.start(pool={"mode": "session", "default_size": 1})
    c = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        c.execute("SELECT 1")

        def both_keepalive():  # once idle: right after a write the retransmission timer shows instead
            timers = keepalive_timers(pgw.proc.pid)
            client_side = [t for (local, _), t in timers.items() if local == pgw.port]
            server_side = [t for (_, remote), t in timers.items() if remote == env.cluster.port]
            return client_side == [2] and server_side == [2]

        wait_until(both_keepalive, 5, "keepalive timers on the client and the server socket")
    finally:
        c.close()


def test_killed_client_mid_transaction_leaves_nothing_behind(env, tmp_path):
    fresh_table(env.cluster, "killed_tx")
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    script = tmp_path / "kill.sql"
    script.write_text("BEGIN;\nINSERT INTO killed_tx VALUES (42);\nSELECT pg_sleep(60);\n")
    p = subprocess.Popen(["psql", "-X", "-f", str(script), env.via(pgw)], env=dict(os.environ, PGPASSWORD="alice-pw"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: env.cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'")
               == "1", what="the sleeping transaction")
    p.kill()
    p.wait(10)
    # The server connection was mid-query: pgwarden closes it (PostgreSQL rolls back), or rolls back and reuses it.
    c = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    assert c.execute("SELECT now() = statement_timestamp()").fetchone()[0] is True
    c.close()
    wait_until(lambda: env.cluster.sql("SELECT count(*) FROM killed_tx", db="app") == "0", what="rollback")
    assert env.cluster.sql("SELECT count(*) FROM killed_tx", db="app") == "0"


def test_client_gone_idle_in_transaction_gets_rollback_and_connection_reused(env):
    fresh_table(env.cluster, "gone_tx")
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    c = psycopg.connect(env.via(pgw), password="alice-pw")
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    c.execute("INSERT INTO gone_tx VALUES (1)")
    c.pgconn.finish()  # abrupt: no COMMIT, no ROLLBACK
    d = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    assert d.execute("SELECT pg_backend_pid()").fetchone()[0] == pid, "rolled back and reused"
    assert d.execute("SELECT count(*) FROM gone_tx").fetchone()[0] == 0
    d.close()


def test_late_cancel_does_not_hit_the_next_clients_query(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    a = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    b = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    try:
        for _ in range(20):
            a.execute("SELECT 1")  # finished: a holds no server connection now
            result = {}

            def slow():
                try:
                    b.execute("SELECT pg_sleep(0.3)")
                    result["ok"] = True
                except psycopg.Error as exc:
                    result["error"] = exc

            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.1)
            a.cancel()  # a's key: must not reach b's query on the shared server connection
            t.join(10)
            assert result.get("ok"), result
    finally:
        a.close()
        b.close()


def test_cancel_reaches_the_query_of_its_client(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 2})
    a = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    result = {}

    def slow():
        try:
            a.execute("SELECT pg_sleep(30)")
        except psycopg.Error as exc:
            result["sqlstate"] = exc.sqlstate

    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: env.cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")
               == "1", what="the query to run")
    a.cancel()
    t.join(10)
    assert result.get("sqlstate") == "57014"
    a.close()


def test_server_connection_that_dies_gives_08006_and_pool_refills(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 1})
    c = psycopg.connect(env.via(pgw), password="alice-pw")
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    env.cluster.sql(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(psycopg.OperationalError):
        c.execute("SELECT 1")
    c.close()
    env.assert_serves(pgw)


def test_idle_connection_closed_by_the_server_is_replaced_after_server_check_delay(env):
    # The connection dies while idle in the pool; once it has sat there for server_check_delay the check before
    # reuse sees the server's FATAL and EOF, and the client never notices.
    pgw = env.start(pool={"mode": "transaction", "default_size": 1, "server_check_delay": "200ms"})
    c = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    env.cluster.sql(f"SELECT pg_terminate_backend({pid})")
    wait_until(lambda: env.cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}") == "0",
               what="the backend to exit")
    time.sleep(0.3)  # longer than server_check_delay: the connection is checked before reuse
    new_pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert new_pid != pid
    c.close()


def test_unreachable_server_errors_within_connect_timeout_then_recovers(env, certs, workdir):
    pg = harness.PostgresCluster(workdir / "pg-restart", certs)
    try:
        pg.sql("CREATE ROLE alice LOGIN PASSWORD 'alice-pw'")
        pg.sql("CREATE DATABASE app OWNER alice")
        # server_check_delay 0: the idle connections the stopped server closed are noticed, not handed out.
        pgw = env.start(pool={"mode": "transaction", "default_size": 2, "server_connect_timeout": "2s",
                              "server_check_delay": "0s"},
                        database=[{"name": "app", "host": "localhost", "port": pg.port}])
        env.assert_serves(pgw)
        pg.stop("fast")
        start = time.monotonic()
        r = psql(env.via(pgw), "SELECT 1", password="alice-pw", timeout=30)
        assert r.returncode != 0 and "could not" in r.stderr, r.stderr
        assert time.monotonic() - start < 8
        pg.start()
        env.assert_serves(pgw)
    finally:
        pg.stop("immediate")


def test_connect_timeout_against_a_server_that_never_answers(env):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts TCP but never says a word
    try:
        pgw = env.start(pool={"mode": "transaction", "server_connect_timeout": "1s"},
                        database=[{"name": "app", "host": "127.0.0.1", "port": silent.getsockname()[1]}])
        start = time.monotonic()
        r = psql(env.via(pgw), "SELECT 1", password="alice-pw", timeout=30)
        assert r.returncode != 0
        assert "08006" in r.stderr or "could not log in" in r.stderr
        assert time.monotonic() - start < 6
    finally:
        silent.close()


def test_postgres_restart_mid_load_errors_not_hangs_then_heals(env, certs, workdir):
    pg = harness.PostgresCluster(workdir / "pg-midload", certs)
    try:
        pg.sql("CREATE ROLE alice LOGIN PASSWORD 'alice-pw'")
        pg.sql("CREATE DATABASE bench OWNER alice")
        assert harness.run(["pgbench", "-i", "-q", "-h", str(pg.socket_dir), "-p", str(pg.port), "-U", "alice",
                            "bench"]).returncode == 0
        pgw = env.start(pool={"mode": "transaction", "default_size": 4, "server_connect_timeout": "3s"},
                        database=[{"name": "bench", "host": "localhost", "port": pg.port}])
        e = dict(os.environ, PGPASSWORD="alice-pw")
        load = subprocess.Popen(["pgbench", "-n", "-c", "8", "-j", "2", "-T", "8", env.via(pgw, dbname="bench")],
                                env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        pg.restart()
        out, err = load.communicate(timeout=60)  # ends: clients got errors, nobody hung
        assert load.returncode is not None
        r = pgbench(pgw, env, "-c", "4", "-j", "2", "-t", "50")
        assert r.returncode == 0 and "number of failed transactions: 0" in r.stdout, r.stderr
        del out, err
    finally:
        pg.stop("immediate")


def test_shutdown_timeout_ends_a_session_whose_client_stopped_reading(env):
    # The server side is blocked writing a large result to a client that reads nothing, so the drain never finds
    # an idle point: shutdown_timeout must stop both sides of the relay (the blocked write included) and exit.
    pgw = env.start(pool={"mode": "transaction", "default_size": 2}, proxy={"workers": 2, "shutdown_timeout": "2s"})
    w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    try:
        assert harness.scram_login(w, "alice", "alice-pw")[-1][0] == b"Z"
        w.send(harness.message(b"Q", b"SELECT repeat('x', 1000) FROM generate_series(1, 200000)\0"))
        time.sleep(1.5)  # far more than the socket buffers hold: the relay now waits on the client's socket
        started = time.monotonic()
        pgw.signal(signal.SIGTERM)
        pgw.proc.wait(20)
        assert time.monotonic() - started < 8
        assert "shutdown_timeout passed: closing 1 remaining clients" in pgw.log()
        # The session ended by itself, not by the exit 10 s later that bounds a stuck cleanup.
        assert "still cleaning up" not in pgw.log()
    finally:
        w.close()


def test_sigterm_in_transaction_mode_lets_transactions_finish(env):
    pgw = env.start(pool={"mode": "transaction", "default_size": 2}, proxy={"workers": 2, "shutdown_timeout": "20s"})
    busy = psycopg.connect(env.via(pgw), password="alice-pw")
    busy.execute("SELECT 1")
    idle = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    pgw.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert busy.execute("SELECT 2").fetchone()[0] == 2
    busy.commit()
    for c in (busy, idle):
        with pytest.raises(psycopg.OperationalError):
            c.execute("SELECT 1")
    pgw.proc.wait(20)
    assert pgw.proc.returncode == 0
