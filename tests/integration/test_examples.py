"""The deployment examples: each example config passes `pgwarden --check` once the files it names exist (and fails
naming the one that does not), and the sidecar's Kubernetes and Compose manifests parse and agree with its config."""
import base64
import hashlib
import hmac
import re
import secrets
import shutil
import tomllib
from pathlib import Path

import yaml

import harness

EXAMPLES = harness.ROOT / "examples"


def check(path):
    return harness.run([str(harness.PGWARDEN), "--config", str(path), "--check"], timeout=60)


def scram_secret(password, iterations=4096):
    """A SCRAM-SHA-256 secret as PostgreSQL stores it in pg_authid.rolpassword."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


def named_files(cfg):
    """{config key: path as written} for every file the config names."""
    keys = {("client_tls", "cert"), ("client_tls", "key"), ("client_tls", "ca"), ("server_tls", "ca"),
            ("server_tls", "cert"), ("server_tls", "key"), ("auth", "file"), ("auth", "hba_file"),
            ("audit", "hmac_key_file")}
    return {f"{s}.{k}": cfg[s][k] for s, k in keys if cfg.get(s, {}).get(k)}


def line_of(text, dotted):
    """The line number of `key = ...` in [section] for "section.key"."""
    section, key = dotted.split(".")
    lines = text.splitlines()
    start = lines.index(f"[{section}]")
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        if re.match(rf"{re.escape(key)}\s*=", lines[i]):
            return i + 1
    raise AssertionError(f"{dotted} not found")


def install_example(example, config_dir, certs):
    """Copies an example config to config_dir and creates every file it names, by what the key holds: the test
    CA's server certificate and key for the client leg, the test CA as PostgreSQL's CA, an auth file with a SCRAM
    secret, an HMAC key. Returns (config path, {key: absolute path})."""
    config_dir.mkdir(parents=True, exist_ok=True)
    text = example.read_text()
    cfg = tomllib.loads(text)
    path = config_dir / "pgwarden.toml"
    path.write_text(text)
    supplied = {}
    for key, name in named_files(cfg).items():
        target = (config_dir / name).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        if key == "client_tls.cert":
            shutil.copy(certs.server_crt, target)
        elif key == "client_tls.key":
            shutil.copy(certs.server_key, target)
        elif key in ("server_tls.ca", "client_tls.ca"):
            shutil.copy(certs.ca_crt, target)
        elif key == "auth.file":
            target.write_text(f'"jheuser" "{scram_secret("jhe-password")}"\n')
        elif key == "audit.hmac_key_file":
            target.write_text(secrets.token_hex(32) + "\n")
        else:
            raise AssertionError(f"the test does not know what to put in {key} = {name!r}")
        target.chmod(0o600)
        supplied[key] = target
    return path, supplied


def assert_check_passes_and_needs_every_file(example, config_dir, certs, expected_keys):
    path, supplied = install_example(example, config_dir, certs)
    assert set(supplied) == expected_keys
    r = check(path)
    assert r.returncode == 0, f"--check failed:\n{r.stdout}{r.stderr}"
    # Each named file is really read: without it, --check fails and names it at the key's line.
    text = path.read_text()
    for key, target in supplied.items():
        saved = target.read_bytes()
        target.unlink()
        r = check(path)
        target.write_bytes(saved)
        assert r.returncode == 1, f"--check passed without {key} ({target})"
        line = line_of(text, key)
        assert re.search(rf"^{re.escape(str(path))}:{line}:\d+: .*{re.escape(target.name)}", r.stderr, re.M), \
            f"{key} (line {line}): {r.stderr}"


# ---------------------------------------------------------------------------------------------------------------
# examples/systemd


def test_systemd_example_config_passes_check(tmp_path, certs):
    assert_check_passes_and_needs_every_file(
        EXAMPLES / "systemd" / "pgwarden.toml", tmp_path / "etc-pgwarden", certs,
        {"client_tls.cert", "client_tls.key", "server_tls.ca", "auth.file", "audit.hmac_key_file"})


def test_systemd_example_config_is_a_pooler_host():
    cfg = tomllib.loads((EXAMPLES / "systemd" / "pgwarden.toml").read_text())
    assert cfg["client_tls"]["mode"] == "require"
    assert cfg["server_tls"]["mode"] == "verify-full"
    assert cfg["audit"]["path"] == "/var/lib/pgwarden/audit.jsonl"
    assert cfg["audit"]["sinks"] == ["file", "syslog"]
    assert cfg["access"][0]["action"] == "allow" and cfg["access"][0]["tls"] is True
    assert cfg["access"][-1]["action"] == "deny"


# ---------------------------------------------------------------------------------------------------------------
# examples/sidecar


SIDECAR = EXAMPLES / "sidecar"


def sidecar_config():
    return tomllib.loads((SIDECAR / "pgwarden.toml").read_text())


def seconds(duration):
    if isinstance(duration, int):
        return duration
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    assert m, duration
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def test_sidecar_config_passes_check(tmp_path, certs):
    # As mounted in the pod: the ConfigMap at .../config, the Secret at .../secret beside it.
    assert_check_passes_and_needs_every_file(
        SIDECAR / "pgwarden.toml", tmp_path / "etc-pgwarden" / "config", certs,
        {"client_tls.cert", "client_tls.key", "server_tls.ca", "auth.file", "audit.hmac_key_file"})
    assert sorted(p.name for p in (tmp_path / "etc-pgwarden" / "secret").iterdir()) == \
        ["audit.key", "server-ca.pem", "sidecar.crt", "sidecar.key", "userlist.txt"]


def test_sidecar_config_is_loopback_only_with_tls_both_ways():
    cfg = sidecar_config()
    assert cfg["proxy"]["listen"] == ["127.0.0.1:6432"]
    assert cfg["client_tls"]["mode"] == "require"
    assert cfg["server_tls"]["mode"] == "verify-full"
    assert cfg["pool"]["mode"] == "transaction"
    [rule] = cfg["access"]
    assert rule["address"] == ["127.0.0.1/32", "::1/128"] and rule["tls"] is True


def test_pod_manifest_parses_and_matches_the_config():
    docs = list(yaml.safe_load_all((SIDECAR / "pod.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Pod"}
    configmap, pod = kinds["ConfigMap"], kinds["Pod"]
    assert configmap["data"]["pgwarden.toml"] == (SIDECAR / "pgwarden.toml").read_text(), \
        "the ConfigMap's pgwarden.toml differs from examples/sidecar/pgwarden.toml"
    cfg = sidecar_config()
    spec = pod["spec"]
    [sidecar] = spec["initContainers"]
    [app] = spec["containers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_path = Path(sidecar["args"][sidecar["args"].index("--config") + 1])
    assert mounts["pgwarden-config"] == str(config_path.parent)
    assert volumes["pgwarden-config"]["configMap"]["name"] == configmap["metadata"]["name"]
    # Every file the config names resolves into the Secret's mount.
    for key, name in named_files(cfg).items():
        resolved = Path(config_path.parent, name).resolve()
        assert resolved.parent == Path(mounts["pgwarden-secret"]), (key, resolved)
    assert "secret" in volumes["pgwarden-secret"]
    assert mounts["pgwarden-audit"] == str(Path(cfg["audit"]["path"]).parent)
    # Probes reach the loopback listener from inside the container.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "/dev/tcp/127.0.0.1/6432" in " ".join(sidecar[probe]["exec"]["command"]), probe
    env = {e["name"]: e.get("value") for e in app["env"]}
    host, port = cfg["proxy"]["listen"][0].rsplit(":", 1)
    assert env["DB_HOST"] == host and env["DB_PORT"] == port
    assert env["DB_SSL_MODE"] == "require"
    assert int(env["DB_CONN_MAX_AGE"]) > 0
    assert spec["terminationGracePeriodSeconds"] > seconds(cfg["proxy"]["shutdown_timeout"])
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True


def test_compose_file_parses_and_matches_the_config():
    compose = yaml.safe_load((SIDECAR / "compose.yaml").read_text())
    cfg = sidecar_config()
    pgw, app = compose["services"]["pgwarden"], compose["services"]["app"]
    assert app["network_mode"] == "service:pgwarden"
    assert app["depends_on"]["pgwarden"]["condition"] == "service_healthy"
    config_path = pgw["command"][pgw["command"].index("--config") + 1]
    assert f"./pgwarden.toml:{config_path}:ro" in pgw["volumes"]
    secret_dir = str(Path(config_path).parent.parent / "secret")
    assert f"./secret:{secret_dir}:ro" in pgw["volumes"]
    assert any(v.endswith(":" + str(Path(cfg["audit"]["path"]).parent)) for v in pgw["volumes"])
    assert "/dev/tcp/127.0.0.1/6432" in " ".join(pgw["healthcheck"]["test"])
    host, port = cfg["proxy"]["listen"][0].rsplit(":", 1)
    assert app["environment"]["DB_HOST"] == host and app["environment"]["DB_PORT"] == port
    assert app["environment"]["DB_SSL_MODE"] == "require"
    assert seconds(pgw["stop_grace_period"]) > seconds(cfg["proxy"]["shutdown_timeout"])
