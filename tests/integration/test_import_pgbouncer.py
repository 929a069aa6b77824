"""`pgwarden import-pgbouncer`: golden TOML and notes for the HIPAA guide's pgbouncer.ini and for a config using every
section, then `pgwarden --check` on the result once the files it names are supplied.

PGW_UPDATE_GOLDEN=1 rewrites the golden .toml and .stderr files from what this build prints (review the diff)."""
import os
import re
import shutil
from pathlib import Path

import harness

GOLDEN = Path(__file__).resolve().parent / "golden" / "import-pgbouncer"
UPDATE = os.environ.get("PGW_UPDATE_GOLDEN") == "1"


def import_pgbouncer(cwd, *args):
    return harness.run([str(harness.PGWARDEN), "import-pgbouncer", *args], cwd=cwd)


def check(cwd, config):
    return harness.run([str(harness.PGWARDEN), "--config", config, "--check"], cwd=cwd)


def copy_inputs(tmp_path, *names):
    for name in names:
        shutil.copy(GOLDEN / name, tmp_path / name)


def compare_golden(result, stem):
    """stdout against STEM.toml, stderr against STEM.stderr (or rewrite them with PGW_UPDATE_GOLDEN=1)."""
    for suffix, got in ((".toml", result.stdout), (".stderr", result.stderr)):
        path = GOLDEN / (stem + suffix)
        if UPDATE:
            path.write_text(got)
            continue
        assert path.exists(), f"{path} is missing: run with PGW_UPDATE_GOLDEN=1 to write it"
        want = path.read_text()
        assert got == want, (f"{path.name} differs from what this build prints (PGW_UPDATE_GOLDEN=1 rewrites it "
                             f"after review):\n--- got ---\n{got}\n--- want ---\n{want}")


def supply(tmp_path, certs, **files):
    """Puts the test certificates where the TOML looks for them: name=source."""
    for name, source in files.items():
        shutil.copy(source, tmp_path / name)


def test_guide_ini(tmp_path, certs):
    copy_inputs(tmp_path, "guide-pgbouncer.ini")
    r = import_pgbouncer(tmp_path, "guide-pgbouncer.ini")
    assert r.returncode == 0, r.stderr
    compare_golden(r, "guide-pgbouncer")
    # The guide asks for TLS "require" but names no certificate: the import says so with the line...
    assert re.search(r"^guide-pgbouncer\.ini:9: client_tls_sslmode: .*client_tls_cert_file", r.stderr, re.M), r.stderr
    toml = tmp_path / "pgwarden.toml"
    toml.write_text(r.stdout)

    # ... and --check names each missing file at the line of the TOML that names it.
    c = check(tmp_path, "pgwarden.toml")
    assert c.returncode == 1, c.stdout + c.stderr
    lines = r.stdout.splitlines()
    cert_line = lines.index('cert = "server.crt"') + 1
    file_line = lines.index('file = "userlist.txt"') + 1
    assert f"pgwarden.toml:{cert_line}:1: cannot read certificate server.crt" in c.stderr, c.stderr
    assert f"pgwarden.toml:{file_line}:1: cannot read the auth file userlist.txt" in c.stderr, c.stderr
    for line in c.stderr.strip().splitlines():
        assert re.match(r"^pgwarden\.toml:\d+:\d+: ", line), line

    # Once the files exist, the converted configuration passes.
    supply(tmp_path, certs, **{"server.crt": certs.server_crt, "server.key": certs.server_key})
    (tmp_path / "userlist.txt").write_text('"jheuser" "jheuser-password"\n')
    c = check(tmp_path, "pgwarden.toml")
    assert c.returncode == 0, c.stderr
    assert "configuration OK" in c.stdout


def test_every_section_with_userlist(tmp_path, certs):
    copy_inputs(tmp_path, "full-pgbouncer.ini", "pgbouncer-local.ini", "userlist.txt", "pgbouncer_hba.conf")
    r = import_pgbouncer(tmp_path, "full-pgbouncer.ini", "userlist.txt")
    assert r.returncode == 0, r.stderr
    compare_golden(r, "full-pgbouncer")
    # Nothing is dropped silently: every unsupported section and key is listed with its file and line.
    for expected in ("full-pgbouncer.ini:9: [users] reporter pool_mode:",
                     "full-pgbouncer.ini:12: [peers] 1:",
                     "full-pgbouncer.ini:6: [databases] *:",
                     "full-pgbouncer.ini:16: logfile:",
                     "pgbouncer-local.ini:3: dns_max_ttl:"):
        assert expected in r.stderr, r.stderr
    for line in r.stderr.strip().splitlines():
        assert re.match(r"^[\w.-]+\.ini(:\d+)?: \S", line), line
    (tmp_path / "pgwarden.toml").write_text(r.stdout)
    supply(tmp_path, certs, **{"pgbouncer.crt": certs.server_crt, "pgbouncer.key": certs.server_key,
                               "clients-ca.crt": certs.ca_crt, "root.crt": certs.ca_crt})
    c = check(tmp_path, "pgwarden.toml")
    assert c.returncode == 0, c.stderr
    assert "configuration OK" in c.stdout


def test_unreadable_or_broken_files_exit_1(tmp_path):
    r = import_pgbouncer(tmp_path, "missing.ini")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == "missing.ini:1:1: cannot read the file: No such file or directory\n"

    (tmp_path / "broken.ini").write_text("[pgbouncer]\nmax_client_conn = many\npool_mode\n")
    r = import_pgbouncer(tmp_path, "broken.ini")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == ("broken.ini:2:19: max_client_conn: invalid value \"many\": expected a whole number\n"
                        "broken.ini:3:10: expected '=' after the key \"pool_mode\"\n")

    (tmp_path / "ok.ini").write_text("[databases]\napp = host=db\n")
    (tmp_path / "users.txt").write_text('"alice" alice\n')
    r = import_pgbouncer(tmp_path, "ok.ini", "users.txt")
    assert r.returncode == 1
    assert r.stderr.startswith("users.txt:1:9: "), r.stderr
    r = import_pgbouncer(tmp_path, "ok.ini", "nope.txt")
    assert r.returncode == 1
    assert r.stderr == "nope.txt:1:1: cannot read the auth file: No such file or directory\n"


def test_usage_errors_exit_2(tmp_path):
    for args in ((), ("a.ini", "b.txt", "c"), ("--frobnicate", "a.ini")):
        r = import_pgbouncer(tmp_path, *args)
        assert r.returncode == 2, args
        assert "Usage: pgwarden import-pgbouncer" in r.stderr
    r = import_pgbouncer(tmp_path, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith("Usage: pgwarden import-pgbouncer PGBOUNCER_INI [USERLIST]")
    r = harness.run([str(harness.PGWARDEN), "--help"])
    assert "import-pgbouncer PGBOUNCER_INI [USERLIST]" in r.stdout
