#!/usr/bin/env node
// whisperd's blob store (tus 1.0.0 at /v1/blobs) with real processes: a
// whisperd on loopback (a free port, its store and blob directory in a
// temporary directory) and whisper-blob-devices, which logs real devices in
// over the sync protocol and asks for their upload tokens. Scenarios:
//
//   setup     whisperd, alice.1 and bob.1 registered, alice.2 linked; a
//             token each; OPTIONS
//   flow      a blob created, PATCHed in 3 pieces (HEAD after each), GET
//             whole and by ranges, byte for byte; an empty blob; a new
//             token of the same device works
//   refusals  every bad request with its status, and the blob directory
//             byte for byte the same after it (409 leaves the offset, ...)
//   busy      a PATCH in progress: another gets 423, a DELETE too; a PATCH
//             cut off by the client keeps what arrived; keep-alive after a
//             refused PATCH with a body
//   crash     whisperd SIGKILLed with a PATCH half written (bytes past the
//             acknowledged offset on the disk); restarted: HEAD says the
//             last acknowledged offset, the data file was cut back to it,
//             leftovers removed, and the upload completes
//   devices   another device's token gets 403; a removed device's 401
//   limits    max size (413, and UploadAuth's ERR_LIMIT), the quota (403),
//             freed by a DELETE
//   expiry    --clock-offset-ms 29 days keeps the blobs, 31 days deletes
//             them (404, the directory empty); an expired token gets 401
//   metrics   after every scenario: whisperd_blob_* against what the test
//             did (bytes in and out, blobs and bytes stored, requests by
//             status)
//   shutdown  the devices exit 0 at end of input, whisperd 0 on SIGTERM
//
//   node blobs.js --whisperd PATH --devices PATH [--timeout SECONDS]
//                 [--workdir DIR] [--keep] [--trace]
//
// Waits are for events or states with a timeout; none depends on a sleep.
// See README.md.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const MAX_SIZE = 250000;
const QUOTA = 600000;
const DAY = 24 * 3600 * 1000;
const TUS = { 'Tus-Resumable': '1.0.0' };
const OCTETS = 'application/offset+octet-stream';
const STATUSES = [200, 201, 204, 206, 400, 401, 403, 404, 405, 409, 411, 412, 413, 415, 416, 423, 500, 503, 507];

function usage(msg) {
  if (msg) process.stderr.write(`blobs.js: ${msg}\n`);
  process.stderr.write('usage: node blobs.js --whisperd PATH --devices PATH [--timeout SECONDS] [--workdir DIR] [--keep] [--trace]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { whisperd: null, devices: null, timeout: 20, workdir: null, keep: false, trace: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--whisperd') o.whisperd = path.resolve(val());
    else if (a === '--devices') o.devices = path.resolve(val());
    else if (a === '--timeout') o.timeout = Number(val());
    else if (a === '--workdir') o.workdir = val();
    else if (a === '--keep') o.keep = true;
    else if (a === '--trace') o.trace = true;
    else usage(`unknown option ${a}`);
  }
  if (!o.whisperd || !o.devices) usage('--whisperd and --devices are required');
  if (!(o.timeout > 0)) usage('--timeout must be a positive number of seconds');
  return o;
}

const short = (s, n = 200) => (s.length > n ? `${s.slice(0, n)}...` : s);
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// processes

class Proc {
  constructor(t, key, file, logName) {
    this.t = t;
    this.key = key;
    this.file = file;
    this.logPath = path.join(t.dir, logName);
    this.events = [];
    this.lines = []; // stderr lines of the current run
    this.waiters = [];
    this.exited = true;
  }

  spawn(args, onStderrLine) {
    this.events = [];
    this.lines = [];
    this.buf = '';
    this.errBuf = '';
    this.exited = false;
    this.exitCode = null;
    this.exitSignal = null;
    fs.appendFileSync(this.logPath, `--- ${new Date().toISOString()}: ${this.file} ${args.join(' ')}\n`);
    this.t.ev(`${this.key}: start ${args.join(' ')}`);
    const p = spawn(this.file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc = p;
    this.exitPromise = new Promise((resolve) => {
      p.on('error', (e) => {
        this.t.ev(`${this.key}: cannot run: ${e.message}`);
        this.exited = true;
        this.wake();
        resolve();
      });
      p.on('close', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        this.t.ev(`${this.key}: exited (${signal ? `signal ${signal}` : `code ${code}`})`);
        this.wake();
        resolve();
      });
    });
    p.stdin.on('error', () => {});
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d) => {
      this.buf += d;
      let k;
      while ((k = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, k);
        this.buf = this.buf.slice(k + 1);
        this.onLine(line);
      }
    });
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (d) => {
      fs.appendFileSync(this.logPath, d);
      this.errBuf += d;
      let k;
      while ((k = this.errBuf.indexOf('\n')) >= 0) {
        const line = this.errBuf.slice(0, k);
        this.errBuf = this.errBuf.slice(k + 1);
        this.lines.push(line);
        if (onStderrLine) onStderrLine(line);
      }
    });
  }

  onLine(line) {
    if (!line.trim()) return;
    this.t.ev(`${this.key} < ${line}`);
    try {
      this.events.push(JSON.parse(line));
    } catch {
      this.t.check('setup', false, `${this.key}: a stdout line that is not JSON: ${short(line)}`);
    }
    this.wake();
  }

  wake() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  waitFor(pred, desc, from = 0) {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      let timer = null;
      const look = () => {
        for (let i = from; i < this.events.length; i++) {
          if (pred(this.events[i])) {
            clearTimeout(timer);
            resolve(this.events[i]);
            return;
          }
        }
        if (this.exited) {
          clearTimeout(timer);
          reject(new Error(`${this.key} exited while waiting for ${desc}${this.stderrTail()}`));
          return;
        }
        this.waiters.push(look);
      };
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== look);
        reject(new Error(`${this.key}: no ${desc} within ${((Date.now() - t0) / 1000).toFixed(1)}s`));
      }, this.t.timeoutMs);
      look();
    });
  }

  stderrTail() {
    const tail = this.lines.slice(-3).join(' | ');
    return tail ? `; stderr: ${short(tail, 400)}` : '';
  }

  write(line) {
    if (this.exited) throw new Error(`${this.key} is not running (writing "${line}")`);
    this.t.ev(`${this.key} > ${line}`);
    this.proc.stdin.write(`${line}\n`);
  }

  async kill9(why) {
    if (this.exited) return;
    this.t.ev(`${this.key}: SIGKILL (${why})`);
    this.proc.kill('SIGKILL');
    await this.exitPromise;
  }
}

