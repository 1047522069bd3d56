#!/usr/bin/env node
// Attachments end to end: a real whisperd (its blob store, tus 1.0 at
// /v1/blobs) on loopback and whisper-chat processes in --script mode, which
// do the engine's HTTP themselves (examples/chat/http.c). The scenarios, in
// order:
//
//   setup     whisperd (blob TTL 1 day) on a free port; alice.1, bob.1, carol.1
//             register, bob.2 is linked to bob
//   upload    alice sends a 20 MiB file to bob; alice.1 is SIGKILLed mid-upload
//             and started again: the upload resumes from the offset the server
//             acknowledged (whisperd's blob bytes in stay under 1.5 blobs); only
//             then the message goes, and reaches bob.1 and bob.2 once each
//   download  bob.1 downloads it and is SIGKILLed mid-download; started again,
//             the job goes on (blob bytes out under 1.5 blobs) and the file is
//             byte for byte alice's (sha256); a failed or repeated job fails
//   viewonce  alice sends a view-once file: download refused, open gives the
//             bytes once, a second open refused, alice sees "opened", bob.2
//             sees it opened (gone) too
//   forward   bob forwards the 20 MiB attachment to carol and alice sends the
//             same file to carol again: whisperd's blob bytes in do not grow;
//             carol downloads the forward, and the bytes match
//   expiry    alice sends a small file; whisperd is restarted with
//             --clock-offset-ms past the TTL: bob's download fails, the blob
//             gone (not found), and no file is left behind
//   once      over every run: each message arrived exactly once at each device
//             (events and history), and no job reported "sent" or
//             "downloaded" twice
//   shutdown  every client exits 0 at end of input; whisperd 0 on SIGTERM
//
//   node media.js --whisperd PATH --chat PATH [--timeout SECONDS] [--workdir DIR]
//                 [--keep] [--trace]
//
// Every wait has a timeout; no assertion depends on a sleep. See README.md.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const { short, sha256, fileSize, Test, Whisperd, whisperCode } = require('./procs');

// ---------------------------------------------------------------------------
// the test

const MIB = 1 << 20;
const PIECE = 512 * 1024;       // --media-piece: bytes per upload or download request
const BIG = 20 * MIB;           // the file cut in its upload and its download
const SMALL = 300 * 1024;       // the view-once file
const TINY = 64 * 1024;         // the file that expires
const DAY_MS = 24 * 3600 * 1000;
const ENOTFOUND = whisperCode('WHISPER_ENOTFOUND');
const EDENIED = whisperCode('WHISPER_EDENIED');

const SCENARIOS = [
  ['setup', 'setup'],
  ['upload', 'upload'],
  ['download', 'download'],
  ['viewonce', 'view once'],
  ['forward', 'forward'],
  ['expiry', 'expiry'],
  ['once', 'once'],
  ['shutdown', 'shutdown'],
];

class MediaTest extends Test {
  constructor(o, dir) {
    super(o, dir, SCENARIOS);
    this.chatArgs = ['--media-piece', String(PIECE)]; /* bytes per upload or download request */
    this.whisperdArgs = ['--blob-ttl-days', '1'];     /* the blob store's TTL: a day */
    this.server = new Whisperd(this);
    this.expect = []; // [chat, id, what]: messages each device must have exactly once
  }

  file(name, size) {
    const p = path.join(this.dir, name);
    fs.writeFileSync(p, crypto.randomBytes(size));
    return p;
  }

  // whisperd's blob counters (/metrics).
  async metrics() {
    const m = await this.server.metrics();
    const b = { in: m.whisperd_blob_bytes_in_total, out: m.whisperd_blob_bytes_out_total, stored: m.whisperd_blobs_stored };
    this.ev(`metrics: ${JSON.stringify(b)}`);
    return b;
  }

  // The job's end: "sent" (uploads) or "downloaded"/"opened", or "failed".
  end(c, id, states, desc, from = 0) {
    return this.media(c, id, (e) => states.includes(e.state) || e.state === 'failed', desc, from);
  }

