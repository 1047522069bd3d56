// Interop scenario harness: peer processes, the JSON line protocol, step
// recording and comparison against the reference run.
'use strict';

const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const ERROR_CODES = new Set([
  'duplicate_message',
  'invalid_message',
  'invalid_signature',
  'invalid_key',
  'no_session',
  'untrusted_identity',
  'too_far_ahead',
  'bad_request',
  'internal',
]);

// ---------------------------------------------------------------------------
// small utilities

// Splits a command line into words (single/double quotes and backslashes as in
// a POSIX shell, no expansions). Leading NAME=VALUE words become environment.
function splitCommand(cmd) {
  const words = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i];
    if (c === "'") {
      const j = cmd.indexOf("'", i + 1);
      if (j < 0) throw new Error(`unterminated quote in command: ${cmd}`);
      cur += cmd.slice(i + 1, j);
      i = j;
      inWord = true;
    } else if (c === '"') {
      i++;
      while (i < cmd.length && cmd[i] !== '"') {
        if (cmd[i] === '\\' && i + 1 < cmd.length && '"\\$`'.includes(cmd[i + 1])) i++;
        cur += cmd[i++];
      }
      if (i >= cmd.length) throw new Error(`unterminated quote in command: ${cmd}`);
      inWord = true;
    } else if (c === '\\' && i + 1 < cmd.length) {
      cur += cmd[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  const env = {};
  while (words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) {
    const w = words.shift();
    const k = w.indexOf('=');
    env[w.slice(0, k)] = w.slice(k + 1);
  }
  if (!words.length) throw new Error(`empty command: ${JSON.stringify(cmd)}`);
  return { file: words[0], args: words.slice(1), env };
}

// Deterministic PRNG (xoshiro128**), seeded from a string.
class Rng {
  constructor(seedText) {
    let h = 1779033703 ^ seedText.length;
    const s = [];
    for (let k = 0; k < 4; k++) {
      for (let i = 0; i < seedText.length; i++) {
        h = Math.imul(h ^ seedText.charCodeAt(i), 3432918353);
        h = (h << 13) | (h >>> 19);
      }
      h = Math.imul(h ^ (h >>> 16), 2246822507);
      h = Math.imul(h ^ (h >>> 13), 3266489909);
      h ^= h >>> 16;
      s.push((h ^ (k * 0x9e3779b9)) >>> 0);
    }
    if (!(s[0] | s[1] | s[2] | s[3])) s[0] = 1;
    this.s = s;
  }
  u32() {
    const s = this.s;
    const r = Math.imul(((Math.imul(s[1], 5) << 7) | (Math.imul(s[1], 5) >>> 25)), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >>> 21);
    return r;
  }
  int(n) {
    // uniform in [0, n)
    return Math.floor((this.u32() / 4294967296) * n);
  }
  range(lo, hi) {
    // uniform in [lo, hi]
    return lo + this.int(hi - lo + 1);
  }
  bytes(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
  shuffle(arr) {
    const a = arr.slice();
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
  uuid() {
    // RFC 4122 version 4 (libsignal's Node binding insists on valid UUIDs)
    const b = this.bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}

// Minimal protobuf reader/writer (varint and length-delimited fields), enough
// to tamper with the fields of Signal's wire messages.
const pb = {
  readVarint(buf, pos) {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
      shift += 7n;
    }
    return [v, pos];
  },
  writeVarint(v) {
    v = BigInt(v);
    const out = [];
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v) b |= 0x80;
      out.push(b);
    } while (v);
    return Buffer.from(out);
  },
  decode(buf) {
    const fields = [];
    let pos = 0;
    while (pos < buf.length) {
      let key;
      [key, pos] = pb.readVarint(buf, pos);
      const field = Number(key >> 3n);
      const wire = Number(key & 7n);
      if (wire === 0) {
        let v;
        [v, pos] = pb.readVarint(buf, pos);
        fields.push({ field, wire, value: v });
      } else if (wire === 2) {
        let len;
        [len, pos] = pb.readVarint(buf, pos);
        const end = pos + Number(len);
        if (end > buf.length) throw new Error('truncated field');
        fields.push({ field, wire, value: Buffer.from(buf.subarray(pos, end)) });
        pos = end;
      } else if (wire === 1) {
        fields.push({ field, wire, value: Buffer.from(buf.subarray(pos, pos + 8)) });
        pos += 8;
      } else if (wire === 5) {
        fields.push({ field, wire, value: Buffer.from(buf.subarray(pos, pos + 4)) });
        pos += 4;
      } else {
        throw new Error(`unsupported wire type ${wire}`);
      }
    }
    return fields;
  },
  encode(fields) {
    const parts = [];
    for (const f of fields) {
      parts.push(pb.writeVarint((BigInt(f.field) << 3n) | BigInt(f.wire)));
      if (f.wire === 0) parts.push(pb.writeVarint(f.value));
      else if (f.wire === 2) parts.push(pb.writeVarint(f.value.length), f.value);
      else parts.push(f.value);
    }
    return Buffer.concat(parts);
  },
  get(fields, n) {
    return fields.find((f) => f.field === n);
  },
};

function short(s, n = 48) {
  s = String(s);
  return s.length > n ? `${s.slice(0, n)}...(${s.length} chars)` : s;
}

// ---------------------------------------------------------------------------
// a peer process

class PeerBroken extends Error {}

class PeerProc {
  constructor({ role, label, cmd, dbPath, logPath, timeoutMs }) {
    this.role = role;
    this.label = label;
    this.cmd = cmd;
    this.dbPath = dbPath;
    this.logPath = logPath;
    this.timeoutMs = timeoutMs;
    this.pending = [];
    this.buf = '';
    this.broken = null;
    this.exited = false;
    this.exitCode = null;
    this.exitSignal = null;
    this.timer = null;
  }

  start() {
    const { file, args, env } = splitCommand(this.cmd);
    const logFd = fs.openSync(this.logPath, 'a');
    fs.writeSync(logFd, `--- ${new Date().toISOString()} ${this.cmd} --db ${this.dbPath}\n`);
    this.exitPromise = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
    try {
      this.proc = spawn(file, [...args, '--db', this.dbPath], {
        stdio: ['pipe', 'pipe', logFd],
        env: Object.assign({}, process.env, env),
      });
    } catch (e) {
      fs.closeSync(logFd);
      this.fail(`cannot start "${this.cmd}": ${e.message}`);
      this.exited = true;
      this.resolveExit();
      return;
    }
    fs.closeSync(logFd);
    this.proc.on('error', (e) => {
      this.fail(`cannot run "${this.cmd}": ${e.message}`);
      if (!this.exited) {
        this.exited = true;
        this.resolveExit();
      }
    });
    this.proc.stdin.on('error', () => {}); // EPIPE: reported through exit
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => this.onData(d));
    this.proc.on('exit', (code, signal) => {
      this.exitCode = code;
      this.exitSignal = signal;
    });
    this.proc.on('close', () => {
      this.exited = true;
      if (this.buf.length) this.onLine(this.buf), (this.buf = '');
      if (this.pending.length) {
        const how = this.exitSignal ? `killed by ${this.exitSignal}` : `exited with code ${this.exitCode}`;
        this.fail(`peer ${this.role} (${this.label}) ${how}${this.stderrTail()}`);
      }
      this.clearTimer();
      this.resolveExit();
    });
  }

  stderrTail() {
    try {
      const t = fs
        .readFileSync(this.logPath, 'utf8')
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('--- '))
        .slice(-3)
        .join(' | ');
      return t ? `; stderr: ${short(t, 300)}` : '';
    } catch {
      return '';
    }
  }

  fail(msg) {
    if (!this.broken) this.broken = msg;
    this.clearTimer();
    const p = this.pending;
    this.pending = [];
    for (const x of p) x.reject(new PeerBroken(this.broken));
    if (this.proc && !this.exited) {
      try {
        this.proc.kill('SIGKILL');
      } catch {}
    }
  }

  clearTimer() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  armTimer() {
    this.clearTimer();
    if (!this.pending.length) return;
    const head = this.pending[0];
    this.timer = setTimeout(() => {
      this.fail(`peer ${this.role} (${this.label}) gave no response to "${head.op}" within ${this.timeoutMs / 1000}s`);
    }, this.timeoutMs);
  }

  onData(d) {
    this.buf += d;
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      let line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.onLine(line);
      if (this.broken) return;
    }
  }

  onLine(line) {
    if (this.broken) return;
    if (!this.pending.length) {
      this.fail(`peer ${this.role} (${this.label}) wrote an unexpected line: ${short(line, 120)}`);
      return;
    }
    let res;
    try {
      res = JSON.parse(line);
    } catch (e) {
      this.fail(`peer ${this.role} (${this.label}) wrote invalid JSON: ${short(line, 120)}`);
      return;
    }
    if (res === null || typeof res !== 'object' || Array.isArray(res) || typeof res.ok !== 'boolean') {
      this.fail(`peer ${this.role} (${this.label}) wrote a response without a boolean "ok": ${short(line, 120)}`);
      return;
    }
    if (!res.ok && typeof res.code !== 'string') {
      this.fail(`peer ${this.role} (${this.label}) wrote a failure without a "code": ${short(line, 120)}`);
      return;
    }
    const head = this.pending.shift();
    this.armTimer();
    head.resolve(res);
  }

  send(line, op) {
    if (this.broken) return Promise.reject(new PeerBroken(this.broken));
    if (this.exited) return Promise.reject(new PeerBroken(`peer ${this.role} (${this.label}) is not running`));
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject, op });
      if (this.pending.length === 1) this.armTimer();
      this.proc.stdin.write(line + '\n');
    });
  }

  req(obj) {
    return this.send(JSON.stringify(obj), obj && obj.op);
  }

  raw(line) {
    return this.send(line, 'raw line');
  }

  // Pipelining: all requests written at once, responses in order.
  reqMany(objs) {
    return Promise.all(objs.map((o) => this.req(o)));
  }

  // Closes stdin and waits for the exit; returns the exit code (or null).
  async close(graceMs = 10000) {
    if (!this.exited) {
      try {
        this.proc.stdin.end();
      } catch {}
      const t = setTimeout(() => {
        this.closeTimedOut = true;
        try {
          this.proc.kill('SIGKILL');
        } catch {}
      }, graceMs);
      await this.exitPromise;
      clearTimeout(t);
    }
    return this.closeTimedOut ? null : this.exitCode;
  }

  async kill9() {
    if (!this.exited) {
      try {
        this.proc.kill('SIGKILL');
      } catch {}
      await this.exitPromise;
    }
    this.clearTimer();
  }
}

