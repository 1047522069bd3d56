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
const path = require('path');
const { short, sha256, fileSize, Test, Whisperd, Devices, Tus, Pg, whisperCode } = require('./procs');

const MIB = 1 << 20;
const MAX_SIZE = 8 * MIB;
const QUOTA = 20 * MIB;
const PIECE = 256 * 1024;
const FILE_SIZE = 6 * MIB;
const DAY = 24 * 3600 * 1000;
const ENOTFOUND = whisperCode('WHISPER_ENOTFOUND');

// ---------------------------------------------------------------------------
// processes

class Node extends Whisperd {
  constructor(t, k, blobDir = t.blobDir) {
    super(t, `node${k}`);
    this.k = k;
    this.db = path.join(t.dir, `unused${k}.db`);
    this.blobDir = blobDir;
    this.tus = new Tus(t, this);
  }

  startNode(extra = []) {
    return this.start(['--pg', this.t.pg.conninfo, '--node', String(this.k), '--blob-dir', this.blobDir,
      '--blob-max-size', String(MAX_SIZE), '--blob-quota', String(QUOTA), '--blob-ttl-days', '1',
      '--presence-grace-ms', '300', ...extra]);
  }

  // whisperd's blob counters (/metrics).
  async blobMetrics() {
    const m = await this.metrics();
    return { in: m.whisperd_blob_bytes_in_total, out: m.whisperd_blob_bytes_out_total,
      stored: m.whisperd_blobs_stored, bytes: m.whisperd_blob_bytes_stored };
  }
}

// ---------------------------------------------------------------------------
// the test

const SCENARIOS = ['setup', ['media', 'media', 'mediaScenario'], 'crash', 'concurrent', 'quota', 'pgrestart',
  ['metrics', 'metrics', 'metricsScenario'], 'expiry', 'wrongdir', 'shutdown'];

class ClusterBlobsTest extends Test {
  constructor(o, dir) {
    super(o, dir, SCENARIOS);
    this.pg = new Pg(this, 'cblobs');
    this.blobDir = path.join(dir, 'shared-blobs');
    this.backoffMs = 500;
    this.chatArgs = ['--media-piece', String(PIECE)];
    this.model = new Map(); // id -> {length, offset, data}: the raw blobs this test made
  }

  rows() {
    return Number(this.pg.sql('SELECT count(*) FROM whisper_records_blobs'));
  }

  dataFile(id) {
    return path.join(this.blobDir, `${id}.data`);
  }

  until(cond, desc) {
    return super.until(cond, desc, 10);
  }

  // --- scenarios ---------------------------------------------------------------

