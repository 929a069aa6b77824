"""Client authentication methods (scram-sha-256, md5, password, cert, trust), where secrets come from (auth file,
auth_query), SCRAM passthrough and channel binding, SASLprep, and the per-address back-off, with real psql/libpq
against a real PostgreSQL 15."""
import base64
import hashlib
import json
import signal
import struct
import time

import pytest

import harness
from harness import error_fields, message, psql

# Non-ASCII with characters SASLprep changes: a no-break space (mapped to a space) and the "fi" ligature (NFKC).
INTL_PASSWORD = "p\u00e4\u00a0ss\ufb01"


@pytest.fixture(scope="module")
def roles(cluster):
    """Roles this module adds to the shared cluster (created once, idempotent)."""
    cluster.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'intl') THEN "
                "CREATE ROLE intl LOGIN; END IF; "
                "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authq') THEN CREATE ROLE authq LOGIN; END IF; "
                "IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'viaquery') THEN CREATE ROLE viaquery LOGIN; "
                "END IF; END $$")
    cluster.sql(f"ALTER ROLE intl PASSWORD '{INTL_PASSWORD}'")
    cluster.sql("ALTER ROLE authq PASSWORD 'authq-pw'")
    cluster.sql("ALTER ROLE viaquery PASSWORD 'viaquery-pw'")
    # PgBouncer's documented auth_query setup: a SECURITY DEFINER function only the query user may run.
    cluster.sql("CREATE OR REPLACE FUNCTION public.pgw_lookup(u text, OUT usename name, OUT passwd text) "
                "RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS "
                "$$ SELECT rolname, rolpassword FROM pg_authid WHERE rolname = u AND rolcanlogin $$", db="app")
    cluster.sql("REVOKE ALL ON FUNCTION public.pgw_lookup(text) FROM PUBLIC", db="app")
    cluster.sql("GRANT EXECUTE ON FUNCTION public.pgw_lookup(text) TO authq", db="app")
    return cluster


def read_auth_request(w):
    t, body = w.read_message()
    assert t == b"R", (t, body)
    return struct.unpack("!I", body[:4])[0], body[4:]


def audit_records(pgw, until):
    """The audit log's records once `until(records)` holds (the writer thread is asynchronous), else after 10 s."""
    path = pgw.dir / "audit.jsonl"
    deadline = time.monotonic() + 10
    recs = []
    while time.monotonic() < deadline:
        if path.exists():
            recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if until(recs):
                break
        time.sleep(0.1)
    return recs


# ---------------------------------------------------------------------------------------------------------------
# scram-sha-256: channel binding, passthrough, SASLprep, no user enumeration


def test_channel_binding_require_with_passthrough_only_secrets(env):
    """libpq's channel_binding=require (SCRAM-SHA-256-PLUS, tls-server-end-point) through pgwarden, whose auth file
    holds nothing but the SCRAM secrets copied from pg_authid: the server login is by passthrough."""
    env.userlist({"alice": env.cluster.scram_secret("alice"), "scramonly": env.cluster.scram_secret("scramonly")})
    pgw = env.start()
    for user, pw in (("alice", "alice-pw"), ("scramonly", "scram-pw")):
        r = psql(env.via(pgw, user=user, channel_binding="require"),
                 "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", password=pw)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"{user}|t"
    assert "SCRAM-SHA-256-PLUS" in pgw.log()
    assert "alice-pw" not in pgw.log() and "scram-pw" not in pgw.log()
    # A wrong password with channel binding still fails as any wrong password does.
    bad = psql(env.via(pgw, channel_binding="require"), "SELECT 1", password="nope")
    assert bad.returncode != 0 and 'password authentication failed for user "alice"' in bad.stderr


