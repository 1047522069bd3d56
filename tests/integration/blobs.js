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
const net = require('net');
const path = require('path');
const { short, sha256, fileSize, Test, Whisperd, Devices, TUS, OCTETS, Tus } = require('./procs');

const MAX_SIZE = 250000;
const QUOTA = 600000;
const DAY = 24 * 3600 * 1000;
const STATUSES = [200, 201, 204, 206, 400, 401, 403, 404, 405, 409, 411, 412, 413, 415, 416, 423, 500, 503, 507];

// ---------------------------------------------------------------------------
// the test

const SCENARIOS = ['setup', 'flow', 'refusals', 'busy', 'devices', 'crash', 'limits', 'expiry', ['metrics', 'metrics', 'finalMetrics'], 'shutdown'];

class BlobTest extends Test {
  constructor(o, dir) {
    super(o, dir, SCENARIOS);
    this.whisperdArgs = ['--blob-max-size', String(MAX_SIZE), '--blob-quota', String(QUOTA)];
    this.server = new Whisperd(this);
    this.devs = new Devices(this);
    this.tus = new Tus(this, this.server); // and what it did since whisperd's start: tus.acct
    this.model = new Map(); // id -> {length, offset, data}
  }

  // A tus POST: the 201 says Tus-Resumable.
  async create(token, length, extra = {}) {
    const r = await this.tus.create(token, length, extra);
    if (r.status === 201) this.ok(r.headers['tus-resumable'] === '1.0.0', '201 without Tus-Resumable');
    return r;
  }

  dataFile(id) {
    return path.join(this.server.blobDir, `${id}.data`);
  }

