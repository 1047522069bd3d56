// The processes of the integration tests (chat.js, media.js): whisperd
// and whisper-chat in --script mode, with their logs, event waits and
// commands. A test object `t` gives them: dir, o (options: whisper-chat's
// and whisperd's paths), ev() (its trace), timeoutMs, and optionally
// chatArgs and whisperdArgs (more options for every start).
'use strict';

const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

class Fatal extends Error {}

const short = (s, n = 200) => (s.length > n ? `${s.slice(0, n)}...` : s);

// Events that answer a command (in the order the commands were written).
const RESULT_EVENTS = new Set(['safety', 'sent_cmd', 'group_created', 'ok', 'history', 'state', 'help']);
const isResult = (e) => RESULT_EVENTS.has(e.ev) || (e.ev === 'error' && e.cmd !== undefined);

// ---------------------------------------------------------------------------
// processes

class Proc {
  constructor(t, key, file, logName) {
    this.t = t;
    this.key = key;
    this.file = file;
    this.logPath = path.join(t.dir, logName);
    this.run = 0;
    this.events = [];
    this.all = [];
    this.waiters = [];
    this.proc = null;
    this.exited = true;
  }

  spawn(args, onStderrLine) {
    this.run++;
    this.events = [];
    this.buf = '';
    this.errBuf = '';
    this.exited = false;
    this.exitCode = null;
    this.exitSignal = null;
    fs.appendFileSync(this.logPath, `--- run ${this.run} ${new Date().toISOString()}: ${this.file} ${args.join(' ')}\n`);
    this.t.ev(`${this.key}: start (run ${this.run}) ${args.join(' ')}`);
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
        if (this.buf.length) this.onLine(this.buf);
        this.buf = '';
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
      if (!onStderrLine) return;
      this.errBuf += d;
      let k;
      while ((k = this.errBuf.indexOf('\n')) >= 0) {
        onStderrLine(this.errBuf.slice(0, k));
        this.errBuf = this.errBuf.slice(k + 1);
      }
    });
  }

  onLine(line) {
    if (!line.trim()) return;
    this.t.ev(`${this.key} < ${short(line, 2000)}`);
    let e;
    try {
      e = JSON.parse(line);
    } catch {
      this.t.check('script', false, `${this.key}: a stdout line that is not JSON: ${short(line)}`);
      return;
    }
    if (typeof e !== 'object' || e === null || typeof e.ev !== 'string') {
      this.t.check('script', false, `${this.key}: a JSON line without "ev": ${short(line)}`);
      return;
    }
    e._run = this.run;
    e._i = this.events.length;
    this.events.push(e);
    this.all.push(e);
    this.wake();
  }

  wake() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  waitFor(pred, desc, { from = 0, timeoutMs = this.t.timeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      let timer = null;
      const look = () => {
        for (let i = from; i < this.events.length; i++) {
          if (pred(this.events[i])) {
            if (timer) clearTimeout(timer);
            resolve(this.events[i]);
            return;
          }
        }
        if (this.exited) {
          if (timer) clearTimeout(timer);
          reject(new Error(`${this.key} exited (${this.exitSignal || `code ${this.exitCode}`}) while waiting for ${desc}${this.stderrTail()}`));
          return;
        }
        this.waiters.push(look);
      };
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== look);
        const last = this.events.slice(-4).map((e) => short(JSON.stringify(e), 160)).join(' | ');
        reject(new Error(`${this.key}: no ${desc} within ${((Date.now() - t0) / 1000).toFixed(1)}s (last events: ${last || 'none'})`));
      }, timeoutMs);
      look();
    });
  }

  stderrTail() {
    try {
      const lines = fs.readFileSync(this.logPath, 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('--- '));
      const tail = lines.slice(-3).join(' | ');
      return tail ? `; stderr: ${short(tail, 400)}` : '';
    } catch {
      return '';
    }
  }

  write(line) {
    if (this.exited || !this.proc) throw new Error(`${this.key} is not running (writing "${short(line, 60)}")`);
    this.t.ev(`${this.key} > ${short(line, 2000)}`);
    this.proc.stdin.write(`${line}\n`);
  }

  async kill9(why) {
    if (this.exited || !this.proc) return;
    this.t.ev(`${this.key}: SIGKILL (${why})`);
    this.proc.kill('SIGKILL');
    await this.exitPromise;
  }
}

