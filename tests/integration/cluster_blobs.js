#!/usr/bin/env node
// whisperd's blob store in a cluster: three whisperd nodes over a private
// PostgreSQL (tests/tools/pg_cluster.sh) sharing one --blob-dir, with the
// blobs' metadata in PostgreSQL. Real processes throughout: whisper-chat
// clients, whisper-blob-devices for upload tokens (raw tus requests), and
// psql to look at the table. Scenarios, in order:
//
//   setup      PostgreSQL, three nodes, alice.1 on node 1, bob.1 on node 3,
//              devices (tokens) on node 3
//   media      alice sends a 6 MiB file through node 1 and is SIGKILLed mid
//              upload; started again on node 2, the upload resumes from the
//              acknowledged offset (node 2 takes no more than the rest); bob
//              gets the message through node 3 and downloads the file
//              through node 3: sha256 equal
//   crash      node 1 SIGKILLed with a PATCH half written (bytes past the
//              recorded offset in the shared data file): node 2's HEAD says
//              the recorded offset, a PATCH through node 2 cuts the file back
//              to it and completes the blob; GET through node 3 byte for byte
//   concurrent a PATCH held open on node 2: a PATCH and a DELETE of the same
//              blob through node 3 get 423 and change nothing; then two
//              PATCHes of one blob at once through nodes 2 and 3: one 204,
//              the other refused (409 or 423), the content right
//   quota      one account's blobs across the nodes: 8 + 8 MiB through nodes
//              1 and 2, then 403 through node 3 past 20 MiB, 201 up to it
//              exactly; five creations at once through the three nodes: two
//              201, three 403 (the check and the insert are one transaction)
//   pgrestart  PostgreSQL restarted under a PATCH open on node 1: refused
//              (500: its writer lock went with its session), the offset
//              unchanged; every node goes on creating and uploading
//   metrics    every node's whisperd_blobs_stored is the table's row count
//   expiry     leftover data files planted (one 2 hours old, one new);
//              nodes 2 and 3 restarted at once with --clock-offset-ms 2 days
//              (TTL 1 day): they sweep together, the deletions add up to the
//              rows there were, no row and no data file left but the new
//              leftover, GET through node 1 404
//   wrong-dir  a fourth node with another --blob-dir refuses to start
//   shutdown   clients exit 0 at end of input, nodes 0 on SIGTERM
//
//   node cluster_blobs.js --whisperd PATH --chat PATH --devices PATH
//                         --pg-cluster PATH [--timeout S] [--workdir DIR] [--keep] [--trace]
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { Proc, Chat, Whisperd, short, whisperCode } = require('./procs');

const MIB = 1 << 20;
const MAX_SIZE = 8 * MIB;
const QUOTA = 20 * MIB;
const PIECE = 256 * 1024;
const FILE_SIZE = 6 * MIB;
const DAY = 24 * 3600 * 1000;
const TUS = { 'Tus-Resumable': '1.0.0' };
const OCTETS = 'application/offset+octet-stream';
const ENOTFOUND = whisperCode('WHISPER_ENOTFOUND');

function usage(msg) {
  if (msg) process.stderr.write(`cluster_blobs.js: ${msg}\n`);
  process.stderr.write('usage: node cluster_blobs.js --whisperd PATH --chat PATH --devices PATH --pg-cluster PATH [--timeout S] [--workdir DIR] [--keep] [--trace]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { whisperd: null, chat: null, devices: null, pgCluster: null, timeout: 60, workdir: null, keep: false, trace: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--whisperd') o.whisperd = path.resolve(val());
    else if (a === '--chat') o.chat = path.resolve(val());
    else if (a === '--devices') o.devices = path.resolve(val());
    else if (a === '--pg-cluster') o.pgCluster = path.resolve(val());
    else if (a === '--timeout') o.timeout = Number(val());
    else if (a === '--workdir') o.workdir = val();
    else if (a === '--keep') o.keep = true;
    else if (a === '--trace') o.trace = true;
    else usage(`unknown option ${a}`);
  }
  if (!o.whisperd || !o.chat || !o.devices || !o.pgCluster) usage('--whisperd, --chat, --devices and --pg-cluster are required');
  if (!(o.timeout > 0)) usage('--timeout must be a positive number of seconds');
  return o;
}

const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
const fileSize = (f) => {
  try {
    return fs.statSync(f).size;
  } catch {
    return -1;
  }
};

// ---------------------------------------------------------------------------
// processes