// ---------------------------------------------------------------------------
// a run of one scenario

class ScenarioFailure extends Error {}

class Run {
  // mode: 'ref' (the recorded expectation) or 'test' (compared to refSteps)
  constructor({ scenario, mode, sides, dir, refSteps, seed, timeoutMs }) {
    this.scenario = scenario;
    this.mode = mode;
    this.sides = sides; // [{cmd,label}, {cmd,label}]
    this.dir = dir;
    this.refSteps = refSteps;
    this.steps = [];
    this.rng = new Rng(`${seed}/${scenario.name}`);
    this.timeoutMs = timeoutMs;
    this.peers = new Map(); // role -> handle
    this.generation = new Map();
  }

  roleSpec(role) {
    const spec = this.scenario.roles[role];
    if (!spec) throw new Error(`scenario ${this.scenario.name}: unknown role ${role}`);
    return spec;
  }

  roleLabel(role) {
    return this.sides[this.roleSpec(role).side].label;
  }

  // ---- recording and comparison ----

  fail(text) {
    throw new ScenarioFailure(text);
  }

  record(label, outcome) {
    const n = this.steps.length + 1;
    this.steps.push({ label, outcome });
    if (this.mode === 'test') {
      const ref = this.refSteps[n - 1];
      if (!ref) this.fail(`step ${n} expected end of scenario got ${short(outcome, 80)} (${label})`);
      if (ref.outcome !== outcome) {
        this.fail(`step ${n} expected ${short(ref.outcome, 80)} got ${short(outcome, 80)} (${label})`);
      }
    }
    return n;
  }