def test_unknown_user_and_wrong_password_look_the_same_up_to_the_proof(env):
    pgw = env.start()
    seen = {}
    for user in ("alice", "nobody", "nobody"):
        w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": user, "database": "app"})
        code, mechanisms = read_auth_request(w)
        nonce = base64.b64encode(b"n" * 18).decode()
        first = f"n,,n=,r={nonce}".encode()
        w.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
        code2, server_first = read_auth_request(w)
        attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
        w.send(message(b"p", f"c=biws,r={attrs['r']},p={base64.b64encode(b'x' * 32).decode()}".encode()))
        t, body = w.read_message()
        w.close()
        fields = error_fields(body)
        seen.setdefault(user, []).append((code, mechanisms, code2, sorted(attrs), attrs["i"],
                                          len(base64.b64decode(attrs["s"])), attrs["s"], t, fields["C"],
                                          fields["M"].replace(user, "USER")))
    real, fake = seen["alice"][0], seen["nobody"][0]
    # Same request, same mechanism list, same server-first shape, iteration count and salt length, same error.
    assert real[:6] == fake[:6]
    assert real[7:] == fake[7:] == (b"E", "28P01", 'password authentication failed for user "USER"')
    # The fake salt is stable per user, as a real one is.
    assert seen["nobody"][0][6] == seen["nobody"][1][6]


def scram_salt(pgw, env, user):
    """The salt pgwarden's server-first message shows this user."""
    w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": user, "database": "app"})
    read_auth_request(w)
    first = f"n,,n=,r={base64.b64encode(b'n' * 18).decode()}".encode()
    w.send(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
    _, server_first = read_auth_request(w)
    w.close()
    return dict(kv.split("=", 1) for kv in server_first.decode().split(","))["s"]


def test_salts_do_not_change_across_reloads_and_restarts(env):
    # A stored SCRAM secret's salt never changes: neither may a plain password's or an unknown user's, or
    # watching them across a reload, a restart or two instances of a fleet would tell which users exist.
    users = ("alice", "scramonly", "nobody")
    pgw = env.start()
    before = {u: scram_salt(pgw, env, u) for u in users}
    pgw.signal(signal.SIGHUP)
    harness.wait_until(lambda: "reloaded " in pgw.log(), 10, "the reload")
    assert {u: scram_salt(pgw, env, u) for u in users} == before
    other = env.start(name="second-instance")
    assert {u: scram_salt(other, env, u) for u in users} == before


def test_non_ascii_password_set_in_postgres(env, roles):
    """The password was set by PostgreSQL (SASLprep'd there). pgwarden derives a SCRAM secret from the auth file's
    plain password and logs in to PostgreSQL with it: both must SASLprep to match."""
    env.userlist({"alice": "alice-pw", "intl": INTL_PASSWORD})
    pgw = env.start()
    r = psql(env.via(pgw, user="intl"), "SELECT current_user", password=INTL_PASSWORD)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "intl"
    # The same through passthrough of the secret PostgreSQL stored.
    env.userlist({"alice": "alice-pw", "intl": roles.scram_secret("intl")})
    pgw2 = env.start(name="pgw2")
    r = psql(env.via(pgw2, user="intl"), "SELECT current_user", password=INTL_PASSWORD)
    assert r.returncode == 0, r.stderr
    wrong = psql(env.via(pgw2, user="intl"), "SELECT 1", password="p\u00e4ss")
    assert wrong.returncode != 0 and "28P01" not in wrong.stdout


# ---------------------------------------------------------------------------------------------------------------
# md5, password, cert, trust


def test_md5_method(env):
    pgw = env.start(auth={"type": "md5"})
    # On the wire: AuthenticationMD5Password (5) with a 4-byte salt.
    w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "md5user", "database": "app"})
    code, salt = read_auth_request(w)
    assert code == 5 and len(salt) == 4
    w.close()
    # md5 secret in the auth file (md5user), plain password (alice); both log in to PostgreSQL.
    for user, pw in (("md5user", "md5-pw"), ("alice", "alice-pw")):
        r = psql(env.via(pgw, user=user), "SELECT current_user", password=pw)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == user
    wrong = psql(env.via(pgw, user="md5user"), "SELECT 1", password="nope")
    unknown = psql(env.via(pgw, user="ghost"), "SELECT 1", password="nope")
    assert 'password authentication failed for user "md5user"' in wrong.stderr
    assert 'password authentication failed for user "ghost"' in unknown.stderr
    # A SCRAM secret cannot answer md5: PostgreSQL's rule, SCRAM runs instead (and passthrough works).
    r = psql(env.via(pgw, user="scramonly"), "SELECT current_user", password="scram-pw")
    assert r.returncode == 0, r.stderr


