"""`pgwarden --config FILE --check`: every problem as FILE:LINE:COL, including in the files the config names."""
import re

import harness


def check(path):
    return harness.run([str(harness.PGWARDEN), "--config", str(path), "--check"])


def test_broken_config_names_file_line_and_column(tmp_path, certs):
    cfg = tmp_path / "broken.toml"
    cfg.write_text(f"""[proxy]
listen = ["127.0.0.1:6432"]
max_client_con = 100
workers = "four"

[client_tls]
mode = "require"
cert = "{certs.server_crt}"
key = "{certs.server_key}"
min_version = "TLSv1.1"

[server_tls]
mode = "verify-fully"

[auth]
file = "userlist.txt"

[pool]
mode = "session"
query_wait_timeout = "5 minutes"

[[database]]
name = "app"
port = 99999

[audit]
fsync = "sometimes"
""")
    r = check(cfg)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    for line in lines:
        assert re.match(rf"^{re.escape(str(cfg))}:\d+:\d+: ", line), line
    text = r.stderr
    assert f"{cfg}:3:1: unknown key 'max_client_con' in [proxy] (did you mean 'max_client_conn'?)" in text
    assert f"{cfg}:4:" in text and "proxy.workers" in text
    assert f"{cfg}:13:" in text and "verify-fully" in text
    assert f"{cfg}:20:" in text and "5 minutes" in text
    assert f"{cfg}:24:" in text and "out of range" in text
    assert f"{cfg}:27:" in text and "sometimes" in text
    assert f"{cfg}:10:" in text and "TLSv1.1" in text


def test_check_reports_problems_in_named_files(tmp_path, certs):
    userlist = tmp_path / "userlist.txt"
    userlist.write_text('"alice" "alice-pw"\n"bob" SCRAM-SHA-256$nope\n"carol" "SCRAM-SHA-256$4096:bad$bad:bad"\n')
    cfg = tmp_path / "files.toml"
    cfg.write_text(f"""[client_tls]
mode = "require"
cert = "missing.crt"
key = "{certs.server_key}"

[server_tls]
mode = "verify-full"
ca = "{certs.ca_crt}"

[auth]
file = "userlist.txt"

[pool]
mode = "session"

[[database]]
name = "app"
""")
    r = check(cfg)
    assert r.returncode == 1
    assert f"{cfg}:3:1: cannot read certificate {tmp_path}/missing.crt: No such file or directory" in r.stderr
    assert f"{userlist}:2:7: expected a double-quoted secret" in r.stderr
    assert f"{userlist}:3:9: malformed SCRAM secret for user \"carol\"" in r.stderr


def test_valid_config_passes_check(tmp_path, certs):
    (tmp_path / "userlist.txt").write_text('"alice" "alice-pw"\n')
    cfg = tmp_path / "ok.toml"
    cfg.write_text(f"""[client_tls]
cert = "{certs.server_crt}"
key = "{certs.server_key}"
[server_tls]
ca = "{certs.ca_crt}"
[auth]
file = "userlist.txt"
[pool]
mode = "session"
[[database]]
name = "app"
""")
    r = check(cfg)
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout


def test_pool_keys_are_checked(tmp_path, certs):
    (tmp_path / "userlist.txt").write_text('"alice" "alice-pw"\n')
    cfg = tmp_path / "pool.toml"
    cfg.write_text(f"""[client_tls]
cert = "{certs.server_crt}"
key = "{certs.server_key}"
[server_tls]
ca = "{certs.ca_crt}"
[auth]
file = "userlist.txt"
[pool]
default_size = 5
min_size = 6
[[database]]
name = "app"
pool_mode = "statment"
""")
    r = check(cfg)
    assert r.returncode == 1
    assert f"{cfg}:10:1: min_size (6) exceeds default_size (5)" in r.stderr
    assert f"{cfg}:13:13: database.pool_mode: invalid value \"statment\"" in r.stderr


def test_a_stray_argument_is_refused_not_ignored(tmp_path, certs):
    # "pgwarden --config F check" (a forgotten "--") must not start a server that was asked to check.
    cfg = tmp_path / "any.toml"
    cfg.write_text("")
    for args in (["--config", str(cfg), "check"], ["check", "--config", str(cfg)],
                 ["--config", str(cfg), "--check", "x"]):
        r = harness.run([str(harness.PGWARDEN), *args], timeout=30)
        assert r.returncode == 2 and "unexpected argument" in r.stderr, (args, r.stdout, r.stderr)
