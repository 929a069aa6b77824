"""Access control: [[access]] rules and the hba file, limits that hold under floods and slowloris, reload that
revokes, and the PROXY protocol behind a real HAProxy. Source addresses are loopback aliases (127.0.0.2, ...)."""
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import harness
from harness import Wire, error_fields, psql, startup_packet, wait_until

SSL_REQUEST = harness.SSL_REQUEST


def answer_to_ssl_request(port, source, host="127.0.0.1", prefix=b""):
    """Sends SSLRequest from `source`; returns b"S", b"N", ("E", fields) or b"" (closed without an answer)."""
    w = Wire(port, host=host, source=(source, 0))
    try:
        w.send(prefix + SSL_REQUEST)
        first = w.sock.recv(1)
        if first != b"E":
            return first
        rest = w.recv_exact(4)
        body = w.recv_exact(struct.unpack("!I", rest)[0] - 4)
        return ("E", error_fields(body))
    except (ConnectionError, socket.timeout):
        return b""
    finally:
        w.close()


def rules(*entries):
    return {"access": list(entries)}


def test_address_rules_decide_before_tls(env):
    pgw = env.start(**rules({"action": "allow", "address": ["127.0.0.1/32", "::1/128"]}))
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode == 0, r.stderr
    # 127.0.0.2: an ErrorResponse 28000 answers the SSLRequest itself; no TLS handshake ever starts.
    got = answer_to_ssl_request(pgw.port, "127.0.0.2")
    assert got[0] == "E" and got[1]["C"] == "28000", got
    assert "127.0.0.2" in got[1]["M"]
    log = pgw.log()
    assert "refused (28000): address refused by the access rules" in log
    assert "TLS handshake" not in log.split("127.0.0.2")[-1]
    # A refused audit event with the address and the reason.
    deadline = time.monotonic() + 10
    refused = []
    while not refused and time.monotonic() < deadline:
        time.sleep(0.1)
        text = (pgw.dir / "audit.jsonl").read_text() if (pgw.dir / "audit.jsonl").exists() else ""
        refused = [line for line in text.splitlines() if '"event":"refused"' in line and "127.0.0.2" in line]
    assert refused and '"sqlstate":"28000"' in refused[0] and "access rules" in refused[0]
    # A plaintext startup packet larger than the refusal's read buffer is read whole and answered too.
    w = Wire(pgw.port, source=("127.0.0.2", 0))
    w.send(startup_packet({"user": "alice", "database": "app", "application_name": "x" * 3000}))
    t, body = w.read_message()
    w.close()
    assert t == b"E" and error_fields(body)["C"] == "28000"
    env.assert_serves(pgw)


def test_per_user_database_and_tls_rules(env):
    pgw = env.start(client_tls={"mode": "prefer"},
                    **rules({"action": "deny", "user": ["bob"]},
                            {"action": "allow", "database": ["app"], "user": ["alice", "md5user"], "tls": True,
                             "address": ["127.0.0.0/8"]},
                            {"action": "allow", "database": ["app"], "user": ["pwuser"], "address": ["127.0.0.1"]}))
    assert psql(env.via(pgw), "SELECT 1", password="alice-pw").returncode == 0
    bob = psql(env.via(pgw, user="bob"), "SELECT 1", password="bob-pw")
    assert bob.returncode != 0 and 'access denied for host "127.0.0.1", user "bob"' in bob.stderr
    other_db = psql(env.via(pgw, dbname="postgres"), "SELECT 1", password="alice-pw")
    assert other_db.returncode != 0 and "no access rule allows" in other_db.stderr
    plain = psql(env.via(pgw, sslmode="disable"), "SELECT 1", password="alice-pw")
    assert plain.returncode != 0 and "no TLS" in plain.stderr
    # The third rule has no tls requirement: plaintext is fine for pwuser (the server leg is still TLS).
    r = psql(env.via(pgw, user="pwuser", sslmode="disable"), "SELECT current_user", password="pw-pw")
    assert r.returncode == 0, r.stderr


def test_rule_method_overrides_auth_type(env):
    pgw = env.start(client_tls={"mode": "require", "ca": str(env.certs.ca_crt)},
                    **rules({"action": "allow", "user": ["alice"], "method": "cert", "address": ["127.0.0.1/32"]},
                            {"action": "allow", "address": ["127.0.0.1/32"]}))
    r = psql(env.via(pgw, sslcert=env.certs.alice_crt, sslkey=env.certs.alice_key), "SELECT current_user")
    assert r.returncode == 0, r.stderr
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0 and "certificate authentication failed" in r.stderr
    r = psql(env.via(pgw, user="bob"), "SELECT current_user", password="bob-pw")
    assert r.returncode == 0, r.stderr


