"""`kms bench` smoke run against the test server: each action for a moment, reporting no
errors (this checks that the load generator works, not speed)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from kms_helpers import kms_bin

ACTIONS = ["Healthz", "DescribeRegions", "DescribeKey", "Encrypt", "Decrypt", "GenerateDataKey",
           "GetParametersForImport", "ImportKeyMaterial", "Encrypt:3,Decrypt:1"]


@pytest.mark.parametrize("action", ACTIONS)
def test_bench_runs_each_action_without_errors(server, action):
    env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk)
    p = subprocess.run([str(kms_bin()), "bench", "--endpoint", f"http://127.0.0.1:{server.port}",
                        "--action", action, "--concurrency", "2", "--requests", "20", "--json"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    run = out["runs"][-1]
    assert run["requests"] == 20 and run["ok"] == 20 and run["errors"] == {}, run
    assert set(run["latency_ms"]) == {"p50", "p90", "p99", "p99.9"}


def test_bench_compare_prints_ratios(server):
    env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk)
    p = subprocess.run([str(kms_bin()), "bench", "--endpoint", f"http://127.0.0.1:{server.port}",
                        "--action", "Encrypt", "--compare", "--concurrency", "2", "--requests", "20",
                        "--signature-version", "1", "--json"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [r["action"] for r in out["runs"]] == ["Healthz", "DescribeRegions", "Encrypt"]
    assert set(out["ratios"]) == {"vs_Healthz", "vs_DescribeRegions"}
    assert all(v > 0 for v in out["ratios"].values())


# The figures of issues 16, 17, 18 and 20: each new action or option once, with a tiny run.
EXTRA = [
    (["--action", "AsymmetricSign", "--key-spec", "RSA_2048"], "AsymmetricSign"),
    (["--action", "AsymmetricSign", "--key-spec", "EC_P256"], "AsymmetricSign"),
    (["--action", "AsymmetricSign", "--key-spec", "EC_SM2"], "AsymmetricSign"),
    (["--action", "AsymmetricVerify", "--key-spec", "EC_SM2"], "AsymmetricVerify"),
    (["--action", "Encrypt", "--key-spec", "Aliyun_SM4"], "Encrypt"),
    (["--action", "Decrypt", "--key-spec", "Aliyun_SM4"], "Decrypt"),
    (["--action", "GenerateDataKey", "--key-spec", "Aliyun_SM4"], "GenerateDataKey"),
    (["--action", "GetSecretValue"], "GetSecretValue"),
]


def bench(server, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk)
    return subprocess.run([str(kms_bin()), "bench", "--endpoint", f"http://127.0.0.1:{server.port}",
                           "--concurrency", "2", "--requests", "10", "--json", *args],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args,name", EXTRA, ids=[" ".join(a[1::2]) for a, _ in EXTRA])
def test_bench_new_actions_and_key_specs(server, args, name):
    p = bench(server, *args)
    assert p.returncode == 0, p.stderr
    run = json.loads(p.stdout)["runs"][-1]
    assert run["action"] == name
    assert run["requests"] == 10 and run["ok"] == 10 and run["errors"] == {}, run


def test_bench_refuses_a_key_spec_that_does_not_fit():
    p = subprocess.run([str(kms_bin()), "bench", "--action", "Encrypt", "--key-spec", "EC_P256",
                        "--access-key-id", "x", "--access-key-secret", "y"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--key-spec EC_P256 does not fit action Encrypt" in p.stderr, p.stderr


def test_bench_as_ram_user_with_compare(server):
    p = bench(server, "--action", "Encrypt", "--as-ram-user", "--compare")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [r["action"] for r in out["runs"]] == ["Healthz", "DescribeRegions", "Encrypt",
                                                  "Encrypt as RAM user"]
    for run in out["runs"]:
        assert run["ok"] == 10 and run["errors"] == {}, run
    assert set(out["ratios"]) == {"vs_Healthz", "vs_DescribeRegions", "vs_root_signed"}
    assert all(v > 0 for v in out["ratios"].values())


def test_bench_as_ram_user_creates_a_user_with_a_one_resource_policy(server):
    """GetSecretValue as a RAM user: the user and its policy exist afterwards, and the policy
    allows kms:Encrypt and kms:GetSecretValue on the run's secret only."""
    from ram_helpers import Tea

    p = bench(server, "--action", "GetSecretValue", "--as-ram-user")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [r["action"] for r in out["runs"]] == ["GetSecretValue", "GetSecretValue as RAM user"]
    assert all(r["ok"] == 10 for r in out["runs"]), out
    assert set(out["ratios"]) == {"vs_root_signed"}
    ram = Tea("ram", server, server.ak, server.sk)
    users = [u["UserName"] for u in ram.call("ListUsers")["Users"]["User"]]
    bench_users = [u for u in users if u.startswith("kms-bench-")]
    assert bench_users
    docs = []
    for u in bench_users:
        for pol in ram.call("ListPoliciesForUser", user_name=u)["Policies"]["Policy"]:
            v = ram.call("GetPolicy", policy_name=pol["PolicyName"], policy_type="Custom")
            docs.append(json.loads(v["DefaultPolicyVersion"]["PolicyDocument"]))
    secret_docs = [d for d in docs if "kms:GetSecretValue" in d["Statement"][0]["Action"]]
    assert len(secret_docs) == 1, docs
    st = secret_docs[0]["Statement"]
    assert len(st) == 1 and st[0]["Effect"] == "Allow"
    assert st[0]["Action"] == ["kms:Encrypt", "kms:GetSecretValue"]
    assert len(st[0]["Resource"]) == 1 and st[0]["Resource"][0].startswith("acs:kms:*:*:secret/kms-bench-")