class Node extends Whisperd {
  constructor(t, k, blobDir = t.blobDir) {
    super(t);
    this.k = k;
    this.key = `node${k}`;
    this.logPath = path.join(t.dir, `node${k}.stderr`);
    this.db = path.join(t.dir, `unused${k}.db`);
    this.blobDir = blobDir;
  }

  args(extra = []) {
    return ['--pg', this.t.conninfo, '--node', String(this.k), '--blob-dir', this.blobDir,
      '--blob-max-size', String(MAX_SIZE), '--blob-quota', String(QUOTA), '--blob-ttl-days', '1',
      '--presence-grace-ms', '300', ...extra];
  }

  async startNode(extra = []) {
    this.runStart = fileSize(this.logPath); // this run's lines begin here
    await this.start(this.args(extra));
  }

  // The stderr lines of the current run.
  lines() {
    const all = fs.readFileSync(this.logPath, 'utf8');
    return all.slice(Math.max(0, this.runStart)).split('\n');
  }
}

class Client extends Chat {
  constructor(t, account, node) {
    super(t, account, 1);
    this.node = node;
  }

  args() {
    return ['--db', this.db, '--key-file', this.keyFile, '--account', this.account, '--device', '1',
      '--server', this.t.nodes[this.node - 1].url, '--backoff-max-ms', '500', '--media-piece', String(PIECE)];
  }
}

class Devices extends Proc {
  constructor(t) {
    super(t, 'devices', t.o.devices, 'devices.stderr');
  }

  start(node) {
    this.spawn(['--url', node.url]);
  }

  online(name, from = 0) {
    return this.waitFor((e) => e.ev === 'online' && e.name === name, `${name} online`, { from });
  }