def test_hba_file_form(env):
    hba = env.tmp / "pg_hba.conf"
    hba.write_text("# migrated from PgBouncer's auth_hba_file\n"
                   "hostssl app alice 127.0.0.1/32 scram-sha-256\n"
                   "host    all all   127.0.0.1 255.255.255.255 reject\n")
    pgw = env.start(auth={"hba_file": str(hba)})
    assert psql(env.via(pgw), "SELECT 1", password="alice-pw").returncode == 0
    bob = psql(env.via(pgw, user="bob"), "SELECT 1", password="bob-pw")
    assert bob.returncode != 0 and "access denied" in bob.stderr
    got = answer_to_ssl_request(pgw.port, "127.0.0.2")
    assert got[0] == "E" and got[1]["C"] == "28000"
    # A broken hba file is reported at its line and column by --check.
    hba.write_text("hostssl app alice 127.0.0.1/32 ldap\n")
    check = subprocess.run([str(harness.PGWARDEN), "--config", str(pgw.config_path), "--check"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 1
    assert f"{hba}:1:" in check.stdout + check.stderr


def test_max_client_conn_flood(env):
    psycopg = pytest.importorskip("psycopg")
    # The per-address cap (by default max_client_conn) is raised so that max_client_conn itself is what refuses.
    pgw = env.start(proxy={"workers": 2, "max_client_conn": 10, "max_client_conn_per_address": 100})
    before = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    held = [psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True) for _ in range(9)]
    refused = []

    def attempt():
        r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
        refused.append(r)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    assert before.execute("SELECT 42").fetchone()[0] == 42
    for t in threads:
        t.join(60)
    assert len(refused) == 20
    assert all(r.returncode != 0 for r in refused)
    assert all("too many clients already: max_client_conn (10) is reached" in r.stderr for r in refused)
    assert before.execute("SELECT 43").fetchone()[0] == 43
    for c in held:
        c.close()
    after = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    assert after.execute("SELECT 44").fetchone()[0] == 44
    after.close()
    before.close()


def test_per_address_cap_and_rate(env):
    psycopg = pytest.importorskip("psycopg")
    pgw = env.start(proxy={"workers": 2, "max_client_conn_per_address": 3, "client_connect_rate": 0})
    held = [psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True) for _ in range(3)]
    # Counted when admitted, after TLS: the client sees the message.
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0
    assert "too many connections from this address: max_client_conn_per_address (3) is reached" in r.stderr
    # Another address is not affected: it gets as far as authentication.
    w = Wire(pgw.port, source=("127.0.0.2", 0))
    w.send(SSL_REQUEST)
    assert w.recv_exact(1) == b"S"
    w.start_tls(cafile=str(env.certs.ca_crt))
    w.send(startup_packet({"user": "alice", "database": "app"}))
    assert w.read_message()[0] == b"R"
    w.close()
    held.pop().close()
    time.sleep(0.3)
    assert psql(env.via(pgw), "SELECT 1", password="alice-pw").returncode == 0
    for c in held:
        c.close()
    pgw.stop()
    # The rate is decided at accept, before TLS: 53300 on the wire in answer to the SSLRequest.
    rated = env.start(name="rated", proxy={"workers": 2, "client_connect_rate": 5})
    answers = [answer_to_ssl_request(rated.port, "127.0.0.4") for _ in range(12)]
    limited = [a for a in answers if isinstance(a, tuple)]
    assert limited and all(a[1]["C"] == "53300" and "client_connect_rate" in a[1]["M"] for a in limited)
    assert answers[:5] == [b"S"] * 5
    assert answer_to_ssl_request(rated.port, "127.0.0.5") == b"S", "another address has its own bucket"
    time.sleep(1.2)
    assert answer_to_ssl_request(rated.port, "127.0.0.4") == b"S"


def test_slowloris_is_timed_out(env):
    pgw = env.start(proxy={"workers": 2, "client_handshake_timeout": "2s"})
    lazy = []
    for i in range(200):
        w = Wire(pgw.port, source=(f"127.0.1.{i % 50 + 1}", 0))
        if i % 2:
            w.send(SSL_REQUEST[:3])  # half an SSLRequest, then nothing
        lazy.append(w)
    # Served while 200 connections dawdle.
    r = psql(env.via(pgw), "SELECT 'served'", password="alice-pw")
    assert r.returncode == 0 and r.stdout.strip() == "served", r.stderr
    time.sleep(3)
    closed = 0
    for w in lazy:
        w.sock.settimeout(5)
        try:
            closed += w.sock.recv(1) == b""
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        w.close()
    assert closed == 200
    assert pgw.log().count("client_handshake_timeout passed") >= 200
    env.assert_serves(pgw)