class Chat extends Proc {
  constructor(t, account, device) {
    const key = `${account}.${device}`;
    super(t, key, t.o.chat, `${account}${device}.stderr`);
    this.account = account;
    this.device = device;
    this.db = path.join(t.dir, `${account}${device}.db`);
    this.keyFile = path.join(t.dir, `${account}${device}.key`);
  }

  args() {
    return [
      '--db', this.db, '--key-file', this.keyFile, '--account', this.account,
      '--device', String(this.device), '--server', this.t.server.url, '--backoff-max-ms', '1000',
      ...(this.t.chatArgs || []),
    ];
  }

  start() {
    this.spawn([...this.args(), '--script']);
  }

  async startOnline() {
    this.start();
    await this.waitFor((e) => e.ev === 'online', 'online');
    await this.waitFor((e) => e.ev === 'caught_up', 'caught_up');
  }

  // Runs a command and returns its result event (an error result throws
  // unless allowed).
  async cmd(line, { allowError = false } = {}) {
    const from = this.events.length;
    this.write(line);
    const r = await this.waitFor(isResult, `the result of "${short(line, 60)}"`, { from });
    if (r.ev === 'error' && !allowError) throw new Error(`${this.key}: "${short(line, 60)}" failed: ${JSON.stringify(r)}`);
    return r;
  }

  // Runs a command that must fail; returns the error event.
  async fails(line) {
    return this.cmd(line, { allowError: true });
  }

  // Several commands in one write; their results, in order.
  async cmds(lines) {
    const from = this.events.length;
    this.t.ev(`${this.key} > (${lines.length} commands)`);
    this.proc.stdin.write(lines.map((l) => `${l}\n`).join(''));
    const got = [];
    let at = from;
    for (let i = 0; i < lines.length; i++) {
      const r = await this.waitFor(isResult, `the result of command ${i + 1} of ${lines.length}`, { from: at });
      got.push(r);
      at = r._i + 1;
    }
    return got;
  }

  async send(to, text) {
    const r = await this.cmd(`send ${to} ${text}`);
    return r.id;
  }

  async quit() {
    if (this.exited) return this.exitCode;
    this.t.ev(`${this.key}: end of input`);
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), this.t.timeoutMs);
    await this.exitPromise;
    clearTimeout(timer);
    return this.exitCode;
  }
}

class Whisperd extends Proc {
  constructor(t) {
    super(t, 'whisperd', t.o.whisperd, 'whisperd.stderr');
    this.db = path.join(t.dir, 'server.db');
    this.keyFile = path.join(t.dir, 'server.key');
    this.port = 0;
    this.metricsPort = 0; // GET /metrics: its own listener, a free port each start
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  // `extra`: more options (the test's own, then these).
  async start(extra = []) {
    let listening;
    const ready = new Promise((resolve) => (listening = resolve));
    const args = ['--listen', `127.0.0.1:${this.port}`, '--db', this.db, '--key-file', this.keyFile, '--log-level', 'info',
                  '--metrics-listen', '127.0.0.1:0', ...(this.t.whisperdArgs || []), ...extra];
    this.metricsPort = 0;
    this.spawn(args, (line) => {
      const mm = /whisperd: metrics on (.*):(\d+)\s*$/.exec(line); // printed before the listening line
      if (mm) this.metricsPort = Number(mm[2]);
      const m = /whisperd: listening on (.*):(\d+)\s*$/.exec(line);
      if (m) listening(Number(m[2]));
    });
    const port = await Promise.race([
      ready,
      this.exitPromise.then(() => {
        throw new Fatal(`whisperd exited (${this.exitSignal || `code ${this.exitCode}`}) before listening${this.stderrTail()}`);
      }),
      new Promise((_, reject) => setTimeout(() => reject(new Fatal(`whisperd did not print "listening on" within ${this.t.o.timeout}s${this.stderrTail()}`)), this.t.timeoutMs)),
    ]);
    this.port = port;
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

// A WHISPER_E* code by its name, read from include/whisper/core.h (the
// numbers are not repeated here: they follow the header).
const CORE_H = fs.readFileSync(path.join(__dirname, '..', '..', 'include', 'whisper', 'core.h'), 'utf8');
function whisperCode(name) {
  const m = CORE_H.match(new RegExp(`\\b${name} = (-?\\d+)\\b`));
  if (!m) throw new Error(`core.h has no ${name}`);
  return Number(m[1]);
}

module.exports = { Fatal, short, RESULT_EVENTS, isResult, Proc, Chat, Whisperd, whisperCode };
