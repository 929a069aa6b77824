"""Client libraries through pgwarden in transaction mode: prepared statements and settings stay each client's own."""
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest

import conftest
import harness

CLIENTS = Path(__file__).resolve().parent / "clients"
PASSWORD = conftest.PASSWORDS["alice"]
JDBC_JAR = Path("/usr/share/java/postgresql.jar")

# Every client below shares a pool smaller than the number of clients, so statements of different clients that
# carry the same name (and mean different SQL) meet on the same server connections.
POOL_SIZE = 2
N_CLIENTS = 8

# What pgwarden's server connections have prepared at protocol level (SQL PREPARE is from_sql).
SERVER_STATEMENTS = "SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql"


def start_transaction_pool(env, size=POOL_SIZE, **overrides):
    return env.start(pool={"mode": "transaction", "default_size": size}, log={"level": "debug"}, **overrides)


def check_server_statements(rows, own_texts, who):
    """rows from SERVER_STATEMENTS, read inside one of the client's transactions (so on the server connection that
    ran its statements): each of the client's statement texts is prepared there under pgwarden's own name, and no
    statement is known there by a client's name."""
    by_text = {}
    for name, text in rows:
        assert name.startswith("pgw_"), f"{who}: server connection holds a statement under a client's name {name!r}"
        by_text.setdefault(text, []).append(name)
    for text in own_texts:
        assert text in by_text, f"{who}: {text!r} is not a named statement on the server connection: {rows}"


def check_pool_shared(pids_by_client, size=POOL_SIZE):
    """The clients ran on at most `size` server connections, so several of them used the same ones."""
    all_pids = set().union(*pids_by_client.values())
    assert 1 <= len(all_pids) <= size, f"{len(all_pids)} server backends for a pool of {size}: {pids_by_client}"
    sharing = {pid: sorted(c for c, pids in pids_by_client.items() if pid in pids) for pid in all_pids}
    assert any(len(clients) > 1 for clients in sharing.values()), f"no backend served two clients: {sharing}"


def run_clients(n, worker, timeout=120):
    """Runs worker(i, sync) in n threads; sync() is a barrier all clients pass together (never inside a
    transaction: the pool is smaller than n). Returns the workers' results; the first failure fails the test."""
    barrier = threading.Barrier(n, timeout=60)
    results, failures = [None] * n, []

    def body(i):
        try:
            results[i] = worker(i, barrier.wait)
        except threading.BrokenBarrierError:
            failures.append((i, None))
        except BaseException:  # noqa: BLE001 - reported below with its traceback
            failures.append((i, traceback.format_exc()))
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "clients still running after the time limit"
    real = [f"client {i}:\n{tb}" for i, tb in failures if tb is not None]
    assert not real and not failures, "\n".join(real) or f"barrier broken: {failures}"
    return results