def test_reload_revokes_a_live_connection(env):
    psycopg = pytest.importorskip("psycopg")
    pgw = env.start(**rules({"action": "allow", "user": ["alice", "bob"], "address": ["127.0.0.1/32"]}))
    alice = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    bob = psycopg.connect(env.via(pgw, user="bob"), password="bob-pw", autocommit=True)
    assert alice.execute("SELECT 1").fetchone()[0] == 1
    text = pgw.config_path.read_text().replace('user = ["alice", "bob"]', 'user = ["bob"]')
    pgw.config_path.write_text(text)
    pgw.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "access revoked" not in pgw.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(psycopg.OperationalError) as e:
        alice.execute("SELECT 2")
    assert "access revoked" in str(e.value)
    assert bob.execute("SELECT 3").fetchone()[0] == 3
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0 and "no access rule allows" in r.stderr
    bob.close()


# ---------------------------------------------------------------------------------------------------------------
# PROXY protocol behind HAProxy


@pytest.fixture
def haproxy(tmp_path):
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    procs = []

    def start(backend_port):
        port = harness.free_port()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(f"""
global
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend pg
    bind 127.0.0.1:{port}
    default_backend pgwarden
backend pgwarden
    server pgw1 127.0.0.1:{backend_port} send-proxy-v2
""")
        p = subprocess.Popen([binary, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(p)
        harness.wait_for_port(port, proc=p)
        return port

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_rules_on_the_original_address_through_haproxy(env, haproxy):
    pgw = env.start(proxy={"workers": 2, "proxy_protocol_from": ["127.0.0.1/32"]},
                    **rules({"action": "allow", "address": ["127.0.0.3/32"]}))
    port = haproxy(pgw.port)
    # 127.0.0.3 is allowed, 127.0.0.4 refused, as they would be directly.
    assert answer_to_ssl_request(port, "127.0.0.3") == b"S"
    got = answer_to_ssl_request(port, "127.0.0.4")
    assert got[0] == "E" and got[1]["C"] == "28000" and "127.0.0.4" in got[1]["M"]
    # A full psql session through HAProxy from 127.0.0.3 (socat chooses the source address).
    relay = harness.free_port()
    socat = subprocess.Popen(["socat", f"TCP-LISTEN:{relay},bind=127.0.0.1,reuseaddr,fork",
                              f"TCP:127.0.0.1:{port},bind=127.0.0.3"], stderr=subprocess.DEVNULL)
    try:
        harness.wait_for_port(relay, proc=socat)
        conn = f"host=localhost port={relay} dbname=app user=alice sslmode=verify-full sslrootcert={env.certs.ca_crt}"
        r = psql(conn, "SELECT client_addr IS NOT NULL FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                 password="alice-pw")
        assert r.returncode == 0, r.stderr
    finally:
        socat.terminate()
        socat.wait(10)
    assert "client=127.0.0.3:" in pgw.log()
    def connects():
        return [line for line in (pgw.dir / "audit.jsonl").read_text().splitlines() if '"connect"' in line]

    wait_until(lambda: any('"client_addr":"127.0.0.3"' in line for line in connects()),
               what="the connect record with the balancer's client address")
    # The balancer's own health checks (v2 LOCAL) keep its address: 127.0.0.1 is not allowed by the rules.
    local = b"\r\n\r\n\0\r\nQUIT\n" + bytes([0x20, 0x00, 0x00, 0x00])
    got = answer_to_ssl_request(pgw.port, "127.0.0.1", prefix=local)
    assert got[0] == "E" and got[1]["C"] == "28000" and "127.0.0.1" in got[1]["M"]


def test_proxy_header_only_from_trusted_addresses(env):
    pgw = env.start(proxy={"workers": 2, "proxy_protocol_from": ["127.0.0.5/32"]})
    v1 = b"PROXY TCP4 127.0.0.3 127.0.0.1 5000 6432\r\n"
    # Untrusted address with a header: closed without an answer.
    assert answer_to_ssl_request(pgw.port, "127.0.0.2", prefix=v1) == b""
    # Trusted address: the header is required; a malformed one or none at all closes the connection.
    assert answer_to_ssl_request(pgw.port, "127.0.0.5", prefix=b"PROXY TCP4 999.0.0.1 x\r\n") == b""
    assert answer_to_ssl_request(pgw.port, "127.0.0.5") == b""
    assert answer_to_ssl_request(pgw.port, "127.0.0.5", prefix=v1) == b"S"
    assert answer_to_ssl_request(pgw.port, "127.0.0.5", prefix=b"PROXY UNKNOWN\r\n") == b"S"
    env.assert_serves(pgw)
