"""The audit log end to end: pgwarden in front of a PostgreSQL 15 that logs with log_statement = 'mod' itself, so
every statement PostgreSQL logged can be looked up in pgwarden's records; outcomes, rows, events, parameters,
fsync = "every" under kill -9, on_failure, and `pgwarden audit verify` across a restart."""
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness
from harness import (SYNC_MESSAGE as SYNC, bind_message as bind, close_message, execute_message as execute,
                     parse_message as parse, query_message as query)
from conftest import Env

MARK = "pgw_audit_end"


@pytest.fixture(scope="module")
def logging_cluster(certs):
    d = harness.new_tempdir("pgw-audit-")
    conf = harness.STATEMENT_LOG_CONF
    hba = ["local all all trust", "hostssl all all 127.0.0.1/32 scram-sha-256"]
    pg = harness.PostgresCluster(d / "pg", certs, hba=hba, extra_conf=conf)
    pg.sql("SET log_statement = 'none'; CREATE ROLE alice LOGIN PASSWORD 'alice-pw'")
    pg.sql("SET log_statement = 'none'; CREATE ROLE bob LOGIN PASSWORD 'bob-pw'")
    pg.sql("CREATE DATABASE app OWNER alice")
    yield pg
    pg.stop("immediate")
    harness.remove_tempdir(d)


@pytest.fixture
def aenv(tmp_path, certs, logging_cluster):
    os.chmod(tmp_path, 0o755)
    e = Env(tmp_path, certs, logging_cluster)
    yield e
    for p in e.instances:
        p.stop()


def start(aenv, name="pgw", audit=None, pool=None, **overrides):
    a = {"path": str(aenv.tmp / "audit" / "audit.jsonl"), "instance": "test-1"}
    a.update(audit or {})
    (aenv.tmp / "audit").mkdir(exist_ok=True)
    return aenv.start(name=name, audit=a, pool=pool or {"mode": "transaction", "default_size": 2}, **overrides)


