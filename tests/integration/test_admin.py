"""The admin console and /metrics against a live pgwarden, checked against the load the tests create themselves
(pg_stat_activity, clients they hold open, transactions they count), against PgBouncer's own console for column
names and types, and through the Debian prometheus-pgbouncer-exporter and Prometheus' text-format parser."""
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request

import pytest

import harness
from harness import wait_until

psycopg2 = pytest.importorskip("psycopg2")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

ADMIN = "bob"
ADMIN_PW = "bob-pw"


def admin_connect(env, pgw, dbname="pgwarden", user=ADMIN, password=ADMIN_PW):
    c = psycopg2.connect(host="localhost", port=pgw.port, dbname=dbname, user=user, password=password,
                         sslmode="verify-full", sslrootcert=str(env.certs.ca_crt), connect_timeout=10)
    c.autocommit = True
    return c


def show(conn, what):
    with conn.cursor() as cur:
        cur.execute(f"SHOW {what}")
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


def columns(conn, what):
    with conn.cursor() as cur:
        cur.execute(f"SHOW {what}")
        cur.fetchall()
        return [(d.name, d.type_code) for d in cur.description]


def command(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.statusmessage


def server_connections(cluster, db="app", user="alice"):
    return int(cluster.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND usename = '{user}' "
                           "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"))


def client(env, pgw, user="alice", password="alice-pw"):
    c = psycopg2.connect(env.via(pgw, user=user), password=password, connect_timeout=10)
    c.autocommit = True
    return c


def start(env, **overrides):
    sections = {"proxy": {"workers": 2, "admin_users": [ADMIN]}, "pool": {"mode": "transaction", "default_size": 3}}
    for k, v in overrides.items():
        sections[k] = {**sections.get(k, {}), **v} if isinstance(v, dict) else v
    return env.start(**sections)


def test_only_admin_users_get_the_console_and_both_names_work(env):
    pgw = start(env)
    with pytest.raises(psycopg2.Error) as e:
        admin_connect(env, pgw, user="alice", password="alice-pw")
    assert e.value.pgcode == "42501" or "may not use the admin console" in str(e.value), str(e.value)
    with pytest.raises(psycopg2.Error) as e:
        admin_connect(env, pgw, password="wrong")
    assert "password authentication failed" in str(e.value)
    for name in ("pgwarden", "pgbouncer"):
        c = admin_connect(env, pgw, dbname=name)
        assert show(c, "VERSION")[0]["version"].startswith("pgwarden ")
        c.close()
    # Ordinary SQL and unknown commands are errors that leave the console usable.
    c = admin_connect(env, pgw)
    with pytest.raises(psycopg2.Error) as e:
        command(c, "SELECT 1")
    assert e.value.pgcode == "42601"
    with pytest.raises(psycopg2.Error) as e:
        command(c, "SHOW NONSENSE")
    assert e.value.pgcode == "42601"
    assert show(c, "STATE")
    c.close()
    env.assert_serves(pgw)


@pytest.fixture
def pgbouncer_console(env):
    """A real PgBouncer's admin console, for column names and types."""
    port = harness.free_port()
    d = harness.new_tempdir("pgw-pgbouncer-")  # readable by the postgres user PgBouncer runs as
    (d / "users.txt").write_text('"ops" ""\n')
    (d / "pgbouncer.ini").write_text(
        f"[databases]\napp = host=127.0.0.1 port={env.cluster.port} dbname=app\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {d}/users.txt\nadmin_users = ops\nlogfile = {d}/pgbouncer.log\nunix_socket_dir =\n")
    shutil.chown(d, "postgres")
    for f in d.iterdir():
        shutil.chown(f, "postgres")
    cmd = ["pgbouncer", str(d / "pgbouncer.ini")]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        harness.wait_for_port(port, proc=proc)
        c = psycopg2.connect(host="127.0.0.1", port=port, dbname="pgbouncer", user="ops", connect_timeout=10)
        c.autocommit = True
        yield c
        c.close()
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("what", ["POOLS", "STATS", "CLIENTS", "SERVERS", "DATABASES", "USERS", "CONFIG", "LISTS",
                                  "VERSION", "STATS_TOTALS", "STATS_AVERAGES"])
def test_show_columns_are_pgbouncers(env, pgbouncer_console, what):
    pgw = start(env)
    ours = columns(admin_connect(env, pgw), what)
    theirs = columns(pgbouncer_console, what)
    # PgBouncer's columns, in its order and with its types; pgwarden may add its own after them.
    assert ours[:len(theirs)] == theirs
    if what == "LISTS":
        names = {r["list"] for r in show(admin_connect(env, pgw), "LISTS")}
        assert {r["list"] for r in show(pgbouncer_console, "LISTS")} <= names


