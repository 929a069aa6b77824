"""Fixtures: one TLS-only PostgreSQL 15 cluster per test run, certificates, and pgwarden instances per test."""
import os

import pytest

import harness

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "md5user": "md5-pw", "pwuser": "pw-pw", "scramonly": "scram-pw",
             "certuser": "cert-client-pw"}


@pytest.fixture(scope="session")
def workdir():
    d = harness.new_tempdir()
    yield d
    harness.remove_tempdir(d)


@pytest.fixture(scope="session")
def certs(workdir):
    c = harness.Certs(workdir / "certs")
    c.alice_crt, c.alice_key = c.issue("alice", "alice")
    c.mallory_crt, c.mallory_key = c.issue("mallory", "alice", ca=(c.other_ca_crt, c.other_ca_key))
    c.certuser_crt, c.certuser_key = c.issue("certuser", "certuser")
    return c


@pytest.fixture(scope="session")
def cluster(workdir, certs):
    """hostssl-only, scram-sha-256 (md5user: md5, pwuser: password), as the foundation issue asks."""
    hba = ["local all all trust",
           "hostssl all md5user 127.0.0.1/32 md5",
           "hostssl all pwuser 127.0.0.1/32 password",
           "hostssl all certuser 127.0.0.1/32 cert",
           "hostssl all all 127.0.0.1/32 scram-sha-256"]
    pg = harness.PostgresCluster(workdir / "pg", certs, hba=hba)
    pg.sql("CREATE ROLE alice LOGIN PASSWORD 'alice-pw'")
    pg.sql("CREATE ROLE bob LOGIN PASSWORD 'bob-pw'")
    pg.sql("CREATE ROLE pwuser LOGIN PASSWORD 'pw-pw'")
    pg.sql("CREATE ROLE scramonly LOGIN PASSWORD 'scram-pw'")
    pg.sql("SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5-pw'")
    pg.sql("CREATE ROLE certuser LOGIN")
    pg.sql("CREATE DATABASE app OWNER alice")
    pg.sql("GRANT ALL ON SCHEMA public TO PUBLIC", db="app")
    yield pg
    pg.stop("immediate")


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(sections):
    """{"client_tls": {...}, "database": [{...}]} -> TOML text (lists of dicts become [[tables]])."""
    out = []
    for name, body in sections.items():
        if isinstance(body, list):
            for entry in body:
                out.append(f"[[{name}]]")
                out += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
        else:
            out.append(f"[{name}]")
            out += [f"{k} = {toml_value(v)}" for k, v in body.items() if not isinstance(v, dict)]
            for k, v in body.items():
                if isinstance(v, dict):  # a nested table, e.g. auth.cert_map
                    out.append(f"[{name}.{k}]")
                    out += [f"{toml_value(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
        out.append("")
    return "\n".join(out)


class Env:
    """What a test needs to start pgwarden in front of the cluster and to talk to both."""

    def __init__(self, tmp_path, certs, cluster):
        self.tmp = tmp_path
        self.certs = certs
        self.cluster = cluster
        self.instances = []
        self.userlist_path = None

    def userlist(self, entries=None):
        if entries is None:
            entries = dict(PASSWORDS)
            entries["scramonly"] = self.cluster.scram_secret("scramonly")
        path = self.tmp / "userlist.txt"
        path.write_text("".join(f'"{u}" "{s}"\n' for u, s in entries.items()))
        self.userlist_path = path
        return path

    def sections(self, **overrides):
        s = {
            "proxy": {"workers": 2},
            "client_tls": {"mode": "require", "cert": str(self.certs.server_crt), "key": str(self.certs.server_key)},
            "server_tls": {"mode": "verify-full", "ca": str(self.certs.ca_crt)},
            "auth": {"type": "scram-sha-256", "file": str(self.userlist_path or self.userlist())},
            "pool": {"mode": "session"},
            "database": [{"name": "app", "host": "localhost", "port": self.cluster.port}],
            "log": {"level": "debug"},
        }
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(s.get(k), dict):
                s[k] = {**s[k], **v}
            else:
                s[k] = v
        return s

    def start(self, name="pgw", extra_listen=(), **overrides):
        sections = self.sections(**overrides)
        proxy = sections.pop("proxy")
        text = "\n".join(f"{k} = {toml_value(v)}" for k, v in proxy.items()) + "\n\n" + render(sections)
        p = harness.Pgwarden(self.tmp / name, text, extra_listen=extra_listen)
        self.instances.append(p)
        return p

    def direct(self, user="alice", dbname="app", sslmode="verify-full"):
        return (f"host=localhost port={self.cluster.port} dbname={dbname} user={user} sslmode={sslmode} "
                f"sslrootcert={self.certs.ca_crt}")

    def via(self, pgw, user="alice", dbname="app", sslmode="verify-full", **extra):
        return pgw.conninfo(user=user, dbname=dbname, sslmode=sslmode, sslrootcert=self.certs.ca_crt, **extra)

    def assert_serves(self, pgw):
        """A normal client still gets served: the check that follows every failure case."""
        r = harness.psql(self.via(pgw), "SELECT 40 + 2", password="alice-pw")
        assert r.returncode == 0 and r.stdout.strip() == "42", f"pgwarden stopped serving: {r.stderr}\n{pgw.log()[-3000:]}"


@pytest.fixture(scope="session")
def plain_cluster(workdir, certs):
    """A second cluster with ssl = off, for the server-leg modes that must fall back to (or refuse) plaintext."""
    pg = harness.PostgresCluster(workdir / "pg-plain", certs, ssl_on=False,
                                 hba=["local all all trust", "host all all 127.0.0.1/32 scram-sha-256"])
    pg.sql("CREATE ROLE alice LOGIN PASSWORD 'alice-pw'")
    pg.sql("CREATE DATABASE app OWNER alice")
    yield pg
    pg.stop("immediate")


@pytest.fixture
def env(tmp_path, certs, cluster, request):
    os.chmod(tmp_path, 0o755)
    e = Env(tmp_path, certs, cluster)
    yield e
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    sanitizer_reports = []
    for p in e.instances:
        p.stop()
        log = p.log()
        if failed:
            print(f"--- pgwarden log ({p.dir}) ---\n{log[-6000:]}")
        # Under scripts/test --asan, a sanitizer report anywhere fails the test that produced it.
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in log:
                at = log.index(marker)
                sanitizer_reports.append(f"{p.dir}: {log[max(0, at - 200):at + 3000]}")
    if sanitizer_reports:
        pytest.fail("sanitizer report in pgwarden's output:\n" + "\n".join(sanitizer_reports), pytrace=False)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_sessionfinish(session, exitstatus):
    """A skipped test is not a passed test: the run fails on any skip, except those the machine itself rules out
    (reason starting with "environment:"), which are listed as NOT RUN."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    bad = []
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if "environment:" in reason:
            reporter.write_line(f"NOT RUN (this machine cannot): {rep.nodeid}: {reason}", yellow=True)
        else:
            bad.append(f"{rep.nodeid}: {reason}")
    if bad:
        for line in bad:
            reporter.write_line(f"SKIPPED TEST COUNTS AS FAILURE: {line}", red=True)
        session.exitstatus = 1
