#!/usr/bin/env python3
"""Renders the `kms bench --json` results of scripts/bench.sh as Markdown: one table per run
and the table of targets (issues 16, 18 and 21) with the figure measured in this run.

    bench_report.py DIR      # DIR holds <name>.json files written by scripts/bench.sh

Standard library only. A target whose figure is missing from this run is shown as "not
measured", never as met.
"""
import json
import os
import sys


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def run_of(doc, action):
    for r in (doc or {}).get("runs", []):
        if r.get("action") == action:
            return r
    return None


def cpu_us(run):
    """Server CPU per request in µs, if this run measured it."""
    if not run:
        return None
    for k in ("server_cpu_us_per_request", "server_cpu_us"):
        v = run.get(k)
        if isinstance(v, (int, float)):
            return float(v)
    cpu = run.get("server_cpu")
    if isinstance(cpu, dict):
        for k in ("us_per_request", "per_request_us"):
            v = cpu.get(k)
            if isinstance(v, (int, float)):
                return float(v)
    return None


def fmt(x, digits=2):
    return "—" if x is None else f"{x:,.{digits}f}"


def runs_table(title, doc):
    out = [f"### {title}", ""]
    if not doc:
        return out + ["(not run)", ""]
    out.append("| run | requests | errors | req/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | load generator CPU µs/req |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in doc.get("runs", []):
        lat = r.get("latency_ms", {})
        errs = sum(r.get("errors", {}).values())
        out.append(
            f"| {r.get('action')} | {r.get('requests', 0):,} | {errs} | {r.get('throughput', 0):,.0f} "
            f"| {fmt(lat.get('p50'))} | {fmt(lat.get('p99'))} | {fmt(lat.get('p99.9'))} | {fmt(cpu_us(r), 1)} "
            f"| {fmt(r.get('client_cpu_us_per_request'), 1)} |"
        )
    ratios = doc.get("ratios", {})
    if ratios:
        out.append("")
        out.append(", ".join(f"ratio {k.replace('vs_', '')}: {v:.2f}" for k, v in sorted(ratios.items())))
    out.append("")
    return out


def verdict(ok):
    return "—" if ok is None else ("**met**" if ok else "**missed**")


def targets(d):
    rows = []
    enc = load(d, "encrypt")
    dr = run_of(enc, "DescribeRegions")
    hz = run_of(enc, "Healthz")
    if dr and hz:
        r = dr["throughput"] / hz["throughput"]
        rows.append(("Signed DescribeRegions ≥ 0.6 × Healthz (21)", f"{r:.2f}", verdict(r >= 0.6)))
    for name, action, target, issue in (
        ("encrypt", "Encrypt", 0.85, "21"),
        ("decrypt", "Decrypt", 0.85, "21"),
        ("generatedatakey", "GenerateDataKey", 0.85, "21"),
        ("getsecretvalue", "GetSecretValue", 0.85, "18, 21"),
    ):
        doc = load(d, name)
        run = run_of(doc, action)
        ratio = (doc or {}).get("ratios", {}).get("vs_DescribeRegions")
        if run is None or ratio is None:
            rows.append((f"{action} ≥ {target} × signed DescribeRegions, p99 < 5 ms, no errors ({issue})", "not measured", "—"))
            continue
        p99 = run.get("latency_ms", {}).get("p99")
        errs = sum(run.get("errors", {}).values())
        ok = ratio >= target and p99 is not None and p99 < 5 and errs == 0
        rows.append((
            f"{action} ≥ {target} × signed DescribeRegions, p99 < 5 ms, no errors ({issue})",
            f"{ratio:.2f}; p99 {p99} ms; {errs} errors",
            verdict(ok),
        ))
    e, h = cpu_us(run_of(enc, "Encrypt")), cpu_us(hz)
    if e is not None and h:
        rows.append((
            "Server CPU per signed Encrypt ≤ 2.5 × per /healthz (21)",
            f"{e:.1f} µs / {h:.1f} µs = {e / h:.2f} ×",
            verdict(e / h <= 2.5),
        ))
    else:
        rows.append(("Server CPU per signed Encrypt ≤ 2.5 × per /healthz (21)", "not measured", "—"))
    ram = load(d, "ramuser")
    r = (ram or {}).get("ratios", {}).get("vs_root_signed")
    rows.append((
        "Encrypt as a RAM user with a one-key policy ≥ 0.95 × root-signed (16)",
        "not measured" if r is None else f"{r:.2f}",
        verdict(None if r is None else r >= 0.95),
    ))
    out = ["| target (issue) | this run | |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return out


def main():
    d = sys.argv[1]
    out = ["## Targets in this run", ""]
    out += targets(d)
    out += [
        "",
        "Memory under 10 minutes of sustained load, PostgreSQL against SQLite and a million keys",
        "are measured by their own scripts (they take longer): see the sections below.",
        "",
        "## The runs",
        "",
    ]
    for name, title in (
        ("encrypt", "Encrypt, 64-byte payload, 32 connections"),
        ("decrypt", "Decrypt, 64-byte payload, 32 connections"),
        ("generatedatakey", "GenerateDataKey, 32 connections"),
        ("mix", "Encrypt:3,Decrypt:1, 64-byte payload, 32 connections"),
        ("getsecretvalue", "GetSecretValue, 64-byte secret, 32 connections"),
        ("ramuser", "Encrypt signed by the root key, then by a RAM user allowed kms:Encrypt on the one key"),
        ("describekey", "DescribeKey, 32 connections"),
    ):
        out += runs_table(title, load(d, name))
    print("\n".join(out))


if __name__ == "__main__":
    main()
