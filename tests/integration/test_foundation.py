"""The foundation: TLS on both legs, SCRAM, session relay, cancel, refusals with the SPEC's SQLSTATEs."""
import hashlib
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

import harness
from harness import Wire, error_fields, message, psql, startup_packet


def test_select_one_with_verify_full(env):
    pgw = env.start()
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    # The session really went through TLS to pgwarden and from pgwarden to PostgreSQL.
    r = psql(env.via(pgw), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", password="alice-pw")
    assert r.stdout.strip() == "t", r.stderr


def test_channel_binding_required_by_client(env):
    pgw = env.start()
    r = psql(env.via(pgw, channel_binding="require"), "SELECT 'bound'", password="alice-pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bound"


def test_plaintext_refused_when_tls_required(env):
    pgw = env.start()
    r = psql(env.via(pgw, sslmode="disable"), "SELECT 1", password="alice-pw")
    assert r.returncode != 0
    assert "TLS is required" in r.stderr
    # On the wire: an ErrorResponse 28000 answers the startup packet, before any authentication request.
    w = Wire(pgw.port)
    w.send(startup_packet({"user": "alice", "database": "app"}))
    t, body = w.read_message()
    assert t == b"E"
    assert error_fields(body)["C"] == "28000"
    w.close()
    env.assert_serves(pgw)


def test_wrong_password_and_unknown_user_same_28P01(env):
    pgw = env.start()
    wrong = psql(env.via(pgw), "SELECT 1", password="nope")
    unknown = psql(env.via(pgw, user="nobody"), "SELECT 1", password="nope")
    assert wrong.returncode != 0 and unknown.returncode != 0
    assert 'password authentication failed for user "alice"' in wrong.stderr
    assert 'password authentication failed for user "nobody"' in unknown.stderr
    for user in ("alice", "nobody"):
        w = Wire(pgw.port)
        w.send(harness.SSL_REQUEST)
        assert w.recv_exact(1) == b"S"
        w.start_tls(cafile=str(env.certs.ca_crt))
        w.send(startup_packet({"user": user, "database": "app"}))
        out = harness.scram_login(w, user, "wrong-password")
        t, body = out[-1]
        assert t == b"E" and error_fields(body)["C"] == "28P01"
        w.close()
    env.assert_serves(pgw)


def test_unknown_database_3D000(env):
    pgw = env.start()
    r = psql(env.via(pgw, dbname="nosuchdb"), "SELECT 1", password="alice-pw")
    assert r.returncode != 0
    assert 'database "nosuchdb" does not exist' in r.stderr
    env.assert_serves(pgw)


def test_large_result_is_byte_identical(env):
    pgw = env.start()
    q = "SELECT g, md5(g::text), repeat('x', g % 97) FROM generate_series(1, 100000) g"
    via = psql(env.via(pgw), q, password="alice-pw")
    direct = psql(env.direct(), q, password="alice-pw")
    assert via.returncode == 0 and direct.returncode == 0, via.stderr
    assert len(via.stdout.splitlines()) == 100000
    assert hashlib.sha256(via.stdout.encode()).digest() == hashlib.sha256(direct.stdout.encode()).digest()
    # A single row far larger than pgwarden's buffers streams through intact.
    big = psql(env.via(pgw), "SELECT repeat('abcdefgh', 2 * 1024 * 1024)", password="alice-pw")
    assert big.stdout.strip() == "abcdefgh" * 2 * 1024 * 1024


def test_copy_in_and_out_are_byte_identical(env, tmp_path):
    pgw = env.start()
    rows = "".join(f"{i}\tline {i}: ümlaut, comma; quote \"\t{i * 7}\n" for i in range(100000))
    src = tmp_path / "in.tsv"
    src.write_text(rows)
    out = tmp_path / "out.tsv"
    r = psql(env.via(pgw), None, password="alice-pw", extra_args=[
        "-c", "DROP TABLE IF EXISTS copy_t", "-c", "CREATE TABLE copy_t (a int, b text, c int)",
        "-c", f"\\copy copy_t FROM '{src}'", "-c", f"\\copy (SELECT * FROM copy_t ORDER BY a) TO '{out}'"])
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes()
    env.assert_serves(pgw)


def test_psql_query_cancel(env):
    pgw = env.start()
    e = {"PGPASSWORD": "alice-pw"}
    p = subprocess.Popen(["psql", "-X", "-A", "-t", env.via(pgw), "-c", "SELECT pg_sleep(60)"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**harness.os.environ, **e})
    # Wait until the query is running on the server, then Ctrl-C: psql sends a CancelRequest to pgwarden.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if env.cluster.sql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'") == "1":
            break
        time.sleep(0.1)
    start = time.monotonic()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=20)
    assert time.monotonic() - start < 10
    assert "canceling statement due to user request" in err
    env.assert_serves(pgw)


def test_cancel_with_wrong_key_cancels_nothing(env):
    psycopg = pytest.importorskip("psycopg")
    pgw = env.start()
    conn = psycopg.connect(env.via(pgw), password="alice-pw")
    pid = conn.info.backend_pid  # pgwarden's own key, not the server's
    server_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert pid != server_pid
    import threading
    result = {}

    def run_query():
        try:
            conn.execute("SELECT pg_sleep(2)")
            result["ok"] = True
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
            result["error"] = exc

    t = threading.Thread(target=run_query)
    t.start()
    time.sleep(0.5)
    # Right process id, wrong secret, in plaintext: ignored.
    w = Wire(pgw.port)
    w.send(harness.cancel_request(pid, 12345))
    w.sock.settimeout(5)
    assert w.sock.recv(16) == b""  # closed without an answer, as PostgreSQL does
    t.join(10)
    assert result.get("ok"), result
    # The right key (psycopg sends pgwarden's key, unencrypted like libpq < 17) does cancel.
    t = threading.Thread(target=lambda: result.update(second=_expect_cancel(conn)))
    t.start()
    time.sleep(0.5)
    conn.cancel()
    t.join(10)
    assert result["second"] == "57014"
    conn.close()


def _expect_cancel(conn):
    try:
        conn.execute("SELECT pg_sleep(30)")
    except Exception as exc:  # noqa: BLE001
        return getattr(exc, "sqlstate", str(exc))
    return "not cancelled"


def test_server_ca_mismatch_fails_cleanly(env):
    pgw = env.start(server_tls={"mode": "verify-full", "ca": str(env.certs.other_ca_crt)})
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0
    assert "could not log in to the server" in r.stderr and "certificate verify failed" in r.stderr
    good = env.start("good")
    env.assert_serves(good)


def test_server_name_mismatch_under_verify_full(env):
    # The certificate names localhost and 127.0.0.1, not 127.0.0.2 (where PostgreSQL listens too).
    pgw = env.start(database=[{"name": "app", "host": "127.0.0.2", "port": env.cluster.port}])
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0
    assert "certificate verify failed" in r.stderr
    env.assert_serves(env.start("good"))


def test_direct_tls_with_alpn(env):
    pgw = env.start()
    w = Wire(pgw.port)
    tls = w.start_tls(cafile=str(env.certs.ca_crt), alpn=["postgresql"])
    assert tls.selected_alpn_protocol() == "postgresql"
    w.send(startup_packet({"user": "alice", "database": "app"}))
    out = harness.scram_login(w, "alice", "alice-pw")
    assert out[-1][0] == b"Z", out
    w.close()


def test_direct_tls_without_alpn_refused(env):
    pgw = env.start()
    w = Wire(pgw.port)
    with pytest.raises((ssl.SSLError, EOFError, ConnectionError, OSError)):
        w.start_tls(cafile=str(env.certs.ca_crt))
        w.send(startup_packet({"user": "alice", "database": "app"}))
        w.read_message()
    w.close()
    # ALPN offered but not "postgresql": the handshake itself fails.
    w = Wire(pgw.port)
    with pytest.raises(ssl.SSLError):
        w.start_tls(cafile=str(env.certs.ca_crt), alpn=["http/1.1"])
    w.close()
    env.assert_serves(pgw)


def test_bytes_after_ssl_request_are_refused(env):
    pgw = env.start()
    w = Wire(pgw.port)
    # SSLRequest and a plaintext startup packet in one segment: injected data must never be read as if it
    # came over TLS (CVE-2021-23214).
    w.send(harness.SSL_REQUEST + startup_packet({"user": "alice", "database": "app"}))
    time.sleep(0.2)
    data = w.sock.recv(4096)
    assert data[:1] == b"E", data
    assert error_fields(data[5:])["C"] == "08P01"
    w.close()
    env.assert_serves(pgw)


def test_gssenc_request_answered_no(env):
    pgw = env.start()
    w = Wire(pgw.port)
    w.send(harness.GSSENC_REQUEST)
    assert w.recv_exact(1) == b"N"
    w.send(harness.SSL_REQUEST)
    assert w.recv_exact(1) == b"S"
    w.start_tls(cafile=str(env.certs.ca_crt))
    w.send(startup_packet({"user": "alice", "database": "app"}))
    assert harness.scram_login(w, "alice", "alice-pw")[-1][0] == b"Z"
    w.close()


def test_newer_protocol_minor_gets_negotiate_protocol_version(env):
    pgw = env.start()
    w = Wire(pgw.port)
    w.send(harness.SSL_REQUEST)
    assert w.recv_exact(1) == b"S"
    w.start_tls(cafile=str(env.certs.ca_crt))
    w.send(startup_packet({"user": "alice", "database": "app", "_pq_.future_option": "on"}, minor=2))
    t, body = w.read_message()
    assert t == b"v"
    newest_minor, count = struct.unpack("!ii", body[:8])
    assert newest_minor == 0 and count == 1
    assert body[8:].rstrip(b"\0") == b"_pq_.future_option"
    # And the session goes on in 3.0.
    assert harness.scram_login(w, "alice", "alice-pw")[-1][0] == b"Z"
    w.close()


def test_unsupported_major_version_refused(env):
    pgw = env.start(client_tls={"mode": "prefer"})
    w = Wire(pgw.port)
    w.send(startup_packet({"user": "alice"}, major=4))
    t, body = w.read_message()
    assert t == b"E" and error_fields(body)["C"] == "0A000"
    w.close()


def test_oversized_startup_packet_closed(env):
    pgw = env.start()
    w = Wire(pgw.port)
    w.send(struct.pack("!I", 10001) + b"\0" * 100)
    w.sock.settimeout(5)
    assert w.sock.recv(100) == b""
    w.close()
    env.assert_serves(pgw)


def test_tls_1_1_refused(env):
    pgw = env.start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    w = Wire(pgw.port)
    w.send(harness.SSL_REQUEST)
    assert w.recv_exact(1) == b"S"
    with pytest.raises((ssl.SSLError, OSError)):
        w.start_tls(context=ctx)
    w.close()
    env.assert_serves(pgw)


def test_client_certificate_required_in_verify_ca(env):
    pgw = env.start(client_tls={"mode": "verify-ca", "ca": str(env.certs.ca_crt)})
    no_cert = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert no_cert.returncode != 0
    ok = psql(env.via(pgw, sslcert=env.certs.alice_crt, sslkey=env.certs.alice_key), "SELECT 1", password="alice-pw")
    assert ok.returncode == 0, ok.stderr
    # A certificate from an unrelated CA is refused during the handshake.
    bad = psql(env.via(pgw, sslcert=env.certs.mallory_crt, sslkey=env.certs.mallory_key), "SELECT 1",
               password="alice-pw")
    assert bad.returncode != 0


def test_client_certificate_cn_must_match_user_in_verify_full(env):
    pgw = env.start(client_tls={"mode": "verify-full", "ca": str(env.certs.ca_crt)})
    ok = psql(env.via(pgw, sslcert=env.certs.alice_crt, sslkey=env.certs.alice_key), "SELECT 1", password="alice-pw")
    assert ok.returncode == 0, ok.stderr
    wrong_user = psql(env.via(pgw, user="bob", sslcert=env.certs.alice_crt, sslkey=env.certs.alice_key), "SELECT 1",
                      password="bob-pw")
    assert wrong_user.returncode != 0
    assert "certificate authentication failed" in wrong_user.stderr


def test_scram_passthrough_with_only_pg_authid_secret(env):
    """The auth file holds the SCRAM secret copied from pg_authid and no password: pgwarden logs in to PostgreSQL
    with the ClientKey the client proved."""
    secret = env.cluster.scram_secret("scramonly")
    assert secret.startswith("SCRAM-SHA-256$")
    env.userlist({"scramonly": secret})
    pgw = env.start(auth={"file": str(env.tmp / "userlist.txt")})
    r = psql(env.via(pgw, user="scramonly"), "SELECT current_user", password="scram-pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "scramonly"
    assert "scram-pw" not in pgw.log()


def test_server_md5_and_cleartext_methods(env):
    pgw = env.start()
    r = psql(env.via(pgw, user="md5user"), "SELECT current_user", password="md5-pw")
    assert r.returncode == 0 and r.stdout.strip() == "md5user", r.stderr
    r = psql(env.via(pgw, user="pwuser"), "SELECT current_user", password="pw-pw")
    assert r.returncode == 0 and r.stdout.strip() == "pwuser", r.stderr


def test_database_password_used_for_forced_user(env):
    pgw = env.start(database=[{"name": "app", "host": "localhost", "port": env.cluster.port, "user": "bob",
                               "password": "bob-pw"}])
    r = psql(env.via(pgw), "SELECT current_user", password="alice-pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bob"


def test_missing_server_secret_names_the_problem(env):
    env.userlist({"alice": "alice-pw", "scramonly": "scram-pw-but-wrong-for-md5"})
    pgw = env.start(auth={"file": str(env.tmp / "userlist.txt")},
                    database=[{"name": "app", "host": "localhost", "port": env.cluster.port, "user": "md5user"}])
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0
    assert "no usable secret" in r.stderr


def test_sigterm_drains_idle_and_open_transactions(env):
    psycopg = pytest.importorskip("psycopg")
    pgw = env.start(proxy={"workers": 2, "shutdown_timeout": "20s"})
    idle = psycopg.connect(env.via(pgw), password="alice-pw", autocommit=True)
    busy = psycopg.connect(env.via(pgw), password="alice-pw")
    busy.execute("CREATE TEMP TABLE drain_t (x int)")
    busy.execute("INSERT INTO drain_t VALUES (1)")  # transaction open
    pgw.signal(signal.SIGTERM)
    time.sleep(0.5)
    # New connections are refused while draining.
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0 and ("shutting down" in r.stderr or "Connection refused" in r.stderr)
    # The open transaction finishes normally...
    assert busy.execute("SELECT count(*) FROM drain_t").fetchone()[0] == 1
    busy.commit()
    # ...and both sessions end with 57P01 at an idle point.
    for conn in (idle, busy):
        with pytest.raises(psycopg.OperationalError) as exc:
            conn.execute("SELECT 1")
        assert "terminating connection due to administrator command" in str(exc.value) or \
            "server closed the connection" in str(exc.value) or "consuming input failed" in str(exc.value)
    pgw.proc.wait(20)
    assert pgw.proc.returncode == 0


def test_second_signal_exits_at_once(env):
    psycopg = pytest.importorskip("psycopg")
    pgw = env.start(proxy={"workers": 2, "shutdown_timeout": "60s"})
    conn = psycopg.connect(env.via(pgw), password="alice-pw")
    conn.execute("SELECT 1")  # transaction open: the drain would wait for it
    pgw.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert pgw.proc.poll() is None
    pgw.signal(signal.SIGINT)
    pgw.proc.wait(10)
    conn.close()


def test_max_client_conn_53300(env):
    pgw = env.start(proxy={"workers": 2, "max_client_conn": 2})
    psycopg = pytest.importorskip("psycopg")
    held = [psycopg.connect(env.via(pgw), password="alice-pw") for _ in range(2)]
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0 and "max_client_conn" in r.stderr
    for c in held:
        c.close()
    time.sleep(0.3)
    env.assert_serves(pgw)


def test_ipv6_listener(env):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("environment: no IPv6 loopback on this machine")
    port6 = harness.free_port()
    pgw = env.start(extra_listen=[f"[::1]:{port6}"])
    conninfo = (f"host=::1 port={port6} dbname=app user=alice sslmode=verify-full "
                f"sslrootcert={env.certs.ca_crt}")
    r = psql(conninfo, "SELECT inet_client_addr() IS NOT NULL", password="alice-pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "t"
    assert "client=[::1]:" in pgw.log()