  // Intent assertion, checked in both runs.
  check(cond, expected, got, label) {
    if (!cond) {
      const n = this.steps.length;
      this.fail(`step ${n} expected ${short(expected, 80)} got ${short(got, 80)} (${label}; intent)`);
    }
  }

  brokenStep(label, err) {
    const n = this.steps.length + 1;
    const exp = this.mode === 'test' && this.refSteps[n - 1] ? this.refSteps[n - 1].outcome : 'a response';
    this.fail(`step ${n} expected ${short(exp, 80)} got ${err.message} (${label})`);
  }

  static outcomeOf(req, res) {
    if (!res.ok) return res.code;
    switch (req.op) {
      case 'encrypt':
        return `ok type=${res.type}`;
      case 'decrypt':
      case 'group_decrypt':
        return `ok plaintext=${res.plaintext}`;
      case 'has_session':
        return `ok has_session=${res.has_session}`;
      case 'decryption_error_make':
        return `ok bytes=${Buffer.from(String(res.plaintext_content), 'base64').length}`;
      case 'decryption_error_read':
        return `ok timestamp=${res.timestamp} device_id=${res.device_id} ratchet_key=${res.ratchet_key === null ? 'none' : 'yes'}`;
      default:
        return 'ok';
    }
  }

  // ---- peers ----