class Whisperd extends Proc {
  constructor(t) {
    super(t, 'whisperd', t.o.whisperd, 'whisperd.stderr');
    this.db = path.join(t.dir, 'server.db');
    this.keyFile = path.join(t.dir, 'server.key');
    this.blobDir = path.join(t.dir, 'blobs'); // the default: beside the database
    this.port = 0;
    this.metricsPort = 0; // GET /metrics: its own listener, a free port each start
  }

  async start(extra = []) {
    let listening;
    const ready = new Promise((resolve) => (listening = resolve));
    this.spawn(
      ['--listen', `127.0.0.1:${this.port}`, '--db', this.db, '--key-file', this.keyFile,
        '--log-level', 'info', '--blob-max-size', String(MAX_SIZE), '--blob-quota', String(QUOTA),
        '--metrics-listen', '127.0.0.1:0', ...extra],
      (line) => {
        const mm = /whisperd: metrics on (.*):(\d+)\s*$/.exec(line); // printed before the listening line
        if (mm) this.metricsPort = Number(mm[2]);
        const m = /whisperd: listening on (.*):(\d+)\s*$/.exec(line);
        if (m) listening(Number(m[2]));
      }
    );
    const port = await Promise.race([
      ready,
      this.exitPromise.then(() => {
        throw new Error(`whisperd exited before listening${this.stderrTail()}`);
      }),
      delay(this.t.timeoutMs).then(() => {
        throw new Error('whisperd did not print "listening on" in time');
      }),
    ]);
    if (this.port && port !== this.port) throw new Error(`whisperd listens on ${port}, asked for ${this.port}`);
    this.port = port;
    this.t.counts = {}; // its counters start again
    this.t.bytesIn = 0;
    this.t.bytesOut = 0;
  }

  async stop() {
    if (this.exited) return this.exitCode;
    this.t.ev('whisperd: SIGTERM');
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), this.t.timeoutMs);
    await this.exitPromise;
    clearTimeout(timer);
    return this.exitCode;
  }
}

class Devices extends Proc {
  constructor(t) {
    super(t, 'devices', t.o.devices, 'devices.stderr');
  }

  start() {
    this.spawn(['--url', `ws://127.0.0.1:${this.t.server.port}/v1/ws`]);
  }

  // Waits for NAME's next login (from the events after `from`).
  online(name, from) {
    return this.waitFor((e) => e.ev === 'online' && e.name === name, `${name} online`, from);
  }

  // A token of NAME (logged in): {token, expires_ms, max_size}, or the error event.
  async token(name, size) {
    for (;;) {
      const from = this.events.length;
      this.write(`token ${name}${size !== undefined ? ` ${size}` : ''}`);
      const e = await this.waitFor((x) => (x.ev === 'token' || x.ev === 'error') && (x.name === name || x.cmd === 'token'), `a token for ${name}`, from);
      if (e.ev === 'error' && e.cmd === 'token') { // not online yet (a restart): again
        await this.waitFor((x) => x.ev === 'online' && x.name === name, `${name} online`, from);
        continue;
      }
      return e;
    }
  }

  async quit() {
    if (this.exited) return this.exitCode;
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), this.t.timeoutMs);
    await this.exitPromise;
    clearTimeout(timer);
    return this.exitCode;
  }
}

// ---------------------------------------------------------------------------
// the test

const SCENARIOS = ['setup', 'flow', 'refusals', 'busy', 'devices', 'crash', 'limits', 'expiry', 'metrics', 'shutdown'];

class BlobTest {
  constructor(o, dir) {
    this.o = o;
    this.dir = dir;
    this.timeoutMs = o.timeout * 1000;
    this.t0 = Date.now();
    this.traceFd = fs.openSync(path.join(dir, 'events.log'), 'w');
    this.stats = {};
    this.notes = {};
    for (const k of SCENARIOS) this.stats[k] = { passed: 0, failed: 0 };
    this.cat = 'setup';
    this.server = new Whisperd(this);
    this.devs = new Devices(this);
    this.counts = {};
    this.bytesIn = 0;
    this.bytesOut = 0;
    this.model = new Map(); // id -> {length, offset, data}
  }

  ev(line) {
    const ts = ((Date.now() - this.t0) / 1000).toFixed(3);
    fs.writeSync(this.traceFd, `+${ts} ${line}\n`);
    if (this.o.trace) process.stderr.write(`+${ts} ${line}\n`);
  }

  check(cat, cond, msg) {
    const s = this.stats[cat];
    if (cond) {
      s.passed++;
    } else {
      s.failed++;
      process.stdout.write(`FAIL ${cat}: ${msg}\n`);
      this.ev(`FAIL ${cat}: ${msg}`);
    }
    return cond;
  }

  ok(cond, msg) {
    return this.check(this.cat, cond, msg);
  }

  // --- HTTP ----------------------------------------------------------------