def records(path, timeout=10.0, until=None):
    """Every chained record of the log (and its rotated files), once `until` holds (the writer is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        out = []
        files = sorted(path.parent.glob(path.name + "*"), key=lambda p: (len(p.name), p.name), reverse=True)
        for f in files:
            for line in f.read_text(errors="replace").splitlines():
                if line.strip():
                    out.append(json.loads(line))
        if until is None or until(out) or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def statements_of(recs):
    return [r for r in recs if r["event"] == "statement"]


def pg_logged(pg, app):
    """Statements PostgreSQL itself logged for sessions with this application_name, after a marker."""
    pg.sql(f"CREATE TEMP TABLE {MARK} ()", db="app")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out, done = [], False
        for f in sorted((pg.data / "log").glob("*.json")):
            for text in f.read_text(errors="replace").splitlines():
                if not text.strip():
                    continue
                r = json.loads(text)
                msg = r.get("message", "")
                if MARK in msg:
                    done = True
                elif r.get("application_name") == app and msg.startswith("statement: "):
                    out.append(msg[len("statement: "):])
        if done:
            return out
        time.sleep(0.05)
    raise AssertionError("PostgreSQL's log never showed the end marker")


def norm(sql):
    return re.sub(r"\s+", " ", sql.strip().rstrip(";").strip())


SCRIPT = r"""
CREATE TABLE patients (id int PRIMARY KEY, name text, note text);
INSERT INTO patients VALUES (1, 'ada', 'x'), (2, 'bob', 'y');
SELECT * FROM patients ORDER BY id;
UPDATE patients SET note = 'z' WHERE id = 1;
BEGIN;
INSERT INTO patients VALUES (3, 'cyd', 'in a committed transaction');
SELECT count(*) FROM patients;
COMMIT;
BEGIN;
DELETE FROM patients WHERE id = 2;
ROLLBACK;
INSERT INTO patients VALUES (1, 'dup', 'fails with 23505');
COPY patients FROM STDIN;
10	copied	row
11	copied	row
\.
COPY patients TO STDOUT;
WITH w AS (DELETE FROM patients WHERE id = 11 RETURNING id) SELECT count(*) FROM w;
PREPARE ins(int) AS INSERT INTO patients VALUES ($1, 'prepared', 'p');
EXECUTE ins(20);
CREATE INDEX patients_name ON patients (name);
ALTER TABLE patients ADD COLUMN mrn text;
GRANT SELECT ON patients TO bob;
CREATE TABLE scratch AS SELECT * FROM patients;
TRUNCATE scratch;
DROP TABLE scratch;
SELECT 1 + 1;
SHOW TimeZone;
"""
READ_ONLY = ["SELECT * FROM patients ORDER BY id", "SELECT count(*) FROM patients", "COPY patients TO STDOUT",
             "SELECT 1 + 1", "SHOW TimeZone", "BEGIN", "COMMIT", "ROLLBACK"]


def test_every_statement_postgres_logs_is_audited_and_no_read(aenv, logging_cluster):
    pgw = start(aenv)
    script = aenv.tmp / "script.sql"
    script.write_text(SCRIPT)
    r = harness.psql(aenv.via(pgw, application_name="auditscript"), None, password="alice-pw",
                     extra_args=["-v", "ON_ERROR_STOP=0", "-f", str(script)])
    assert "duplicate key" in r.stderr, r.stderr
    # Several statements in one Query: PostgreSQL logs the string once, pgwarden each modifying statement.
    r = harness.psql(aenv.via(pgw, application_name="auditscript"),
                     "SELECT 5; INSERT INTO patients VALUES (30, 'multi', 'm'); SELECT 6", password="alice-pw")
    assert r.returncode == 0, r.stderr
    logged = pg_logged(logging_cluster, "auditscript")
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: any("VALUES (30" in (s.get("statement") or "") for s in rs))
    ours = statements_of(recs)
    texts = [norm(s["statement"]) for s in ours]
    assert len(logged) >= 16, logged
    for text in logged:
        # A multi-statement string is logged whole by PostgreSQL: each modifying part is a record of ours.
        assert any(t in norm(text) for t in texts), f"PostgreSQL logged {text!r}, pgwarden did not"
    for t in texts:
        assert t not in [norm(x) for x in READ_ONLY], f"read-only statement audited: {t}"
    assert all(s["class"] in ("mod", "ddl") for s in ours)
    # The SPEC's superset: a data-modifying WITH under SELECT, which PostgreSQL does not log.
    assert any(t.startswith("WITH w AS (DELETE") for t in texts)
    assert not any("WITH w AS (DELETE" in norm(x) for x in logged)

    by_text = {norm(s["statement"]): s for s in ours}
    ins = by_text["INSERT INTO patients VALUES (1, 'ada', 'x'), (2, 'bob', 'y')"]
    assert (ins["outcome"], ins["tag"], ins["rows"], ins["command"], ins["objects"]) == \
        ("ok", "INSERT 0 2", 2, "INSERT", ["patients"])
    assert ins["user"] == "alice" and ins["database"] == "app" and ins["application_name"] == "auditscript"
    assert ins["protocol"] == "simple" and ins["in_transaction"] is False and ins["sqlstate"] is None
    assert ins["tls"]["version"].startswith("TLSv1.") and ins["tls"]["client_cert"] is None
    assert ins["client_addr"] == "127.0.0.1" and isinstance(ins["client_port"], int)
    assert ins["server"].endswith(f":{logging_cluster.port}") and ins["backend_pid"] > 0
    assert ins["instance"] == "test-1" and ins["duration_us"] >= 0
    dup = by_text["INSERT INTO patients VALUES (1, 'dup', 'fails with 23505')"]
    assert (dup["outcome"], dup["sqlstate"], dup["rows"]) == ("error", "23505", None)
    copy = by_text["COPY patients FROM STDIN"]
    assert (copy["outcome"], copy["rows"], copy["class"]) == ("ok", 2, "mod")
    assert by_text["UPDATE patients SET note = 'z' WHERE id = 1"]["rows"] == 1
    assert by_text["EXECUTE ins(20)"]["class"] == "mod"
    assert by_text["CREATE TABLE scratch AS SELECT * FROM patients"]["class"] == "ddl"
    in_tx = by_text["INSERT INTO patients VALUES (3, 'cyd', 'in a committed transaction')"]
    deleted = by_text["DELETE FROM patients WHERE id = 2"]
    assert in_tx["in_transaction"] and deleted["in_transaction"] and deleted["rows"] == 1
    multi = by_text["INSERT INTO patients VALUES (30, 'multi', 'm')"]
    assert multi["in_transaction"] is True
    # COMMIT and ROLLBACK of transactions holding audited statements are events, so a rolled-back write never
    # looks committed; the multi-statement Query's implicit transaction too.
    tx = [(r["command"], r["session"]) for r in recs if r["event"] == "transaction"]
    assert [c for c, _ in tx] == ["COMMIT", "ROLLBACK", "COMMIT"], tx
    assert tx[0][1] == in_tx["session"] and tx[1][1] == deleted["session"]
    events = [r["event"] for r in recs]
    assert events.count("connect") == 2 and events.count("disconnect") == 2
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    pgw.stop()
    v = subprocess.run([str(harness.PGWARDEN), "audit", "verify", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr


def test_extended_protocol_writes_are_recorded_with_parameters_redacted(aenv, logging_cluster, tmp_path):
    logging_cluster.sql("DROP DATABASE IF EXISTS abench")
    logging_cluster.sql("CREATE DATABASE abench OWNER alice")
    r = harness.run(["pgbench", "-i", "-q", "-s", "1", "-h", str(logging_cluster.socket_dir), "-p",
                     str(logging_cluster.port), "-U", "alice", "abench"])
    assert r.returncode == 0, r.stderr
    dbs = [{"name": "app", "host": "localhost", "port": logging_cluster.port},
           {"name": "abench", "host": "localhost", "port": logging_cluster.port}]
    pgw = start(aenv, database=dbs)
    env = dict(os.environ, PGPASSWORD="alice-pw", PGSSLMODE="verify-full", PGSSLROOTCERT=str(aenv.certs.ca_crt))
    r = harness.run(["pgbench", "-n", "-M", "extended", "-c", "4", "-t", "25", "-h", "localhost", "-p",
                     str(pgw.port), "-U", "alice", "abench"], env=env, timeout=180)
    assert r.returncode == 0, r.stderr + r.stdout
    path = aenv.tmp / "audit" / "audit.jsonl"
    # Each transaction's COMMIT record comes after its INSERT's: wait for both.
    recs = records(path, until=lambda rs: sum(1 for x in rs if x.get("command") == "INSERT") >= 100 and
                   sum(1 for x in rs if x["event"] == "transaction" and x["command"] == "COMMIT") >= 100)
    ours = statements_of(recs)
    by_command = {}
    for s in ours:
        by_command.setdefault(s["command"], []).append(s)
    # TPC-B: three UPDATEs and an INSERT per transaction, 100 transactions, each inside BEGIN ... END.
    assert len(by_command.get("UPDATE", [])) == 300 and len(by_command.get("INSERT", [])) == 100, \
        {k: len(v) for k, v in by_command.items()}
    for s in ours:
        assert s["protocol"] == "extended" and s["params"] == "redacted" and s["outcome"] == "ok"
        assert "$1" in s["statement"] and s["in_transaction"] is True
    assert {o for s in by_command["UPDATE"] for o in s["objects"]} == \
        {"pgbench_accounts", "pgbench_tellers", "pgbench_branches"}
    assert sum(1 for x in recs if x["event"] == "transaction" and x["command"] == "COMMIT") == 100
    assert not any(s["command"] == "SELECT" for s in ours)


def test_parameters_logged_when_asked(aenv):
    pgw = start(aenv, audit={"parameters": "log"})
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(aenv.via(pgw), password="alice-pw", autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS params_t (a int, b text, c bytea)")
        c.execute("INSERT INTO params_t VALUES (%t, %t, %t)", (7, "seven", None))
        c.execute("INSERT INTO params_t VALUES (%b, %b, %b)", (8, "eight", b"\x01\x02"))
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: sum(1 for x in rs if x.get("command") == "INSERT") >= 2)
    ins = [s for s in statements_of(recs) if s["command"] == "INSERT"]
    assert ins[0]["params"] == ["7", "seven", None], ins[0]
    assert ins[1]["params"][2] == "\\x0102" and ins[1]["params"][1] == "\\x" + b"eight".hex(), ins[1]
    assert ins[1]["params"][0].startswith("\\x") and ins[1]["params"][0].endswith("08"), ins[1]


def test_login_events(aenv):
    pgw = start(aenv)
    assert harness.psql(aenv.via(pgw), "SELECT 1", password="wrong").returncode != 0
    assert harness.psql(aenv.via(pgw, dbname="nosuchdb"), "SELECT 1", password="alice-pw").returncode != 0
    assert harness.psql(aenv.via(pgw, sslmode="disable"), "SELECT 1", password="alice-pw").returncode != 0
    assert harness.psql(aenv.via(pgw), "SELECT 1", password="alice-pw").returncode == 0
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: any(r["event"] == "disconnect" for r in rs))
    failed = [r for r in recs if r["event"] == "auth_failed"]
    refused = [r for r in recs if r["event"] == "refused"]
    assert len(failed) == 1 and failed[0]["user"] == "alice" and failed[0]["sqlstate"] == "28P01"
    assert {r["sqlstate"] for r in refused} == {"3D000", "28000"}, refused
    assert [r["tls"] for r in refused if r["sqlstate"] == "28000"] == [None]
    connect = [r for r in recs if r["event"] == "connect"]
    assert len(connect) == 1 and connect[0]["client_addr"] == "127.0.0.1"


def test_threads_are_named_for_operators(aenv):
    # top -H, perf and /proc tell the workers and the audit writer apart.
    pgw = start(aenv, proxy={"workers": 2})
    assert harness.psql(aenv.via(pgw), "SELECT 1", password="alice-pw").returncode == 0
    names = sorted(Path(f"/proc/{pgw.proc.pid}/task/{t}/comm").read_text().strip()
                   for t in os.listdir(f"/proc/{pgw.proc.pid}/task"))
    # A thread a worker starts (Asio's resolver thread) inherits the worker's name.
    assert {n for n in names if n.startswith("pgw-")} == {"pgw-audit", "pgw-worker-0", "pgw-worker-1"}, names
    assert names.count("pgw-audit") == 1, names


def test_fsync_every_pending_then_outcome(aenv):
    pgw = start(aenv, audit={"fsync": "every"})
    r = harness.psql(aenv.via(pgw), "CREATE TABLE IF NOT EXISTS every_t (x int); INSERT INTO every_t VALUES (1)",
                     password="alice-pw")
    assert r.returncode == 0, r.stderr
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: sum(1 for x in rs if x["event"] == "outcome") >= 2)
    pending = [r for r in recs if r["event"] == "statement"]
    assert [p["outcome"] for p in pending] == ["pending", "pending"]
    outcomes = {o["ref"]: o for o in recs if o["event"] == "outcome"}
    for p in pending:
        assert outcomes[p["seq"]]["outcome"] == "ok" and outcomes[p["seq"]]["seq"] > p["seq"]
    assert outcomes[pending[1]["seq"]]["rows"] == 1


def test_kill_during_load_with_fsync_every_loses_no_committed_row(aenv, logging_cluster):
    logging_cluster.sql("DROP TABLE IF EXISTS killed; CREATE TABLE killed (v text); ALTER TABLE killed OWNER TO alice",
                        db="app")
    pgw = start(aenv, audit={"fsync": "every"})
    psycopg = pytest.importorskip("psycopg")
    stop = threading.Event()

    def writer(n):
        try:
            with psycopg.connect(aenv.via(pgw), password="alice-pw", autocommit=True) as c:
                for i in range(100000):
                    if stop.is_set():
                        return
                    c.execute(f"INSERT INTO killed VALUES ('w{n}-{i}')")
        except psycopg.Error:
            return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while int(logging_cluster.sql("SELECT count(*) FROM killed", db="app")) < 300:
        assert time.monotonic() < deadline, "no load reached the server"
        time.sleep(0.05)
    pgw.proc.send_signal(signal.SIGKILL)
    pgw.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    rows = logging_cluster.sql("SELECT v FROM killed", db="app").split()
    path = aenv.tmp / "audit" / "audit.jsonl"
    audited = set()
    for r in statements_of(records(path)):
        m = re.search(r"'(w\d+-\d+)'", r["statement"])
        if m:
            audited.add(m.group(1))
    missing = [v for v in rows if v not in audited]
    assert len(rows) >= 300 and not missing, f"{len(missing)} committed rows without a record: {missing[:5]}"
    # The chain is intact up to the kill; a torn last line is cut when the next instance opens the log.
    pgw2 = start(aenv, name="pgw2", audit={"fsync": "every"})
    assert harness.psql(aenv.via(pgw2), "INSERT INTO killed VALUES ('after')", password="alice-pw").returncode == 0
    pgw2.stop()
    v = subprocess.run([str(harness.PGWARDEN), "audit", "verify", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr


def test_chain_continues_across_restart_and_rotation(aenv):
    pgw = start(aenv, audit={"rotate_size": "2kB", "rotate_keep": 50})
    for i in range(12):
        r = harness.psql(aenv.via(pgw), f"CREATE TABLE IF NOT EXISTS rot (x int); INSERT INTO rot VALUES ({i})",
                         password="alice-pw")
        assert r.returncode == 0, r.stderr
    pgw.stop()
    pgw = start(aenv, name="pgw-again", audit={"rotate_size": "2kB", "rotate_keep": 50})
    assert harness.psql(aenv.via(pgw), "INSERT INTO rot VALUES (99)", password="alice-pw").returncode == 0
    pgw.stop()
    path = aenv.tmp / "audit" / "audit.jsonl"
    files = sorted(path.parent.glob("audit.jsonl*"))
    assert len(files) > 2, files
    recs = records(path)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    v = subprocess.run([str(harness.PGWARDEN), "audit", "verify", *map(str, files)], capture_output=True, text=True,
                       timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr
    assert str(len(recs)) in v.stdout


def test_block_refuses_writes_when_the_log_cannot_be_written(aenv):
    # /dev/full accepts the open and fails every write with ENOSPC: the log is failing from the first record.
    pgw = start(aenv, audit={"path": "/dev/full", "on_failure": "block", "rotate_size": "0MB"})
    r = harness.psql(aenv.via(pgw), "SELECT 1", password="alice-pw")
    reads_ok = r.returncode == 0
    r = harness.psql(aenv.via(pgw), "CREATE TABLE IF NOT EXISTS blocked (x int)", password="alice-pw")
    assert r.returncode != 0 and ("audit" in r.stderr), r.stderr
    assert reads_ok or "audit" in r.stderr
    aenv_log = pgw.log()
    assert "audit log" in aenv_log


def wire_login(aenv, pgw):
    return harness.tls_login(pgw.port, aenv.certs.ca_crt, "alice", "alice-pw", "app")


def until_ready(w):
    return w.until_ready()


def close_statement(name):
    return close_message("S", name)


def test_statement_renamed_while_detached_is_still_audited(aenv, logging_cluster):
    # A name first bound to a read, closed and prepared again as a write while no server connection is attached
    # (pgwarden answers that Parse itself): the write that runs must be recorded as the write it is.
    logging_cluster.sql("DROP TABLE IF EXISTS evade; CREATE TABLE evade (x int); INSERT INTO evade VALUES (1);"
                        "ALTER TABLE evade OWNER TO alice", db="app")
    pgw = start(aenv)
    w = wire_login(aenv, pgw)
    w.send(parse("s", "SELECT 1") + bind("", "s") + execute() + SYNC)
    until_ready(w)
    w.send(close_statement("s") + parse("s", "DELETE FROM evade") + SYNC)
    until_ready(w)
    w.send(bind("", "s") + execute() + SYNC)
    answers = until_ready(w)
    assert any(t == b"C" and body.startswith(b"DELETE 1") for t, body in answers), answers
    w.close()
    assert logging_cluster.sql("SELECT count(*) FROM evade", db="app") == "0"
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: any(r.get("command") == "DELETE" for r in rs))
    deletes = [r for r in statements_of(recs) if r["command"] == "DELETE"]
    assert len(deletes) == 1 and deletes[0]["objects"] == ["evade"] and deletes[0]["rows"] == 1, deletes


def test_transaction_events_follow_savepoints_and_implicit_transactions(aenv, logging_cluster):
    logging_cluster.sql("DROP TABLE IF EXISTS txe; CREATE TABLE txe (x int); ALTER TABLE txe OWNER TO alice",
                        db="app")
    pgw = start(aenv)
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(aenv.via(pgw), password="alice-pw", autocommit=True) as c:
        c.execute("BEGIN")
        c.execute("INSERT INTO txe VALUES (1)")
        c.execute("SAVEPOINT s")
        c.execute("INSERT INTO txe VALUES (2)")
        c.execute("ROLLBACK TO s")
        c.execute("COMMIT")
    # One Query: the first INSERT is committed by its COMMIT, the second rolled back by the error after it.
    r = harness.psql(aenv.via(pgw), "INSERT INTO txe VALUES (3); COMMIT; INSERT INTO txe VALUES (4); SELECT 1/0",
                     password="alice-pw")
    assert r.returncode != 0
    assert sorted(logging_cluster.sql("SELECT x FROM txe", db="app").split()) == ["1", "3"]
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: sum(1 for x in rs if x["event"] == "transaction") >= 3)
    tx = [r["command"] for r in recs if r["event"] == "transaction"]
    assert tx == ["COMMIT", "COMMIT", "ROLLBACK"], tx


def test_everything_is_recorded_while_strings_are_read_the_old_way(aenv, logging_cluster):
    # With standard_conforming_strings = off a backslash escapes a quote: the server sees a DELETE where a reader
    # of standard strings sees one long SELECT. pgwarden cannot classify such text exactly, so it records all.
    logging_cluster.sql("DROP TABLE IF EXISTS scs; CREATE TABLE scs (x int); INSERT INTO scs VALUES (1);"
                        "ALTER TABLE scs OWNER TO alice", db="app")
    pgw = start(aenv, pool={"mode": "session"})
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(aenv.via(pgw), password="alice-pw", autocommit=True) as c:
        c.execute("SET standard_conforming_strings = off")
        c.execute("SELECT 'a\\'' ; DELETE FROM scs; -- '", prepare=False)
    assert logging_cluster.sql("SELECT count(*) FROM scs", db="app") == "0"
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: any("DELETE FROM scs" in (r.get("statement") or "") for r in rs))
    assert any("DELETE FROM scs" in (r.get("statement") or "") for r in statements_of(recs))


def test_a_deep_pipeline_pairs_every_record_with_its_own_outcome(aenv, logging_cluster):
    # 300 units (Parse/Bind/Execute/Sync) sent before any answer is read: the session's queue of awaited answers
    # grows well past what it keeps between transactions, wraps, and shrinks back; every record must still get
    # its own statement's outcome, the one failing unit included, and a later transaction must pair as well.
    logging_cluster.sql("DROP TABLE IF EXISTS deep; CREATE TABLE deep (x int); ALTER TABLE deep OWNER TO alice",
                        db="app")
    pgw = start(aenv)
    w = wire_login(aenv, pgw)
    failing = 150
    batch = b""
    for i in range(300):
        sql = f"INSERT INTO deep (nope) VALUES ({i})" if i == failing else f"INSERT INTO deep VALUES ({i})"
        batch += parse("", sql) + bind("", "") + execute() + SYNC
    w.send(batch)
    answers = []
    for _ in range(300):
        answers.append(until_ready(w))
    assert sum(1 for a in answers for t, _ in a if t == b"E") == 1
    w.send(parse("", "INSERT INTO deep VALUES (1000)") + bind("", "") + execute() + SYNC)
    until_ready(w)
    w.close()
    assert logging_cluster.sql("SELECT count(*) FROM deep", db="app") == "300"
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: sum(1 for r in rs if r.get("command") == "INSERT") >= 301)
    inserts = [r for r in statements_of(recs) if r["command"] == "INSERT"]
    assert len(inserts) == 301, len(inserts)
    for i, r in enumerate(inserts):
        value = 1000 if i == 300 else i
        assert r["statement"].endswith(f"({value})"), (i, r["statement"])
        if i == failing:
            assert r["outcome"] == "error" and r["sqlstate"] == "42703", r
        else:
            assert r["outcome"] == "ok" and r["rows"] == 1, r


def test_a_second_sigterm_exits_at_once_with_sessions_attached_and_parked(aenv, logging_cluster):
    # The io_context is destroyed with sessions still in it: one in a transaction (its server side awaits the
    # server), one between transactions (its server side parked). Their frames go unresumed and must not reach
    # into each other or into the worker, and nothing may leak: a parked server side's frames are held by its
    # session until the worker drops them (`scripts/test --asan` sees any of this).
    # The parked client has sent half a message header: it is not at an idle point, so the first SIGTERM's
    # drain leaves it open (an idle one is closed at once, and its server side with it).
    logging_cluster.sql("DROP TABLE IF EXISTS forced_exit; CREATE TABLE forced_exit (x int); "
                        "ALTER TABLE forced_exit OWNER TO alice", db="app")
    psycopg = pytest.importorskip("psycopg")
    pgw = start(aenv, proxy={"workers": 2, "shutdown_timeout": "60s"})
    path = aenv.tmp / "audit" / "audit.jsonl"
    parked = harness.tls_startup(pgw.port, aenv.certs.ca_crt, {"user": "alice", "database": "app"})
    assert harness.scram_login(parked, "alice", "alice-pw")[-1][0] == b"Z"
    parked.send(harness.message(b"Q", b"SELECT 1\0"))
    while parked.read_message()[0] != b"Z":
        pass
    parked.send(b"Q\0\0")
    busy = psycopg.connect(aenv.via(pgw), password="alice-pw")
    busy.execute("INSERT INTO forced_exit VALUES (1)")  # an open transaction: the server connection stays
    pgw.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert pgw.proc.poll() is None, "the first SIGTERM waits for the clients"
    pgw.signal(signal.SIGTERM)
    pgw.proc.wait(20)
    assert pgw.proc.returncode == 0, pgw.log()[-4000:]
    assert "second shutdown signal: exiting now" in pgw.log()
    for c in (parked, busy):
        c.close()
    assert logging_cluster.sql("SELECT count(*) FROM forced_exit", db="app") == "0"
    recs = records(path)
    assert any(r["event"] == "statement" and r["command"] == "INSERT" for r in recs), recs
    v = subprocess.run([str(harness.PGWARDEN), "audit", "verify", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr


def test_records_name_the_server_connection_each_statement_ran_on(aenv, logging_cluster):
    # Transaction pooling moves a client between server connections from one transaction to the next, and
    # the session renders its identity (client part and server part) once per change rather than per record.
    # Each INSERT stores the backend pid it ran on: its record must name that same pid, its transaction's
    # COMMIT record too, and an application_name set midway must show in the records from then on.
    logging_cluster.sql("DROP TABLE IF EXISTS whopid; CREATE TABLE whopid (client text, n int, pid int); "
                        "ALTER TABLE whopid OWNER TO alice", db="app")
    psycopg = pytest.importorskip("psycopg")
    pgw = start(aenv, pool={"mode": "transaction", "default_size": 2})
    names = "abc"
    clients = [psycopg.connect(aenv.via(pgw), password="alice-pw", autocommit=True, application_name=f"app-{c}")
               for c in names]

    def insert(i, n):
        clients[i].execute(f"INSERT INTO whopid SELECT '{names[i]}', {n}, pg_backend_pid()")

    rounds = 18
    for n in range(rounds):
        # Three clients on two server connections: one holds a connection in an open transaction while
        # another runs, so the connection a client had last is often taken.
        hold, run = n % 3, (n + 1) % 3
        clients[hold].execute("BEGIN")
        insert(hold, n)
        insert(run, n)
        clients[hold].execute("COMMIT")
        if n == rounds // 2:
            clients[0].execute("SET application_name = 'app-a2'")
    for c in clients:
        c.close()
    rows = logging_cluster.sql("SELECT client || ',' || n || ',' || pid FROM whopid", db="app").split()
    pids = {(c, int(n)): int(p) for c, n, p in (r.split(",") for r in rows)}
    assert len(pids) == 2 * rounds
    moved = [c for c in names if len({p for (k, _), p in pids.items() if k == c}) > 1]
    assert moved, f"no client changed server connection: {pids}"
    path = aenv.tmp / "audit" / "audit.jsonl"

    def complete(rs):
        # The last COMMIT's record may reach the file in a later batch than the last INSERT's.
        inserts = sum(1 for x in rs if x["event"] == "statement" and x.get("command") == "INSERT")
        commits = sum(1 for x in rs if x["event"] == "transaction" and x.get("command") == "COMMIT")
        return inserts >= 2 * rounds and commits >= rounds

    recs = records(path, until=complete)
    recs.sort(key=lambda x: x["seq"])
    seen = 0
    last_in_block = {}
    commits = 0
    for r in recs:
        if r["event"] == "statement" and r["command"] == "INSERT":
            m = re.search(r"SELECT '(\w)', (\d+), pg_backend_pid", r["statement"])
            assert m, r["statement"]
            client, n = m.group(1), int(m.group(2))
            assert r["backend_pid"] == pids[(client, n)], (r, pids[(client, n)])
            assert r["server"].endswith(f":{logging_cluster.port}")
            expected_app = "app-a2" if client == "a" and n > rounds // 2 else f"app-{client}"
            assert r["application_name"] == expected_app, r
            if r["in_transaction"]:
                last_in_block[r["session"]] = r["backend_pid"]
            seen += 1
        elif r["event"] == "transaction" and r["command"] == "COMMIT":
            assert r["backend_pid"] == last_in_block.pop(r["session"]), r
            commits += 1
    assert seen == 2 * rounds and commits == rounds


def audit_table(cluster, name, rows=20):
    cluster.sql(f"SET log_statement = 'none'; DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int); "
                f"INSERT INTO {name} SELECT generate_series(1, {rows}); ALTER TABLE {name} OWNER TO alice", db="app")


def remaining(cluster, name):
    return [int(x) for x in cluster.sql(f"SELECT id FROM {name} ORDER BY id", db="app").split()]


def recorded(aenv, needle):
    """Statement records whose text holds `needle` (waiting a little for the writer)."""
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, timeout=5.0, until=lambda rs: any(needle in (r.get("statement") or "") for r in rs))
    return [r for r in statements_of(recs) if needle in (r.get("statement") or "")]


def test_fetch_of_a_portal_bound_to_a_write_is_recorded(aenv, logging_cluster):
    # A portal bound by the extended protocol can be read with SQL FETCH; PostgreSQL runs its DELETE then, and no
    # Execute is ever sent. PostgreSQL's own log_statement = 'mod' does not see it either. The FETCH may come as
    # a Query (with a comment after the name) or through the extended protocol itself.
    audit_table(logging_cluster, "fetched")
    pgw = start(aenv, pool={"mode": "session"})
    w = wire_login(aenv, pgw)
    w.send(query("BEGIN"))
    until_ready(w)
    w.send(parse("", "DELETE FROM fetched WHERE id IN (1, 2) RETURNING id") + bind("c", "") +
           parse("", "DELETE FROM fetched WHERE id = 5 RETURNING id") + bind("d", "") + SYNC)
    until_ready(w)
    w.send(query("FETCH 1 FROM c -- the first"))
    got = until_ready(w)
    assert any(t == b"C" and b.startswith(b"FETCH 1") for t, b in got), got
    w.send(query("FETCH ALL FROM c"))  # the rest of the same write: no second record
    until_ready(w)
    w.send(parse("", "FETCH ALL IN \"d\"") + bind("", "") + execute() + SYNC)
    got = until_ready(w)
    assert any(t == b"C" and b.startswith(b"FETCH 1") for t, b in got), got
    w.send(query("COMMIT"))
    until_ready(w)
    w.close()
    assert not {1, 2, 5} & set(remaining(logging_cluster, "fetched"))
    recs = recorded(aenv, "DELETE FROM fetched WHERE id IN")
    assert len(recs) == 1 and recs[0]["command"] == "DELETE" and recs[0]["objects"] == ["fetched"], recs
    # The FETCH's tag counts rows fetched, not deleted: no row count is claimed.
    assert recs[0]["outcome"] == "ok" and recs[0]["rows"] is None, recs
    recs = recorded(aenv, "DELETE FROM fetched WHERE id = 5")
    assert len(recs) == 1 and recs[0]["protocol"] == "extended", recs


def test_every_statement_is_recorded_under_shift_jis_2004(aenv, logging_cluster):
    # In SHIFT_JIS_2004 the bytes 0x95 0x5C are one character: the server's string ends there and a DELETE
    # follows, where a reader of the bytes as ASCII sees a backslash escaping the quote.
    audit_table(logging_cluster, "sjis")
    pgw = start(aenv, pool={"mode": "session"})
    w = wire_login(aenv, pgw)
    w.send(query("SET client_encoding = 'SHIFT_JIS_2004'"))
    until_ready(w)
    w.send(harness.message(b"Q", b"SELECT E'\x95\x5c'; DELETE FROM sjis WHERE id = 2; -- '\0"))
    until_ready(w)
    w.close()
    assert 2 not in remaining(logging_cluster, "sjis")
    assert recorded(aenv, "DELETE FROM sjis"), "the DELETE the server ran has no record"


def test_a_setting_changed_earlier_in_a_pipeline_makes_backslashes_suspect(aenv, logging_cluster):
    # standard_conforming_strings turned off by an extended-protocol SET, with the next Query already sent: its
    # ParameterStatus comes after pgwarden read the Query, so every statement of a text with a backslash counts.
    audit_table(logging_cluster, "piped")
    pgw = start(aenv, pool={"mode": "session"})
    w = wire_login(aenv, pgw)
    w.send(parse("", "SET standard_conforming_strings = off") + bind("", "") + execute() + SYNC +
           query("SELECT 'a\\' -- '; DELETE FROM piped WHERE id = 3; --"))
    until_ready(w)
    until_ready(w)
    w.close()
    assert 3 not in remaining(logging_cluster, "piped")
    assert recorded(aenv, "DELETE FROM piped"), "the DELETE the server ran has no record"


def test_unparsed_explain_analyze_counts_as_a_write(aenv, logging_cluster):
    # Over max_parse_bytes (1 MB) the classifier goes by leading keywords: EXPLAIN ANALYZE runs what it explains.
    audit_table(logging_cluster, "bigexplain")
    pgw = start(aenv, pool={"mode": "session"})
    w = wire_login(aenv, pgw)
    w.send(query("PREPARE p AS DELETE FROM bigexplain WHERE id = 4"))
    until_ready(w)
    w.send(query("EXPLAIN ANALYZE EXECUTE p /* " + "x" * (1 << 20) + " */"))
    until_ready(w)
    w.close()
    assert 4 not in remaining(logging_cluster, "bigexplain")
    recs = recorded(aenv, "EXPLAIN ANALYZE EXECUTE p")
    assert recs and recs[0]["class"] == "mod", recs


def test_statement_names_of_the_server_connection_are_not_trusted_after_detach(aenv, logging_cluster):
    # Without pgwarden's renaming (max_prepared_statements = 0) a protocol-level name lives on the server
    # connection: another client may hold it there with other SQL, and a Parse of it then fails with 42P05.
    audit_table(logging_cluster, "shared_names")
    pgw = start(aenv, pool={"mode": "transaction", "default_size": 1, "max_prepared_statements": 0})
    b = wire_login(aenv, pgw)
    b.send(parse("s3", "DELETE FROM shared_names WHERE id = 8") + SYNC)
    until_ready(b)
    a = wire_login(aenv, pgw)
    a.send(parse("s3", "SELECT 1") + SYNC)
    got = until_ready(a)
    assert any(t == b"E" and harness.error_fields(body)["C"] == "42P05" for t, body in got), got
    a.send(bind("", "s3") + execute() + SYNC)
    got = until_ready(a)
    assert any(t == b"C" and body.startswith(b"DELETE 1") for t, body in got), got
    a.close()
    b.close()
    assert 8 not in remaining(logging_cluster, "shared_names")
    path = aenv.tmp / "audit" / "audit.jsonl"
    recs = records(path, until=lambda rs: any(r.get("command") == "UNKNOWN" for r in rs))
    unknown = [r for r in statements_of(recs) if r.get("command") == "UNKNOWN"]
    assert unknown and unknown[0]["outcome"] == "ok" and unknown[0]["rows"] == 1, statements_of(recs)
