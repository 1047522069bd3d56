#!/usr/bin/env node
// whisperd's hardening (issue #15, its whisperd part) with real processes:
// a whisperd on loopback, whisper-chat clients in --script mode, raw
// WebSocket connections that never log in, and `openssl s_client`.
//
//   setup     whisperd (under umask 0277, --max-prelogin-per-address 3);
//             alice.1 and bob.1 register
//   metrics   /metrics is not on the client port (404, also with the metrics
//             vhost's name as Host); it is on --metrics-listen (a port of its
//             own, plain HTTP), with /healthz; --help gives 127.0.0.1:9480 as
//             the default; "off" serves it nowhere; a bad value is refused
//   prelogin  3 WebSocket connections from 127.0.0.1 that do not log in: the
//             4th gets 429 (Retry-After, a text), one from 127.0.0.2 does not;
//             a close frees a slot; a whisper-chat client refused at the cap
//             gets in once a slot is free, and once logged in it counts no
//             more; the refusals are counted in /metrics and logged
//   push      bob.1 offline gets mail: whisperd_pushes_total moves, and at
//             the default log level no line names him; restarted at debug,
//             the next push is logged (so the check can see such a line)
//   files     after an attachment upload: the store, its -wal and -shm, the
//             key file, the blob files 0600 and the blob directory 0700,
//             although whisperd ran under umask 0277
//   tls       whisperd with an RSA and with an EC certificate, checked with
//             openssl s_client under a permissive OpenSSL config (TLS 1.0 and
//             every suite allowed at security level 0, so that every refusal
//             is whisperd's own): TLS 1.3 and TLS 1.2 ECDHE with AES-GCM or
//             ChaCha20-Poly1305 work; TLS 1.2 with CBC suites, with RSA key
//             exchange, and TLS 1.1 and 1.0 are refused; https works, and a
//             WebSocket over it gets its Challenge
//   slow      whisperd restarted with --sndbuf 4096; carol.1 stopped
//             (SIGSTOP) while alice sends her 100 messages of 4 KB: whisperd
//             queues what the socket does not take; once she goes on, all
//             arrive once, in order, and nothing is left queued
//   shutdown every client exits 0 at end of input, whisperd 0 on SIGTERM
//
//   node harden.js --whisperd PATH --chat PATH [--openssl PATH] [--timeout SECONDS]
//                  [--workdir DIR] [--keep] [--trace]
//
// Without --openssl (or an openssl on PATH) the tls scenario is not run
// (and says so). Every wait has a timeout; no assertion depends on a sleep.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const tlsmod = require('tls');
const path = require('path');
const { spawnSync } = require('child_process');

const { Fatal, short, Test, Whisperd, httpRequest } = require('./procs');

// ---------------------------------------------------------------------------
// the test

const SCENARIOS = ['setup', ['metrics', 'metrics', 'metricsScenario'], 'prelogin', 'push', 'files', 'tls', 'slow', 'shutdown'];
const CAP = 3; // --max-prelogin-per-address
const UMASK = 0o277; // whisperd runs under it: files it makes must still be 0600 (dirs 0700)
const WHISPERD_ARGS = ['--max-prelogin-per-address', String(CAP), '--auth-timeout-ms', '120000'];

const mode = (p) => {
  try {
    return fs.statSync(p).mode & 0o7777;
  } catch {
    return -1;
  }
};
const oct = (m) => (m < 0 ? 'missing' : `0${m.toString(8)}`);

// A GET on its own connection: {status, headers, body (a string)}.
async function get(port, p, headers = {}, { tls = false, timeoutMs = 10000 } = {}) {
  const r = await httpRequest({ port, path: p, headers, tls, timeoutMs });
  return { ...r, body: r.body.toString() };
}

