"""Keys on the command line, in a mounted file and in the job store, and `serve` refusing an open port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from booknlp_api.api.auth import Keyring
from booknlp_api.api.serve import exposure_refusal, is_loopback
from booknlp_api.cli import main
from booknlp_api.config import Settings
from booknlp_api.jobs.key_file import KeyFile, KeyFileError, parse_key_file
from booknlp_api.jobs.keys import KeyLimits, KeyStore, hash_key

CLI = Path(sys.executable).with_name("booknlp-api")


def test_keys_cli_creates_shows_once_lists_and_revokes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BOOKNLP_DATA_DIR", str(tmp_path))
    assert main(["keys", "create", "alice", "--rate-limit", "5/minute", "--max-active-jobs", "2"]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["keys", "create", "ops", "--admin"]) == 0
    admin_key = capsys.readouterr().out.strip()
    assert key.startswith("bnlp_") and len(key) > 40 and key != admin_key

    store = KeyStore(tmp_path / "jobs.sqlite3")
    keyring = Keyring(store)
    stored = {k.name: k for k in store.all()}
    assert stored["alice"].key_hash == hash_key(key) and key not in str(stored)  # only the hash is kept
    assert stored["alice"].limits == KeyLimits("5/minute", 2, None) and stored["ops"].admin
    assert keyring.find(key) == stored["alice"] and keyring.find(key + "x") is None

    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice\tactive\tuser\trate_limit=5/minute, max_active_jobs=2" in listing
    assert "ops\tactive\tadmin\tdefault limits" in listing and key not in listing

    assert main(["keys", "create", "alice"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["keys", "revoke", "alice"]) == 0
    assert keyring.find(key) is None and keyring.find(admin_key) is not None
    assert main(["keys", "revoke", "alice"]) == 1
    assert main(["keys", "create", "no spaces"]) == 2
    with pytest.raises(SystemExit):
        main(["keys", "create", "bob", "--rate-limit", "lots"])
    with pytest.raises(SystemExit):
        main(["keys", "create", "bob", "--max-active-jobs", "0"])
    store.close()


def test_keys_hash_prints_the_form_a_keys_file_takes(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("bnlp_secret-value\n"))
    assert main(["keys", "hash"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("bnlp_secret-value")


def test_a_keys_file_takes_plain_and_hashed_keys_roles_and_limits() -> None:
    plain = "a-plain-key-of-enough-length"
    keys = parse_key_file(f"""# a Kubernetes secret
ci      {plain}
ops     {hash_key("other-key-of-enough-length")} admin   # the on-call key

batch   {hash_key("batch-key-of-enough-length")} rate_limit=600/minute max_active_jobs=50 max_chars_per_day=9
""")
    assert [(k.name, k.admin, k.source) for k in keys] == [("ci", False, "file"), ("ops", True, "file"),
                                                           ("batch", False, "file")]
    assert keys[0].key_hash == hash_key(plain) and plain not in str(keys)
    assert keys[2].limits == KeyLimits("600/minute", 50, 9)


@pytest.mark.parametrize(("text", "says"), [
    ("lonely", "line 1: expected NAME and KEY"),
    ("ci short", "at least 20 characters"),
    ("ci sha256:abc", "64 lower-case hex"),
    (f"ci {'k' * 24} superuser", "unknown option 'superuser'"),
    (f"ci {'k' * 24} rate_limit=often", "not a rate"),
    (f"ci {'k' * 24} max_active_jobs=0", "at least 1"),
    (f"ci {'k' * 24}\n\nci {'j' * 24}", "line 3: the name 'ci' is used twice"),
    (f"c/i {'k' * 24}", "not a key name"),
])
def test_a_bad_keys_file_is_refused_naming_the_line(text: str, says: str) -> None:
    with pytest.raises(KeyFileError, match=says):
        parse_key_file(text)


def test_a_mounted_keys_file_is_reread_when_it_changes_and_kept_when_broken(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"one {'1' * 24}\n", encoding="utf-8")
    keyring = Keyring(KeyStore(tmp_path / "jobs.sqlite3"), KeyFile(path))
    assert keyring.find("1" * 24) is not None and keyring.find("2" * 24) is None
    path.write_text(f"two {'2' * 24}\n", encoding="utf-8")
    os.utime(path, (time.time() + 5, time.time() + 5))  # a rotated secret: a new file, a new time
    assert keyring.find("1" * 24) is None and keyring.find("2" * 24) is not None
    path.write_text("broken\n", encoding="utf-8")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert keyring.find("2" * 24) is not None  # a bad edit does not lock everyone out
    path.write_text("broken\n", encoding="utf-8")
    with pytest.raises(KeyFileError):
        KeyFile(path)  # ... but it stops a start-up


def test_serving_without_auth_is_refused_off_loopback_unless_insecure() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("example.org")
    open_port = Settings(auth="disabled", host="0.0.0.0")
    assert "refusing" in (exposure_refusal(open_port, insecure=False) or "")
    assert exposure_refusal(open_port, insecure=True) is None
    assert exposure_refusal(Settings(auth="required", host="0.0.0.0"), insecure=False) is None
    assert exposure_refusal(Settings(auth="disabled", host="127.0.0.1"), insecure=False) is None


def test_serve_exits_before_listening_when_auth_is_off_on_every_address(tmp_path: Path) -> None:
    env = {**os.environ, "BOOKNLP_AUTH": "disabled", "BOOKNLP_DATA_DIR": str(tmp_path), "BOOKNLP_WORKERS": "0",
           "BOOKNLP_MODELS_DIR": str(tmp_path)}
    done = subprocess.run([str(CLI), "serve", "--host", "0.0.0.0", "--port", str(_free_port())], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "refusing to serve on 0.0.0.0 with BOOKNLP_AUTH=disabled" in done.stderr and "--insecure" in done.stderr


def test_serve_without_auth_on_loopback_starts_and_answers_without_a_key(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "BOOKNLP_AUTH": "disabled", "BOOKNLP_DATA_DIR": str(tmp_path), "BOOKNLP_WORKERS": "0",
           "BOOKNLP_MODELS_DIR": str(tmp_path), "BOOKNLP_LOG_LEVEL": "warning"}
    process = subprocess.Popen([str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "serve did not answer in time"
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/jobs", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["jobs"] == []
    finally:
        process.terminate()
        process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
