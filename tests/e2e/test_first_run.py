"""The first ten minutes (issue 15): a fresh server's banner with copy-paste next steps, the
README's Quickstart block run as written with the `export` lines that server printed, the
pointer to the credentials on later starts, and logs without colour codes when they go to a
file (or NO_COLOR is set), with colour on a terminal."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

import pytest

from kms_helpers import REPO_ROOT, KmsServer, free_port, kms_bin

ANSI = "\x1b["


def readme_block(marker: str) -> str:
    text = (REPO_ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```sh\n(.*?)```", text, re.S)
    assert m, f"README has no <!-- {marker} --> block"
    return m.group(1)


def client_env(tmp_path) -> dict:
    """A newcomer's shell: no credentials or endpoint yet, `kms` on the PATH."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "KMS_"))}
    e.update(KMS_CLI_CONFIG=str(tmp_path / "cli" / "config.toml"),
             PATH=f"{kms_bin().parent}:{os.environ['PATH']}")
    return e


@pytest.fixture
def fresh(kms_binary, tmp_path):
    """A server on an empty data dir that generates its first access key (no
    KMS_ACCESS_KEY_* given), as `cargo run --release -- server` does on a fresh clone."""
    srv = KmsServer(tmp_path / "kms-data", tmp_path / "logs",
                    extra_env={"KMS_ACCESS_KEY_ID": "", "KMS_ACCESS_KEY_SECRET": ""})
    srv.console_port = free_port()  # API port + 1 may be taken on a busy machine
    srv.extra_args += ["--console-listen", f"127.0.0.1:{srv.console_port}"]
    srv.start()
    yield srv
    if srv.proc is not None:
        srv.stop()