def run_pgbench(env, pgw, tmp_path, transactions, clients, extra=()):
    script = tmp_path / "one.sql"
    script.write_text("SELECT 1;\n")
    e = dict(os.environ, PGPASSWORD="alice-pw", PGSSLMODE="verify-full", PGSSLROOTCERT=str(env.certs.ca_crt))
    r = harness.run(["pgbench", "-n", "-f", str(script), "-t", str(transactions), "-c", str(clients),
                     "-h", "localhost", "-p", str(pgw.port), "-U", "alice", *extra, "app"], env=e, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_pools_stats_and_the_debian_exporter_match_the_load(env, tmp_path):
    pgw = start(env)
    held = [client(env, pgw) for _ in range(4)]  # logged in, idle between transactions
    for c in held:
        with c.cursor() as cur:
            cur.execute("SELECT 1")
    admin = admin_connect(env, pgw)
    before = {r["database"]: r for r in show(admin, "STATS")}.get("app", {"total_xact_count": 0,
                                                                           "total_query_count": 0})
    run_pgbench(env, pgw, tmp_path, transactions=50, clients=2)
    after = {r["database"]: r for r in show(admin, "STATS")}["app"]
    # 2 clients x 50 transactions of one statement each, counted exactly.
    assert after["total_xact_count"] - before["total_xact_count"] == 100
    assert after["total_query_count"] - before["total_query_count"] == 100
    assert after["total_requests"] == after["total_query_count"]
    assert after["total_received"] > 0 and after["total_sent"] > 0 and after["total_xact_time"] > 0

    # pgbench has closed its connections when it exits, but their sessions end on pgwarden's side a moment
    # later (the server side of each, parked since its last transaction, is stopped and joined first).
    wait_until(lambda: show_pool(admin)["cl_active"] == 4, what="pgbench's sessions to end")
    pools = {(r["database"], r["user"]): r for r in show(admin, "POOLS")}
    p = pools[("app", "alice")]
    assert p["cl_active"] == 4 and p["cl_waiting"] == 0
    assert p["pool_mode"] == "transaction"
    wait_until(lambda: server_connections(env.cluster) == show_pool(admin)["sv_active"] + show_pool(admin)["sv_idle"],
               what="SHOW POOLS servers to match pg_stat_activity")
    assert 1 <= server_connections(env.cluster) <= 3  # default_size
    clients = [r for r in show(admin, "CLIENTS") if r["database"] == "app"]
    assert len(clients) == 4 and all(r["tls"] == "TLSv1.3" and r["user"] == "alice" for r in clients)
    servers = [r for r in show(admin, "SERVERS") if r["database"] == "app"]
    pids = {int(x) for x in env.cluster.sql("SELECT pid FROM pg_stat_activity WHERE datname = 'app' AND "
                                            "usename = 'alice' AND backend_type = 'client backend'").split()}
    assert {r["remote_pid"] for r in servers} == pids
    dbs = {r["name"]: r for r in show(admin, "DATABASES")}
    assert dbs["app"]["pool_size"] == 3 and dbs["app"]["current_connections"] == len(pids)
    lists = {r["list"]: r["items"] for r in show(admin, "LISTS")}
    assert lists["used_clients"] == 5 and lists["pools"] == 1  # 4 held + this console

    # The Debian exporter, unchanged, scraping the console: its figures are the load's.
    port = harness.free_port()
    e = dict(os.environ, PGPASSWORD=ADMIN_PW, PGSSLMODE="verify-full", PGSSLROOTCERT=str(env.certs.ca_crt))
    exporter = subprocess.Popen(["prometheus-pgbouncer-exporter", "--host", "127.0.0.1", "--port", str(port),
                                 "--pgbouncer-host", "localhost", "--pgbouncer-port", str(pgw.port),
                                 "--pgbouncer-user", ADMIN], env=e, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    try:
        harness.wait_for_port(port, proc=exporter)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        exporter.terminate()
        _, err = exporter.communicate(timeout=10)
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    app_alice = (("database", "app"), ("user", "alice"))
    assert samples[("pgbouncer_active_clients", app_alice)] == 4, err
    assert samples[("pgbouncer_waiting_clients", app_alice)] == 0
    assert samples[("pgbouncer_pool_size", (("database", "app"),))] == 3
    assert samples[("pgbouncer_requests_total", (("database", "app"),))] >= 100
    assert samples[("pgbouncer_used_clients", ())] == 6  # 4 held, this console, the exporter's own
    assert samples[("pgbouncer_pools", ())] == 1
    for c in held:
        c.close()


def show_pool(admin, db="app", user="alice"):
    return {(r["database"], r["user"]): r for r in show(admin, "POOLS")}[(db, user)]


def test_reload_and_set_change_pool_sizes_and_refuse_bad_configs(env):
    pgw = start(env)
    admin = admin_connect(env, pgw)
    held = [client(env, pgw) for _ in range(5)]
    assert command(admin, "SET proxy.proxy_protocol_from TO ['10.9.0.0/16']") == "SET"  # "to" inside the key
    assert command(admin, "SET pool.default_size TO 5") == "SET"
    assert {r["name"]: r for r in show(admin, "DATABASES")}["app"]["pool_size"] == 5
    config = {r["key"]: r for r in show(admin, "CONFIG")}
    assert config["pool.default_size"]["value"] == "5"
    assert config["default_pool_size"]["value"] == "5"  # PgBouncer's name too, for exporters
    assert config["max_client_conn"]["value"] == config["proxy.max_client_conn"]["value"]
    with pytest.raises(psycopg2.Error) as e:
        command(admin, "SET pool.no_such_key = 1")
    assert e.value.pgcode == "42704"
    # Five clients in open transactions at once: five server connections.
    for c in held:
        c.autocommit = False
        c.cursor().execute("SELECT 1")
    wait_until(lambda: server_connections(env.cluster) == 5, what="5 server connections")
    for c in held:
        c.commit()
    # PgBouncer's name, and its seconds.
    assert command(admin, "SET default_pool_size = 2") == "SET"
    wait_until(lambda: server_connections(env.cluster) <= 2, what="the pool to shrink to 2")
    with pytest.raises(psycopg2.Error) as e:
        command(admin, "SET proxy.workers = 7")
    assert e.value.pgcode == "55P02"
    with pytest.raises(psycopg2.Error) as e:
        command(admin, "SET pool.default_size = 'many'")
    assert e.value.pgcode == "22023" and "expected an integer" in str(e.value)
    # RELOAD re-reads the file: its pool size (3) comes back; a broken file is refused whole.
    assert command(admin, "RELOAD") == "RELOAD"
    assert {r["name"]: r for r in show(admin, "DATABASES")}["app"]["pool_size"] == 3
    good = pgw.config_path.read_text()
    pgw.config_path.write_text(good + "\n[pool]\nnonsense = 1\n")
    with pytest.raises(psycopg2.Error) as e:
        command(admin, "RELOAD")
    assert e.value.pgcode == "F0000" and "pgwarden.toml:" in str(e.value)
    env.assert_serves(pgw)
    pgw.config_path.write_text(good)
    for c in held:
        c.close()


def test_pause_resume_kill_suspend_and_shutdown(env):
    pgw = start(env, audit={"enabled": True, "path": str(env.tmp / "audit.jsonl"), "fsync": "off"})
    admin = admin_connect(env, pgw)
    c = client(env, pgw)
    with c.cursor() as cur:
        cur.execute("SELECT 1")
    assert command(admin, "PAUSE app") == "PAUSE"
    assert {r["name"]: r for r in show(admin, "DATABASES")}["app"]["paused"] == 1
    assert server_connections(env.cluster) == 0  # PAUSE closes the idle server connections
    done = threading.Event()

    def query():
        with c.cursor() as cur:
            cur.execute("SELECT 2")
        done.set()

    t = threading.Thread(target=query)
    t.start()
    time.sleep(0.5)
    assert not done.is_set(), "a query ran on a paused database"
    assert show_pool(admin)["cl_waiting"] == 1  # waiting for RESUME
    assert show_pool(admin)["cl_active"] == 0
    assert command(admin, "RESUME app") == "RESUME"
    t.join(10)
    assert done.is_set()
    with pytest.raises(psycopg2.Error) as e:
        command(admin, "RESUME app")
    assert e.value.pgcode == "55000"
    # KILL: every client of the database is closed with 57P01 (seen on the wire: a client that writes to a
    # closed socket may only see the reset), and new work waits for RESUME.
    w = harness.tls_startup(pgw.port, env.certs.ca_crt, {"user": "alice", "database": "app"})
    assert harness.scram_login(w, "alice", "alice-pw")[-1][0] == b"Z"
    assert command(admin, "KILL app") == "KILL"
    t, body = w.read_message()
    assert t == b"E" and harness.error_fields(body)["C"] == "57P01", (t, body)
    w.close()
    with pytest.raises(psycopg2.Error):
        with c.cursor() as cur:
            cur.execute("SELECT 3")
    assert server_connections(env.cluster) == 0  # KILL closed the database's server connections too
    assert command(admin, "RESUME") == "RESUME"
    env.assert_serves(pgw)
    assert command(admin, "SUSPEND") == "SUSPEND"
    state = {r["key"]: r["value"] for r in show(admin, "STATE")}
    assert state["suspended"] == "yes"
    assert command(admin, "RESUME") == "RESUME"
    env.assert_serves(pgw)
    audit_stats = {r["key"]: r["value"] for r in show(admin, "AUDIT")}
    assert audit_stats["enabled"] == "yes" and int(audit_stats["records_written"]) > 0
    # Admin actions are audit events.
    assert command(admin, "SHUTDOWN") == "SHUTDOWN"
    assert pgw.proc.wait(30) == 0
    records = [json.loads(l) for l in (env.tmp / "audit.jsonl").read_text().splitlines()]
    admin_records = [(r["command"], r["outcome"]) for r in records if r["event"] == "admin"]
    assert admin_records == [("PAUSE", "ok"), ("RESUME", "ok"), ("RESUME", "error"), ("KILL", "ok"),
                             ("RESUME", "ok"), ("SUSPEND", "ok"), ("RESUME", "ok"), ("SHUTDOWN", "ok")]
    assert all(r["user"] == ADMIN and r["database"] == "pgwarden" for r in records if r["event"] == "admin")
    assert records[-1]["hash"] == audit_stats["chain_head"] or int(audit_stats["last_seq"]) < records[-1]["seq"]
    r = harness.run([str(harness.PGWARDEN), "audit", "verify", str(env.tmp / "audit.jsonl")])
    assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_endpoint_reports_the_load(env, tmp_path):
    port = harness.free_port()
    pgw = start(env, proxy={"workers": 2, "admin_users": [ADMIN], "metrics_listen": f"127.0.0.1:{port}"})
    held = [client(env, pgw) for _ in range(3)]
    for c in held:
        with c.cursor() as cur:
            cur.execute("SELECT 1")
    with pytest.raises(psycopg2.Error):
        client(env, pgw, password="wrong")
    run_pgbench(env, pgw, tmp_path, transactions=20, clients=2)
    families = {}

    def scrape():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        families.clear()
        families.update({f.name: f for f in text_string_to_metric_families(text)})

    def value(name, **labels):
        for f in families.values():
            for s in f.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        raise KeyError((name, labels))

    def servers_match():
        scrape()
        servers = sum(value("pgwarden_pool_servers", database="app", user="alice", state=st)
                      for st in ("active", "idle", "login"))
        return servers == server_connections(env.cluster)

    # pgbench's last connections may still be closing on the server when it exits, and its sessions on
    # pgwarden's side end a moment after it closed them.
    wait_until(servers_match, what="/metrics servers to match pg_stat_activity")

    def clients_settled():
        scrape()
        return value("pgwarden_client_connections") == 3

    wait_until(clients_settled, what="pgbench's sessions to end")
    assert value("pgwarden_pool_clients", database="app", user="alice", state="active") == 3
    assert value("pgwarden_pool_clients", database="app", user="alice", state="waiting") == 0
    assert value("pgwarden_pool_transactions_total", database="app", user="alice") >= 43  # 3 + 40
    assert families["pgwarden_pool_wait_seconds"].type == "histogram"
    count = value("pgwarden_pool_wait_seconds_count", database="app", user="alice")
    assert value("pgwarden_pool_wait_seconds_bucket", database="app", user="alice", le="+Inf") == count >= 43
    assert value("pgwarden_auth_failures_total", sqlstate="28P01") == 1
    assert value("pgwarden_client_tls_handshakes_total", result="ok") >= 3 + 2 + 1
    assert value("pgwarden_client_connections") == 3
    for c in held:
        c.close()
    # Not /metrics, or not GET: HTTP's answers.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    assert e.value.code == 404


def test_a_long_console_command_gets_an_answer_not_a_closed_connection(env):
    # The console took commands of at most the login messages' 10 kB: a longer one closed the connection with
    # no error. It reads messages up to proxy.max_packet_size, as a client's.
    pgw = start(env)
    admin = admin_connect(env, pgw)
    long_name = "x" * 20000
    with pytest.raises(psycopg2.Error) as exc:
        command(admin, f"SHOW {long_name}")
    assert exc.value.pgcode is not None, exc.value  # an ErrorResponse, not a lost connection
    assert show(admin, "VERSION")  # and the console goes on
    admin.close()