  async spawn(role, { fresh = false, init = true } = {}) {
    const spec = this.roleSpec(role);
    const side = this.sides[spec.side];
    const gen = (this.generation.get(role) || 0) + (fresh ? 1 : 0);
    this.generation.set(role, gen);
    const base = gen ? `${role}-${gen}` : role;
    const p = new PeerProc({
      role,
      label: side.label,
      cmd: side.cmd,
      dbPath: path.join(this.dir, `${base}.db`),
      logPath: path.join(this.dir, `${base}.stderr`),
      timeoutMs: this.timeoutMs,
    });
    p.name = spec.name;
    p.device = spec.device;
    p.registrationId = spec.registration_id;
    p.start();
    this.peers.set(role, p);
    if (init) {
      const res = await this.ok(p, {
        op: 'init',
        name: spec.name,
        device_id: spec.device,
        registration_id: spec.registration_id,
      });
      this.check(
        typeof res.identity_key === 'string' && Buffer.from(res.identity_key, 'base64').length === 33,
        'a 33-byte identity_key',
        JSON.stringify(res.identity_key),
        `${role} init`
      );
      p.identityKey = res.identity_key;
    }
    return p;
  }

  async spawnAll(...roles) {
    const out = [];
    for (const r of roles) out.push(await this.spawn(r));
    return out;
  }

  async closeAll() {
    const codes = {};
    for (const [role, p] of this.peers) {
      codes[role] = await p.close();
    }
    this.peers.clear();
    return codes;
  }

  async killAll() {
    for (const p of this.peers.values()) await p.kill9();
    this.peers.clear();
  }

  // ---- requests ----

  async req(p, req, label) {
    label = label || `${p.role} ${req.op}`;
    let res;
    try {
      res = await p.req(req);
    } catch (e) {
      if (e instanceof PeerBroken) this.brokenStep(label, e);
      throw e;
    }
    this.record(label, Run.outcomeOf(req, res));
    return res;
  }

  async raw(p, line, label) {
    let res;
    try {
      res = await p.raw(line);
    } catch (e) {
      if (e instanceof PeerBroken) this.brokenStep(label, e);
      throw e;
    }
    this.record(label, res.ok ? 'ok' : res.code);
    return res;
  }

  async ok(p, req, label) {
    label = label || `${p.role} ${req.op}`;
    const res = await this.req(p, req, label);
    this.check(res.ok, 'ok', res.ok ? 'ok' : `${res.code}: ${res.error}`, label);
    return res;
  }

  async fails(p, req, code, label) {
    label = label || `${p.role} ${req.op}`;
    const res = await this.req(p, req, label);
    const codes = Array.isArray(code) ? code : [code];
    this.check(!res.ok && codes.includes(res.code), codes.join(' or '), res.ok ? 'ok' : res.code, label);
    return res;
  }

  // Pipelined requests recorded as one step: "ok xN [key=value...]" or the
  // first failure "#i code".
  async many(p, reqs, label, summarize) {
    let res;
    try {
      res = await p.reqMany(reqs);
    } catch (e) {
      if (e instanceof PeerBroken) this.brokenStep(label, e);
      throw e;
    }
    let outcome = null;
    for (let i = 0; i < res.length; i++) {
      if (!res[i].ok) {
        outcome = `#${i} ${res[i].code}`;
        break;
      }
    }
    if (!outcome) outcome = `ok x${res.length}${summarize ? ' ' + summarize(res) : ''}`;
    this.record(label, outcome);
    this.check(outcome.startsWith('ok'), `ok x${reqs.length}`, outcome, label);
    return res;
  }