  async setup() {
    await this.server.start();
    this.ok(this.server.port > 0, `whisperd port ${this.server.port}`);
    this.alice1 = this.chat('alice', 1);
    this.bob1 = this.chat('bob', 1);
    this.carol1 = this.chat('carol', 1);
    await this.register([this.alice1, this.bob1, this.carol1]);
    this.bob2 = this.chat('bob', 2);
    this.bob2.start();
    const code = await this.bob2.waitFor((e) => e.ev === 'link_code', 'a link code');
    await this.bob1.cmd(`link-approve ${code.qr_text}`);
    await this.bob2.waitFor((e) => e.ev === 'registered', 'registered after the approval');
    await this.bob2.waitFor((e) => e.ev === 'caught_up', 'caught_up');
    // a text first: alice's sessions with both of bob's devices
    const hi = (await this.alice1.cmd('send bob hello')).id;
    await this.message(this.bob1, hi);
    await this.message(this.bob2, hi);
    this.big = this.file('holiday.jpg', BIG);
    this.bigSha = sha256(fs.readFileSync(this.big));
    this.notes.setup = `whisperd on 127.0.0.1:${this.server.port} (blob TTL 1 day); alice.1, bob.1, carol.1 registered, bob.2 linked`;
  }

  // alice.1 is SIGKILLed while it uploads; started again, the job resumes.
  async upload() {
    const { alice1, bob1, bob2 } = this;
    const m0 = await this.metrics();
    this.ok(Number.isFinite(m0.in), `whisperd's /metrics has whisperd_blob_bytes_in_total: ${JSON.stringify(m0)}`);
    const r = await alice1.cmd(`send-file bob ${this.big} holiday at the sea`);
    this.ok(r.ev === 'sent_cmd' && r.conversation === 'bob' && r.size === BIG && r.view_once === false, `send-file: ${JSON.stringify(r)}`);
    const id = (this.bigId = r.id);
    this.expect.push([bob1, id, 'the 20 MiB attachment'], [bob2, id, 'the 20 MiB attachment']);
    const up = await this.media(alice1, id, (e) => e.state === 'uploading' && e.done > 0, 'upload progress');
    this.ok(up.total >= BIG && up.done <= up.total, `upload progress in bytes of the blob: ${JSON.stringify(up)}`);
    await alice1.kill9('mid-upload');
    const run1 = alice1.events.filter((e) => e.ev === 'media' && e.id === id);
    const cut = Math.max(...run1.filter((e) => e.state === 'uploading').map((e) => e.done));
    const finished = run1.some((e) => e.state === 'sent');
    this.ok(!finished && cut < up.total, `the kill came mid-upload (${cut} of ${up.total} acknowledged${finished ? ', but the job had ended' : ''})`);
    this.ok(!bob1.all.some((e) => e.ev === 'message' && e.id === id), 'no message before its blob is uploaded');
    const mKill = await this.metrics();
    alice1.start();
    const end = await this.end(alice1, id, ['sent'], 'the upload\'s end after the restart');
    this.ok(end.state === 'sent', `the upload ended ${JSON.stringify(end)}`);
    const after = alice1.events.filter((e) => e.ev === 'media' && e.id === id && e.state === 'uploading');
    const first = after.length ? after[0].done : null;
    this.ok(first === null || first >= Math.min(cut, mKill.in - m0.in),
      `resumed from the offset the server acknowledged: the first progress after the restart ${first}, ${cut} acknowledged before the kill`);
    const m1 = await this.metrics();
    const sent = m1.in - m0.in;
    this.ok(sent >= up.total && sent <= up.total + 2 * PIECE,
      `whisperd took ${sent} bytes for a blob of ${up.total} (the upload resumed, it did not start again: at most 2 pieces twice)`);
    for (const c of [bob1, bob2]) {
      const m = await this.message(c, id, `the attachment at ${c.key}`);
      const a = m.attachment || {};
      this.ok(m.kind === 'attachment' && a.name === 'holiday.jpg' && a.size === BIG && a.type === 'image/jpeg' &&
              a.caption === 'holiday at the sea' && a.view_once === false && a.state === 'remote',
              `the message at ${c.key}: ${short(JSON.stringify(m), 600)}`);
    }
    this.notes.upload = `20 MiB in ${PIECE / 1024} KiB pieces; alice.1 SIGKILLed with ${cut} of ${up.total} bytes acknowledged, restarted: resumed (whisperd took ${sent} bytes in all); the message then reached bob.1 and bob.2`;
  }