def test_password_method_needs_tls_and_feeds_the_server_login(env):
    # The auth file holds only the SCRAM secret from pg_authid: the server login uses the password the client sent.
    env.userlist({"alice": "alice-pw", "scramonly": env.cluster.scram_secret("scramonly")})
    pgw = env.start(auth={"type": "password"}, client_tls={"mode": "prefer"})
    plain = psql(env.via(pgw, sslmode="disable"), "SELECT 1", password="alice-pw")
    assert plain.returncode != 0
    assert "password authentication over an unencrypted connection is not allowed" in plain.stderr
    # On the wire: 28000 before any password is asked for.
    w = harness.Wire(pgw.port)
    w.send(harness.startup_packet({"user": "alice", "database": "app"}))
    t, body = w.read_message()
    assert t == b"E" and error_fields(body)["C"] == "28000"
    w.close()
    w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    assert read_auth_request(w)[0] == 3  # AuthenticationCleartextPassword
    w.close()
    for user, pw in (("alice", "alice-pw"), ("scramonly", "scram-pw")):
        r = psql(env.via(pgw, user=user), "SELECT current_user", password=pw)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == user
    wrong = psql(env.via(pgw, user="scramonly"), "SELECT 1", password="scram-pw-x")
    assert 'password authentication failed for user "scramonly"' in wrong.stderr
    log = pgw.log()
    assert "scram-pw" not in log and "alice-pw" not in log