def _bench_for(server, seconds: str, *args: str) -> dict:
    env = dict(os.environ, ALIBABA_CLOUD_ACCESS_KEY_ID=server.ak, ALIBABA_CLOUD_ACCESS_KEY_SECRET=server.sk)
    p = subprocess.run([str(kms_bin()), "bench", "--endpoint", f"http://127.0.0.1:{server.port}",
                        "--concurrency", "2", "--duration", seconds, "--payload", "64", *args],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def test_bench_reports_server_cpu_per_request_found_by_its_socket(server):
    """Issue 21: the server's own CPU time per request in every phase, the server found by
    its listening socket on loopback; with --compare, the action's over Healthz's."""
    out = json.loads(_bench_for(server, "0.7", "--action", "Encrypt", "--compare", "--json").stdout)
    assert out["server_cpu"]["pid"] == server.proc.pid, out["server_cpu"]
    assert out["server_cpu"]["note"] is None
    assert [r["action"] for r in out["runs"]] == ["Healthz", "DescribeRegions", "Encrypt"]
    for run in out["runs"]:
        assert run["server_cpu_seconds"] > 0, run
        assert run["server_cpu_us_per_request"] > 0, run
        expected = run["server_cpu_seconds"] * 1e6 / run["requests"]
        assert abs(run["server_cpu_us_per_request"] - expected) < 1e-6 * expected + 1e-9
        # The load generator's own CPU per request, beside the server's.
        assert run["client_cpu_us_per_request"] > 0, run
    assert out["server_cpu"]["vs_Healthz"] > 0
    text = _bench_for(server, "0.5", "--action", "Encrypt", "--compare").stdout
    assert text.count("server CPU: ") == 3, text
    assert text.count("load generator CPU: ") == 3, text
    assert "server CPU ratio Healthz: " in text, text


def test_bench_server_cpu_with_a_given_pid_and_without_one(server):
    out = json.loads(_bench_for(server, "0.5", "--action", "DescribeRegions", "--json",
                                "--server-pid", str(server.proc.pid)).stdout)
    assert out["server_cpu"]["pid"] == server.proc.pid
    assert out["runs"][0]["server_cpu_us_per_request"] > 0
    assert out["server_cpu"]["vs_Healthz"] is None  # no --compare
    # A pid that does not exist: said so, and the run goes on.
    p = _bench_for(server, "0.3", "--action", "Healthz", "--server-pid", "999999999")
    assert "server CPU: not measured (cannot read /proc/999999999/stat)" in p.stdout, p.stdout
    assert "server CPU: " not in p.stdout.replace("server CPU: not measured", "")
    assert "load generator CPU: " in p.stdout  # its own CPU does not need the server's pid
    out = json.loads(_bench_for(server, "0.3", "--action", "Healthz", "--json",
                                "--server-pid", "999999999").stdout)
    assert out["server_cpu"]["pid"] is None and out["server_cpu"]["note"]
    assert out["runs"][0]["server_cpu_us_per_request"] is None