  // ---- protocol helpers ----

  addr(p) {
    return { peer: p.name, device_id: p.device };
  }

  plaintext(size) {
    return this.rng.bytes(size).toString('base64');
  }

  async bundle(p, oneTime = true) {
    const req = oneTime ? { op: 'bundle' } : { op: 'bundle', one_time: false };
    const res = await this.ok(p, req, `${p.role} bundle${oneTime ? '' : ' (one_time:false)'}`);
    const b = res.bundle;
    const label = `${p.role} bundle`;
    this.check(b && typeof b === 'object', 'a bundle object', JSON.stringify(b), label);
    this.check(b.device_id === p.device, `device_id ${p.device}`, b.device_id, label);
    if (oneTime) {
      this.check(Number.isInteger(b.prekey_id) && typeof b.prekey === 'string', 'a one-time prekey', `${b.prekey_id}/${b.prekey}`, label);
    } else {
      this.check(b.prekey_id === null && b.prekey === null, 'prekey_id and prekey null', `${b.prekey_id}/${b.prekey}`, label);
    }
    this.check(b.identity_key === p.identityKey, 'the identity key returned by init', b.identity_key, label);
    return b;
  }

  async startSession(from, to, bundle, label) {
    return this.ok(from, { op: 'start_session', ...this.addr(to), bundle }, label || `${from.role} start_session with ${to.role}`);
  }

  async hasSession(p, other, expected) {
    const label = `${p.role} has_session ${other.role}`;
    const res = await this.ok(p, { op: 'has_session', ...this.addr(other) }, label);
    if (expected !== undefined) this.check(res.has_session === expected, String(expected), String(res.has_session), label);
    return res.has_session;
  }

  // Encrypts (random plaintext of `size` bytes unless pt given); returns the message.
  async encrypt(from, to, { size, pt, type, label } = {}) {
    if (pt === undefined) pt = this.plaintext(size === undefined ? this.rng.range(0, 200) : size);
    label = label || `${from.role} encrypt to ${to.role} (${Buffer.from(pt, 'base64').length} bytes)`;
    const res = await this.ok(from, { op: 'encrypt', ...this.addr(to), plaintext: pt }, label);
    this.check(res.type === 'prekey' || res.type === 'whisper', 'type prekey or whisper', res.type, label);
    if (type) this.check(res.type === type, `type ${type}`, res.type, label);
    const body = Buffer.from(res.body || '', 'base64');
    this.check(body.length > 0 && body[0] === 0x34, 'a body starting with 0x34', body.slice(0, 1).toString('hex'), label);
    return { from, to, type: res.type, body: res.body, pt };
  }

  async decrypt(to, msg, label) {
    label = label || `${to.role} decrypt ${msg.type} from ${msg.from.role}`;
    const res = await this.ok(to, { op: 'decrypt', ...this.addr(msg.from), type: msg.type, body: msg.body }, label);
    this.check(res.plaintext === msg.pt, `plaintext ${short(msg.pt, 24)}`, short(res.plaintext, 24), label);
    return res;
  }

  async decryptFails(to, msg, code, label) {
    label = label || `${to.role} decrypt ${msg.type} from ${msg.from.role}`;
    return this.fails(to, { op: 'decrypt', ...this.addr(msg.from), type: msg.type, body: msg.body }, code, label);
  }

  async exchange(from, to, opts = {}) {
    const m = await this.encrypt(from, to, opts);
    await this.decrypt(to, m);
    return m;
  }

  // A fresh session from `a` to `b`: a's first message is a prekey message
  // and b answers, so both have acknowledged the session.
  async establish(a, b, { oneTime = true } = {}) {
    const bundle = await this.bundle(b, oneTime);
    await this.startSession(a, b, bundle);
    await this.exchange(a, b, { type: 'prekey' });
    await this.exchange(b, a, { type: 'whisper' });
    await this.exchange(a, b, { type: 'whisper' });
  }
}

module.exports = { Run, Rng, pb, PeerProc, PeerBroken, ScenarioFailure, splitCommand, short, ERROR_CODES };
