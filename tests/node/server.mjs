// Starts the `kms` server binary for the Node end-to-end tests (same interface as tests/e2e/conftest.py).
//
//   KMS_BIN (default <repo>/target/debug/kms)
//   kms server --listen 127.0.0.1:<port> --data-dir <tmp> --account-id 1234567890123456 --enable-test-clock
//   env KMS_ACCESS_KEY_ID / KMS_ACCESS_KEY_SECRET become the first access key
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ACCOUNT_ID = '1234567890123456';
export const REGION = 'cn-hangzhou';

export function kmsBin() {
  const p = process.env.KMS_BIN;
  if (p) return path.isAbsolute(p) ? p : path.join(REPO_ROOT, p);
  return path.join(REPO_ROOT, 'target', 'debug', 'kms');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class KmsServer {
  // opts.extraArgs: additional `kms server` flags, e.g. ['--max-keys', '3']
  constructor(opts = {}) {
    this.extraArgs = opts.extraArgs ?? [];
    this.bin = kmsBin();
    this.base = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-node-e2e-'));
    this.dataDir = path.join(this.base, 'data');
    fs.mkdirSync(this.dataDir, { recursive: true });
    this.ak = 'LTAI' + randomBytes(10).toString('hex');
    this.sk = randomBytes(22).toString('base64').replace(/=+$/, '');
    this.accountId = ACCOUNT_ID;
    this.port = null;
    this.proc = null;
    this.log = '';
    this.clockOffset = 0;
  }

  get endpoint() {
    return `127.0.0.1:${this.port}`;
  }

  async start() {
    if (!fs.existsSync(this.bin)) {
      throw new Error(`KMS server binary not found at ${this.bin}; build it (cargo build -p kms) or set KMS_BIN`);
    }
    this.port = this.port ?? (await freePort());
    this.log = '';
    this.proc = spawn(this.bin, [
      'server', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir,
      '--account-id', this.accountId, '--enable-test-clock', ...this.extraArgs,
    ], {
      env: { ...process.env, KMS_ACCESS_KEY_ID: this.ak, KMS_ACCESS_KEY_SECRET: this.sk },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const child = this.proc;
    // never leave an orphaned server behind if the test process exits abruptly
    const reaper = () => { try { child.kill('SIGKILL'); } catch { /* already gone */ } };
    process.once('exit', reaper);
    child.once('exit', () => process.removeListener('exit', reaper));
    const append = (d) => { this.log = (this.log + d.toString()).slice(-20000); };
    this.proc.stdout.on('data', append);
    this.proc.stderr.on('data', append);
    let exited = null;
    this.proc.once('exit', (code, sig) => { exited = { code, sig }; });

    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      if (exited) {
        this.proc = null;
        throw new Error(`kms server exited early (${JSON.stringify(exited)}):\n${this.log}`);
      }
      try {
        const r = await fetch(`http://127.0.0.1:${this.port}/healthz`);
        await r.arrayBuffer();
        if (r.status === 200) return this;
      } catch { /* not listening yet */ }
      await sleep(50);
    }
    this.proc.kill('SIGKILL');
    this.proc = null;
    throw new Error(`kms server not ready within 20 s:\n${this.log}`);
  }

  async stop(signal = 'SIGTERM') {
    if (!this.proc) return null;
    const proc = this.proc;
    this.proc = null;
    const done = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15000);
    const res = await done;
    clearTimeout(timer);
    return res;
  }

  async restart() {
    await this.stop('SIGTERM');
    this.clockOffset = 0;
    return this.start();
  }

  async kill9AndRestart() {
    await this.stop('SIGKILL');
    this.clockOffset = 0;
    return this.start();
  }

  async advanceClock(seconds) {
    const r = await fetch(`http://127.0.0.1:${this.port}/__test/clock?advance=${seconds}`, { method: 'POST' });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`clock advance failed: ${r.status} ${JSON.stringify(body)}`);
    this.clockOffset += seconds;
    return body;
  }

  now() {
    return new Date(Date.now() + this.clockOffset * 1000);
  }

  newAccount(accountId = '9' + String(Math.floor(Math.random() * 1e15)).padStart(15, '0')) {
    const out = execFileSync(this.bin, ['admin', 'access-key', 'create', '--data-dir', this.dataDir,
      '--account-id', accountId], { encoding: 'utf8' });
    const lines = out.split('\n').filter((l) => l.trim());
    if (lines.length !== 1) throw new Error(`expected one JSON line, got: ${out}`);
    return JSON.parse(lines[0]);
  }

  async cleanup() {
    await this.stop();
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}

export async function startServer(opts = {}) {
  const s = new KmsServer(opts);
  await s.start();
  return s;
}
