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