  async setup() {
    this.pg.start('whisper');
    this.nodes = [1, 2, 3].map((k) => new Node(this, k));
    for (const n of this.nodes) await n.startNode();
    const [n1, n2, n3] = this.nodes;
    for (const n of this.nodes)
      this.ok(n.lines.some((l) => /blobs: .* open, shared by the cluster's nodes \(metadata in PostgreSQL, table whisper_records_blobs\)/.test(l)),
        `${n.key} says its blob store is shared`);
    this.ok(this.rows() === 0, 'the blobs table exists, empty');
    this.ok(fs.existsSync(path.join(this.blobDir, 'owner.key')), 'owner.key in the shared directory');
    this.alice = this.chat('alice', 1, n1);
    this.bob = this.chat('bob', 1, n3);
    await this.alice.startOnline();
    await this.bob.startOnline();
    const hi = await this.alice.send('bob', 'hello');
    await this.bob.waitFor((e) => e.ev === 'message' && e.id === hi, 'alice\'s hello at bob');
    this.devs = new Devices(this);
    this.devs.start(n3.url);
    for (const [name, acct] of [['c1', 'carol'], ['q1', 'quinn'], ['q2', 'quentin']]) {
      this.devs.write(`up ${name} ${acct}`);
      await this.devs.online(name);
    }
    this.tok = {};
    for (const name of ['c1', 'q1', 'q2']) {
      const e = await this.devs.token(name);
      if (e.ev !== 'token') throw new Error(`no token for ${name}: ${JSON.stringify(e)}`);
      this.tok[name] = e.token;
    }
    this.notes.setup = `PostgreSQL, nodes on ${this.nodes.map((n) => n.port).join(', ')} sharing ${path.basename(this.blobDir)}; alice on node 1, bob on node 3`;
    void n1;
    void n2;
  }

  async mediaScenario() {
    const { alice, bob } = this;
    const [, n2, n3] = this.nodes;
    const file = path.join(this.dir, 'film.mp4');
    fs.writeFileSync(file, crypto.randomBytes(FILE_SIZE));
    const fileSha = sha256(fs.readFileSync(file));
    const n2before = await n2.blobMetrics();
    const r = await alice.cmd(`send-file bob ${file} the film`);
    const id = r.id;
    const up = await this.media(alice, id, (e) => e.state === 'uploading' && e.done > 0, 'upload progress');
    await alice.kill9('mid-upload, on node 1');
    const run1 = alice.events.filter((e) => e.ev === 'media' && e.id === id);
    const cut = Math.max(...run1.filter((e) => e.state === 'uploading').map((e) => e.done));
    this.ok(!run1.some((e) => e.state === 'sent') && cut < up.total, `the kill came mid-upload (${cut} of ${up.total} acknowledged)`);
    alice.server = n2; // through node 2 from now on
    alice.start();
    const end = await this.media(alice, id, (e) => e.state === 'sent' || e.state === 'failed', 'the upload\'s end on node 2');
    this.ok(end.state === 'sent', `the upload ended on node 2: ${JSON.stringify(end)}`);
    const after = alice.events.filter((e) => e.ev === 'media' && e.id === id && e.state === 'uploading');
    this.ok(after.length === 0 || after[0].done >= cut,
      `resumed from the acknowledged offset: first progress on node 2 ${after.length ? after[0].done : 'none'}, ${cut} acknowledged on node 1`);
    const n2after = await n2.blobMetrics();
    const took = n2after.in - n2before.in;
    this.ok(took > 0 && took <= up.total - cut, `node 2 took ${took} bytes of a ${up.total}-byte blob with ${cut} acknowledged on node 1 (the rest only)`);
    const m = await bob.waitFor((e) => e.ev === 'message' && e.id === id, 'the attachment at bob (node 3)');
    this.ok(m.kind === 'attachment' && m.attachment && m.attachment.size === FILE_SIZE, `the attachment at bob: ${short(JSON.stringify(m), 300)}`);
    const out = path.join(this.dir, 'bob-film.mp4');
    const n3before = await n3.blobMetrics();
    await bob.cmd(`download alice ${id.slice(0, 8)} ${out}`);
    const d = await this.media(bob, id, (e) => e.state === 'downloaded' || e.state === 'failed', 'bob\'s download through node 3');
    const got = fileSize(out) === FILE_SIZE ? sha256(fs.readFileSync(out)) : `(${fileSize(out)} bytes)`;
    this.ok(d.state === 'downloaded' && got === fileSha, `bob's download through node 3: ${JSON.stringify(d)}, sha256 ${got}, alice's ${fileSha}`);
    const n3after = await n3.blobMetrics();
    this.ok(n3after.out - n3before.out >= up.total, `node 3 served the blob: ${n3after.out - n3before.out} bytes`);
    this.blobCount = 1;
    this.notes.media = `6 MiB in ${PIECE / 1024} KiB pieces: alice SIGKILLed on node 1 at ${cut} of ${up.total} bytes, resumed on node 2 (which took ${took} bytes), bob downloaded through node 3: sha256 equal`;
  }

  async crash() {
    const [n1, n2, n3] = this.nodes;
    const c1 = this.tok.c1;
    const c = await n1.tus.create(c1, 300000);
    this.ok(c.status === 201, `POST through node 1: ${c.status}`);
    const id = c.id;
    const b = this.model.get(id);
    this.ok((await n1.tus.put(id, c1, 0, 100000)).status === 204, 'the first PATCH through node 1');
    this.ok(this.pg.sql(`SELECT off FROM whisper_records_blobs WHERE id = '\\x${id}'`) === '100000', 'the offset in PostgreSQL after the first PATCH');
    // bytes that are not the blob's: they must never be served
    const open = n1.tus.openPatch(id, c1, 100000, 100000);
    open.req.write(Buffer.alloc(50000, 0xEE));
    await this.until(() => fileSize(this.dataFile(id)) >= 150000, 'the unacknowledged bytes in the shared data file');
    await n1.kill9('a PATCH half written');
    const lost = await open.response.then(() => 'an answer', (e) => e.code || e.message);
    this.ok(lost !== 'an answer', 'the PATCH cut by the kill was answered');
    this.ok(fileSize(this.dataFile(id)) >= 150000, 'the unacknowledged bytes are on the disk');
    this.ok((await n2.tus.offsetOf(id, c1)) === 100000, 'HEAD through node 2: the recorded offset');
    this.ok((await n3.tus.get(id)).status === 404, 'GET through node 3 of the incomplete blob: 404');
    // node 1's session (and its writer lock) goes when PostgreSQL sees it closed
    let r;
    await this.until(async () => (r = await n2.tus.put(id, c1, 100000, 120000)).status !== 423, 'node 1\'s lock to go');
    this.ok(r.status === 204 && r.headers['upload-offset'] === '120000', `a short PATCH through node 2: ${r.status} ${r.headers['upload-offset']}`);
    this.ok(n2.lines.some((l) => l.includes(`${id.slice(0, 8)}... cut back from 150000 to 100000 bytes`)), 'node 2 says it cut the data file back to the recorded offset');
    this.ok(fileSize(this.dataFile(id)) === 120000, `the data file after 20000 bytes more: ${fileSize(this.dataFile(id))} bytes, want 120000 (nothing past the offset)`);
    r = await n3.tus.put(id, c1, 120000, 300000);
    this.ok(r.status === 204 && r.headers['upload-offset'] === '300000', `the rest through node 3: ${r.status} ${r.headers['upload-offset']}`);
    this.ok(fileSize(this.dataFile(id)) === 300000, `the data file: ${fileSize(this.dataFile(id))} bytes`);
    const g = await n3.tus.get(id);
    this.ok(g.status === 200 && g.body.equals(b.data), `GET through node 3: ${g.status}, equal ${g.body.equals(b.data)}`);
    const rg = await n3.tus.request('GET', `/v1/blobs/${id}`, { Range: 'bytes=140000-160000' });
    this.ok(rg.status === 206 && rg.body.equals(b.data.subarray(140000, 160001)), `a range across the cut through node 3: ${rg.status}`);
    await n1.startNode();
    this.ok((await n1.tus.offsetOf(id, c1)) === 300000, 'HEAD through node 1 after its restart');
    this.blobCount++;
    this.notes.crash = 'node 1 SIGKILLed with 50000 unacknowledged bytes in the shared file: HEAD through node 2 100000, node 2 cut the file back (20000 bytes more: 120000, nothing past), node 3 completed it, GET through node 3 equal';
  }

  async concurrent() {
    const [n1, n2, n3] = this.nodes;
    const c1 = this.tok.c1;
    const c = await n2.tus.create(c1, 200000);
    const id = c.id;
    const b = this.model.get(id);
    const open = n2.tus.openPatch(id, c1, 0, 100000);
    open.req.write(b.data.subarray(0, 30000));
    await this.until(() => fileSize(this.dataFile(id)) >= 30000, 'the open PATCH\'s bytes on the disk');
    const p = await n3.tus.put(id, c1, 0, 1000);
    this.ok(p.status === 423, `a PATCH through node 3 while node 2 writes: ${p.status}`);
    const d = await n3.tus.del(id, c1);
    this.ok(d.status === 423, `a DELETE through node 3 while node 2 writes: ${d.status}`);
    this.ok((await n3.tus.offsetOf(id, c1)) === 0, 'HEAD through node 3: still 0');
    this.ok(this.pg.sql(`SELECT off FROM whisper_records_blobs WHERE id = '\\x${id}'`) === '0', 'the row unchanged');
    open.req.end(b.data.subarray(30000, 100000));
    const o = await open.response;
    this.ok(o.status === 204 && o.headers['upload-offset'] === '100000', `the open PATCH on node 2: ${o.status} ${o.headers['upload-offset']}`);
    const stale = await n3.tus.put(id, c1, 0, 1000);
    this.ok(stale.status === 409 && stale.headers['upload-offset'] === '100000', `a PATCH at 0 through node 3 after it: ${stale.status} ${stale.headers['upload-offset']}`);
    // two at once, the same bytes at the same offset, through two nodes
    const [x, y] = await Promise.all([n2.tus.put(id, c1, 100000, 200000), n3.tus.put(id, c1, 100000, 200000)]);
    const st = [x.status, y.status].sort();
    this.ok(st[0] === 204 && (st[1] === 409 || st[1] === 423), `two PATCHes at once through nodes 2 and 3: ${x.status} and ${y.status} (one 204, one refused)`);
    const g = await n1.tus.get(id);
    this.ok(g.status === 200 && g.body.equals(b.data), `GET through node 1: ${g.status}, equal ${g.body.equals(b.data)}`);
    // the same race, many times over, on fresh blobs
    let races = 0;
    let refused = 0;
    for (let i = 0; i < 10; i++) {
      const e = await n1.tus.create(c1, 50000);
      const [u, v] = await Promise.all([n2.tus.put(e.id, c1, 0, 50000), n3.tus.put(e.id, c1, 0, 50000)]);
      const s = [u.status, v.status].sort();
      races++;
      if (s[0] === 204 && (s[1] === 409 || s[1] === 423)) refused++;
      else this.ok(false, `race ${i}: ${u.status} and ${v.status}`);
      const ge = await n1.tus.get(e.id);
      this.ok(ge.status === 200 && ge.body.equals(this.model.get(e.id).data), `race ${i}: the blob after it`);
      const dd = await n3.tus.del(e.id, c1);
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
    const a = await n1.tus.create(q1, MAX_SIZE);
    const b = await n2.tus.create(q1, MAX_SIZE);
    this.ok(a.status === 201 && b.status === 201, `8 MiB through node 1 and 8 MiB through node 2: ${a.status} ${b.status}`);
    const files = fs.readdirSync(this.blobDir).length;
    const over = await n3.tus.create(q1, QUOTA - 2 * MAX_SIZE + 1);
    this.ok(over.status === 403, `one byte past the quota through node 3: ${over.status}`);
    this.ok(fs.readdirSync(this.blobDir).length === files, 'the refused creation left a file');
    const fit = await n3.tus.create(q1, QUOTA - 2 * MAX_SIZE);
    this.ok(fit.status === 201, `up to the quota exactly through node 3: ${fit.status}`);
    const one = await n1.tus.create(q1, 1);
    this.ok(one.status === 403, `one byte more through node 1: ${one.status}`);
    const del = await n2.tus.del(a.id, q1);
    this.ok(del.status === 204, `DELETE through node 2 of the blob made through node 1: ${del.status}`);
    this.model.delete(a.id);
    const again = await n3.tus.create(q1, MAX_SIZE);
    this.ok(again.status === 201, `room again after the DELETE, through node 3: ${again.status}`);
    // five at once through the three nodes: 2 x 8 MiB fit in 20 MiB, 3 do not
    const q2 = this.tok.q2;
    const at = [n1, n2, n3, n1, n2];
    const rs = await Promise.all(at.map((n) => n.tus.create(q2, MAX_SIZE)));
    const made = rs.filter((r) => r.status === 201).length;
    const no = rs.filter((r) => r.status === 403).length;
    this.ok(made === 2 && no === 3, `five 8 MiB creations at once through nodes 1,2,3,1,2: ${rs.map((r) => r.status).join(' ')} (want two 201, three 403)`);
    const sum = Number(this.pg.sql(`SELECT sum(length) FROM whisper_records_blobs WHERE owner = (SELECT owner FROM whisper_records_blobs WHERE id = '\\x${rs.find((r) => r.status === 201).id}')`));
    this.ok(sum === 2 * MAX_SIZE, `quentin's bytes in PostgreSQL: ${sum}`);
    this.blobCount += 3 + made;
    this.notes.quota = `8 + 8 MiB through nodes 1 and 2, 403 one byte past 20 MiB through node 3, 201 up to it, 403 through node 1; a DELETE through node 2 freed room; five creations at once: ${rs.map((r) => r.status).join(' ')}`;
  }

  // PostgreSQL restarted: a PATCH open across it is refused (its lock went
  // with its session) and changes nothing; every node goes on.
  async pgrestart() {
    const [n1, n2, n3] = this.nodes;
    const c1 = this.tok.c1;
    const c = await n1.tus.create(c1, 100000);
    const id = c.id;
    const b = this.model.get(id);
    this.ok(c.status === 201 && (await n1.tus.put(id, c1, 0, 40000)).status === 204, 'a blob through node 1, 40000 bytes in');
    const open = n1.tus.openPatch(id, c1, 40000, 30000);
    open.req.write(b.data.subarray(40000, 50000));
    await this.until(() => fileSize(this.dataFile(id)) >= 50000, 'the open PATCH\'s bytes on the disk');
    this.pg.restart();
    open.req.end(b.data.subarray(50000, 70000));
    const o = await open.response;
    this.ok(o.status === 500, `the PATCH open across the restart: ${o.status} (its writer lock went with its session)`);
    this.ok(this.pg.sql(`SELECT off FROM whisper_records_blobs WHERE id = '\\x${id}'`) === '40000', 'the offset in PostgreSQL: still 40000');
    this.ok((await n2.tus.offsetOf(id, c1)) === 40000, 'HEAD through node 2 after the restart: 40000');
    const r = await n1.tus.put(id, c1, 40000, 100000);
    this.ok(r.status === 204 && r.headers['upload-offset'] === '100000', `node 1 goes on: ${r.status} ${r.headers['upload-offset']}`);
    const g = await n3.tus.get(id);
    this.ok(g.status === 200 && g.body.equals(b.data), `GET through node 3: ${g.status}, equal ${g.body.equals(b.data)}`);
    for (const n of this.nodes) {
      const e = await n.tus.create(c1, 1000);
      const p = e.status === 201 ? await n.tus.put(e.id, c1, 0, 1000) : { status: 0 };
      this.ok(e.status === 201 && p.status === 204, `${n.key} creates and uploads after the restart: ${e.status} ${p.status}`);
      this.blobCount++;
    }
    this.blobCount++;
    this.notes.pgrestart = 'PostgreSQL restarted under an open PATCH on node 1: 500, the offset unchanged; HEAD through node 2, the upload completed through node 1, GET through node 3; each node creates and uploads again';
  }

  async metricsScenario() {
    const rows = this.rows();
    this.ok(rows === this.blobCount, `rows in PostgreSQL: ${rows}, the test made ${this.blobCount}`);
    const bytes = Number(this.pg.sql('SELECT COALESCE(sum(off), 0) FROM whisper_records_blobs'));
    for (const n of this.nodes) {
      const m = await n.blobMetrics();
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
      const l = n.lines.find((x) => /blobs: .* open, shared/.test(x)) || '';
      const m = /\((\d+) expired ones deleted\)/.exec(l);
      return m ? Number(m[1]) : -1;
    });
    this.ok(deleted[0] >= 0 && deleted[1] >= 0 && deleted[0] + deleted[1] === before,
      `nodes 2 and 3 swept together: ${deleted[0]} + ${deleted[1]} deleted, ${before} rows there were`);
    this.ok(this.rows() === 0, `rows left: ${this.rows()}`);
    const left = fs.readdirSync(this.blobDir).filter((n) => n !== 'owner.key').sort();
    this.ok(left.length === 1 && left[0] === `${newOrphan}.data`, `files left in the shared directory: ${left.join(' ') || 'none'} (want only the new leftover)`);
    for (const n of [n2, n3]) {
      const bad = n.lines.filter((l) => / (warn|error) /.test(l) && /blobs/.test(l));
      this.ok(bad.length === 0, `${n.key}'s warnings about blobs while sweeping: ${bad.join(' | ')}`);
    }
    for (const id of complete.slice(0, 3)) {
      const g = await n1.tus.get(id);
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
    await super.cleanup();
    this.pg.stop();
  }
}

ClusterBlobsTest.main('cluster_blobs.js', { programs: ['whisperd', 'chat', 'devices', 'pgCluster'], timeout: 60 },
  'events.log, node*.stderr, the shared blob directory');