def subprocess_env(**extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    e.update({k: str(v) for k, v in extra.items()})
    return e


def failure_report(what, r, pgw):
    return (f"{what} exited {r.returncode}\n--- stdout ---\n{r.stdout[-6000:]}\n--- stderr ---\n{r.stderr[-6000:]}"
            f"\n--- pgwarden log tail ---\n{pgw.log()[-4000:]}")


# ---------------------------------------------------------------------------------------------------------------
# psycopg 3


def test_psycopg3_explicit_prepares_same_names_different_sql(env):
    """psycopg 3 names its statements _pg3_0, _pg3_1, ... per connection: every client here prepares _pg3_0 and
    _pg3_1 with its own SQL and runs them in many transactions (and alone, in autocommit) on a pool of 2."""
    import psycopg

    pgw = start_transaction_pool(env)
    rounds = 100

    def worker(i, sync):
        q1 = f"SELECT {i} AS client, %s::int AS n, pg_backend_pid()"
        q2 = f"SELECT %s::text || '-{i}'"
        server_texts = [f"SELECT {i} AS client, $1::int AS n, pg_backend_pid()", f"SELECT $1::text || '-{i}'"]
        pids = set()
        with psycopg.connect(env.via(pgw), password=PASSWORD, autocommit=True, connect_timeout=10) as conn:
            sync()
            for r in range(rounds):
                if r % 2 == 0:
                    with conn.transaction():
                        client, n, pid = conn.execute(q1, [r], prepare=True).fetchone()
                        (s,) = conn.execute(q2, [str(r)], prepare=True).fetchone()
                        rows = conn.execute(SERVER_STATEMENTS, prepare=False).fetchall()
                    check_server_statements(rows, server_texts, f"client {i} round {r}")
                else:
                    # Each statement on its own: the server connection may change between the two.
                    client, n, pid = conn.execute(q1, [r], prepare=True).fetchone()
                    (s,) = conn.execute(q2, [str(r)], prepare=True).fetchone()
                assert (client, n, s) == (i, r, f"{r}-{i}"), f"client {i} round {r} got another client's answer"
                pids.add(pid)
                sync()
            # The names really are the same in every client (psycopg's own bookkeeping, where it exposes it).
            names = getattr(getattr(conn, "_prepared", None), "_names", None)
            if names is not None:
                assert sorted(names.values()) == [b"_pg3_0", b"_pg3_1"], names
        return pids

    pids = run_clients(N_CLIENTS, worker)
    check_pool_shared(dict(enumerate(pids)))


def test_psycopg3_automatic_prepare_past_threshold(env):
    """No prepare=True: psycopg 3 prepares a query itself once it has run prepare_threshold times. Before that the
    query is not a named statement on the server; after it, it is (under pgwarden's name), on whichever server
    connection the transaction got, and every answer is still the client's own."""
    import psycopg

    pgw = start_transaction_pool(env)
    threshold, rounds = 3, 100

    def worker(i, sync):
        q = f"SELECT {i} AS client, %s::int AS n, pg_backend_pid()"
        server_text = f"SELECT {i} AS client, $1::int AS n, pg_backend_pid()"
        pids, executions = set(), 0
        with psycopg.connect(env.via(pgw), password=PASSWORD, autocommit=True, connect_timeout=10) as conn:
            conn.prepare_threshold = threshold
            sync()
            for r in range(rounds):
                with conn.transaction():
                    client, n, pid = conn.execute(q, [r]).fetchone()
                    rows = conn.execute(SERVER_STATEMENTS, prepare=False).fetchall()
                assert (client, n) == (i, r), f"client {i} round {r} got {(client, n)}"
                pids.add(pid)
                texts = {text for _, text in rows}
                if executions < threshold:
                    assert server_text not in texts, f"client {i}: prepared before the threshold (round {r})"
                else:
                    check_server_statements(rows, [server_text], f"client {i} round {r}")
                # And alone, outside a transaction block.
                client, n, pid = conn.execute(q, [r]).fetchone()
                assert (client, n) == (i, r)
                pids.add(pid)
                executions += 2
                sync()
            assert executions > threshold
        return pids

    pids = run_clients(N_CLIENTS, worker)
    check_pool_shared(dict(enumerate(pids)))


def test_psycopg3_statement_cache_eviction_deallocates(env):
    """psycopg 3.1 (or any psycopg 3 with libpq before 17) keeps at most prepared_max statements per connection and
    evicts the oldest with the SQL command DEALLOCATE <name>. Through pgwarden that must work as on PostgreSQL,
    with a second client's statements of the same names (other SQL) on the same server connection unharmed."""
    import psycopg

    pgw = start_transaction_pool(env, size=1)
    with psycopg.connect(env.via(pgw), password=PASSWORD, autocommit=True, prepare_threshold=0,
                         connect_timeout=10) as a, \
            psycopg.connect(env.via(pgw), password=PASSWORD, autocommit=True, prepare_threshold=0,
                            connect_timeout=10) as b:
        a.prepared_max = 2  # a third distinct query evicts the oldest: DEALLOCATE _pg3_0, and so on
        for r in range(10):
            for k in range(4):
                assert a.execute(f"SELECT {k} + %s::int", [r]).fetchone()[0] == k + r
                assert b.execute(f"SELECT {k} + %s::int + 100", [r]).fetchone()[0] == k + r + 100
        # Evictions really happened: psycopg holds no more than prepared_max names (where it exposes them).
        names = getattr(getattr(a, "_prepared", None), "_names", None)
        assert names is None or len(names) <= 2, names


def test_psycopg3_deallocate_all_after_drop(env):
    """After a DROP, psycopg 3 forgets its statements and sends DEALLOCATE ALL; it then prepares its queries again
    under new names (_pg3_2, ...). On PostgreSQL the connection then holds only the new statements. Through
    pgwarden, with clients sharing a pool of 2, the statements DEALLOCATE ALL removed from a server connection
    (other clients' too) come back when needed, and the client's own old names are gone, so a client that drops
    things now and then never reaches max_client_prepared_statements (set low here to see it quickly)."""
    import psycopg

    pgw = env.start(pool={"mode": "transaction", "default_size": POOL_SIZE, "max_client_prepared_statements": 6},
                    log={"level": "debug"})
    n_clients, rounds = 4, 40

    def worker(i, sync):
        pids = set()
        with psycopg.connect(env.via(pgw), password=PASSWORD, autocommit=True, prepare_threshold=0,
                             connect_timeout=10) as conn:
            sync()
            for r in range(rounds):
                with conn.transaction():
                    client, n, pid = conn.execute(f"SELECT {i} AS client, %s::int, pg_backend_pid()", [r]).fetchone()
                    (s,) = conn.execute(f"SELECT %s::text || '-{i}'", [str(r)]).fetchone()
                assert (client, n, s) == (i, r, f"{r}-{i}"), f"client {i} round {r}"
                pids.add(pid)
                if r % 4 == 3:
                    # Status "DROP TABLE": psycopg sends DEALLOCATE ALL before its next query.
                    conn.execute(f"DROP TABLE IF EXISTS no_such_table_{i}")
                sync()
        return pids

    pids = run_clients(n_clients, worker)
    check_pool_shared(dict(enumerate(pids)))


def test_libpq_reprepare_same_name_after_deallocate_all(env):
    """libpq (through psycopg 3's pgconn): after DEALLOCATE ALL or DISCARD ALL a name can be prepared again, with
    new SQL, as PostgreSQL allows; the new statement is the one that runs."""
    import psycopg
    from psycopg import pq

    pgw = start_transaction_pool(env, size=1)
    with psycopg.connect(env.via(pgw), password=PASSWORD, autocommit=True, connect_timeout=10) as conn:
        pg = conn.pgconn
        before = "nothing"
        for value, reset in ((1, b"DEALLOCATE ALL"), (2, b"DISCARD ALL"), (3, None)):
            r = pg.prepare(b"q", f"SELECT {value}".encode())
            assert r.status == pq.ExecStatus.COMMAND_OK, \
                f"preparing 'q' as SELECT {value} (after {before}) failed: {r.error_message.decode().strip()}"
            r = pg.exec_prepared(b"q", [])
            assert r.status == pq.ExecStatus.TUPLES_OK, r.error_message
            assert r.get_value(0, 0) == str(value).encode(), f"prepared 'SELECT {value}', got {r.get_value(0, 0)}"
            if reset:
                r = pg.exec_(reset)
                assert r.status == pq.ExecStatus.COMMAND_OK, r.error_message
                before = reset.decode()


# ---------------------------------------------------------------------------------------------------------------
# psycopg2


def test_psycopg2_settings_isolated_on_a_pool_of_one(env, cluster):
    """psycopg2 has no server-side prepared statements; what it relies on is session state. Four connections
    share one server connection: two set their own TimeZone (session level), two never do; between them, in
    many interleaved transactions, SET LOCAL changes things for one transaction only. Each always sees its own
    zone, in SHOW, in the ParameterStatus libpq tracks, and in the arithmetic PostgreSQL does with it."""
    import psycopg2

    default_tz = cluster.sql("SHOW TimeZone")
    pgw = start_transaction_pool(env, size=1)
    # Connected in this order: "late" logs in after the others have set their zones on the one server connection,
    # and must still get the server's default, as "early" does.
    zones = {"early": default_tz, "tokyo": "Asia/Tokyo", "newyork": "America/New_York", "late": default_tz}
    # 2024-01-15 12:00 UTC as local time in each zone (no daylight saving in January at either place).
    local_noon = {"Asia/Tokyo": "2024-01-15 21:00:00", "America/New_York": "2024-01-15 07:00:00",
                  "Europe/Lisbon": "2024-01-15 12:00:00"}
    local_noon[default_tz] = cluster.sql("SELECT (TIMESTAMPTZ '2024-01-15 12:00:00+00')::timestamp::text")

    conns = {}
    try:
        for name, zone in zones.items():
            c = psycopg2.connect(env.via(pgw), password=PASSWORD, connect_timeout=10)
            c.autocommit = True
            assert c.get_parameter_status("TimeZone") == default_tz, \
                f"{name} was told TimeZone={c.get_parameter_status('TimeZone')} at login, not the server's {default_tz}"
            if zone != default_tz:
                with c.cursor() as cur:
                    cur.execute(f"SET TIME ZONE '{zone}'")
            c.autocommit = False
            conns[name] = c
        pids = set()
        for r in range(60):
            for name, c in conns.items():
                zone = zones[name]
                with c.cursor() as cur:  # psycopg2 opens the transaction with BEGIN at the first statement
                    cur.execute("SELECT current_setting('TimeZone'), "
                                "(TIMESTAMPTZ '2024-01-15 12:00:00+00')::timestamp::text, "
                                "current_setting('pgw.owner', true), pg_backend_pid()")
                    tz, local, owner, pid = cur.fetchone()
                    assert (tz, local) == (zone, local_noon[zone]), f"{name} round {r}: sees {tz} ({local})"
                    assert owner in (None, ""), f"{name} round {r}: sees another transaction's pgw.owner={owner}"
                    pids.add(pid)
                    if r % 3 == 0:
                        cur.execute("SET LOCAL TIME ZONE 'Europe/Lisbon'")
                        cur.execute(f"SET LOCAL pgw.owner = '{name}'")
                        cur.execute("SELECT current_setting('TimeZone'), "
                                    "(TIMESTAMPTZ '2024-01-15 12:00:00+00')::timestamp::text, "
                                    "current_setting('pgw.owner')")
                        assert cur.fetchone() == ("Europe/Lisbon", local_noon["Europe/Lisbon"], name)
                if r % 3 == 0 and r % 2 == 0:
                    c.rollback()
                else:
                    c.commit()
                assert c.get_parameter_status("TimeZone") == zone, f"{name} round {r}: libpq tracks " \
                                                                    f"{c.get_parameter_status('TimeZone')}"
        assert len(pids) == 1, f"a pool of one used {len(pids)} server backends"
        # Back in autocommit, each connection still has its own zone.
        for name, c in conns.items():
            c.autocommit = True
            with c.cursor() as cur:
                cur.execute("SHOW TimeZone")
                assert cur.fetchone()[0] == zones[name]
    finally:
        for c in conns.values():
            c.close()


# ---------------------------------------------------------------------------------------------------------------
# asyncpg


def test_asyncpg_prepared_and_cached_statements(env):
    """asyncpg, one process per application (its statement names come from a per-process counter, so every process
    uses __asyncpg_stmt_1__, __asyncpg_stmt_2__ and the explicit name 'q', each for its own SQL): prepare() reused,
    and plain fetchrow() through asyncpg's automatic statement cache, inside transactions and alone, on a pool of 2.
    This is the combination asyncpg's documentation says breaks behind a transaction pooler."""
    import asyncpg  # noqa: F401 - the library must be installed: a missing one fails here, never skips

    pgw = start_transaction_pool(env)
    script = CLIENTS / "asyncpg_client.py"
    rounds = 100
    procs = []
    try:
        for i in range(N_CLIENTS):
            procs.append(subprocess.Popen(
                [sys.executable, str(script), str(i), str(pgw.port), str(env.certs.ca_crt), str(rounds)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=subprocess_env(PGW_PASSWORD=PASSWORD)))
        # Every process has connected and prepared before any starts its rounds, so they run together.
        for i, p in enumerate(procs):
            ready, _, _ = select.select([p.stdout], [], [], 60)
            line = p.stdout.readline() if ready else ""
            if line.strip() != "ready":
                p.kill()
                out, err = p.communicate(timeout=30)
                pytest.fail(f"asyncpg client {i} did not get ready: {line!r}{out}\n{err}\n{pgw.log()[-4000:]}")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = []
        for i, p in enumerate(procs):
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, f"asyncpg client {i} exited {p.returncode}\n{out}\n{err}\n{pgw.log()[-4000:]}"
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    for i, o in enumerate(outputs):
        assert o["names"] == ["q", "__asyncpg_stmt_1__"], f"client {i} used other statement names: {o['names']}"
    check_pool_shared({i: set(o["pids"]) for i, o in enumerate(outputs)})


# ---------------------------------------------------------------------------------------------------------------
# pgjdbc


def test_pgjdbc_server_prepared_statements(env, tmp_path):
    """pgjdbc with prepareThreshold=1: every connection names its server-prepared statements S_1, S_2, ...; 8
    threads, each with its own SQL behind those names, run them in many transactions on a pool of 2."""
    assert JDBC_JAR.exists(), f"{JDBC_JAR} is missing (Debian package libpostgresql-jdbc-java)"
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "javac/java are missing (Debian package default-jdk-headless)"
    pgw = start_transaction_pool(env)
    classes = tmp_path / "classes"
    classes.mkdir()
    r = harness.run([javac, "-d", str(classes), "-cp", str(JDBC_JAR), str(CLIENTS / "jdbc" / "PoolTest.java")],
                    timeout=120)
    assert r.returncode == 0, f"javac failed:\n{r.stdout}\n{r.stderr}"
    url = (f"jdbc:postgresql://localhost:{pgw.port}/app?sslmode=verify-full&sslrootcert={env.certs.ca_crt}"
           f"&prepareThreshold=1&connectTimeout=10&socketTimeout=60&ApplicationName=pgwarden-jdbc")
    r = harness.run([java, "-cp", f"{classes}:{JDBC_JAR}", "PoolTest", url, "alice", str(N_CLIENTS), "100"],
                    timeout=150, env=subprocess_env(PGW_PASSWORD=PASSWORD))
    assert r.returncode == 0, failure_report("the JDBC client", r, pgw)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    check_pool_shared({int(k): set(v) for k, v in result["pids"].items()})


# ---------------------------------------------------------------------------------------------------------------
# node-postgres


def test_node_postgres_named_queries(env):
    """node-postgres: 8 Clients all use the query names 'q' and 'r', each for its own SQL, in transactions and
    alone; then a pg.Pool of 10 connections runs one named query 400 times at once. All on a pool of 2."""
    node = shutil.which("node")
    assert node, "node is missing"
    pgw = start_transaction_pool(env)
    node_path = os.pathsep.join(p for p in (str(CLIENTS / "node" / "node_modules"), "/usr/share/nodejs",
                                            "/usr/lib/nodejs") if os.path.isdir(p))
    r = harness.run([node, str(CLIENTS / "node" / "pool_test.js")], timeout=150,
                    env=subprocess_env(PGW_PORT=pgw.port, PGW_CA=env.certs.ca_crt, PGW_PASSWORD=PASSWORD,
                                       CLIENTS=N_CLIENTS, ROUNDS=100, NODE_PATH=node_path))
    assert r.returncode == 0, failure_report("the node-postgres client", r, pgw)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    check_pool_shared({int(k): set(v) for k, v in result["pids"].items()})
    assert len(set(result["pool_pids"])) <= POOL_SIZE, result["pool_pids"]


# ---------------------------------------------------------------------------------------------------------------
# Django


@pytest.mark.timeout(300)
def test_django_test_runner(env, cluster):
    """Django 3.2's own test runner against a database behind pgwarden (transaction mode, pool of 2), configured
    as JupyterHealth Exchange is: sslmode verify-full, DISABLE_SERVER_SIDE_CURSORS, CONN_MAX_AGE. Its test
    database test_app exists beforehand (keepdb), as pgwarden serves only the databases it is configured for."""
    import django

    assert django.VERSION[:2] >= (3, 2), django.VERSION
    cluster.sql("DROP DATABASE IF EXISTS test_app")
    cluster.sql("CREATE DATABASE test_app OWNER alice")
    cluster.sql("GRANT ALL ON SCHEMA public TO PUBLIC", db="test_app")
    pgw = start_transaction_pool(env, database=[
        {"name": "app", "host": "localhost", "port": cluster.port},
        {"name": "test_app", "host": "localhost", "port": cluster.port},
    ])
    project = CLIENTS / "django"
    r = harness.run([sys.executable, "manage.py", "test", "notes", "--keepdb", "--noinput", "-v", "2"],
                    cwd=project, timeout=240,
                    env=subprocess_env(PGW_PORT=pgw.port, PGW_CA=env.certs.ca_crt, PGW_PASSWORD=PASSWORD,
                                       PYTHONDONTWRITEBYTECODE=1))
    output = r.stdout + r.stderr
    assert r.returncode == 0, failure_report("Django's test runner", r, pgw)
    # The runner really ran the project's tests against test_app through pgwarden (not zero tests, not elsewhere).
    assert "Ran 4 tests" in output and "\nOK" in output, output[-4000:]
    assert "Using existing test database for alias 'default'" in output, output[-4000:]
    assert cluster.sql("SELECT count(*) FROM django_migrations WHERE app = 'notes'", db="test_app") == "1"
