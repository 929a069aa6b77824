"""Rolling restart: a new pgwarden takes the listening sockets of the running one (proxy.handover_socket,
`--takeover`) while pgbench -C opens a connection per transaction; not one connection is refused and not one
transaction fails. A persistent client is closed cleanly (57P01) at a transaction boundary, and the audit chain
goes on in the same file, written by one process at a time."""
import json
import struct
import os
import re
import signal
import subprocess
import time

import harness



def test_pgbench_connect_per_transaction_across_a_rolling_restart(env, tmp_path):
    handover = tmp_path / "handover.sock"
    audit = tmp_path / "audit.jsonl"
    old = env.start(proxy={"workers": 2, "handover_socket": str(handover), "shutdown_timeout": "20s"},
                    pool={"mode": "transaction", "default_size": 4},
                    audit={"enabled": True, "path": str(audit), "fsync": "off"})
    env.cluster.sql("DROP TABLE IF EXISTS rolling; CREATE TABLE rolling (n int); ALTER TABLE rolling OWNER TO alice",
                    db="app")
    script = tmp_path / "insert.sql"
    script.write_text("INSERT INTO rolling VALUES (1);\n")

    # A second process without --takeover refuses to start: two processes never share a config's sockets.
    second = subprocess.run([str(harness.PGWARDEN), "--config", str(old.config_path)], capture_output=True,
                            text=True, timeout=30)
    assert second.returncode == 1 and "--takeover" in second.stdout + second.stderr

    # A persistent client, idle between transactions (on the wire, to see exactly what it is told).
    persistent = harness.tls_startup(old.port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    assert harness.scram_login(persistent, "alice", "alice-pw")[-1][0] == b"Z"

    e = dict(os.environ, PGPASSWORD="alice-pw", PGSSLMODE="verify-full", PGSSLROOTCERT=str(env.certs.ca_crt))
    bench = subprocess.Popen(["pgbench", "-n", "-C", "-c", "4", "-j", "2", "-T", "10", "-f", str(script),
                              "-h", "localhost", "-p", str(old.port), "-U", "alice", "app"], env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    new_log = open(tmp_path / "new.log", "ab")
    new = None
    try:
        time.sleep(3)
        new = subprocess.Popen([str(harness.PGWARDEN), "--config", str(old.config_path), "--takeover"],
                               stdout=new_log, stderr=subprocess.STDOUT)
        assert old.proc.wait(30) == 0, old.log()[-3000:]
        out, err = bench.communicate(timeout=60)
    except BaseException:
        if new is not None and new.poll() is None:
            new.kill()
            new.wait(10)
        raise
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
    try:
        check_after_restart(env, old, new, bench, out, err, persistent, audit)
    finally:
        if new.poll() is None:
            new.kill()
            new.wait(10)
        new_log.close()


def check_after_restart(env, old, new, bench, out, err, persistent, audit):
    assert bench.returncode == 0, out + err
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert processed > 50 and (failed is None or int(failed.group(1)) == 0), out
    assert err.strip() == "", err  # no refused connection, no error of any kind
    assert "rolling restart: listeners handed to the new process" in old.log()
    rows = int(env.cluster.sql("SELECT count(*) FROM rolling", db="app"))
    assert rows == processed  # every committed insert is there, none twice

    # The persistent client was closed cleanly at a transaction boundary, with 57P01.
    t, body = persistent.read_message()
    assert t == b"E" and harness.error_fields(body)["C"] == "57P01", (t, body)
    persistent.close()

    # The new process serves, and the audit chain goes on across both processes in one file.
    r = harness.psql(env.via(old), "INSERT INTO rolling VALUES (2)", password="alice-pw")
    assert r.returncode == 0, r.stderr
    new.terminate()
    assert new.wait(30) == 0
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    inserts = [r for r in records if r["event"] == "statement" and r.get("command") == "INSERT"]
    assert len(inserts) == processed + 1
    check = harness.run([str(harness.PGWARDEN), "audit", "verify", str(audit)])
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_cancel_sent_during_the_drain_reaches_the_old_process(env, tmp_path):
    """While the old process drains, the new one holds new connections and passes CancelRequests back to it."""
    handover = tmp_path / "handover.sock"
    old = env.start(proxy={"workers": 2, "handover_socket": str(handover), "shutdown_timeout": "30s"},
                    pool={"mode": "transaction", "default_size": 4})
    w = harness.tls_startup(old.port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    messages = harness.scram_login(w, "alice", "alice-pw")
    assert messages[-1][0] == b"Z"
    pid, secret = struct.unpack("!ii", [body for t, body in messages if t == b"K"][0])
    w.send(harness.message(b"Q", b"SELECT pg_sleep(25)\0"))  # keeps the old process draining
    time.sleep(0.5)
    new_log = open(tmp_path / "new.log", "ab")
    new = subprocess.Popen([str(harness.PGWARDEN), "--config", str(old.config_path), "--takeover"],
                           stdout=new_log, stderr=subprocess.STDOUT)
    try:
        harness.wait_until(lambda: "listeners handed to the new process" in old.log(), 10, "the handover")
        # A client arriving now is held by the new process until the old one has gone.
        late = subprocess.Popen(["psql", "-X", "-A", "-t", "-c", "SELECT 7", env.via(old)],
                                env=dict(os.environ, PGPASSWORD="alice-pw"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        c = harness.Wire(old.port)  # reaches the new process, which owns the listener now
        c.send(harness.cancel_request(pid, secret))
        c.close()
        t, body = w.read_message()
        while t not in (b"E", b"Z"):
            t, body = w.read_message()
        assert t == b"E" and harness.error_fields(body)["C"] == "57014", (t, body)
        assert time.monotonic() - started < 10
        # After the cancelled statement the client is at a transaction boundary: closed with 57P01.
        t, body = w.read_message()
        while t != b"E":
            t, body = w.read_message()
        assert harness.error_fields(body)["C"] == "57P01"
        w.close()
        assert old.proc.wait(30) == 0
        out, err = late.communicate(timeout=30)
        assert late.returncode == 0 and out.strip() == "7", err
        assert "passed on by the new process" in old.log()
    finally:
        if new.poll() is None:
            new.terminate()
            new.wait(30)
        new_log.close()


def test_a_sighup_during_the_takeover_is_a_reload_not_an_outage(env, tmp_path):
    """The new process holds every listener while it waits for the old one to drain: a SIGHUP then (a reload sent
    to every pgwarden) must not end it."""
    handover = tmp_path / "handover.sock"
    old = env.start(proxy={"workers": 2, "handover_socket": str(handover), "shutdown_timeout": "30s"},
                    pool={"mode": "transaction", "default_size": 4})
    holder = harness.tls_login(old.port, env.certs.ca_crt, "alice", "alice-pw", "app")
    holder.send(harness.query_message("BEGIN"))  # keeps the old process draining until it commits
    holder.until_ready()
    new_log_path = tmp_path / "new.log"
    new_log = open(new_log_path, "ab")
    new = subprocess.Popen([str(harness.PGWARDEN), "--config", str(old.config_path), "--takeover"],
                           stdout=new_log, stderr=subprocess.STDOUT)
    try:
        harness.wait_until(lambda: "listeners handed to the new process" in old.log(), 10, "the handover")
        new.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert new.poll() is None, new_log_path.read_text()
        holder.send(harness.query_message("COMMIT"))
        holder.until_ready()
        holder.close()
        assert old.proc.wait(30) == 0
        r = harness.psql(env.via(old), "SELECT 6 * 7", password="alice-pw")
        assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr + new_log_path.read_text()
        harness.wait_until(lambda: "new connections use it" in new_log_path.read_text(), 10,
                           "the SIGHUP taken as a reload once the new process serves")
    finally:
        if new.poll() is None:
            new.terminate()
            new.wait(30)
        new_log.close()


def test_no_takeover_when_the_audit_log_could_not_be_opened_after_it(env, tmp_path):
    """Once the old process has handed over and exited nothing else serves: what would fail after the handover
    (here an audit directory that does not exist) is checked before asking for the listeners."""
    handover = tmp_path / "handover.sock"
    old = env.start(proxy={"workers": 2, "handover_socket": str(handover)}, pool={"mode": "transaction"})
    config = tmp_path / "new.toml"
    config.write_text(old.config_path.read_text() +
                      f'\n[audit]\nenabled = true\npath = "{tmp_path}/missing-dir/audit.jsonl"\n')
    r = harness.run([str(harness.PGWARDEN), "--config", str(config), "--takeover"], timeout=30)
    assert r.returncode == 1 and "not taking over" in r.stdout + r.stderr, r.stdout + r.stderr
    assert old.proc.poll() is None
    env.assert_serves(old)