// A WebSocket upgrade to /v1/ws from `localAddress`, by hand (Node 18 has no
// WebSocket client): {status, headers, body} for a refusal, or {status: 101,
// sock, frame} once the first binary frame (the core's Challenge) arrived.
// With tls: over TLS (any certificate).
function wsOpen(port, localAddress = '127.0.0.1', timeoutMs = 10000, { tls = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = tls
      ? tlsmod.connect({ host: '127.0.0.1', port, localAddress, servername: 'localhost', rejectUnauthorized: false })
      : net.connect({ host: '127.0.0.1', port, localAddress });
    let buf = Buffer.alloc(0);
    let head = null;
    let done = false;
    const finish = (v, err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve(v);
    };
    const timer = setTimeout(() => finish(null, new Error(`WebSocket upgrade from ${localAddress}: nothing in ${timeoutMs} ms`)), timeoutMs);
    sock.on(tls ? 'secureConnect' : 'connect', () => {
      sock.write(`GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        'Sec-WebSocket-Protocol: whisper-sync-v1\r\n\r\n');
    });
    const parse = () => {
      if (!head) {
        const k = buf.indexOf('\r\n\r\n');
        if (k < 0) return;
        const lines = buf.slice(0, k).toString('latin1').split('\r\n');
        const status = Number((/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]) || [])[1]); // lws answers a refused upgrade in HTTP/1.0
        const headers = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
        }
        head = { status, headers };
        buf = buf.slice(k + 4);
      }
      if (head.status !== 101) {
        const len = Number(head.headers['content-length'] || NaN);
        if (Number.isFinite(len) && buf.length >= len) finish({ ...head, body: buf.slice(0, len).toString() });
        return;
      }
      // a server frame: FIN|opcode, unmasked length
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + len) return;
      finish({ ...head, sock, opcode: buf[0] & 0x0f, frame: buf.slice(off, off + len) });
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      parse();
    });
    sock.on('error', (e) => finish(null, e));
    sock.on('close', () => {
      if (head && head.status !== 101) finish({ ...head, body: buf.toString(), closed: true });
      else finish(null, new Error(`WebSocket upgrade from ${localAddress}: closed before ${head ? 'a frame' : 'an answer'}`));
    });
  });
}

function closeWs(c) {
  return new Promise((resolve) => {
    if (!c || !c.sock || c.sock.destroyed) return resolve();
    c.sock.on('close', resolve);
    c.sock.destroy();
  });
}

class HardenTest extends Test {
  constructor(o, dir) {
    super(o, dir, SCENARIOS);
    this.whisperdArgs = WHISPERD_ARGS;
    this.server = new Whisperd(this);
    this.raw = []; // raw WebSocket connections still open
  }

  // whisperd (this.server) started under UMASK: the spawn happens at once in
  // start(), so the umask is back before anything else runs.
  async startServer(extra = []) {
    const old = process.umask(UMASK);
    let p;
    try {
      p = this.server.start(extra);
    } finally {
      process.umask(old);
    }
    await p;
  }

  // The metrics port's exposition as {name: value} (labels kept in the name).
  async metrics() {
    const m = await this.server.metrics();
    this.ev(`metrics: connections ${m.whisperd_connections}, authenticated ${m.whisperd_authenticated_connections}, ` +
      `prelogin refused ${m.whisperd_net_prelogin_refused_total}, pushes ${m.whisperd_pushes_total}`);
    return m;
  }

  // Polls /metrics until pred(m) holds.
  async metricsUntil(pred, desc) {
    let m;
    await this.until(async () => pred((m = await this.metrics())), desc, 50).catch((e) => {
      throw new Error(`${e.message} (metrics: ${JSON.stringify(m)})`);
    });
    return m;
  }

  // whisperd's stderr of its current run.
  serverLog() {
    return this.server.lines.join('\n');
  }

  async ws(localAddress) {
    const c = await wsOpen(this.server.port, localAddress, this.timeoutMs);
    this.ev(`ws from ${localAddress}: ${c.status}${c.status === 101 ? ` (frame of ${c.frame.length} bytes)` : ` ${short(c.body || '', 100)}`}`);
    if (c.status === 101) this.raw.push(c);
    return c;
  }

  async close(c) {
    this.raw = this.raw.filter((x) => x !== c);
    await closeWs(c);
  }

  async setup() {
    await this.startServer();
    this.ok(this.server.port > 0 && this.server.metricsPort > 0 && this.server.metricsPort !== this.server.port,
      `whisperd: client port ${this.server.port}, metrics port ${this.server.metricsPort}`);
    this.alice1 = this.chat('alice', 1);
    this.bob1 = this.chat('bob', 1);
    for (const c of [this.alice1, this.bob1]) c.start();
    for (const c of [this.alice1, this.bob1]) {
      await c.waitFor((e) => e.ev === 'registered', 'registered');
      await c.waitFor((e) => e.ev === 'caught_up', 'caught_up');
    }
    const hi = await this.alice1.send('bob', 'hello');
    await this.bob1.waitFor((e) => e.ev === 'message' && e.id === hi, 'alice\'s hello');
    this.notes.setup = `whisperd on 127.0.0.1:${this.server.port} (metrics on ${this.server.metricsPort}) under umask 0${UMASK.toString(8)}, ` +
      `--max-prelogin-per-address ${CAP}; alice.1 and bob.1 registered and talking`;
  }

  async metricsScenario() {
    const { port, metricsPort } = this.server;
    for (const [p, h] of [['/metrics', {}], ['/metrics', { Host: 'whisperd-metrics' }], ['/metrics?x=1', {}]]) {
      const r = await get(port, p, h);
      this.ok(r.status === 404, `GET ${p}${h.Host ? ` (Host: ${h.Host})` : ''} on the client port: ${r.status}, wanted 404`);
      this.ok(!/whisperd_connections/.test(r.body), `GET ${p} on the client port gave the exposition`);
    }
    const r = await get(metricsPort, '/metrics');
    this.ok(r.status === 200, `GET /metrics on the metrics port: ${r.status}`);
    this.ok(/^text\/plain; version=0\.0\.4/.test(r.headers['content-type'] || ''), `its Content-Type: ${r.headers['content-type']}`);
    const m = await this.metrics();
    this.ok(m.whisperd_connections === 2 && m.whisperd_authenticated_connections === 2,
      `the metrics port's counts: ${m.whisperd_connections} connections, ${m.whisperd_authenticated_connections} logged in (alice.1, bob.1)`);
    this.ok(m.whisperd_net_prelogin_refused_total === 0, `whisperd_net_prelogin_refused_total ${m.whisperd_net_prelogin_refused_total} before any refusal`);
    // the client vhost's name as Host on the metrics port stays on the metrics vhost
    const rh = await get(metricsPort, '/metrics', { Host: 'whisperd' });
    this.ok(rh.status === 200 && /whisperd_connections/.test(rh.body), `GET /metrics with Host: whisperd on the metrics port: ${rh.status}`);
    for (const p of [port, metricsPort]) {
      const h = await get(p, '/healthz');
      this.ok(h.status === 200 && h.body === 'ok\n', `/healthz on port ${p}: ${h.status} ${JSON.stringify(h.body)}`);
    }
    for (const p of ['/v1/blobs', '/', '/v1/ws']) {
      const x = await get(metricsPort, p);
      this.ok(x.status === 404, `GET ${p} on the metrics port: ${x.status}, wanted 404 (it serves /metrics and /healthz only)`);
    }
    const up = await wsOpen(metricsPort, '127.0.0.1', this.timeoutMs).catch((e) => ({ status: 0, error: e.message }));
    if (up.sock) up.sock.destroy();
    this.ok(up.status !== 101, `a WebSocket upgrade on the metrics port: ${up.status}${up.error ? ` (${up.error})` : ''}`);

    // the default, in --help; "off"; a bad value
    const help = spawnSync(this.o.whisperd, ['--help'], { encoding: 'utf8' });
    this.ok(/--metrics-listen HOST:PORT[\s\S]*?\(default:\s+127\.0\.0\.1:9480\)/.test(help.stdout), '--help does not give 127.0.0.1:9480 as the default of --metrics-listen');
    this.ok(/--max-prelogin-per-address N[\s\S]*?\(default:\s+32\)/.test(help.stdout), '--help does not give 32 as the default of --max-prelogin-per-address');
    const off = new Whisperd(this, 'whisperd-off');
    await off.start(['--db', ':memory:', '--metrics-listen', 'off']);
    const offLog = fs.readFileSync(off.logPath, 'utf8');
    this.ok(!/whisperd: metrics on/.test(offLog) && off.metricsPort === 0, 'with --metrics-listen off whisperd printed a metrics line');
    const ro = await get(off.port, '/metrics');
    this.ok(ro.status === 404, `--metrics-listen off: /metrics on the client port ${ro.status}, wanted 404`);
    this.ok((await off.stop()) === 0, 'the whisperd with --metrics-listen off did not exit 0');
    const bad = spawnSync(this.o.whisperd, ['--db', ':memory:', '--metrics-listen', 'nonsense'], { encoding: 'utf8', timeout: this.timeoutMs });
    this.ok(bad.status === 2 && /metrics-listen/.test(bad.stderr), `--metrics-listen nonsense: exit ${bad.status}, ${short(bad.stderr.trim(), 160)}`);
    this.notes.metrics = '/metrics: 404 on the client port (also as Host: whisperd-metrics), 200 on its own port (text 0.0.4, the counts), /healthz on both, ' +
      'nothing else there; default 127.0.0.1:9480 (--help); off: nowhere; a bad value refused';
  }

  async prelogin() {
    const frames = [];
    // CAP connections from 127.0.0.1 that do not log in: each gets its Challenge
    const held = [];
    for (let i = 0; i < CAP; i++) {
      const c = await this.ws('127.0.0.1');
      this.ok(c.status === 101 && c.opcode === 2 && c.frame.length > 0, `pre-login connection ${i + 1} of ${CAP}: ${c.status}`);
      held.push(c);
      frames.push(c.frame.length);
    }
    const r = await this.ws('127.0.0.1');
    this.ok(r.status === 429, `connection ${CAP + 1} from 127.0.0.1: ${r.status}, wanted 429`);
    this.ok(/not logged in/.test(r.body || '') && r.headers['retry-after'] === '5',
      `the 429 says why and when to retry: ${JSON.stringify(r.body)}, Retry-After ${r.headers['retry-after']}`);
    const other = await this.ws('127.0.0.2');
    this.ok(other.status === 101, `a connection from 127.0.0.2 (another address): ${other.status}`);
    let m = await this.metrics();
    this.ok(m.whisperd_net_prelogin_refused_total === 1, `whisperd_net_prelogin_refused_total ${m.whisperd_net_prelogin_refused_total}, wanted 1`);
    this.ok(m.whisperd_connections === 2 + CAP + 1 && m.whisperd_authenticated_connections === 2,
      `${m.whisperd_connections} connections, ${m.whisperd_authenticated_connections} logged in`);
    this.ok(/warn WebSocket upgrade refused \(429\): 3 connections not logged in from 127\.0\.0\.1/.test(this.serverLog()),
      'no warning line for the refusal in whisperd\'s log');

    // a close frees a slot
    await this.close(held.shift());
    await this.metricsUntil((x) => x.whisperd_connections === 2 + CAP, 'the closed connection gone');
    const again = await this.ws('127.0.0.1');
    this.ok(again.status === 101, `after a close, a connection from 127.0.0.1: ${again.status}`);
    held.push(again);

    // a real client at the cap: refused, then in once a slot is free; logged
    // in, it counts no more
    await this.alice1.kill9('to reconnect at the cap');
    await this.metricsUntil((x) => x.whisperd_authenticated_connections === 1, 'alice.1\'s connection gone');
    const refusedBefore = (await this.metrics()).whisperd_net_prelogin_refused_total;
    this.alice1.start();
    m = await this.metricsUntil((x) => x.whisperd_net_prelogin_refused_total > refusedBefore, 'a refusal of alice.1 at the cap');
    this.ok(!this.alice1.events.some((e) => e.ev === 'online'), 'alice.1 got online at the cap');
    await this.close(held.shift());
    await this.alice1.waitFor((e) => e.ev === 'online', 'online once a slot is free');
    const refusedAlice = (await this.metrics()).whisperd_net_prelogin_refused_total - refusedBefore;
    const disc = this.alice1.events.filter((e) => e.ev === 'disconnected').map((e) => short(JSON.stringify(e), 160));
    this.ev(`alice.1 while refused: ${disc.join(' | ')}`);
    // 127.0.0.1 now holds CAP-1 pre-login connections and alice.1, logged in
    const in1 = await this.ws('127.0.0.1');
    this.ok(in1.status === 101, `with alice.1 logged in, connection ${CAP} of 127.0.0.1's pre-login ones: ${in1.status} (a logged-in connection still counted?)`);
    held.push(in1);
    const out1 = await this.ws('127.0.0.1');
    this.ok(out1.status === 429, `and one more: ${out1.status}, wanted 429`);
    for (const c of [...held, other]) await this.close(c);
    await this.metricsUntil((x) => x.whisperd_connections === 2, 'the raw connections gone');
    const back = await this.ws('127.0.0.1');
    this.ok(back.status === 101, `once they closed, 127.0.0.1 again: ${back.status}`);
    await this.close(back);
    this.notes.prelogin = `${CAP} connections not logged in from 127.0.0.1 (Challenges of ${frames.join(', ')} bytes): the next 429 with Retry-After, ` +
      `127.0.0.2 not; a close frees a slot; whisper-chat refused ${refusedAlice} time(s) at the cap, online once a slot was free, ` +
      'and not counted once logged in; counted and logged';
  }

  async push() {
    const bob = this.bob1;
    this.ok((await bob.quit()) === 0, 'bob.1 exit code at end of input');
    await this.metricsUntil((x) => x.whisperd_authenticated_connections === 1, 'bob.1 offline');
    const p0 = (await this.metrics()).whisperd_pushes_total;
    await this.alice1.send('bob', 'are you there?');
    const m = await this.metricsUntil((x) => x.whisperd_pushes_total > p0, 'a push for bob.1');
    const log = this.serverLog();
    this.ok(!/ push /.test(log) && !/account=bob/.test(log), 'at log level info whisperd\'s log has a line about the push');
    // the same at debug: the line is there (so the check above can see one)
    const mark = this.alice1.events.length;
    const code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code on SIGTERM: ${code}`);
    await this.startServer(['--log-level', 'debug']);
    await this.alice1.waitFor((e) => e.ev === 'online', 'online after whisperd\'s restart', { from: mark });
    await this.alice1.send('bob', 'still there?');
    await this.metricsUntil((x) => x.whisperd_pushes_total >= 1, 'a push after the restart');
    this.ok(/debug push account=bob device=1 /.test(this.serverLog()), 'at log level debug whisperd did not log the push');
    this.notes.push = `pushes for offline bob.1 (whisperd_pushes_total ${m.whisperd_pushes_total}): no line about them at level info; at debug "push account=bob device=1"`;
  }

  async files() {
    const f = path.join(this.dir, 'photo.jpg');
    fs.writeFileSync(f, crypto.randomBytes(100000));
    const r = await this.alice1.cmd(`send-file bob ${f} a photo`);
    const end = await this.alice1.waitFor((e) => e.ev === 'media' && e.id === r.id && (e.state === 'sent' || e.state === 'failed'), 'the upload\'s end');
    this.ok(end.state === 'sent', `the upload: ${JSON.stringify(end)}`);
    const want = [];
    const db = this.server.db;
    for (const p of [db, `${db}-wal`, `${db}-shm`, this.server.keyFile]) want.push([p, 0o600]);
    const blobs = path.join(path.dirname(db), 'blobs');
    want.push([blobs, 0o700]);
    const names = fs.existsSync(blobs) ? fs.readdirSync(blobs) : [];
    for (const n of names) want.push([path.join(blobs, n), 0o600]);
    this.ok(names.includes('owner.key') && names.some((n) => n.endsWith('.data')) && names.some((n) => n.endsWith('.meta')),
      `the blob directory holds owner.key, a .data and a .meta: ${names.map((n) => short(n, 12)).join(' ')}`);
    const seen = [];
    for (const [p, m] of want) {
      const got = mode(p);
      seen.push(`${path.basename(p).slice(0, 16)} ${oct(got)}`);
      this.ok(got === m, `${p}: mode ${oct(got)}, wanted ${oct(m)} (whisperd's umask 0${UMASK.toString(8)})`);
    }
    this.notes.files = `under umask 0${UMASK.toString(8)}: ${seen.join(', ')}`;
  }

  // --- tls -------------------------------------------------------------------

  openssl(args, opts = {}) {
    const r = spawnSync(this.o.openssl, args, { encoding: 'utf8', input: '', timeout: this.timeoutMs, ...opts });
    return { status: r.status, out: `${r.stdout || ''}${r.stderr || ''}` };
  }

  async tlsServer(name, cert, key, conf) {
    const w = new Whisperd(this, `whisperd-${name}`);
    // whisperd's OpenSSL: everything allowed but what whisperd refuses
    await w.start(['--db', ':memory:', '--tls-cert', cert, '--tls-key', key], { ...process.env, OPENSSL_CONF: conf });
    return w;
  }

  // One handshake with s_client: {ok, protocol, cipher, out}.
  handshake(port, args, conf) {
    const r = this.openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-brief', ...args],
      { env: { ...process.env, OPENSSL_CONF: conf } });
    const protocol = (/Protocol version: (\S+)/.exec(r.out) || [])[1] || null;
    const cipher = (/Ciphersuite: (\S+)/.exec(r.out) || [])[1] || null;
    const ok = r.status === 0 && /CONNECTION ESTABLISHED/.test(r.out);
    this.ev(`s_client ${args.join(' ')}: ${ok ? `${protocol} ${cipher}` : `refused (exit ${r.status}): ${short(r.out.replace(/\s+/g, ' '), 200)}`}`);
    return { ok, protocol, cipher, out: r.out };
  }

  async tls() {
    if (!this.o.openssl) {
      this.notes.tls = 'NOT RUN: no openssl (give --openssl PATH)';
      return;
    }
    const conf = path.join(this.dir, 'openssl-permissive.cnf');
    fs.writeFileSync(conf, [
      'openssl_conf = openssl_init', '[openssl_init]', 'ssl_conf = ssl_sect', '[ssl_sect]',
      'system_default = system_default_sect', '[system_default_sect]', 'MinProtocol = TLSv1',
      'CipherString = ALL:@SECLEVEL=0', '',
    ].join('\n'));
    const certs = {};
    for (const [name, alg] of [['rsa', ['-newkey', 'rsa:2048']], ['ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']]]) {
      const cert = path.join(this.dir, `${name}-cert.pem`);
      const key = path.join(this.dir, `${name}-key.pem`);
      const r = this.openssl(['req', '-x509', ...alg, '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost']);
      if (r.status !== 0) throw new Fatal(`openssl req (${name}): ${short(r.out, 300)}`);
      certs[name] = { cert, key };
    }
    const accepted = [];
    const refused = [];
    const cases = {
      rsa: {
        ok: [
          [['-tls1_3'], 'TLSv1.3', null],
          [['-tls1_3', '-ciphersuites', 'TLS_AES_128_GCM_SHA256'], 'TLSv1.3', 'TLS_AES_128_GCM_SHA256'],
          [['-tls1_3', '-ciphersuites', 'TLS_CHACHA20_POLY1305_SHA256'], 'TLSv1.3', 'TLS_CHACHA20_POLY1305_SHA256'],
          [['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], 'TLSv1.2', 'ECDHE-RSA-AES128-GCM-SHA256'],
          [['-tls1_2', '-cipher', 'ECDHE-RSA-AES256-GCM-SHA384'], 'TLSv1.2', 'ECDHE-RSA-AES256-GCM-SHA384'],
          [['-tls1_2', '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305'], 'TLSv1.2', 'ECDHE-RSA-CHACHA20-POLY1305'],
        ],
        // [args, what, the alert the server must send]
        no: [
          [['-tls1_2', '-cipher', 'AES128-GCM-SHA256:@SECLEVEL=0'], 'TLS 1.2 RSA key exchange (AES-GCM)', /alert handshake failure/],
          [['-tls1_2', '-cipher', 'AES256-GCM-SHA384:@SECLEVEL=0'], 'TLS 1.2 RSA key exchange (AES-256-GCM)', /alert handshake failure/],
          [['-tls1_2', '-cipher', 'AES128-SHA:@SECLEVEL=0'], 'TLS 1.2 RSA key exchange, CBC', /alert handshake failure/],
          [['-tls1_2', '-cipher', 'AES256-SHA256:@SECLEVEL=0'], 'TLS 1.2 RSA key exchange, CBC (SHA-256)', /alert handshake failure/],
          [['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA:@SECLEVEL=0'], 'TLS 1.2 ECDHE, AES-CBC', /alert handshake failure/],
          [['-tls1_2', '-cipher', 'ECDHE-RSA-AES256-SHA384:@SECLEVEL=0'], 'TLS 1.2 ECDHE, AES-CBC (SHA-384)', /alert handshake failure/],
          [['-tls1_1', '-cipher', 'ALL:@SECLEVEL=0'], 'TLS 1.1', /alert protocol version/],
          [['-tls1', '-cipher', 'ALL:@SECLEVEL=0'], 'TLS 1.0', /alert protocol version/],
        ],
      },
      ec: {
        ok: [
          [['-tls1_3'], 'TLSv1.3', null],
          [['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], 'TLSv1.2', 'ECDHE-ECDSA-AES128-GCM-SHA256'],
          [['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-GCM-SHA384'], 'TLSv1.2', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
          [['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305'], 'TLSv1.2', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
        ],
        no: [
          [['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0'], 'TLS 1.2 ECDHE-ECDSA, AES-CBC', /alert handshake failure/],
          [['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0'], 'TLS 1.2 ECDHE-ECDSA, AES-CBC (SHA-384)', /alert handshake failure/],
          [['-tls1_1', '-cipher', 'ALL:@SECLEVEL=0'], 'TLS 1.1', /alert protocol version/],
        ],
      },
    };
    for (const name of ['rsa', 'ec']) {
      const w = await this.tlsServer(name, certs[name].cert, certs[name].key, conf);
      for (const [args, proto, cipher] of cases[name].ok) {
        const h = this.handshake(w.port, args, conf);
        this.ok(h.ok && h.protocol === proto && (!cipher || h.cipher === cipher),
          `${name}: s_client ${args.join(' ')}: ${h.ok ? `${h.protocol} ${h.cipher}` : 'refused'}, wanted ${proto} ${cipher || ''}${h.ok ? '' : `: ${short(h.out, 300)}`}`);
        if (h.ok) accepted.push(`${name} ${h.protocol} ${h.cipher}`);
      }
      for (const [args, what, alert] of cases[name].no) {
        const h = this.handshake(w.port, args, conf);
        // the server's alert: the client did offer it, and whisperd said no
        this.ok(!h.ok && alert.test(h.out), `${name}: ${what} (s_client ${args.join(' ')}) ${h.ok ? `accepted: ${h.protocol} ${h.cipher}` : `not refused by the server's alert: ${short(h.out, 300)}`}`);
        if (!h.ok) refused.push(`${name} ${what}`);
      }
      // https over it: /healthz, no /metrics
      const hz = await get(w.port, '/healthz', {}, { tls: true });
      this.ok(hz.status === 200, `${name}: https /healthz ${hz.status}`);
      const hm = await get(w.port, '/metrics', {}, { tls: true });
      this.ok(hm.status === 404, `${name}: https /metrics on the client port ${hm.status}, wanted 404`);
      // a WebSocket over it: the Challenge comes through whisperd's own
      // framing (net.c write_out) and TLS (protobuf: version 1, nonce of 32)
      const ws = await wsOpen(w.port, '127.0.0.1', 10000, { tls: true });
      const ch = ws.frame || Buffer.alloc(0);
      this.ok(ws.status === 101 && ws.opcode === 2 && ch.length > 36 && ch[0] === 0x08 && ch[1] === 0x01,
        `${name}: wss: ${ws.status}, frame of ${ch.length} bytes (${ch.slice(0, 8).toString('hex')}), wanted a Challenge`);
      await closeWs(ws);
      this.ok((await w.stop()) === 0, `the TLS whisperd (${name}) did not exit 0`);
    }
    this.notes.tls = `accepted: ${accepted.length} handshakes (${[...new Set(accepted.map((a) => a.split(' ').slice(1).join(' ')))].join(', ')}); ` +
      `refused by the server's alert: ${refused.join('; ')}`;
  }

  // A reader that stops reading (SIGSTOP): with --sndbuf 4096 whisperd's
  // writes to it soon fill its socket, lws keeps what the socket did not
  // take, and whisperd queues the rest (whisperd_net_queued_bytes) until
  // the socket takes more (net.c write_out). Once it reads again, every
  // message arrives, once, in order, and nothing is left queued.
  async slow() {
    const mark = this.alice1.events.length;
    this.ok((await this.server.stop()) === 0, 'whisperd exit code on SIGTERM');
    await this.startServer(['--sndbuf', '4096']);
    await this.alice1.waitFor((e) => e.ev === 'online', 'online after whisperd\'s restart', { from: mark });
    const carol = this.chat('carol', 1);
    carol.start();
    await carol.waitFor((e) => e.ev === 'registered', 'registered');
    await carol.waitFor((e) => e.ev === 'caught_up', 'caught_up');
    const hi = await this.alice1.send('carol', 'hi carol');
    await carol.waitFor((e) => e.ev === 'message' && e.id === hi, 'alice\'s hi');
    const N = 100;
    const filler = 'z'.repeat(4000);
    const ids = [];
    let queued = 0;
    process.kill(carol.proc.pid, 'SIGSTOP');
    try {
      for (let i = 0; i < N; i++) ids.push(await this.alice1.send('carol', `slow ${i} ${filler}`));
      queued = (await this.metricsUntil((x) => x.whisperd_net_queued_bytes > 0, 'output queued for carol.1')).whisperd_net_queued_bytes;
    } finally {
      process.kill(carol.proc.pid, 'SIGCONT');
    }
    for (const id of ids) await carol.waitFor((e) => e.ev === 'message' && e.id === id, `message ${ids.indexOf(id)}`);
    const got = carol.events.filter((e) => e.ev === 'message' && ids.includes(e.id)).map((e) => e.id);
    this.ok(got.length === N && got.every((id, i) => id === ids[i]),
      `carol.1 got ${got.length} of ${N} messages, in order: ${got.every((id, i) => id === ids[i])}`);
    const m = await this.metricsUntil((x) => x.whisperd_net_queued_bytes === 0, 'nothing queued');
    this.ok(m.whisperd_net_connections_dropped_total === 0, `connections dropped: ${m.whisperd_net_connections_dropped_total}`);
    this.ok((await carol.quit()) === 0, 'carol.1 exit code at end of input');
    this.notes.slow = `carol.1 stopped (SIGSTOP) while alice sent ${N} messages of 4 KB, whisperd --sndbuf 4096: ` +
      `${queued} bytes queued in whisperd, then all ${N} delivered once, in order`;
  }

  async shutdown() {
    for (const c of [this.alice1, this.bob1]) this.ok((await c.quit()) === 0, `${c.key} exit code at end of input`);
    const code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code on SIGTERM: ${code}`);
    this.notes.shutdown = 'every client exited 0 at end of input, whisperd 0 on SIGTERM';
  }

  async cleanup() {
    for (const c of this.raw) c.sock.destroy();
    await super.cleanup();
  }
}

HardenTest.main('harden.js', {
  programs: ['whisperd', 'chat'],
  timeout: 30,
  own: { openssl: [null, 'PATH'] },
  check: (o) => {
    if (!o.openssl && spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0) o.openssl = 'openssl';
  },
}, 'events.log, the processes\' stderr, the stores');