def test_cert_method_with_cn_and_map(env):
    ca = str(env.certs.ca_crt)
    pgw = env.start(auth={"type": "cert", "cert_map": {"certuser": ["bob"]}},
                    client_tls={"mode": "require", "ca": ca})
    alice_cert = {"sslcert": env.certs.alice_crt, "sslkey": env.certs.alice_key}
    r = psql(env.via(pgw, **alice_cert), "SELECT current_user", password=None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "alice"
    # The CN is "certuser"; the map lets it log in as bob, and as nobody else (not even certuser: it is mapped).
    cert = {"sslcert": env.certs.certuser_crt, "sslkey": env.certs.certuser_key}
    r = psql(env.via(pgw, user="bob", **cert), "SELECT current_user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bob"
    r = psql(env.via(pgw, user="alice", **cert), "SELECT 1")
    assert r.returncode != 0 and 'certificate authentication failed for user "alice"' in r.stderr
    # No certificate at all: 28000, and an auth_failed audit record.
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0 and 'certificate authentication failed for user "alice"' in r.stderr
    failed = [x for x in audit_records(pgw, lambda recs: sum(r["event"] == "auth_failed" for r in recs) >= 2)
              if x["event"] == "auth_failed"]
    assert len(failed) >= 2 and {x["sqlstate"] for x in failed} == {"28000"}


def test_hba_clientcert_needs_a_verified_certificate(env):
    # clientcert= on an hba line: a password alone is not enough; verify-full also needs the CN to be the user.
    ca = str(env.certs.ca_crt)
    hba = env.tmp / "pg_hba.conf"
    hba.write_text("hostssl app alice 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n"
                   "hostssl app bob   127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n")
    pgw = env.start(auth={"hba_file": str(hba)}, client_tls={"mode": "require", "ca": ca})
    alice_cert = {"sslcert": env.certs.alice_crt, "sslkey": env.certs.alice_key}
    other_cert = {"sslcert": env.certs.certuser_crt, "sslkey": env.certs.certuser_key}
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0 and "connection requires a valid client certificate" in r.stderr, r.stderr
    r = psql(env.via(pgw, **alice_cert), "SELECT current_user", password="alice-pw")
    assert r.returncode == 0 and r.stdout.strip() == "alice", r.stderr
    r = psql(env.via(pgw, **other_cert), "SELECT 1", password="alice-pw")
    assert r.returncode != 0 and 'certificate authentication failed for user "alice"' in r.stderr, r.stderr
    # verify-ca: any certificate the CA signed, and still the password.
    r = psql(env.via(pgw, user="bob", **other_cert), "SELECT current_user", password="bob-pw")
    assert r.returncode == 0 and r.stdout.strip() == "bob", r.stderr
    r = psql(env.via(pgw, user="bob", **other_cert), "SELECT 1", password="wrong")
    assert r.returncode != 0
    r = psql(env.via(pgw, user="bob"), "SELECT 1", password="bob-pw")
    assert r.returncode != 0 and "connection requires a valid client certificate" in r.stderr, r.stderr
    # A reload that adds clientcert closes a connection without a certificate, as it would refuse it now.
    hba.write_text("hostssl app all 127.0.0.1/32 scram-sha-256\n")
    pgw.signal(signal.SIGHUP)
    harness.wait_until(lambda: "reloaded " in pgw.log(), 10, "the first reload")
    w = harness.tls_login(pgw.port, env.certs.ca_crt, "bob", "bob-pw", "app")
    hba.write_text("hostssl app all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n")
    pgw.signal(signal.SIGHUP)
    w.sock.settimeout(10)
    t, body = w.read_message()
    assert t == b"E" and error_fields(body)["C"] == "28000" and "access revoked" in error_fields(body)["M"]
    w.close()


def test_an_empty_password_in_the_auth_file_lets_nobody_in(env):
    # As in PostgreSQL and PgBouncer. Here the server login would succeed (a forced server user with its own
    # password), so only pgwarden's check stands between the client and the database.
    entries = {"alice": "alice-pw", "nopw": ""}
    env.userlist(entries)
    database = [{"name": "app", "host": "localhost", "port": env.cluster.port, "user": "alice",
                 "password": "alice-pw"}]
    for method in ("scram-sha-256", "password", "md5"):
        pgw = env.start(name=f"pgw-{method}", auth={"type": method}, database=database)
        w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "nopw", "database": "app"})
        if method == "scram-sha-256":
            got = harness.scram_login(w, "nopw", "")
        else:
            t, body = w.read_message()
            assert t == b"R", (t, body)
            answer = b"" if method == "password" else b"md5" + hashlib.md5(
                hashlib.md5(b"nopw").hexdigest().encode() + body[4:8]).hexdigest().encode()
            w.send(message(b"p", answer + b"\0"))
            got = [w.read_message()]
        assert got[-1][0] == b"E" and error_fields(got[-1][1])["C"] == "28P01", (method, got)
        w.close()