def wait_for(srv: KmsServer, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = srv._log_path().read_text(errors="replace")
        if needle in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def test_first_start_banner_then_quickstart_as_written_then_pointer(fresh, tmp_path):
    log = wait_for(fresh, "later starts point there")
    port = fresh.port
    m = re.search(r"^  AccessKeyId:     (LTAI\w+)\n  AccessKeySecret: (\S+)$", log, re.M)
    assert m, log
    ak, sk = m.groups()
    lines = log.splitlines()
    # The next steps, ready to paste: the exports, the command, the console and what it takes.
    assert "Next steps (copy and paste):" in lines, log
    assert f"  export ALIBABA_CLOUD_ACCESS_KEY_ID={ak} ALIBABA_CLOUD_ACCESS_KEY_SECRET={sk}" in lines, log
    assert f"  export KMS_ENDPOINT=http://127.0.0.1:{port}" in lines, log
    assert any(ln.startswith("  kms DescribeRegions ") and "cargo install --path crates/kms" in ln
               for ln in lines), log
    assert (f"  # or keep them in a profile: kms configure --access-key-id {ak} "
            f"--endpoint http://127.0.0.1:{port}   (asks for the secret)") in lines, log
    assert (f'  Web console: open http://127.0.0.1:{fresh.console_port}/console and sign in with "Access key" '
            f"(the AccessKeyId and AccessKeySecret above).") in lines, log
    data_dir = fresh.data_dir.resolve()
    assert (f"  The credentials stay in {data_dir / 'initial-access-key.json'} (mode 0600); "
            f"later starts point there.") in lines, log

    # The newcomer pastes the export lines the server printed, then the Quickstart block.
    exports = "\n".join(ln.strip() for ln in lines if ln.startswith("  export "))
    script = "set -euo pipefail\n" + exports + "\n" + readme_block("quickstart")
    p = subprocess.run(["bash", "-c", script], env=client_env(tmp_path), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[-1] == "hello", p.stdout
    assert "deprecated" not in p.stderr.lower(), p.stderr
    key_material = tmp_path / "byok-demo" / "KeyMaterial.bin"
    assert key_material.stat().st_size == 32

    # The key is an imported one, enabled: check through the same command line.
    env = dict(client_env(tmp_path), ALIBABA_CLOUD_ACCESS_KEY_ID=ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=sk,
               KMS_ENDPOINT=f"http://127.0.0.1:{port}")
    out = subprocess.run([str(kms_bin()), "ListKeys", "--output", "cols=KeyId", "rows=Keys.Key[]"],
                         env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    key = out.splitlines()[2].strip()
    d = subprocess.run([str(kms_bin()), "DescribeKey", "--KeyId", key, "--output",
                        "value=KeyMetadata.Origin,KeyMetadata.KeyState"],
                       env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert d.split() == ["EXTERNAL", "Enabled"]

    # A later start: where the credentials are, and neither the secret nor the next steps.
    fresh.restart()
    log2 = wait_for(fresh, "Credentials:")
    assert (f"Credentials: the first access key (AccessKeyId, AccessKeySecret) is in "
            f"{data_dir / 'initial-access-key.json'}; use it with ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, "
            f"kms configure, or the web console's \"Access key\" sign-in.") in log2.splitlines(), log2
    assert sk not in log2 and "Next steps" not in log2, log2


def test_a_given_access_key_gets_exports_without_its_secret(kms_binary, tmp_path):
    srv = KmsServer(tmp_path / "data", tmp_path / "logs").start()
    try:
        log = wait_for(srv, "  kms DescribeRegions ")
        assert (f'  export ALIBABA_CLOUD_ACCESS_KEY_ID={srv.ak} '
                f'ALIBABA_CLOUD_ACCESS_KEY_SECRET="$KMS_ACCESS_KEY_SECRET"') in log.splitlines(), log
        assert srv.sk not in log
        # Those lines work as printed, in a shell that has what the server had.
        exports = "\n".join(ln.strip() for ln in log.splitlines() if ln.startswith("  export "))
        env = dict(client_env(tmp_path), KMS_ACCESS_KEY_SECRET=srv.sk)
        p = subprocess.run(["bash", "-c", f"set -eu\n{exports}\nkms DescribeRegions --output value=Regions"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        # Restarted without the initial-access-key.json file: how to list and make keys.
        srv.restart()
        log2 = wait_for(srv, "Credentials:")
        assert (f"Credentials: kms admin access-key list --data-dir {srv.data_dir.resolve()} shows the access keys; "
                f"kms admin access-key create --data-dir {srv.data_dir.resolve()} makes one (its secret is shown once)."
                ) in log2.splitlines(), log2
    finally:
        srv.stop()


def test_logs_to_a_file_have_no_colour_codes(fresh):
    # Info lines (a new root key; stopping) and a warning (the test clock) are in the log;
    # none carries an escape code.
    fresh.stop()
    log = fresh._log_path().read_text(errors="replace")
    assert " WARN " in log and " INFO " in log, log
    assert ANSI not in log, repr(log[:400])


def _run_on_a_terminal(tmp_path, extra_env: dict) -> str:
    """Starts a server whose stdout and stderr are a pseudo-terminal; returns what it wrote
    until it listens (then stops it)."""
    master, slave = pty.openpty()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(KMS_ACCESS_KEY_ID="", KMS_ACCESS_KEY_SECRET="", **extra_env)
    proc = subprocess.Popen([str(kms_bin()), "server", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(tmp_path / f"tty-data-{port}"), "--enable-test-clock"],
                            env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and b"later starts point there" not in out:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        os.close(master)
    return out.decode(errors="replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(kms_binary, tmp_path):
    on_tty = _run_on_a_terminal(tmp_path, {})
    assert "later starts point there" in on_tty, on_tty
    assert ANSI in on_tty, "a terminal gets coloured log levels"
    no_color = _run_on_a_terminal(tmp_path, {"NO_COLOR": "1"})
    assert "later starts point there" in no_color, no_color
    assert ANSI not in no_color, repr(no_color[:400])


def test_test_sh_prints_each_step_s_time_and_a_summary(tmp_path):
    """scripts/test.sh's timing wrapper, run on stand-in steps (its set-up up to the first
    real step, then three quick steps, the last failing when asked)."""
    text = (REPO_ROOT / "scripts" / "test.sh").read_text()
    first = re.search(r'^step "', text, re.M)
    assert first, "scripts/test.sh has no step"
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "test.sh"
    script.write_text(text[:first.start()] + 'step "one"\nsleep 1\nstep "two"\nstep "three"\n${FAIL:+false}\necho done\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "KMS_TEST_STEPS"}
    ok = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    out = ok.stdout.splitlines()
    # Seconds are whole `date +%s` ticks: `sleep 1` spans one or two of them, an instant step
    # zero or one.
    assert any(re.fullmatch(r"---- one: 0m 0[12]s", l) for l in out), ok.stdout
    assert any(re.fullmatch(r"---- two: 0m 0[01]s", l) for l in out), ok.stdout
    i = out.index("==== summary")
    pats = [r"    0m 0[12]s  one", r"    0m 0[01]s  two", r"    0m 0[01]s  three"]
    assert all(re.fullmatch(p, l) for p, l in zip(pats, out[i + 1:i + 4])), ok.stdout
    assert re.fullmatch(r"test\.sh: PASSED: 3 steps in 0m 0[12]s", out[-1]), ok.stdout
    bad = subprocess.run([str(script)], env=dict(env, FAIL="1"), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "done" not in bad.stdout.splitlines()
    assert re.fullmatch(r'test\.sh: FAILED \(exit 1\) in step "three" after 0m 0[12]s \(3 steps started\)',
                        bad.stdout.splitlines()[-1]), bad.stdout