  // bob.1 is SIGKILLed while it downloads; started again, the job goes on.
  async download() {
    const { bob1 } = this;
    const id = this.bigId;
    const out = path.join(this.dir, 'bob-holiday.jpg');
    const m0 = await this.metrics();
    const r = await bob1.cmd(`download alice ${id.slice(0, 8)} ${out}`);
    this.ok(r.ev === 'ok' && r.cmd === 'download' && r.path === out && r.id === id && r.sender === 'alice', `download: ${JSON.stringify(r)}`);
    const dl = await this.media(bob1, id, (e) => e.state === 'downloading' && e.done > 0, 'download progress');
    await bob1.kill9('mid-download');
    const run1 = bob1.events.filter((e) => e.ev === 'media' && e.id === id);
    const cut = Math.max(...run1.filter((e) => e.state === 'downloading').map((e) => e.done));
    const finished = run1.some((e) => e.state === 'downloaded' || e.state === 'failed');
    this.ok(!finished && cut < dl.total, `the kill came mid-download (${cut} of ${dl.total}${finished ? ', but the job had ended' : ''})`);
    const partial = fileSize(out);
    this.ok(partial <= BIG, `the file holds at most the verified prefix after the kill: ${partial} bytes`);
    bob1.start();
    const end = await this.end(bob1, id, ['downloaded'], 'the download\'s end after the restart');
    this.ok(end.state === 'downloaded' && (end.path === undefined || end.path === out), `the download ended: ${JSON.stringify(end)}`);
    const got = fileSize(out) === BIG ? sha256(fs.readFileSync(out)) : `(${fileSize(out)} bytes)`;
    this.ok(got === this.bigSha, `the downloaded bytes are alice's: sha256 ${got}, expected ${this.bigSha}`);
    const m1 = await this.metrics();
    const read = m1.out - m0.out;
    this.ok(read >= dl.total && read <= dl.total + 2 * PIECE,
      `whisperd sent ${read} bytes for a blob of ${dl.total} (the download resumed, it did not start again)`);
    const st = await bob1.cmd(`media alice ${id.slice(0, 8)}`);
    this.ok(st.ev === 'ok' && st.attachment && st.attachment.state === 'downloaded' && st.attachment.path === out,
      `media at bob.1: ${JSON.stringify(st)}`);
    this.notes.download = `bob.1 SIGKILLed with ${cut} of ${dl.total} bytes downloaded (${partial} bytes in the file), restarted: the job went on (whisperd sent ${read} bytes in all); sha256 equal`;
  }

  // view once: opened once, on one device, and the sender told.
  async viewonce() {
    const { alice1, bob1, bob2 } = this;
    const secret = this.file('secret.png', SMALL);
    const r = await alice1.cmd(`view-once bob ${secret} for your eyes only`);
    this.ok(r.ev === 'sent_cmd' && r.view_once === true, `view-once: ${JSON.stringify(r)}`);
    const id = r.id;
    this.expect.push([bob1, id, 'the view-once attachment'], [bob2, id, 'the view-once attachment']);
    const up = await this.end(alice1, id, ['sent'], 'the view-once upload');
    this.ok(up.state === 'sent', `the view-once upload: ${JSON.stringify(up)}`);
    for (const c of [bob1, bob2]) {
      const m = await this.message(c, id, `the view-once message at ${c.key}`);
      this.ok(m.kind === 'attachment' && m.attachment && m.attachment.view_once === true && m.attachment.state === 'remote',
        `the view-once message at ${c.key}: ${short(JSON.stringify(m), 400)}`);
    }
    const ref = id.slice(0, 8);
    const dl = await bob1.fails(`download alice ${ref} ${path.join(this.dir, 'nope.png')}`);
    this.ok(dl.ev === 'error' && dl.cmd === 'download' && dl.code === EDENIED, `download of a view-once attachment refused: ${JSON.stringify(dl)}`);
    const out = path.join(this.dir, 'bob-secret.png');
    const from = bob1.events.length;
    const o = await bob1.cmd(`open alice ${ref} ${out}`);
    this.ok(o.ev === 'ok' && o.cmd === 'open' && o.path === out, `open: ${JSON.stringify(o)}`);
    const got = await this.end(bob1, id, ['downloaded', 'opened'], 'the view-once file', from);
    this.ok(got.state !== 'failed', `opened: ${JSON.stringify(got)}`);
    const sha = fileSize(out) === SMALL ? sha256(fs.readFileSync(out)) : `(${fileSize(out)} bytes)`;
    this.ok(sha === sha256(fs.readFileSync(secret)), `the view-once bytes are alice's: ${sha}`);
    await this.media(bob1, id, (e) => e.state === 'opened', 'opened', from);
    const again = await bob1.fails(`open alice ${ref} ${path.join(this.dir, 'again.png')}`);
    this.ok(again.ev === 'error' && again.cmd === 'open' && again.code === EDENIED, `a second open refused: ${JSON.stringify(again)}`);
    const tick = await alice1.waitFor((e) => e.ev === 'status' && e.id === id && e.status === 'opened', 'the opened tick');
    this.ok(tick.to === 'bob' && tick.device === 1, `alice sees it opened by bob.1: ${JSON.stringify(tick)}`);
    // bob.2: gone there too (an event, or the state `media` shows)
    let st = null;
    const until = Date.now() + this.timeoutMs;
    while (Date.now() < until) {
      st = await bob2.cmd(`media alice ${ref}`, { allowError: true });
      if (st.ev === 'ok' && st.attachment && st.attachment.state === 'opened') break;
      await new Promise((res) => setTimeout(res, 200));
    }
    this.ok(st && st.ev === 'ok' && st.attachment && st.attachment.state === 'opened', `bob.2 holds it opened: ${JSON.stringify(st)}`);
    const o2 = await bob2.fails(`open alice ${ref} ${path.join(this.dir, 'bob2-secret.png')}`);
    this.ok(o2.ev === 'error' && o2.cmd === 'open' && o2.code === EDENIED, `open at bob.2 refused: ${JSON.stringify(o2)}`);
    this.ok(fileSize(path.join(this.dir, 'bob2-secret.png')) < 0, 'nothing written at bob.2');
    this.notes.viewonce = 'download refused; open gave alice\'s bytes once, a second open refused; alice saw "opened" from bob.1; bob.2 holds it opened and refuses to open it';
  }