  async token(name) {
    for (;;) {
      const from = this.events.length;
      this.write(`token ${name}`);
      const e = await this.waitFor((x) => (x.ev === 'token' || x.ev === 'error') && (x.name === name || x.cmd === 'token'), `a token for ${name}`, { from });
      if (e.ev === 'error' && e.cmd === 'token') {
        await this.online(name, from);
        continue;
      }
      if (e.ev !== 'token') throw new Error(`no token for ${name}: ${JSON.stringify(e)}`);
      return e.token;
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

const SCENARIOS = ['setup', 'media', 'crash', 'concurrent', 'quota', 'pgrestart', 'metrics', 'expiry', 'wrongdir', 'shutdown'];

class Test {
  constructor(o, dir) {
    this.o = o;
    this.dir = dir;
    this.timeoutMs = o.timeout * 1000;
    this.t0 = Date.now();
    this.traceFd = fs.openSync(path.join(dir, 'events.log'), 'w');
    this.pgDir = path.join(os.tmpdir(), `whisper-cblobs-pg-${process.pid}`);
    this.blobDir = path.join(dir, 'shared-blobs');
    this.stats = {};
    this.notes = {};
    for (const k of SCENARIOS) this.stats[k] = { passed: 0, failed: 0 };
    this.stats.script = { passed: 0, failed: 0 };
    this.cat = 'setup';
    this.model = new Map(); // id -> {length, data}: the raw blobs this test made
  }

  ev(line) {
    const ts = ((Date.now() - this.t0) / 1000).toFixed(3);
    fs.writeSync(this.traceFd, `+${ts} ${line}\n`);
    if (this.o.trace) process.stderr.write(`+${ts} ${line}\n`);
  }

  check(cat, cond, msg) {
    const s = this.stats[cat] || this.stats[this.cat];
    if (cond) {
      s.passed++;
      return true;
    }
    s.failed++;
    this.ev(`FAIL ${cat}: ${msg}`);
    process.stdout.write(`FAIL ${cat}: ${msg}\n`);
    return false;
  }

  ok(cond, msg) {
    return this.check(this.cat, cond, msg);
  }

  pg(...args) {
    execFileSync(this.o.pgCluster, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  sql(q) {
    return execFileSync('psql', [this.conninfo, '-tAc', q], { encoding: 'utf8' }).trim();
  }

  rows() {
    return Number(this.sql('SELECT count(*) FROM whisper_records_blobs'));
  }

  dataFile(id) {
    return path.join(this.blobDir, `${id}.data`);
  }

  // --- HTTP ------------------------------------------------------------------

  request(node, method, p, headers = {}, body = null) {
    const hs = { ...headers };
    if (body || method === 'POST' || method === 'PATCH') hs['Content-Length'] = String(body ? body.length : 0);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: node.port, method, path: p, headers: hs, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const r = { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
          this.ev(`http ${node.key} ${method} ${short(p, 40)} -> ${r.status}${r.headers['upload-offset'] !== undefined ? ` offset ${r.headers['upload-offset']}` : ''} (${r.body.length} bytes)`);
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
    return { Authorization: `Bearer ${token}` };
  }

  async create(node, token, length) {
    const r = await this.request(node, 'POST', '/v1/blobs', { ...TUS, ...this.auth(token), 'Upload-Length': String(length) });
    if (r.status === 201) {
      const m = /^\/v1\/blobs\/([0-9a-f]{64})$/.exec(r.headers.location || '');
      this.ok(m, `201 without a Location: ${r.headers.location}`);
      if (m) {
        r.id = m[1];
        this.model.set(r.id, { length, data: crypto.randomBytes(length) });
      }
    }
    return r;
  }

  head(node, id, token) {
    return this.request(node, 'HEAD', `/v1/blobs/${id}`, { ...TUS, ...this.auth(token) });
  }

  patch(node, id, token, offset, buf) {
    return this.request(node, 'PATCH', `/v1/blobs/${id}`, { ...TUS, ...this.auth(token), 'Upload-Offset': String(offset), 'Content-Type': OCTETS }, buf);
  }

  put(node, id, token, from, to) {
    return this.patch(node, id, token, from, this.model.get(id).data.subarray(from, to));
  }

  del(node, id, token) {
    return this.request(node, 'DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(token) });
  }

  get(node, id) {
    return this.request(node, 'GET', `/v1/blobs/${id}`);
  }

  async offsetOf(node, id, token) {
    const r = await this.head(node, id, token);
    return r.status === 200 ? Number(r.headers['upload-offset']) : -r.status;
  }

  // A PATCH whose body the caller writes: {req, response}.
  openPatch(node, id, token, offset, total) {
    const req = http.request({
      host: '127.0.0.1', port: node.port, method: 'PATCH', path: `/v1/blobs/${id}`, agent: false,
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
    this.ev(`http ${node.key} PATCH ${id.slice(0, 8)} (open, ${total} bytes at ${offset})`);
    return { req, response };
  }

  async until(cond, desc) {
    const t0 = Date.now();
    while (!(await cond())) {
      if (Date.now() - t0 > this.timeoutMs) throw new Error(`no ${desc} within ${this.o.timeout}s`);
      await delay(10);
    }
  }

  async metrics(node) {
    const body = await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: node.metricsPort, path: '/metrics', agent: false }, (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    const get = (name) => {
      const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(body);
      return m ? Number(m[1]) : NaN;
    };
    return { in: get('whisperd_blob_bytes_in_total'), out: get('whisperd_blob_bytes_out_total'),
      stored: get('whisperd_blobs_stored'), bytes: get('whisperd_blob_bytes_stored') };
  }

  media(c, id, pred, desc, from = 0) {
    return c.waitFor((e) => e.ev === 'media' && e.id === id && pred(e), `${desc} (${id.slice(0, 8)})`, { from });
  }

  // --- scenarios ---------------------------------------------------------------

  async setup() {
    this.pg('start', this.pgDir, 'whisper');
    this.conninfo = fs.readFileSync(path.join(this.pgDir, 'conninfo'), 'utf8').trim();
    this.nodes = [1, 2, 3].map((k) => new Node(this, k));
    for (const n of this.nodes) await n.startNode();
    const [n1, n2, n3] = this.nodes;
    for (const n of this.nodes)
      this.ok(n.lines().some((l) => /blobs: .* open, shared by the cluster's nodes \(metadata in PostgreSQL, table whisper_records_blobs\)/.test(l)),
        `${n.key} says its blob store is shared`);
    this.ok(this.rows() === 0, 'the blobs table exists, empty');
    this.ok(fs.existsSync(path.join(this.blobDir, 'owner.key')), 'owner.key in the shared directory');
    this.alice = new Client(this, 'alice', 1);
    this.bob = new Client(this, 'bob', 3);
    await this.alice.startOnline();
    await this.bob.startOnline();
    const hi = await this.alice.send('bob', 'hello');
    await this.bob.waitFor((e) => e.ev === 'message' && e.id === hi, 'alice\'s hello at bob');
    this.devs = new Devices(this);
    this.devs.start(n3);
    for (const [name, acct] of [['c1', 'carol'], ['q1', 'quinn'], ['q2', 'quentin']]) {
      this.devs.write(`up ${name} ${acct}`);
      await this.devs.online(name);
    }
    this.tok = {};
    for (const name of ['c1', 'q1', 'q2']) this.tok[name] = await this.devs.token(name);
    this.notes.setup = `PostgreSQL, nodes on ${this.nodes.map((n) => n.port).join(', ')} sharing ${path.basename(this.blobDir)}; alice on node 1, bob on node 3`;
    void n1;
    void n2;
  }

  async mediaScenario() {
    const { alice, bob } = this;
    const [, n2, n3] = this.nodes;
    const file = path.join(this.dir, 'film.mp4');
    fs.writeFileSync(file, crypto.randomBytes(FILE_SIZE));
    const fileSha = sha(fs.readFileSync(file));
    const n2before = await this.metrics(n2);
    const r = await alice.cmd(`send-file bob ${file} the film`);
    const id = r.id;
    const up = await this.media(alice, id, (e) => e.state === 'uploading' && e.done > 0, 'upload progress');
    await alice.kill9('mid-upload, on node 1');
    const run1 = alice.events.filter((e) => e.ev === 'media' && e.id === id);
    const cut = Math.max(...run1.filter((e) => e.state === 'uploading').map((e) => e.done));
    this.ok(!run1.some((e) => e.state === 'sent') && cut < up.total, `the kill came mid-upload (${cut} of ${up.total} acknowledged)`);
    alice.node = 2; // through node 2 from now on
    alice.start();
    const end = await this.media(alice, id, (e) => e.state === 'sent' || e.state === 'failed', 'the upload\'s end on node 2');
    this.ok(end.state === 'sent', `the upload ended on node 2: ${JSON.stringify(end)}`);
    const after = alice.events.filter((e) => e.ev === 'media' && e.id === id && e.state === 'uploading');
    this.ok(after.length === 0 || after[0].done >= cut,
      `resumed from the acknowledged offset: first progress on node 2 ${after.length ? after[0].done : 'none'}, ${cut} acknowledged on node 1`);
    const n2after = await this.metrics(n2);
    const took = n2after.in - n2before.in;
    this.ok(took > 0 && took <= up.total - cut, `node 2 took ${took} bytes of a ${up.total}-byte blob with ${cut} acknowledged on node 1 (the rest only)`);
    const m = await bob.waitFor((e) => e.ev === 'message' && e.id === id, 'the attachment at bob (node 3)');
    this.ok(m.kind === 'attachment' && m.attachment && m.attachment.size === FILE_SIZE, `the attachment at bob: ${short(JSON.stringify(m), 300)}`);
    const out = path.join(this.dir, 'bob-film.mp4');
    const n3before = await this.metrics(n3);
    await bob.cmd(`download alice ${id.slice(0, 8)} ${out}`);
    const d = await this.media(bob, id, (e) => e.state === 'downloaded' || e.state === 'failed', 'bob\'s download through node 3');
    const got = fileSize(out) === FILE_SIZE ? sha(fs.readFileSync(out)) : `(${fileSize(out)} bytes)`;
    this.ok(d.state === 'downloaded' && got === fileSha, `bob's download through node 3: ${JSON.stringify(d)}, sha256 ${got}, alice's ${fileSha}`);
    const n3after = await this.metrics(n3);
    this.ok(n3after.out - n3before.out >= up.total, `node 3 served the blob: ${n3after.out - n3before.out} bytes`);
    this.blobCount = 1;
    this.notes.media = `6 MiB in ${PIECE / 1024} KiB pieces: alice SIGKILLed on node 1 at ${cut} of ${up.total} bytes, resumed on node 2 (which took ${took} bytes), bob downloaded through node 3: sha256 equal`;
  }

  async crash() {
    const [n1, n2, n3] = this.nodes;
    const c1 = this.tok.c1;
    const c = await this.create(n1, c1, 300000);
    this.ok(c.status === 201, `POST through node 1: ${c.status}`);
    const id = c.id;
    const b = this.model.get(id);
    this.ok((await this.put(n1, id, c1, 0, 100000)).status === 204, 'the first PATCH through node 1');
    this.ok(this.sql(`SELECT off FROM whisper_records_blobs WHERE id = '\\x${id}'`) === '100000', 'the offset in PostgreSQL after the first PATCH');
    // bytes that are not the blob's: they must never be served
    const open = this.openPatch(n1, id, c1, 100000, 100000);
    open.req.write(Buffer.alloc(50000, 0xEE));
    await this.until(() => fileSize(this.dataFile(id)) >= 150000, 'the unacknowledged bytes in the shared data file');
    await n1.kill9('a PATCH half written');
    const lost = await open.response.then(() => 'an answer', (e) => e.code || e.message);
    this.ok(lost !== 'an answer', 'the PATCH cut by the kill was answered');
    this.ok(fileSize(this.dataFile(id)) >= 150000, 'the unacknowledged bytes are on the disk');
    this.ok((await this.offsetOf(n2, id, c1)) === 100000, 'HEAD through node 2: the recorded offset');
    this.ok((await this.get(n3, id)).status === 404, 'GET through node 3 of the incomplete blob: 404');
    // node 1's session (and its writer lock) goes when PostgreSQL sees it closed
    let r;
    await this.until(async () => (r = await this.put(n2, id, c1, 100000, 120000)).status !== 423, 'node 1\'s lock to go');
    this.ok(r.status === 204 && r.headers['upload-offset'] === '120000', `a short PATCH through node 2: ${r.status} ${r.headers['upload-offset']}`);
    this.ok(n2.lines().some((l) => l.includes(`${id.slice(0, 8)}... cut back from 150000 to 100000 bytes`)), 'node 2 says it cut the data file back to the recorded offset');
    this.ok(fileSize(this.dataFile(id)) === 120000, `the data file after 20000 bytes more: ${fileSize(this.dataFile(id))} bytes, want 120000 (nothing past the offset)`);
    r = await this.put(n3, id, c1, 120000, 300000);
    this.ok(r.status === 204 && r.headers['upload-offset'] === '300000', `the rest through node 3: ${r.status} ${r.headers['upload-offset']}`);
    this.ok(fileSize(this.dataFile(id)) === 300000, `the data file: ${fileSize(this.dataFile(id))} bytes`);
    const g = await this.get(n3, id);
    this.ok(g.status === 200 && g.body.equals(b.data), `GET through node 3: ${g.status}, equal ${g.body.equals(b.data)}`);
    const rg = await this.request(n3, 'GET', `/v1/blobs/${id}`, { Range: 'bytes=140000-160000' });
    this.ok(rg.status === 206 && rg.body.equals(b.data.subarray(140000, 160001)), `a range across the cut through node 3: ${rg.status}`);
    await n1.startNode();
    this.ok((await this.offsetOf(n1, id, c1)) === 300000, 'HEAD through node 1 after its restart');
    this.blobCount++;
    this.notes.crash = 'node 1 SIGKILLed with 50000 unacknowledged bytes in the shared file: HEAD through node 2 100000, node 2 cut the file back (20000 bytes more: 120000, nothing past), node 3 completed it, GET through node 3 equal';
  }

  async concurrent() {
    const [n1, n2, n3] = this.nodes;
    const c1 = this.tok.c1;
    const c = await this.create(n2, c1, 200000);
    const id = c.id;
    const b = this.model.get(id);
    const open = this.openPatch(n2, id, c1, 0, 100000);
    open.req.write(b.data.subarray(0, 30000));
    await this.until(() => fileSize(this.dataFile(id)) >= 30000, 'the open PATCH\'s bytes on the disk');
    const p = await this.put(n3, id, c1, 0, 1000);
    this.ok(p.status === 423, `a PATCH through node 3 while node 2 writes: ${p.status}`);
    const d = await this.del(n3, id, c1);
    this.ok(d.status === 423, `a DELETE through node 3 while node 2 writes: ${d.status}`);
    this.ok((await this.offsetOf(n3, id, c1)) === 0, 'HEAD through node 3: still 0');
    this.ok(this.sql(`SELECT off FROM whisper_records_blobs WHERE id = '\\x${id}'`) === '0', 'the row unchanged');
    open.req.end(b.data.subarray(30000, 100000));
    const o = await open.response;
    this.ok(o.status === 204 && o.headers['upload-offset'] === '100000', `the open PATCH on node 2: ${o.status} ${o.headers['upload-offset']}`);
    const stale = await this.put(n3, id, c1, 0, 1000);
    this.ok(stale.status === 409 && stale.headers['upload-offset'] === '100000', `a PATCH at 0 through node 3 after it: ${stale.status} ${stale.headers['upload-offset']}`);
    // two at once, the same bytes at the same offset, through two nodes
    const [x, y] = await Promise.all([this.put(n2, id, c1, 100000, 200000), this.put(n3, id, c1, 100000, 200000)]);
    const st = [x.status, y.status].sort();
    this.ok(st[0] === 204 && (st[1] === 409 || st[1] === 423), `two PATCHes at once through nodes 2 and 3: ${x.status} and ${y.status} (one 204, one refused)`);
    const g = await this.get(n1, id);
    this.ok(g.status === 200 && g.body.equals(b.data), `GET through node 1: ${g.status}, equal ${g.body.equals(b.data)}`);
    // the same race, many times over, on fresh blobs
    let races = 0;
    let refused = 0;
    for (let i = 0; i < 10; i++) {
      const e = await this.create(n1, c1, 50000);
      const [u, v] = await Promise.all([this.put(n2, e.id, c1, 0, 50000), this.put(n3, e.id, c1, 0, 50000)]);
      const s = [u.status, v.status].sort();
      races++;
      if (s[0] === 204 && (s[1] === 409 || s[1] === 423)) refused++;
      else this.ok(false, `race ${i}: ${u.status} and ${v.status}`);
      const ge = await this.get(n1, e.id);
      this.ok(ge.status === 200 && ge.body.equals(this.model.get(e.id).data), `race ${i}: the blob after it`);
      const dd = await this.del(n3, e.id, c1);
      this.ok(dd.status === 204 && !fs.existsSync(this.dataFile(e.id)), `race ${i}: DELETE through node 3: ${dd.status}`);
      this.model.delete(e.id);
    }
    this.ok(refused === races, `${refused} of ${races} races had exactly one PATCH refused`);
    this.blobCount++;
    this.notes.concurrent = `a PATCH open on node 2: PATCH and DELETE through node 3 got 423, nothing changed; then 409 with the new offset; 11 races of two PATCHes through nodes 2 and 3: one 204 and one refused each time`;
  }

  async quota() {
    const [n1, n2, n3] = this.nodes;
    const q1 = this.tok.q1;
    const a = await this.create(n1, q1, MAX_SIZE);
    const b = await this.create(n2, q1, MAX_SIZE);
    this.ok(a.status === 201 && b.status === 201, `8 MiB through node 1 and 8 MiB through node 2: ${a.status} ${b.status}`);
    const files = fs.readdirSync(this.blobDir).length;
    const over = await this.create(n3, q1, QUOTA - 2 * MAX_SIZE + 1);
    this.ok(over.status === 403, `one byte past the quota through node 3: ${over.status}`);
    this.ok(fs.readdirSync(this.blobDir).length === files, 'the refused creation left a file');
    const fit = await this.create(n3, q1, QUOTA - 2 * MAX_SIZE);
    this.ok(fit.status === 201, `up to the quota exactly through node 3: ${fit.status}`);
    const one = await this.create(n1, q1, 1);
    this.ok(one.status === 403, `one byte more through node 1: ${one.status}`);
    const del = await this.del(n2, a.id, q1);
    this.ok(del.status === 204, `DELETE through node 2 of the blob made through node 1: ${del.status}`);
    this.model.delete(a.id);
    const again = await this.create(n3, q1, MAX_SIZE);
    this.ok(again.status === 201, `room again after the DELETE, through node 3: ${again.status}`);
    // five at once through the three nodes: 2 x 8 MiB fit in 20 MiB, 3 do not
    const q2 = this.tok.q2;
    const at = [n1, n2, n3, n1, n2];
    const rs = await Promise.all(at.map((n) => this.create(n, q2, MAX_SIZE)));
    const made = rs.filter((r) => r.status === 201).length;
    const no = rs.filter((r) => r.status === 403).length;
    this.ok(made === 2 && no === 3, `five 8 MiB creations at once through nodes 1,2,3,1,2: ${rs.map((r) => r.status).join(' ')} (want two 201, three 403)`);
    const sum = Number(this.sql(`SELECT sum(length) FROM whisper_records_blobs WHERE owner = (SELECT owner FROM whisper_records_blobs WHERE id = '\\x${rs.find((r) => r.status === 201).id}')`));
    this.ok(sum === 2 * MAX_SIZE, `quentin's bytes in PostgreSQL: ${sum}`);
    this.blobCount += 3 + made;
    this.notes.quota = `8 + 8 MiB through nodes 1 and 2, 403 one byte past 20 MiB through node 3, 201 up to it, 403 through node 1; a DELETE through node 2 freed room; five creations at once: ${rs.map((r) => r.status).join(' ')}`;
  }

  // PostgreSQL restarted: a PATCH open across it is refused (its lock went
  // with its session) and changes nothing; every node goes on.
  async pgrestart() {
    const [n1, n2, n3] = this.nodes;
    const c1 = this.tok.c1;
    const c = await this.create(n1, c1, 100000);
    const id = c.id;
    const b = this.model.get(id);
    this.ok(c.status === 201 && (await this.put(n1, id, c1, 0, 40000)).status === 204, 'a blob through node 1, 40000 bytes in');
    const open = this.openPatch(n1, id, c1, 40000, 30000);
    open.req.write(b.data.subarray(40000, 50000));
    await this.until(() => fileSize(this.dataFile(id)) >= 50000, 'the open PATCH\'s bytes on the disk');
    this.ev('PostgreSQL: restart');
    this.pg('restart', this.pgDir);
    open.req.end(b.data.subarray(50000, 70000));
    const o = await open.response;
    this.ok(o.status === 500, `the PATCH open across the restart: ${o.status} (its writer lock went with its session)`);
    this.ok(this.sql(`SELECT off FROM whisper_records_blobs WHERE id = '\\x${id}'`) === '40000', 'the offset in PostgreSQL: still 40000');
    this.ok((await this.offsetOf(n2, id, c1)) === 40000, 'HEAD through node 2 after the restart: 40000');
    const r = await this.put(n1, id, c1, 40000, 100000);
    this.ok(r.status === 204 && r.headers['upload-offset'] === '100000', `node 1 goes on: ${r.status} ${r.headers['upload-offset']}`);
    const g = await this.get(n3, id);
    this.ok(g.status === 200 && g.body.equals(b.data), `GET through node 3: ${g.status}, equal ${g.body.equals(b.data)}`);
    for (const n of this.nodes) {
      const e = await this.create(n, c1, 1000);
      const p = e.status === 201 ? await this.put(n, e.id, c1, 0, 1000) : { status: 0 };
      this.ok(e.status === 201 && p.status === 204, `${n.key} creates and uploads after the restart: ${e.status} ${p.status}`);
      this.blobCount++;
    }
    this.blobCount++;
    this.notes.pgrestart = 'PostgreSQL restarted under an open PATCH on node 1: 500, the offset unchanged; HEAD through node 2, the upload completed through node 1, GET through node 3; each node creates and uploads again';
  }

  async metricsScenario() {
    const rows = this.rows();
    this.ok(rows === this.blobCount, `rows in PostgreSQL: ${rows}, the test made ${this.blobCount}`);
    const bytes = Number(this.sql('SELECT COALESCE(sum(off), 0) FROM whisper_records_blobs'));
    for (const n of this.nodes) {
      const m = await this.metrics(n);
      this.ok(m.stored === rows && m.bytes === bytes, `${n.key}'s whisperd_blobs_stored ${m.stored}, bytes ${m.bytes}; PostgreSQL ${rows}, ${bytes}`);
    }
    this.notes.metrics = `every node reports the cluster's ${rows} blobs and ${bytes} bytes`;
  }

  async expiry() {
    const [n1, n2, n3] = this.nodes;
    const complete = [...this.model.keys()].filter((id) => fs.existsSync(this.dataFile(id)));
    // leftovers of creations cut short: one 2 hours old (removed), one new (kept)
    const oldOrphan = crypto.randomBytes(32).toString('hex');
    const newOrphan = crypto.randomBytes(32).toString('hex');
    fs.writeFileSync(this.dataFile(oldOrphan), '');
    fs.writeFileSync(this.dataFile(newOrphan), '');
    const past = new Date(Date.now() - 2 * 3600 * 1000);
    fs.utimesSync(this.dataFile(oldOrphan), past, past);
    const before = this.rows();
    this.ok(before > 0, `rows before the expiry: ${before}`);
    for (const n of [n2, n3]) this.ok((await n.stop()) === 0, `${n.key} exit code on SIGTERM`);
    const from = this.devs.events.length;
    await Promise.all([n2, n3].map((n) => n.startNode(['--clock-offset-ms', String(2 * DAY)])));
    const deleted = [n2, n3].map((n) => {
      const l = n.lines().find((x) => /blobs: .* open, shared/.test(x)) || '';
      const m = /\((\d+) expired ones deleted\)/.exec(l);
      return m ? Number(m[1]) : -1;
    });
    this.ok(deleted[0] >= 0 && deleted[1] >= 0 && deleted[0] + deleted[1] === before,
      `nodes 2 and 3 swept together: ${deleted[0]} + ${deleted[1]} deleted, ${before} rows there were`);
    this.ok(this.rows() === 0, `rows left: ${this.rows()}`);
    const left = fs.readdirSync(this.blobDir).filter((n) => n !== 'owner.key').sort();
    this.ok(left.length === 1 && left[0] === `${newOrphan}.data`, `files left in the shared directory: ${left.join(' ') || 'none'} (want only the new leftover)`);
    for (const n of [n2, n3]) {
      const bad = n.lines().filter((l) => / (warn|error) /.test(l) && /blobs/.test(l));
      this.ok(bad.length === 0, `${n.key}'s warnings about blobs while sweeping: ${bad.join(' | ')}`);
    }
    for (const id of complete.slice(0, 3)) {
      const g = await this.get(n1, id);
      this.ok(g.status === 404, `GET through node 1 (no clock offset) of ${id.slice(0, 8)} after the sweep: ${g.status}`);
    }
    // bob (node 3) can no longer download alice's film
    await this.devs.online('c1', from).catch(() => {});
    fs.unlinkSync(this.dataFile(newOrphan));
    this.model.clear();
    this.notes.expiry = `nodes 2 and 3 restarted 2 days ahead at once (TTL 1 day): ${deleted[0]} + ${deleted[1]} of ${before} rows deleted, no file left; a 2-hour-old leftover data file removed, a new one kept; GET through node 1 404`;
  }

  async wrongdir() {
    const other = path.join(this.dir, 'other-blobs');
    const n4 = new Node(this, 4, other);
    let failed = null;
    try {
      await n4.startNode();
      failed = false;
    } catch (e) {
      failed = e.message;
    }
    this.ok(failed && n4.exited && n4.exitCode !== 0, `a node with another --blob-dir: ${failed === false ? 'it started' : `exit ${n4.exitCode}`}`);
    const log = fs.readFileSync(n4.logPath, 'utf8');
    this.ok(/this --blob-dir is not the cluster's/.test(log), `its reason: ${short(log.split('\n').filter((l) => /blob/.test(l)).join(' | '), 300)}`);
    if (!n4.exited) await n4.kill9('cleanup');
    this.notes.wrongdir = 'a fourth node given another --blob-dir refused to start (its owner.key is not the cluster\'s)';
  }

  async shutdown() {
    this.ok((await this.devs.quit()) === 0, 'whisper-blob-devices exit code');
    for (const c of [this.alice, this.bob]) this.ok((await c.quit()) === 0, `${c.key} exit code at end of input`);
    for (const n of this.nodes) this.ok((await n.stop()) === 0, `${n.key} exit code on SIGTERM`);
    for (const n of this.nodes) {
      const log = fs.readFileSync(n.logPath, 'utf8');
      this.ok(!/[0-9a-f]{64}/.test(log), `a whole blob id in ${n.key}'s log`);
    }
    this.notes.shutdown = 'clients exit 0, nodes 0 on SIGTERM; no whole blob id in a log';
  }

  async cleanup() {
    for (const p of [this.alice, this.bob, this.devs, ...(this.nodes || [])]) if (p) await p.kill9('cleanup');
    try {
      this.pg('stop', this.pgDir);
    } catch (e) {
      this.ev(`pg stop: ${e.message}`);
    }
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
    failed += this.stats.script.failed;
    return { passed, failed };
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const dir = o.workdir
    ? fs.mkdtempSync(path.join(path.resolve(o.workdir), 'cblobs-'))
    : fs.mkdtempSync(path.join(os.tmpdir(), 'whisper-cblobs-'));
  const t = new Test(o, dir);
  process.stderr.write(`cluster_blobs.js: work directory ${dir}\n`);
  let fatal = false;
  const steps = [['setup', t.setup], ['media', t.mediaScenario], ['crash', t.crash], ['concurrent', t.concurrent],
    ['quota', t.quota], ['pgrestart', t.pgrestart], ['metrics', t.metricsScenario], ['expiry', t.expiry], ['wrongdir', t.wrongdir], ['shutdown', t.shutdown]];
  for (const [name, fn] of steps) {
    t.cat = name;
    t.ev(`=== ${name}`);
    try {
      await fn.call(t);
    } catch (e) {
      t.check(name, false, `stopped: ${e instanceof Error ? e.message : String(e)}`);
      t.ev(e && e.stack ? e.stack : String(e));
      if (name === 'setup') {
        fatal = true;
        break;
      }
    }
  }
  await t.cleanup();
  const { passed, failed } = t.summary();
  fs.closeSync(t.traceFd);
  process.stderr.write(`cluster_blobs.js: ${((Date.now() - t.t0) / 1000).toFixed(1)}s\n`);
  if (failed || fatal || o.keep) process.stderr.write(`cluster_blobs.js: kept ${dir} (events.log, node*.stderr, the shared blob directory)\n`);
  else fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed || fatal ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`cluster_blobs.js: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  }
);