  // One request on its own connection: {status, headers, body}.
  request(method, p, headers = {}, body = null, port = this.server.port) {
    const hs = { ...headers };
    if (body || method === 'POST' || method === 'PATCH') hs['Content-Length'] = String(body ? body.length : 0);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: hs, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const r = { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
          this.ev(`http ${method} ${short(p, 40)} -> ${r.status}${r.headers['upload-offset'] !== undefined ? ` offset ${r.headers['upload-offset']}` : ''} (${r.body.length} bytes)`);
          if (p.startsWith('/v1/blobs')) {
            this.counts[r.status] = (this.counts[r.status] || 0) + 1;
            if (method === 'GET' && (r.status === 200 || r.status === 206)) this.bytesOut += r.body.length;
          }
          resolve(r);
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`${method} ${p}: no answer in time`)));
      req.end(body || undefined);
    });
  }

  auth(token) {
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async create(token, length, extra = {}) {
    const r = await this.request('POST', '/v1/blobs', { ...TUS, ...this.auth(token), 'Upload-Length': String(length), ...extra });
    if (r.status === 201) {
      const m = /^\/v1\/blobs\/([0-9a-f]{64})$/.exec(r.headers.location || '');
      this.ok(m, `201 without a Location /v1/blobs/<64 hex>: ${r.headers.location}`);
      this.ok(r.headers['tus-resumable'] === '1.0.0', '201 without Tus-Resumable');
      if (m) {
        r.id = m[1];
        this.model.set(r.id, { length, offset: 0, data: crypto.randomBytes(length) });
      }
    }
    return r;
  }

  async head(id, token, extra = {}) {
    return this.request('HEAD', `/v1/blobs/${id}`, { ...TUS, ...this.auth(token), ...extra });
  }

  async patch(id, token, offset, buf, extra = {}) {
    const r = await this.request('PATCH', `/v1/blobs/${id}`, { ...TUS, ...this.auth(token), 'Upload-Offset': String(offset), 'Content-Type': OCTETS, ...extra }, buf);
    if (r.status === 204 && this.model.has(id)) {
      const b = this.model.get(id);
      const now = Number(r.headers['upload-offset']);
      this.bytesIn += now - b.offset;
      b.offset = now;
    }
    return r;
  }

  // The bytes [from, to) of blob id's intended content, PATCHed.
  async put(id, token, from, to) {
    const b = this.model.get(id);
    return this.patch(id, token, from, b.data.subarray(from, to));
  }

  async offsetOf(id, token) {
    const r = await this.head(id, token);
    return r.status === 200 ? Number(r.headers['upload-offset']) : -r.status;
  }

  // A PATCH whose body is written by the caller: {req, response}.
  openPatch(id, token, offset, total) {
    const req = http.request({
      host: '127.0.0.1', port: this.server.port, method: 'PATCH', path: `/v1/blobs/${id}`, agent: false,
      headers: { ...TUS, ...this.auth(token), 'Upload-Offset': String(offset), 'Content-Type': OCTETS, 'Content-Length': String(total) },
    });
    const response = new Promise((resolve, reject) => {
      req.on('response', (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
    });
    response.catch(() => {});
    req.flushHeaders();
    this.ev(`http PATCH ${id.slice(0, 8)} (open, ${total} bytes at ${offset})`);
    return { req, response };
  }

  dataFile(id) {
    return path.join(this.server.blobDir, `${id}.data`);
  }

  // Waits until cond() holds, polled (the state is whisperd's files).
  async until(cond, desc) {
    const t0 = Date.now();
    while (!(await cond())) {
      if (Date.now() - t0 > this.timeoutMs) throw new Error(`no ${desc} within ${this.o.timeout}s`);
      await delay(5);
    }
  }

  fileSize(f) {
    try {
      return fs.statSync(f).size;
    } catch {
      return -1;
    }
  }

  // The blob directory, every file with its size and hash.
  snapshot() {
    if (!fs.existsSync(this.server.blobDir)) return 'none';
    return fs.readdirSync(this.server.blobDir).sort()
      .map((n) => `${n}:${sha(fs.readFileSync(path.join(this.server.blobDir, n)))}`).join('\n');
  }

  // A request that must be refused with `status` and change nothing.
  async refused(desc, status, fn) {
    const before = this.snapshot();
    const r = await fn();
    this.ok(r.status === status, `${desc}: ${r.status} (${short(r.body.toString(), 80).trim()}), wanted ${status}`);
    this.ok(this.snapshot() === before, `${desc}: the blob directory changed`);
    if (r.status >= 400 && r.status !== 416 && !r.headers['tus-resumable'] && desc.startsWith('tus')) this.ok(false, `${desc}: no Tus-Resumable`);
    return r;
  }

  async metrics() {
    const r = await this.request('GET', '/metrics', {}, null, this.server.metricsPort); // its own listener
    const m = {};
    for (const line of r.body.toString().split('\n')) {
      const x = /^(whisperd_blob\w*)(\{status="(\d+)"\})?\s+(\d+)$/.exec(line);
      if (x) m[x[3] ? `${x[1]}:${x[3]}` : x[1]] = Number(x[4]);
    }
    return m;
  }

  // whisperd_blob_* against what this test did since whisperd started.
  async checkMetrics(what) {
    const m = await this.metrics();
    let stored = 0;
    let bytes = 0;
    for (const b of this.model.values()) {
      stored++;
      bytes += b.offset;
    }
    this.ok(m.whisperd_blob_bytes_in_total === this.bytesIn, `${what}: bytes in ${m.whisperd_blob_bytes_in_total}, the test PATCHed ${this.bytesIn}`);
    this.ok(m.whisperd_blob_bytes_out_total === this.bytesOut, `${what}: bytes out ${m.whisperd_blob_bytes_out_total}, the test read ${this.bytesOut}`);
    this.ok(m.whisperd_blobs_stored === stored, `${what}: blobs stored ${m.whisperd_blobs_stored}, the test has ${stored}`);
    this.ok(m.whisperd_blob_bytes_stored === bytes, `${what}: bytes stored ${m.whisperd_blob_bytes_stored}, the test has ${bytes}`);
    for (const s of STATUSES) {
      const got = m[`whisperd_blob_requests_total:${s}`];
      this.ok(got === (this.counts[s] || 0), `${what}: requests with status ${s}: ${got}, the test saw ${this.counts[s] || 0}`);
    }
  }

  // --- scenarios -------------------------------------------------------------

  async setup() {
    await this.server.start();
    this.devs.start();
    this.devs.write('up a1 alice');
    await this.devs.online('a1');
    this.devs.write('up b1 bob');
    await this.devs.online('b1');
    this.devs.write('link a2 a1 2');
    await this.devs.online('a2');
    this.tok = {};
    for (const n of ['a1', 'a2', 'b1']) {
      const e = await this.devs.token(n);
      this.ok(e.ev === 'token' && /^[A-Za-z0-9_-]{40,124}$/.test(e.token), `${n}: no token: ${JSON.stringify(e)}`);
      this.ok(e.max_size === MAX_SIZE && e.expires_ms > Date.now() + 3500 * 1000, `${n}: token fields ${JSON.stringify(e)}`);
      this.tok[n] = e.token;
    }
    const r = await this.request('OPTIONS', '/v1/blobs');
    this.ok(r.status === 204 && r.headers['tus-version'] === '1.0.0' && r.headers['tus-resumable'] === '1.0.0' &&
      r.headers['tus-extension'] === 'creation,termination' && r.headers['tus-max-size'] === String(MAX_SIZE),
    `OPTIONS: ${r.status} ${JSON.stringify(r.headers)}`);
    // refused before the first upload: not even the directory is made
    await this.refused('tus POST without a token, before any upload', 401, () => this.create(null, 10));
    await this.refused('tus POST over the max size, before any upload', 413, () => this.create(this.tok.b1, MAX_SIZE + 1));
    await this.refused('HEAD of an unknown blob, before any upload', 404, () => this.head('0'.repeat(64), this.tok.b1));
    this.ok(this.snapshot() === 'none', 'the blob directory exists before the first upload');
    await this.checkMetrics('setup');
    this.notes.setup = `whisperd on 127.0.0.1:${this.server.port}; alice.1, bob.1 registered, alice.2 linked, a token each; OPTIONS`;
  }

  async flow() {
    const len = 100000;
    const c = await this.create(this.tok.a1, len);
    this.ok(c.status === 201, `POST: ${c.status}`);
    const id = c.id;
    this.flowId = id;
    this.ok(fs.existsSync(this.dataFile(id)), 'no data file after the 201');
    this.ok((await this.offsetOf(id, this.tok.a1)) === 0, 'HEAD after POST: not 0');
    const h = await this.head(id, this.tok.a1);
    this.ok(h.headers['upload-length'] === String(len) && h.headers['cache-control'] === 'no-store' &&
      h.headers['tus-resumable'] === '1.0.0', `HEAD headers ${JSON.stringify(h.headers)}`);
    const cuts = [0, 30000, 61000, len];
    for (let i = 0; i < 3; i++) {
      const g = await this.request('GET', `/v1/blobs/${id}`);
      this.ok(g.status === 404, `GET of an incomplete blob: ${g.status}`);
      const r = await this.put(id, this.tok.a1, cuts[i], cuts[i + 1]);
      this.ok(r.status === 204 && r.headers['upload-offset'] === String(cuts[i + 1]) && r.headers['tus-resumable'] === '1.0.0',
        `PATCH ${i + 1}: ${r.status} offset ${r.headers['upload-offset']}`);
      this.ok((await this.offsetOf(id, this.tok.a1)) === cuts[i + 1], `HEAD after PATCH ${i + 1}`);
      this.ok(this.fileSize(this.dataFile(id)) === cuts[i + 1], `the data file after PATCH ${i + 1}: ${this.fileSize(this.dataFile(id))} bytes`);
    }
    const data = this.model.get(id).data;
    const g = await this.request('GET', `/v1/blobs/${id}`);
    this.ok(g.status === 200 && g.body.equals(data) && g.headers['content-length'] === String(len) &&
      g.headers['content-type'] === 'application/octet-stream' && g.headers['accept-ranges'] === 'bytes',
    `GET whole: ${g.status}, ${g.body.length} bytes, equal ${g.body.equals(data)}`);
    const ranges = [
      ['bytes=1000-1999', 1000, 2000], ['bytes=99990-', 99990, len], ['bytes=-5', len - 5, len],
      ['bytes=0-0', 0, 1], ['bytes=65530-70000', 65530, 70001], ['bytes=50000-999999', 50000, len],
      ['bytes=-200000', 0, len],
    ];
    for (const [spec, a, b] of ranges) {
      const r = await this.request('GET', `/v1/blobs/${id}`, { Range: spec });
      this.ok(r.status === 206 && r.body.equals(data.subarray(a, b)) &&
        r.headers['content-range'] === `bytes ${a}-${b - 1}/${len}` && r.headers['content-length'] === String(b - a),
      `GET ${spec}: ${r.status} ${r.headers['content-range']} ${r.body.length} bytes`);
    }
    for (const spec of ['bytes=100000-', 'bytes=200000-300000', 'bytes=-0']) {
      const r = await this.request('GET', `/v1/blobs/${id}`, { Range: spec });
      this.ok(r.status === 416 && r.headers['content-range'] === `bytes */${len}`, `GET ${spec}: ${r.status} ${r.headers['content-range']}`);
    }
    for (const spec of ['bytes=5-2', 'items=0-5', 'bytes=0-1,5-6', 'bytes=x-']) { // ignored: the whole blob
      const r = await this.request('GET', `/v1/blobs/${id}`, { Range: spec });
      this.ok(r.status === 200 && r.body.equals(data), `GET with an ignored Range ${spec}: ${r.status}`);
    }
    // an empty blob is complete at once
    const e = await this.create(this.tok.a1, 0);
    const ge = await this.request('GET', `/v1/blobs/${e.id}`);
    this.ok(e.status === 201 && ge.status === 200 && ge.body.length === 0 && ge.headers['content-length'] === '0', `empty blob: ${e.status}, GET ${ge.status}`);
    const pe = await this.patch(e.id, this.tok.a1, 0, Buffer.alloc(0));
    this.ok(pe.status === 204 && pe.headers['upload-offset'] === '0', `an empty PATCH of the empty blob: ${pe.status}`);
    // another token of the same device is the same uploader
    const t2 = await this.devs.token('a1');
    this.ok(t2.ev === 'token' && (await this.offsetOf(id, t2.token)) === len, 'a new token of alice.1 is not her own');
    await this.checkMetrics('flow');
    this.notes.flow = `a ${len}-byte blob in 3 PATCHes (HEAD after each), GET whole and ${ranges.length} ranges equal, 416 past the end, ignored ranges, an empty blob`;
  }

  async refusals() {
    const a1 = this.tok.a1;
    const c = await this.create(a1, 50000);
    const id = c.id;
    this.refuseId = id;
    await this.put(id, a1, 0, 20000);
    const body = this.model.get(id).data.subarray(20000, 30000);
    const bad = `${a1.slice(0, -2)}${a1.slice(-2) === 'AA' ? 'AB' : 'AA'}`;
    const flipped = a1.slice(0, 20) + (a1[20] === 'A' ? 'B' : 'A') + a1.slice(21);
    const other = '0'.repeat(64);
    // creation
    await this.refused('tus POST without a token', 401, () => this.create(null, 10));
    await this.refused('tus POST with a changed token', 401, () => this.create(flipped, 10));
    await this.refused('tus POST with a cut token', 401, () => this.create(bad, 10));
    await this.refused('tus POST with Basic auth', 401, () => this.create(null, 10, { Authorization: 'Basic YTpi' }));
    await this.refused('tus POST with junk as a token', 401, () => this.create('!!!', 10));
    await this.refused('tus POST without Tus-Resumable', 412, () => this.request('POST', '/v1/blobs', { ...this.auth(a1), 'Upload-Length': '10' }));
    await this.refused('tus POST of tus 0.2.2', 412, () => this.create(a1, 10, { 'Tus-Resumable': '0.2.2' }));
    await this.refused('tus POST without Upload-Length', 400, () => this.request('POST', '/v1/blobs', { ...TUS, ...this.auth(a1) }));
    for (const v of ['abc', '-1', '1e3', '', ' ', '99999999999999999999999']) {
      await this.refused(`tus POST with Upload-Length "${v}"`, 400, () => this.create(a1, 10, { 'Upload-Length': v }));
    }
    await this.refused('tus POST with Upload-Defer-Length', 400, () => this.request('POST', '/v1/blobs', { ...TUS, ...this.auth(a1), 'Upload-Defer-Length': '1' }));
    await this.refused('tus POST with a body', 400, () => this.request('POST', '/v1/blobs', { ...TUS, ...this.auth(a1), 'Upload-Length': '5' }, Buffer.from('hello')));
    await this.refused('tus POST over the max size', 413, () => this.create(a1, MAX_SIZE + 1));
    await this.refused('GET /v1/blobs', 405, () => this.request('GET', '/v1/blobs'));
    // PATCH: the offset stays where it was
    const P = (desc, status, fn) => this.refused(`tus PATCH ${desc}`, status, fn);
    await P('at an offset behind', 409, () => this.patch(id, a1, 19999, body));
    await P('at an offset ahead', 409, () => this.patch(id, a1, 20001, body));
    const r409 = await P('at 0', 409, () => this.patch(id, a1, 0, body));
    this.ok(r409.headers['upload-offset'] === '20000', `409 without the blob's offset: ${r409.headers['upload-offset']}`);
    await P('with Content-Type text/plain', 415, () => this.patch(id, a1, 20000, body, { 'Content-Type': 'text/plain' }));
    await P('without Content-Type', 415, () => this.request('PATCH', `/v1/blobs/${id}`, { ...TUS, ...this.auth(a1), 'Upload-Offset': '20000' }, body));
    await P('without Upload-Offset', 400, () => this.request('PATCH', `/v1/blobs/${id}`, { ...TUS, ...this.auth(a1), 'Content-Type': OCTETS }, body));
    await P('with Upload-Offset "x"', 400, () => this.patch(id, a1, 'x', body));
    await P('past Upload-Length', 413, () => this.patch(id, a1, 20000, Buffer.alloc(30001)));
    await P('without a token', 401, () => this.patch(id, null, 20000, body));
    await P('with a changed token', 401, () => this.patch(id, flipped, 20000, body));
    await P('with another device\'s token (alice.2)', 403, () => this.patch(id, this.tok.a2, 20000, body));
    await P('with another account\'s token (bob.1)', 403, () => this.patch(id, this.tok.b1, 20000, body));
    await P('of an unknown blob', 404, () => this.patch(other, a1, 0, body));
    await P('of a malformed id', 404, () => this.patch('ABC', a1, 0, body));
    await P('of an id in capitals', 404, () => this.patch(id.toUpperCase(), a1, 20000, body));
    await P('without Tus-Resumable', 412, () => this.request('PATCH', `/v1/blobs/${id}`, { ...this.auth(a1), 'Upload-Offset': '20000', 'Content-Type': OCTETS }, body));
    await this.refused('PATCH of the collection', 405, () => this.patch('', a1, 0, body));
    this.ok((await this.offsetOf(id, a1)) === 20000, 'the offset moved after the refused PATCHes');
    // HEAD and DELETE of another device, an unknown blob, no token
    await this.refused('tus HEAD with alice.2\'s token', 403, () => this.head(id, this.tok.a2));
    await this.refused('tus HEAD with bob.1\'s token', 403, () => this.head(id, this.tok.b1));
    await this.refused('tus HEAD of an unknown blob', 404, () => this.head(other, a1));
    await this.refused('tus HEAD without a token', 401, () => this.head(id, null));
    await this.refused('tus DELETE with alice.2\'s token', 403, () => this.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(this.tok.a2) }));
    await this.refused('tus DELETE with bob.1\'s token', 403, () => this.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(this.tok.b1) }));
    await this.refused('tus DELETE of an unknown blob', 404, () => this.request('DELETE', `/v1/blobs/${other}`, { ...TUS, ...this.auth(a1) }));
    await this.refused('tus DELETE without Tus-Resumable', 412, () => this.request('DELETE', `/v1/blobs/${id}`, this.auth(a1)));
    await this.refused('GET of an unknown blob', 404, () => this.request('GET', `/v1/blobs/${other}`));
    await this.refused('GET of an incomplete blob', 404, () => this.request('GET', `/v1/blobs/${id}`));
    await this.refused('PUT', 405, () => this.request('PUT', `/v1/blobs/${id}`, {}, Buffer.from('x')));
    // the refused ones changed nothing: the upload goes on from 20000
    const r = await this.put(id, a1, 20000, 50000);
    const g = await this.request('GET', `/v1/blobs/${id}`);
    this.ok(r.status === 204 && g.status === 200 && g.body.equals(this.model.get(id).data), `the upload after the refusals: ${r.status}, GET ${g.status}`);
    // DELETE by the uploader: gone
    const d = await this.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(a1) });
    this.ok(d.status === 204 && d.headers['tus-resumable'] === '1.0.0', `DELETE: ${d.status}`);
    this.model.delete(id);
    this.ok((await this.request('GET', `/v1/blobs/${id}`)).status === 404, 'GET after DELETE is not 404');
    this.ok((await this.head(id, a1)).status === 404, 'HEAD after DELETE is not 404');
    this.ok(!fs.existsSync(this.dataFile(id)) && !fs.existsSync(path.join(this.server.blobDir, `${id}.meta`)), 'files left after DELETE');
    await this.refused('tus DELETE again', 404, () => this.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(a1) }));
    await this.checkMetrics('refusals');
    this.notes.refusals = 'POST (401 x5, 412 x2, 400 x10, 413), PATCH (409 x3 with the offset, 415 x2, 400 x2, 413, 401 x2, 403 x2, 404 x3, 412, 405), HEAD, DELETE, GET, PUT: each its status and the blob directory unchanged; the upload then completes; DELETE';
  }

  async busy() {
    const a1 = this.tok.a1;
    const c = await this.create(a1, 60000);
    const id = c.id;
    const b = this.model.get(id);
    // a PATCH in progress: its first bytes are on the disk, so it holds the blob
    const open = this.openPatch(id, a1, 0, 30000);
    open.req.write(b.data.subarray(0, 10000));
    await this.until(() => this.fileSize(this.dataFile(id)) >= 10000, 'the open PATCH\'s bytes on the disk');
    await this.refused('tus PATCH while another writes', 423, () => this.patch(id, a1, 0, Buffer.alloc(0)));
    await this.refused('tus PATCH while another writes (with bytes)', 423, () => this.patch(id, a1, 0, b.data.subarray(0, 100)));
    await this.refused('tus DELETE while a PATCH writes', 423, () => this.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(a1) }));
    this.ok((await this.offsetOf(id, a1)) === 0, 'HEAD shows bytes of a PATCH not answered yet');
    open.req.end(b.data.subarray(10000, 30000));
    const r = await open.response;
    this.ok(r.status === 204 && r.headers['upload-offset'] === '30000', `the open PATCH: ${r.status} ${r.headers['upload-offset']}`);
    this.counts[204] = (this.counts[204] || 0) + 1;
    this.bytesIn += 30000;
    b.offset = 30000;
    // cut off by the client after 10000 of 20000 bytes: those are kept
    const cut = this.openPatch(id, a1, 30000, 20000);
    cut.req.write(b.data.subarray(30000, 40000));
    await this.until(() => this.fileSize(this.dataFile(id)) >= 40000, 'the cut PATCH\'s bytes on the disk');
    cut.req.destroy();
    // its end is seen when another PATCH is no longer locked out
    await this.until(async () => (await this.patch(id, a1, 40000, Buffer.alloc(0))).status !== 423, 'the cut PATCH to end');
    const off = await this.offsetOf(id, a1);
    this.ok(off === 40000, `HEAD after a PATCH cut off after 10000 bytes: ${off}, wanted 40000 (tus: keep what arrived)`);
    this.bytesIn += off - b.offset;
    b.offset = off;
    // keep-alive: a refused PATCH with a body, then more requests on the connection
    const ka = await this.keepAlive([
      { head: `PATCH /v1/blobs/${id} HTTP/1.1`, headers: { ...TUS, ...this.auth(this.tok.b1), 'Upload-Offset': String(off), 'Content-Type': OCTETS, 'Content-Length': '5000' }, body: Buffer.alloc(5000, 7) },
      { head: `PATCH /v1/blobs/${id} HTTP/1.1`, headers: { ...TUS, ...this.auth(a1), 'Upload-Offset': '1', 'Content-Type': OCTETS, 'Content-Length': '3000' }, body: Buffer.alloc(3000, 7) },
      { head: `HEAD /v1/blobs/${id} HTTP/1.1`, headers: { ...TUS, ...this.auth(a1) } },
      { head: `PATCH /v1/blobs/${id} HTTP/1.1`, headers: { ...TUS, ...this.auth(a1), 'Upload-Offset': String(off), 'Content-Type': OCTETS, 'Content-Length': String(60000 - off) }, body: b.data.subarray(off) },
      { head: `GET /v1/blobs/${id} HTTP/1.1`, headers: {} },
      { head: 'GET /healthz HTTP/1.1', headers: {} },
    ]);
    const want = [403, 409, 200, 204, 200, 200];
    this.ok(ka.map((x) => x.status).join() === want.join(), `keep-alive statuses ${ka.map((x) => x.status)}, wanted ${want}`);
    if (ka.length === want.length) {
      this.ok(ka[2].headers['upload-offset'] === String(off), `keep-alive HEAD offset ${ka[2].headers['upload-offset']}`);
      this.ok(ka[4].body.equals(b.data), 'keep-alive GET: not the blob');
    }
    for (const s of [403, 409, 204, 200]) this.counts[s] = (this.counts[s] || 0) + (s === 200 ? 2 : 1);
    this.bytesIn += 60000 - off;
    this.bytesOut += 60000;
    b.offset = 60000;
    await this.checkMetrics('busy');
    this.notes.busy = 'a PATCH in progress: another PATCH and a DELETE get 423; a PATCH cut off after 10000 bytes kept them; keep-alive through a refused PATCH with a body, a 409, HEAD, PATCH, GET';
  }

  // Requests on one connection, one after the other: [{status, headers, body}].
  keepAlive(reqs) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.server.port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      const out = [];
      let i = 0;
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`keep-alive: ${out.length} of ${reqs.length} answers in time`));
      }, this.timeoutMs);
      const send = () => {
        const q = reqs[i];
        const lines = [q.head, 'Host: 127.0.0.1', ...Object.entries(q.headers).map(([k, v]) => `${k}: ${v}`), '', ''];
        sock.write(lines.join('\r\n'));
        if (q.body) sock.write(q.body);
      };
      const parse = () => {
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const lines = buf.subarray(0, end).toString().split('\r\n');
          const status = Number(lines[0].split(' ')[1]);
          const headers = {};
          for (const l of lines.slice(1)) {
            const k = l.indexOf(':');
            headers[l.slice(0, k).toLowerCase()] = l.slice(k + 1).trim();
          }
          const isHead = reqs[i].head.startsWith('HEAD');
          const len = isHead || status === 204 ? 0 : Number(headers['content-length'] || 0);
          if (buf.length < end + 4 + len) return;
          out.push({ status, headers, body: buf.subarray(end + 4, end + 4 + len) });
          this.ev(`http (keep-alive) ${reqs[i].head} -> ${status}`);
          buf = buf.subarray(end + 4 + len);
          if (++i === reqs.length) {
            clearTimeout(timer);
            sock.end();
            resolve(out);
            return;
          }
          send();
        }
      };
      sock.on('connect', send);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        parse();
      });
      sock.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      sock.on('close', () => {
        if (i < reqs.length) {
          clearTimeout(timer);
          resolve(out); // closed early: the caller sees the answers so far
        }
      });
    });
  }

  async crash() {
    const a1 = this.tok.a1;
    const c = await this.create(a1, 150000);
    const id = c.id;
    const b = this.model.get(id);
    this.ok((await this.put(id, a1, 0, 50000)).status === 204, 'the first PATCH');
    // a PATCH half written: whisperd has bytes past 50000 on the disk, unacknowledged
    const open = this.openPatch(id, a1, 50000, 50000);
    open.req.write(b.data.subarray(50000, 75000));
    await this.until(() => this.fileSize(this.dataFile(id)) >= 75000, 'the unacknowledged bytes on the disk');
    // leftovers a crash can leave: a creation without metadata, a metadata file not renamed
    const orphan = crypto.randomBytes(32).toString('hex');
    fs.writeFileSync(path.join(this.server.blobDir, `${orphan}.data`), 'x');
    fs.writeFileSync(path.join(this.server.blobDir, `${id}.meta.tmp`), 'whisper-blob 1\n');
    await this.server.kill9('a PATCH half written');
    const lost = await open.response.then(() => 'an answer', (e) => e.code || e.message);
    this.ok(lost !== 'an answer', 'the PATCH cut by the kill was answered');
    this.ok(this.fileSize(this.dataFile(id)) >= 75000, 'the unacknowledged bytes were not on the disk');
    const from = this.devs.events.length;
    await this.server.start();
    this.ok(this.server.lines.some((l) => l.includes(`${id.slice(0, 8)}... cut back from 75000 to 50000 bytes`)), 'no line about the data cut back');
    this.ok(this.fileSize(this.dataFile(id)) === 50000, `the data file after the restart: ${this.fileSize(this.dataFile(id))} bytes, wanted 50000`);
    this.ok(!fs.existsSync(path.join(this.server.blobDir, `${orphan}.data`)), 'a data file without metadata survived the restart');
    this.ok(!fs.existsSync(path.join(this.server.blobDir, `${id}.meta.tmp`)), 'a temporary metadata file survived the restart');
    // the token still works (the secret is in the store); the upload resumes
    const off = await this.offsetOf(id, a1);
    this.ok(off === 50000, `HEAD after the restart: ${off}, wanted 50000 (the last acknowledged offset)`);
    const r = await this.put(id, a1, off, 150000);
    this.ok(r.status === 204 && r.headers['upload-offset'] === '150000', `the resumed PATCH: ${r.status}`);
    const g = await this.request('GET', `/v1/blobs/${id}`);
    this.ok(g.status === 200 && g.body.equals(b.data), 'GET after the resume: not the blob');
    // the blobs from before the crash are all there
    for (const [bid, x] of this.model) {
      if (x.offset === x.length) {
        const gb = await this.request('GET', `/v1/blobs/${bid}`);
        this.ok(gb.status === 200 && gb.body.equals(x.data), `blob ${bid.slice(0, 8)} after the restart: ${gb.status}`);
      } else {
        this.ok((await this.offsetOf(bid, a1)) === x.offset, `blob ${bid.slice(0, 8)} after the restart`);
      }
    }
    await this.devs.online('a1', from); // the devices are back too
    await this.checkMetrics('crash');
    this.notes.crash = 'whisperd SIGKILLed with 25000 unacknowledged bytes of a PATCH on the disk; restarted: cut back to 50000, HEAD 50000, leftovers removed, the upload resumed with the same token and complete';
  }

  async devices() {
    // alice.2's own blob
    const c = await this.create(this.tok.a2, 10000);
    const id = c.id;
    this.a2Id = id;
    this.ok(c.status === 201 && (await this.put(id, this.tok.a2, 0, 10000)).status === 204, 'alice.2 uploads');
    await this.refused('tus HEAD of alice.2\'s blob by alice.1', 403, () => this.head(id, this.tok.a1));
    await this.refused('tus DELETE of alice.2\'s blob by alice.1', 403, () => this.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(this.tok.a1) }));
    // alice.1 removes alice.2: its token is refused from then on
    const from = this.devs.events.length;
    this.devs.write('remove a1 2');
    await this.devs.waitFor((e) => e.ev === 'ok' && e.cmd === 'remove', 'remove ok', from);
    await this.devs.waitFor((e) => e.ev === 'closed' && e.name === 'a2', 'alice.2\'s connection closed by the server', from);
    await this.refused('tus HEAD with a removed device\'s token', 401, () => this.head(id, this.tok.a2));
    await this.refused('tus POST with a removed device\'s token', 401, () => this.create(this.tok.a2, 10));
    await this.refused('tus DELETE with a removed device\'s token', 401, () => this.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(this.tok.a2) }));
    const g = await this.request('GET', `/v1/blobs/${id}`);
    this.ok(g.status === 200 && g.body.equals(this.model.get(id).data), 'a removed device\'s blob is still downloadable');
    await this.checkMetrics('devices');
    this.notes.devices = 'alice.1 gets 403 on alice.2\'s blob; alice.2 removed: 401 for its token, its blob still downloadable';
  }

  async limits() {
    const b1 = this.tok.b1;
    const e = await this.devs.token('b1', MAX_SIZE + 1);
    this.ok(e.ev === 'error' && e.code === 10, `UploadAuth over the max size: ${JSON.stringify(e)}`);
    const e2 = await this.devs.token('b1', MAX_SIZE);
    this.ok(e2.ev === 'token', `UploadAuth at the max size: ${JSON.stringify(e2)}`);
    await this.refused('tus POST of MAX_SIZE + 1', 413, () => this.create(b1, MAX_SIZE + 1));
    const x = await this.create(b1, MAX_SIZE);
    const y = await this.create(b1, MAX_SIZE);
    const z = await this.create(b1, QUOTA - 2 * MAX_SIZE);
    this.ok(x.status === 201 && y.status === 201 && z.status === 201, `bob up to his quota exactly: ${x.status} ${y.status} ${z.status}`);
    await this.refused('tus POST past the quota', 403, () => this.create(b1, 1));
    await this.refused('tus POST past the quota (large)', 403, () => this.create(b1, MAX_SIZE));
    // alice's quota is her own
    const a = await this.create(this.tok.a1, 1000);
    this.ok(a.status === 201, `alice creates while bob is at his quota: ${a.status}`);
    // a DELETE frees it
    const d = await this.request('DELETE', `/v1/blobs/${z.id}`, { ...TUS, ...this.auth(b1) });
    this.ok(d.status === 204, `bob's DELETE: ${d.status}`);
    this.model.delete(z.id);
    const w = await this.create(b1, QUOTA - 2 * MAX_SIZE);
    this.ok(w.status === 201, `bob creates again after the DELETE: ${w.status}`);
    await this.refused('tus POST past the quota again', 403, () => this.create(b1, 1));
    await this.checkMetrics('limits');
    this.notes.limits = 'UploadAuth over the max size ERR_LIMIT; POST 413 over the max size; bob to his quota exactly, then 403 (alice unaffected); a DELETE frees room';
  }

  async expiry() {
    // 29 days later everything is kept
    let code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code on SIGTERM: ${code}`);
    await this.server.start(['--clock-offset-ms', String(29 * DAY)]);
    const complete = [...this.model].filter(([, b]) => b.offset === b.length);
    for (const [id, b] of complete) {
      const g = await this.request('GET', `/v1/blobs/${id}`);
      this.ok(g.status === 200 && g.body.equals(b.data), `blob ${id.slice(0, 8)} 29 days later: ${g.status}`);
    }
    await this.checkMetrics('expiry, 29 days');
    // 31 days: deleted at the start
    code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code on SIGTERM: ${code}`);
    const from = this.devs.events.length;
    await this.server.start(['--clock-offset-ms', String(31 * DAY), '--upload-token-ttl-ms', '1000']);
    this.ok(this.server.lines.some((l) => new RegExp(`0 blobs, 0 bytes \\(${this.model.size} expired ones deleted\\)`).test(l)),
      `no startup line saying ${this.model.size} expired blobs were deleted`);
    for (const [id] of complete) {
      const g = await this.request('GET', `/v1/blobs/${id}`);
      this.ok(g.status === 404, `blob ${id.slice(0, 8)} 31 days later: ${g.status}`);
    }
    const left = fs.readdirSync(this.server.blobDir).filter((n) => n !== 'owner.key');
    this.ok(left.length === 0, `files left in the blob directory: ${left.join(' ')}`);
    const n = this.model.size;
    this.model.clear();
    // the quota is free again
    const c = await this.create(this.tok.b1, MAX_SIZE);
    this.ok(c.status === 201, `bob creates after the expiry: ${c.status}`);
    // a token that lapsed (the TTL is 1 s now) is refused
    await this.devs.online('a1', from);
    const t = await this.devs.token('a1');
    this.ok(t.ev === 'token' && t.expires_ms <= Date.now() + 1000, `a 1 s token: ${JSON.stringify(t)}`);
    this.ok((await this.create(t.token, 5)).status === 201, 'a POST with the fresh 1 s token refused');
    await this.until(() => Date.now() > t.expires_ms + 5, 'the token\'s expiry');
    const r = await this.refused('tus POST with an expired token', 401, () => this.create(t.token, 5));
    this.ok(/expired/.test(r.body.toString()), `401 for an expired token says: ${r.body.toString().trim()}`);
    await this.checkMetrics('expiry, 31 days');
    this.notes.expiry = `29 days later every blob served; 31 days later ${n} deleted at the start (404, the directory empty, the quota free); a token past its 1 s TTL gets 401`;
  }

  async finalMetrics() {
    // the counters move: one more GET and PATCH, then exact again
    const before = await this.metrics();
    const c = await this.create(this.tok.a1, 3000);
    await this.put(c.id, this.tok.a1, 0, 3000);
    await this.request('GET', `/v1/blobs/${c.id}`, { Range: 'bytes=0-99' });
    const after = await this.metrics();
    this.ok(after.whisperd_blob_bytes_in_total - before.whisperd_blob_bytes_in_total === 3000, 'bytes in did not move by 3000');
    this.ok(after.whisperd_blob_bytes_out_total - before.whisperd_blob_bytes_out_total === 100, 'bytes out did not move by 100');
    this.ok(after.whisperd_blobs_stored - before.whisperd_blobs_stored === 1, 'blobs stored did not move by 1');
    this.ok(after['whisperd_blob_requests_total:206'] - (before['whisperd_blob_requests_total:206'] || 0) === 1, '206 did not move by 1');
    await this.checkMetrics('final');
    this.notes.metrics = 'whisperd_blob_* equal to what the test did after every scenario (bytes in and out, blobs and bytes stored, requests by status), and they move';
  }

  async shutdown() {
    const dc = await this.devs.quit();
    this.ok(dc === 0, `whisper-blob-devices exit code at end of input: ${dc}${this.devs.stderrTail()}`);
    const code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code after SIGTERM: ${code}${this.server.stderrTail()}`);
    // the id is a capability: the log never holds a whole one
    const log = fs.readFileSync(this.server.logPath, 'utf8');
    this.ok(!/[0-9a-f]{64}/.test(log), 'a whole blob id in whisperd\'s log');
    this.notes.shutdown = 'the devices exit 0 at end of input, whisperd 0 on SIGTERM; no whole blob id in the log';
  }

  summary() {
    let passed = 0;
    let failed = 0;
    for (const k of SCENARIOS) {
      const s = this.stats[k];
      passed += s.passed;
      failed += s.failed;
      if (s.failed) process.stdout.write(`FAIL ${k}: ${s.failed} of ${s.passed + s.failed} checks failed\n`);
      else if (this.notes[k]) process.stdout.write(`ok ${k}: ${this.notes[k]} (${s.passed} checks)\n`);
      else process.stdout.write(`-- ${k}: not run\n`);
    }
    return { passed, failed };
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const dir = o.workdir
    ? fs.mkdtempSync(path.join(path.resolve(o.workdir), 'blobs-'))
    : fs.mkdtempSync(path.join(os.tmpdir(), 'whisper-blobs-'));
  const t = new BlobTest(o, dir);
  process.stderr.write(`blobs.js: work directory ${dir}\n`);
  let fatal = false;
  for (const [name, fn] of [
    ['setup', t.setup], ['flow', t.flow], ['refusals', t.refusals], ['busy', t.busy], ['devices', t.devices],
    ['crash', t.crash], ['limits', t.limits], ['expiry', t.expiry], ['metrics', t.finalMetrics], ['shutdown', t.shutdown],
  ]) {
    t.cat = name;
    t.ev(`=== ${name}`);
    try {
      await fn.call(t);
    } catch (e) {
      t.check(name, false, `stopped: ${e instanceof Error ? e.message : String(e)}`);
      t.ev(e && e.stack ? e.stack : String(e));
      if (name === 'setup' || t.server.exited) {
        fatal = true;
        break;
      }
    }
  }
  await t.devs.kill9('cleanup');
  await t.server.kill9('cleanup');
  const { passed, failed } = t.summary();
  fs.closeSync(t.traceFd);
  process.stderr.write(`blobs.js: ${((Date.now() - t.t0) / 1000).toFixed(1)}s\n`);
  if (failed || fatal || o.keep) process.stderr.write(`blobs.js: kept ${dir} (events.log, whisperd.stderr, devices.stderr, the store and blobs/)\n`);
  else fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed || fatal ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`blobs.js: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  }
);