  // forwarding the attachment, and sending the same file again, upload nothing
  async forward() {
    const { alice1, bob1, carol1 } = this;
    const m0 = await this.metrics();
    const f = await bob1.cmd(`forward carol alice ${this.bigId.slice(0, 8)}`);
    this.ok(f.ev === 'sent_cmd' && f.conversation === 'carol', `forward: ${JSON.stringify(f)}`);
    this.expect.push([carol1, f.id, 'the forwarded attachment']);
    const m = await this.message(carol1, f.id, 'the forward at carol');
    this.ok(m.kind === 'attachment' && m.forwarded === 1 && m.attachment && m.attachment.size === BIG && m.attachment.name === 'holiday.jpg',
      `the forward at carol: ${short(JSON.stringify(m), 500)}`);
    const s = await alice1.cmd(`send-file carol ${this.big} the same again`);
    this.expect.push([carol1, s.id, 'the same file again']);
    const end = await this.end(alice1, s.id, ['sent'], 'the same file again');
    this.ok(end.state === 'sent', `the same file sent again: ${JSON.stringify(end)}`);
    const again = await this.message(carol1, s.id, 'the same file again at carol');
    this.ok(again.kind === 'attachment' && again.attachment && again.attachment.size === BIG, `the same file again at carol: ${short(JSON.stringify(again), 400)}`);
    const m1 = await this.metrics();
    this.ok(m1.in === m0.in, `no blob bytes uploaded for the forward and the same file again: ${m1.in - m0.in} bytes in`);
    const out = path.join(this.dir, 'carol-holiday.jpg');
    await carol1.cmd(`download bob ${f.id.slice(0, 8)} ${out}`);
    const d = await this.end(carol1, f.id, ['downloaded'], 'carol\'s download');
    const sha = fileSize(out) === BIG ? sha256(fs.readFileSync(out)) : `(${fileSize(out)} bytes)`;
    this.ok(d.state === 'downloaded' && sha === this.bigSha, `carol's copy of the forward: ${JSON.stringify(d)}, sha256 ${sha}`);
    this.notes.forward = 'bob forwarded the 20 MiB attachment to carol and alice sent the same file to carol again: 0 blob bytes uploaded; carol downloaded the forward, bytes equal';
  }