def test_trust_only_where_configured(env):
    pgw = env.start(auth={"type": "trust"})
    r = psql(env.via(pgw), "SELECT current_user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "alice"
    assert 'auth.type = "trust"' in pgw.log()
    # The default is SCRAM: the same client without a password is refused elsewhere.
    strict = env.start(name="strict")
    r = psql(env.via(strict), "SELECT 1", password="")
    assert r.returncode != 0


# ---------------------------------------------------------------------------------------------------------------
# auth_query


def test_auth_query_with_a_real_query_user(env, roles):
    # Only the query user is in the auth file; everyone else's secret comes from pg_authid through the function.
    env.userlist({"authq": "authq-pw"})
    pgw = env.start(auth={"query": "SELECT usename, passwd FROM public.pgw_lookup($1)", "query_user": "authq"})
    r = psql(env.via(pgw, user="viaquery"), "SELECT current_user", password="viaquery-pw")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "viaquery"
    # The lookup ran on a connection of its own, as authq.
    assert roles.sql("SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = 'authq'") == "t"
    # An md5 secret cannot answer SCRAM (PostgreSQL's rule too); wrong passwords and unknown users fail alike.
    r = psql(env.via(pgw, user="md5user"), "SELECT current_user", password="md5-pw")
    assert 'password authentication failed for user "md5user"' in r.stderr
    wrong = psql(env.via(pgw, user="viaquery"), "SELECT 1", password="nope")
    ghost = psql(env.via(pgw, user="ghost"), "SELECT 1", password="nope")
    assert 'password authentication failed for user "viaquery"' in wrong.stderr
    assert 'password authentication failed for user "ghost"' in ghost.stderr
    # A user created after pgwarden started is found (misses are never cached).
    roles.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'latecomer') THEN "
              "CREATE ROLE latecomer LOGIN PASSWORD 'late-pw'; END IF; END $$")
    r = psql(env.via(pgw, user="latecomer"), "SELECT current_user", password="late-pw")
    assert r.returncode == 0, r.stderr
    # A user the auth file lists with an empty password is locked out: auth.query is not asked about it.
    env.userlist({"authq": "authq-pw", "viaquery": ""})
    locked = env.start(name="locked", auth={"query": "SELECT usename, passwd FROM public.pgw_lookup($1)",
                                            "query_user": "authq"})
    r = psql(env.via(locked, user="viaquery"), "SELECT 1", password="viaquery-pw")
    assert r.returncode != 0 and 'password authentication failed for user "viaquery"' in r.stderr, r.stderr


def test_auth_query_failure_is_reported(env, roles):
    env.userlist({"authq": "authq-pw"})
    pgw = env.start(auth={"query": "SELECT usename, passwd FROM public.no_such_function($1)", "query_user": "authq"})
    r = psql(env.via(pgw, user="viaquery"), "SELECT 1", password="viaquery-pw")
    assert r.returncode != 0
    assert "auth.query failed" in r.stderr
    assert "no_such_function" in pgw.log()


# ---------------------------------------------------------------------------------------------------------------
# back-off


def test_backoff_stops_logins_already_under_way(env):
    # Ten logins opened at once from one address, each then guessing: once three guesses failed, the others
    # are refused before theirs is judged.
    pgw = env.start(auth={"backoff_after_failures": 3, "backoff_initial": "30s", "backoff_max": "30s"})
    wires = [harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "alice", "database": "app"}) for _ in range(10)]
    for w in wires:  # every login is under way (asked for SCRAM) before the first guess
        t, body = w.read_message()
        assert t == b"R" and struct.unpack("!I", body[:4])[0] == 10, (t, body)
        w.buf = message(t, body) + w.buf  # scram_login reads it again
    codes = []
    for w in wires:
        got = harness.scram_login(w, "alice", "wrong")
        assert got[-1][0] == b"E", got
        codes.append(error_fields(got[-1][1])["C"])
        w.close()
    assert codes[:3] == ["28P01"] * 3 and codes[3:] == ["53300"] * 7, codes


def test_backoff_engages_and_releases(env):
    pgw = env.start(auth={"backoff_after_failures": 3, "backoff_initial": "2s", "backoff_max": "2s"})
    for _ in range(3):
        r = psql(env.via(pgw), "SELECT 1", password="wrong")
        assert "28P01" in r.stderr or "password authentication failed" in r.stderr
    # Engaged: even the right password is refused, without running an exchange, with 53300.
    w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    t, body = w.read_message()
    w.close()
    assert t == b"E"
    fields = error_fields(body)
    assert fields["C"] == "53300" and "too many failed logins" in fields["M"]
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode != 0 and "too many failed logins" in r.stderr
    # Released once the back-off has passed; a success then clears the count.
    time.sleep(2.3)
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode == 0, r.stderr
    r = psql(env.via(pgw), "SELECT 1", password="wrong")
    assert "password authentication failed" in r.stderr
    r = psql(env.via(pgw), "SELECT 1", password="alice-pw")
    assert r.returncode == 0, r.stderr