  // The blob directory, every file with its size and hash.
  snapshot() {
    if (!fs.existsSync(this.server.blobDir)) return 'none';
    return fs.readdirSync(this.server.blobDir).sort()
      .map((n) => `${n}:${sha256(fs.readFileSync(path.join(this.server.blobDir, n)))}`).join('\n');
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

  // whisperd_blob_* against what this test did since whisperd started.
  async checkMetrics(what) {
    const m = await this.server.metrics();
    const { counts, bytesIn, bytesOut } = this.tus.acct;
    let stored = 0;
    let bytes = 0;
    for (const b of this.model.values()) {
      stored++;
      bytes += b.offset;
    }
    this.ok(m.whisperd_blob_bytes_in_total === bytesIn, `${what}: bytes in ${m.whisperd_blob_bytes_in_total}, the test PATCHed ${bytesIn}`);
    this.ok(m.whisperd_blob_bytes_out_total === bytesOut, `${what}: bytes out ${m.whisperd_blob_bytes_out_total}, the test read ${bytesOut}`);
    this.ok(m.whisperd_blobs_stored === stored, `${what}: blobs stored ${m.whisperd_blobs_stored}, the test has ${stored}`);
    this.ok(m.whisperd_blob_bytes_stored === bytes, `${what}: bytes stored ${m.whisperd_blob_bytes_stored}, the test has ${bytes}`);
    for (const s of STATUSES) {
      const got = m[`whisperd_blob_requests_total{status="${s}"}`];
      this.ok(got === (counts[s] || 0), `${what}: requests with status ${s}: ${got}, the test saw ${counts[s] || 0}`);
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
    const r = await this.tus.request('OPTIONS', '/v1/blobs');
    this.ok(r.status === 204 && r.headers['tus-version'] === '1.0.0' && r.headers['tus-resumable'] === '1.0.0' &&
      r.headers['tus-extension'] === 'creation,termination' && r.headers['tus-max-size'] === String(MAX_SIZE),
    `OPTIONS: ${r.status} ${JSON.stringify(r.headers)}`);
    // refused before the first upload: not even the directory is made
    await this.refused('tus POST without a token, before any upload', 401, () => this.create(null, 10));
    await this.refused('tus POST over the max size, before any upload', 413, () => this.create(this.tok.b1, MAX_SIZE + 1));
    await this.refused('HEAD of an unknown blob, before any upload', 404, () => this.tus.head('0'.repeat(64), this.tok.b1));
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
    this.ok((await this.tus.offsetOf(id, this.tok.a1)) === 0, 'HEAD after POST: not 0');
    const h = await this.tus.head(id, this.tok.a1);
    this.ok(h.headers['upload-length'] === String(len) && h.headers['cache-control'] === 'no-store' &&
      h.headers['tus-resumable'] === '1.0.0', `HEAD headers ${JSON.stringify(h.headers)}`);
    const cuts = [0, 30000, 61000, len];
    for (let i = 0; i < 3; i++) {
      const g = await this.tus.request('GET', `/v1/blobs/${id}`);
      this.ok(g.status === 404, `GET of an incomplete blob: ${g.status}`);
      const r = await this.tus.put(id, this.tok.a1, cuts[i], cuts[i + 1]);
      this.ok(r.status === 204 && r.headers['upload-offset'] === String(cuts[i + 1]) && r.headers['tus-resumable'] === '1.0.0',
        `PATCH ${i + 1}: ${r.status} offset ${r.headers['upload-offset']}`);
      this.ok((await this.tus.offsetOf(id, this.tok.a1)) === cuts[i + 1], `HEAD after PATCH ${i + 1}`);
      this.ok(fileSize(this.dataFile(id)) === cuts[i + 1], `the data file after PATCH ${i + 1}: ${fileSize(this.dataFile(id))} bytes`);
    }
    const data = this.model.get(id).data;
    const g = await this.tus.request('GET', `/v1/blobs/${id}`);
    this.ok(g.status === 200 && g.body.equals(data) && g.headers['content-length'] === String(len) &&
      g.headers['content-type'] === 'application/octet-stream' && g.headers['accept-ranges'] === 'bytes',
    `GET whole: ${g.status}, ${g.body.length} bytes, equal ${g.body.equals(data)}`);
    const ranges = [
      ['bytes=1000-1999', 1000, 2000], ['bytes=99990-', 99990, len], ['bytes=-5', len - 5, len],
      ['bytes=0-0', 0, 1], ['bytes=65530-70000', 65530, 70001], ['bytes=50000-999999', 50000, len],
      ['bytes=-200000', 0, len],
    ];
    for (const [spec, a, b] of ranges) {
      const r = await this.tus.request('GET', `/v1/blobs/${id}`, { Range: spec });
      this.ok(r.status === 206 && r.body.equals(data.subarray(a, b)) &&
        r.headers['content-range'] === `bytes ${a}-${b - 1}/${len}` && r.headers['content-length'] === String(b - a),
      `GET ${spec}: ${r.status} ${r.headers['content-range']} ${r.body.length} bytes`);
    }
    for (const spec of ['bytes=100000-', 'bytes=200000-300000', 'bytes=-0']) {
      const r = await this.tus.request('GET', `/v1/blobs/${id}`, { Range: spec });
      this.ok(r.status === 416 && r.headers['content-range'] === `bytes */${len}`, `GET ${spec}: ${r.status} ${r.headers['content-range']}`);
    }
    for (const spec of ['bytes=5-2', 'items=0-5', 'bytes=0-1,5-6', 'bytes=x-']) { // ignored: the whole blob
      const r = await this.tus.request('GET', `/v1/blobs/${id}`, { Range: spec });
      this.ok(r.status === 200 && r.body.equals(data), `GET with an ignored Range ${spec}: ${r.status}`);
    }
    // an empty blob is complete at once
    const e = await this.create(this.tok.a1, 0);
    const ge = await this.tus.request('GET', `/v1/blobs/${e.id}`);
    this.ok(e.status === 201 && ge.status === 200 && ge.body.length === 0 && ge.headers['content-length'] === '0', `empty blob: ${e.status}, GET ${ge.status}`);
    const pe = await this.tus.patch(e.id, this.tok.a1, 0, Buffer.alloc(0));
    this.ok(pe.status === 204 && pe.headers['upload-offset'] === '0', `an empty PATCH of the empty blob: ${pe.status}`);
    // another token of the same device is the same uploader
    const t2 = await this.devs.token('a1');
    this.ok(t2.ev === 'token' && (await this.tus.offsetOf(id, t2.token)) === len, 'a new token of alice.1 is not her own');
    await this.checkMetrics('flow');
    this.notes.flow = `a ${len}-byte blob in 3 PATCHes (HEAD after each), GET whole and ${ranges.length} ranges equal, 416 past the end, ignored ranges, an empty blob`;
  }

  async refusals() {
    const a1 = this.tok.a1;
    const c = await this.create(a1, 50000);
    const id = c.id;
    this.refuseId = id;
    await this.tus.put(id, a1, 0, 20000);
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
    await this.refused('tus POST without Tus-Resumable', 412, () => this.tus.request('POST', '/v1/blobs', { ...this.tus.auth(a1), 'Upload-Length': '10' }));
    await this.refused('tus POST of tus 0.2.2', 412, () => this.create(a1, 10, { 'Tus-Resumable': '0.2.2' }));
    await this.refused('tus POST without Upload-Length', 400, () => this.tus.request('POST', '/v1/blobs', { ...TUS, ...this.tus.auth(a1) }));
    for (const v of ['abc', '-1', '1e3', '', ' ', '99999999999999999999999']) {
      await this.refused(`tus POST with Upload-Length "${v}"`, 400, () => this.create(a1, 10, { 'Upload-Length': v }));
    }
    await this.refused('tus POST with Upload-Defer-Length', 400, () => this.tus.request('POST', '/v1/blobs', { ...TUS, ...this.tus.auth(a1), 'Upload-Defer-Length': '1' }));
    await this.refused('tus POST with a body', 400, () => this.tus.request('POST', '/v1/blobs', { ...TUS, ...this.tus.auth(a1), 'Upload-Length': '5' }, Buffer.from('hello')));
    await this.refused('tus POST over the max size', 413, () => this.create(a1, MAX_SIZE + 1));
    await this.refused('GET /v1/blobs', 405, () => this.tus.request('GET', '/v1/blobs'));
    // PATCH: the offset stays where it was
    const P = (desc, status, fn) => this.refused(`tus PATCH ${desc}`, status, fn);
    await P('at an offset behind', 409, () => this.tus.patch(id, a1, 19999, body));
    await P('at an offset ahead', 409, () => this.tus.patch(id, a1, 20001, body));
    const r409 = await P('at 0', 409, () => this.tus.patch(id, a1, 0, body));
    this.ok(r409.headers['upload-offset'] === '20000', `409 without the blob's offset: ${r409.headers['upload-offset']}`);
    await P('with Content-Type text/plain', 415, () => this.tus.patch(id, a1, 20000, body, { 'Content-Type': 'text/plain' }));
    await P('without Content-Type', 415, () => this.tus.request('PATCH', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(a1), 'Upload-Offset': '20000' }, body));
    await P('without Upload-Offset', 400, () => this.tus.request('PATCH', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(a1), 'Content-Type': OCTETS }, body));
    await P('with Upload-Offset "x"', 400, () => this.tus.patch(id, a1, 'x', body));
    await P('past Upload-Length', 413, () => this.tus.patch(id, a1, 20000, Buffer.alloc(30001)));
    await P('without a token', 401, () => this.tus.patch(id, null, 20000, body));
    await P('with a changed token', 401, () => this.tus.patch(id, flipped, 20000, body));
    await P('with another device\'s token (alice.2)', 403, () => this.tus.patch(id, this.tok.a2, 20000, body));
    await P('with another account\'s token (bob.1)', 403, () => this.tus.patch(id, this.tok.b1, 20000, body));
    await P('of an unknown blob', 404, () => this.tus.patch(other, a1, 0, body));
    await P('of a malformed id', 404, () => this.tus.patch('ABC', a1, 0, body));
    await P('of an id in capitals', 404, () => this.tus.patch(id.toUpperCase(), a1, 20000, body));
    await P('without Tus-Resumable', 412, () => this.tus.request('PATCH', `/v1/blobs/${id}`, { ...this.tus.auth(a1), 'Upload-Offset': '20000', 'Content-Type': OCTETS }, body));
    await this.refused('PATCH of the collection', 405, () => this.tus.patch('', a1, 0, body));
    this.ok((await this.tus.offsetOf(id, a1)) === 20000, 'the offset moved after the refused PATCHes');
    // HEAD and DELETE of another device, an unknown blob, no token
    await this.refused('tus HEAD with alice.2\'s token', 403, () => this.tus.head(id, this.tok.a2));
    await this.refused('tus HEAD with bob.1\'s token', 403, () => this.tus.head(id, this.tok.b1));
    await this.refused('tus HEAD of an unknown blob', 404, () => this.tus.head(other, a1));
    await this.refused('tus HEAD without a token', 401, () => this.tus.head(id, null));
    await this.refused('tus DELETE with alice.2\'s token', 403, () => this.tus.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(this.tok.a2) }));
    await this.refused('tus DELETE with bob.1\'s token', 403, () => this.tus.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(this.tok.b1) }));
    await this.refused('tus DELETE of an unknown blob', 404, () => this.tus.request('DELETE', `/v1/blobs/${other}`, { ...TUS, ...this.tus.auth(a1) }));
    await this.refused('tus DELETE without Tus-Resumable', 412, () => this.tus.request('DELETE', `/v1/blobs/${id}`, this.tus.auth(a1)));
    await this.refused('GET of an unknown blob', 404, () => this.tus.request('GET', `/v1/blobs/${other}`));
    await this.refused('GET of an incomplete blob', 404, () => this.tus.request('GET', `/v1/blobs/${id}`));
    await this.refused('PUT', 405, () => this.tus.request('PUT', `/v1/blobs/${id}`, {}, Buffer.from('x')));
    // the refused ones changed nothing: the upload goes on from 20000
    const r = await this.tus.put(id, a1, 20000, 50000);
    const g = await this.tus.request('GET', `/v1/blobs/${id}`);
    this.ok(r.status === 204 && g.status === 200 && g.body.equals(this.model.get(id).data), `the upload after the refusals: ${r.status}, GET ${g.status}`);
    // DELETE by the uploader: gone
    const d = await this.tus.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(a1) });
    this.ok(d.status === 204 && d.headers['tus-resumable'] === '1.0.0', `DELETE: ${d.status}`);
    this.model.delete(id);
    this.ok((await this.tus.request('GET', `/v1/blobs/${id}`)).status === 404, 'GET after DELETE is not 404');
    this.ok((await this.tus.head(id, a1)).status === 404, 'HEAD after DELETE is not 404');
    this.ok(!fs.existsSync(this.dataFile(id)) && !fs.existsSync(path.join(this.server.blobDir, `${id}.meta`)), 'files left after DELETE');
    await this.refused('tus DELETE again', 404, () => this.tus.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(a1) }));
    await this.checkMetrics('refusals');
    this.notes.refusals = 'POST (401 x5, 412 x2, 400 x10, 413), PATCH (409 x3 with the offset, 415 x2, 400 x2, 413, 401 x2, 403 x2, 404 x3, 412, 405), HEAD, DELETE, GET, PUT: each its status and the blob directory unchanged; the upload then completes; DELETE';
  }

  async busy() {
    const a1 = this.tok.a1;
    const c = await this.create(a1, 60000);
    const id = c.id;
    const b = this.model.get(id);
    // a PATCH in progress: its first bytes are on the disk, so it holds the blob
    const open = this.tus.openPatch(id, a1, 0, 30000);
    open.req.write(b.data.subarray(0, 10000));
    await this.until(() => fileSize(this.dataFile(id)) >= 10000, 'the open PATCH\'s bytes on the disk');
    await this.refused('tus PATCH while another writes', 423, () => this.tus.patch(id, a1, 0, Buffer.alloc(0)));
    await this.refused('tus PATCH while another writes (with bytes)', 423, () => this.tus.patch(id, a1, 0, b.data.subarray(0, 100)));
    await this.refused('tus DELETE while a PATCH writes', 423, () => this.tus.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(a1) }));
    this.ok((await this.tus.offsetOf(id, a1)) === 0, 'HEAD shows bytes of a PATCH not answered yet');
    open.req.end(b.data.subarray(10000, 30000));
    const r = await open.response;
    this.ok(r.status === 204 && r.headers['upload-offset'] === '30000', `the open PATCH: ${r.status} ${r.headers['upload-offset']}`);
    const acct = this.tus.acct;
    acct.counts[204] = (acct.counts[204] || 0) + 1;
    this.tus.took(b, 30000);
    // cut off by the client after 10000 of 20000 bytes: those are kept
    const cut = this.tus.openPatch(id, a1, 30000, 20000);
    cut.req.write(b.data.subarray(30000, 40000));
    await this.until(() => fileSize(this.dataFile(id)) >= 40000, 'the cut PATCH\'s bytes on the disk');
    cut.req.destroy();
    // its end is seen when another PATCH is no longer locked out
    await this.until(async () => (await this.tus.patch(id, a1, 40000, Buffer.alloc(0))).status !== 423, 'the cut PATCH to end');
    const off = await this.tus.offsetOf(id, a1);
    this.ok(off === 40000, `HEAD after a PATCH cut off after 10000 bytes: ${off}, wanted 40000 (tus: keep what arrived)`);
    this.tus.took(b, off);
    // keep-alive: a refused PATCH with a body, then more requests on the connection
    const ka = await this.keepAlive([
      { head: `PATCH /v1/blobs/${id} HTTP/1.1`, headers: { ...TUS, ...this.tus.auth(this.tok.b1), 'Upload-Offset': String(off), 'Content-Type': OCTETS, 'Content-Length': '5000' }, body: Buffer.alloc(5000, 7) },
      { head: `PATCH /v1/blobs/${id} HTTP/1.1`, headers: { ...TUS, ...this.tus.auth(a1), 'Upload-Offset': '1', 'Content-Type': OCTETS, 'Content-Length': '3000' }, body: Buffer.alloc(3000, 7) },
      { head: `HEAD /v1/blobs/${id} HTTP/1.1`, headers: { ...TUS, ...this.tus.auth(a1) } },
      { head: `PATCH /v1/blobs/${id} HTTP/1.1`, headers: { ...TUS, ...this.tus.auth(a1), 'Upload-Offset': String(off), 'Content-Type': OCTETS, 'Content-Length': String(60000 - off) }, body: b.data.subarray(off) },
      { head: `GET /v1/blobs/${id} HTTP/1.1`, headers: {} },
      { head: 'GET /healthz HTTP/1.1', headers: {} },
    ]);
    const want = [403, 409, 200, 204, 200, 200];
    this.ok(ka.map((x) => x.status).join() === want.join(), `keep-alive statuses ${ka.map((x) => x.status)}, wanted ${want}`);
    if (ka.length === want.length) {
      this.ok(ka[2].headers['upload-offset'] === String(off), `keep-alive HEAD offset ${ka[2].headers['upload-offset']}`);
      this.ok(ka[4].body.equals(b.data), 'keep-alive GET: not the blob');
    }
    for (const s of [403, 409, 204, 200]) acct.counts[s] = (acct.counts[s] || 0) + (s === 200 ? 2 : 1);
    this.tus.took(b, 60000);
    acct.bytesOut += 60000;
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
    this.ok((await this.tus.put(id, a1, 0, 50000)).status === 204, 'the first PATCH');
    // a PATCH half written: whisperd has bytes past 50000 on the disk, unacknowledged
    const open = this.tus.openPatch(id, a1, 50000, 50000);
    open.req.write(b.data.subarray(50000, 75000));
    await this.until(() => fileSize(this.dataFile(id)) >= 75000, 'the unacknowledged bytes on the disk');
    // leftovers a crash can leave: a creation without metadata, a metadata file not renamed
    const orphan = crypto.randomBytes(32).toString('hex');
    fs.writeFileSync(path.join(this.server.blobDir, `${orphan}.data`), 'x');
    fs.writeFileSync(path.join(this.server.blobDir, `${id}.meta.tmp`), 'whisper-blob 1\n');
    await this.server.kill9('a PATCH half written');
    const lost = await open.response.then(() => 'an answer', (e) => e.code || e.message);
    this.ok(lost !== 'an answer', 'the PATCH cut by the kill was answered');
    this.ok(fileSize(this.dataFile(id)) >= 75000, 'the unacknowledged bytes were not on the disk');
    const from = this.devs.events.length;
    await this.server.start();
    this.ok(this.server.lines.some((l) => l.includes(`${id.slice(0, 8)}... cut back from 75000 to 50000 bytes`)), 'no line about the data cut back');
    this.ok(fileSize(this.dataFile(id)) === 50000, `the data file after the restart: ${fileSize(this.dataFile(id))} bytes, wanted 50000`);
    this.ok(!fs.existsSync(path.join(this.server.blobDir, `${orphan}.data`)), 'a data file without metadata survived the restart');
    this.ok(!fs.existsSync(path.join(this.server.blobDir, `${id}.meta.tmp`)), 'a temporary metadata file survived the restart');
    // the token still works (the secret is in the store); the upload resumes
    const off = await this.tus.offsetOf(id, a1);
    this.ok(off === 50000, `HEAD after the restart: ${off}, wanted 50000 (the last acknowledged offset)`);
    const r = await this.tus.put(id, a1, off, 150000);
    this.ok(r.status === 204 && r.headers['upload-offset'] === '150000', `the resumed PATCH: ${r.status}`);
    const g = await this.tus.request('GET', `/v1/blobs/${id}`);
    this.ok(g.status === 200 && g.body.equals(b.data), 'GET after the resume: not the blob');
    // the blobs from before the crash are all there
    for (const [bid, x] of this.model) {
      if (x.offset === x.length) {
        const gb = await this.tus.request('GET', `/v1/blobs/${bid}`);
        this.ok(gb.status === 200 && gb.body.equals(x.data), `blob ${bid.slice(0, 8)} after the restart: ${gb.status}`);
      } else {
        this.ok((await this.tus.offsetOf(bid, a1)) === x.offset, `blob ${bid.slice(0, 8)} after the restart`);
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
    this.ok(c.status === 201 && (await this.tus.put(id, this.tok.a2, 0, 10000)).status === 204, 'alice.2 uploads');
    await this.refused('tus HEAD of alice.2\'s blob by alice.1', 403, () => this.tus.head(id, this.tok.a1));
    await this.refused('tus DELETE of alice.2\'s blob by alice.1', 403, () => this.tus.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(this.tok.a1) }));
    // alice.1 removes alice.2: its token is refused from then on
    const from = this.devs.events.length;
    this.devs.write('remove a1 2');
    await this.devs.waitFor((e) => e.ev === 'ok' && e.cmd === 'remove', 'remove ok', { from });
    await this.devs.waitFor((e) => e.ev === 'closed' && e.name === 'a2', 'alice.2\'s connection closed by the server', { from });
    await this.refused('tus HEAD with a removed device\'s token', 401, () => this.tus.head(id, this.tok.a2));
    await this.refused('tus POST with a removed device\'s token', 401, () => this.create(this.tok.a2, 10));
    await this.refused('tus DELETE with a removed device\'s token', 401, () => this.tus.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.tus.auth(this.tok.a2) }));
    const g = await this.tus.request('GET', `/v1/blobs/${id}`);
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
    const d = await this.tus.request('DELETE', `/v1/blobs/${z.id}`, { ...TUS, ...this.tus.auth(b1) });
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
      const g = await this.tus.request('GET', `/v1/blobs/${id}`);
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
      const g = await this.tus.request('GET', `/v1/blobs/${id}`);
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
    const before = await this.server.metrics();
    const c = await this.create(this.tok.a1, 3000);
    await this.tus.put(c.id, this.tok.a1, 0, 3000);
    await this.tus.request('GET', `/v1/blobs/${c.id}`, { Range: 'bytes=0-99' });
    const after = await this.server.metrics();
    this.ok(after.whisperd_blob_bytes_in_total - before.whisperd_blob_bytes_in_total === 3000, 'bytes in did not move by 3000');
    this.ok(after.whisperd_blob_bytes_out_total - before.whisperd_blob_bytes_out_total === 100, 'bytes out did not move by 100');
    this.ok(after.whisperd_blobs_stored - before.whisperd_blobs_stored === 1, 'blobs stored did not move by 1');
    this.ok(after['whisperd_blob_requests_total{status="206"}'] - (before['whisperd_blob_requests_total{status="206"}'] || 0) === 1, '206 did not move by 1');
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
}

BlobTest.main('blobs.js', { programs: ['whisperd', 'devices'] }, 'events.log, whisperd.stderr, devices.stderr, the store and blobs/');