  // past its TTL the blob is gone: the download fails, and leaves nothing
  async expiry() {
    const { alice1, bob1 } = this;
    const tiny = this.file('note.pdf', TINY);
    const thumb = this.file('thumb.jpg', 3000);
    const r = await alice1.cmd(`send-file bob ${tiny} --thumb ${thumb} --size 640x480 --duration 1500 the minutes`);
    const id = r.id;
    this.expect.push([bob1, id, 'the file that expires']);
    await this.end(alice1, id, ['sent'], 'the small upload');
    const m = await this.message(bob1, id, 'the small attachment');
    const a = m.attachment || {};
    this.ok(a.type === 'application/pdf' && a.size === TINY && a.width === 640 && a.height === 480 &&
      a.duration_ms === 1500 && a.thumbnail_len === 3000 && a.caption === 'the minutes' && a.voice_note === false,
      `the small attachment, its thumbnail, size and duration as sent: ${short(JSON.stringify(m), 400)}`);
    const v = await alice1.cmd(`voice-note bob ${this.file('hello.opus', 2000)} --duration 2000`);
    this.expect.push([bob1, v.id, 'the voice note']);
    await this.end(alice1, v.id, ['sent'], 'the voice note');
    const vm = await this.message(bob1, v.id, 'the voice note at bob');
    this.ok(vm.attachment && vm.attachment.voice_note === true && vm.attachment.type === 'audio/ogg' && vm.attachment.duration_ms === 2000,
      `the voice note at bob: ${short(JSON.stringify(vm), 300)}`);
    const mark = bob1.events.length;
    const code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code on SIGTERM: ${code}`);
    await this.server.start(['--clock-offset-ms', String(2 * DAY_MS)]);
    await bob1.waitFor((e) => e.ev === 'caught_up', 'caught_up after whisperd\'s restart', { from: mark });
    const out = path.join(this.dir, 'bob-note.pdf');
    const from = bob1.events.length;
    await bob1.cmd(`download alice ${id.slice(0, 8)} ${out}`);
    const end = await this.end(bob1, id, ['downloaded'], 'the download of an expired blob', from);
    this.ok(end.state === 'failed' && end.code === ENOTFOUND, `the download failed, the blob gone: ${JSON.stringify(end)}`);
    this.ok(fileSize(out) < 0, `no file left behind: ${fileSize(out)}`);
    const st = await bob1.cmd(`media alice ${id.slice(0, 8)}`);
    this.ok(st.attachment && st.attachment.state === 'failed' && st.attachment.code === ENOTFOUND, `media after it: ${JSON.stringify(st)}`);
    this.notes.expiry = 'whisperd restarted 2 days ahead (--clock-offset-ms) with a 1-day TTL: bob\'s download failed with not found, no file left';
  }

  // each message once at each device, each job ended once
  async once() {
    const byDevice = new Map();
    for (const [c, id, what] of this.expect) {
      const n = c.all.filter((e) => e.ev === 'message' && e.id === id).length;
      this.ok(n === 1, `${what} shown ${n} times at ${c.key}`);
      if (!byDevice.has(c)) byDevice.set(c, []);
      byDevice.get(c).push([id, what]);
    }
    for (const [c, ids] of byDevice) {
      const conv = c.account === 'bob' ? 'alice' : null;
      const convs = conv ? [conv] : ['alice', 'bob'];
      const msgs = [];
      for (const cv of convs) msgs.push(...(await c.cmd(`history ${cv} 200`)).messages);
      for (const [id, what] of ids) {
        const n = msgs.filter((x) => x.id === id).length;
        this.ok(n === 1, `${what} ${n} times in ${c.key}'s history`);
      }
    }
    for (const c of [this.alice1, this.bob1, this.bob2, this.carol1]) {
      const ends = new Map();
      for (const e of c.all) {
        if (e.ev !== 'media' || !['sent', 'downloaded', 'opened'].includes(e.state)) continue;
        const k = `${e.id} ${e.state}`;
        ends.set(k, (ends.get(k) || 0) + 1);
      }
      for (const [k, n] of ends) this.ok(n === 1, `${c.key}: job ${k} reported ${n} times`);
    }
    this.notes.once = `${this.expect.length} attachment messages, each shown and in history exactly once at each device; no job ended twice`;
  }

  async shutdown() {
    for (const c of [this.alice1, this.bob1, this.bob2, this.carol1]) this.ok((await c.quit()) === 0, `${c.key} exit code at end of input`);
    const code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code on SIGTERM: ${code}`);
    this.notes.shutdown = 'every client exited 0 at end of input, whisperd 0 on SIGTERM';
  }
}

MediaTest.main('media.js', { programs: ['whisperd', 'chat'], timeout: 60 }, 'events.log: every line in and out; *.stderr; the stores and files');
