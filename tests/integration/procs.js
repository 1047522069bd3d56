// The harness of the integration tests (README.md): the command line, the
// run's directory, the scenarios with their checks and summary, and the
// processes they start (whisperd, whisper-chat in --script mode,
// whisper-blob-devices) with their logs, event waits and commands; HTTP
// requests, whisperd's /metrics, a tus client of its blob store, and a
// private PostgreSQL.
//
// A script subclasses Test with its scenarios and calls its main(): the
// subclass's constructor takes (o, dir) and gives Test the scenarios; a
// scenario is a method that checks with this.ok() and leaves a line in
// this.notes. A process object takes the test `t` and uses t.dir, t.o (the
// options: the programs' paths), t.ev() (the trace), t.check(), t.timeoutMs
// and, optionally, t.chatArgs, t.whisperdArgs (more options for every
// start), t.backoffMs and t.anchors (whisper-chat keeps an anchor file).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const os = require('os');
const path = require('path');
const { spawn, execFile, execFileSync } = require('child_process');

class Fatal extends Error {}

const short = (s, n = 200) => (s.length > n ? `${s.slice(0, n)}...` : s);
const delay = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const fileSize = (f) => {
  try {
    return fs.statSync(f).size;
  } catch {
    return -1;
  }
};

// Events that answer a whisper-chat command (in the order the commands were written).
const RESULT_EVENTS = new Set(['safety', 'sent_cmd', 'group_created', 'ok', 'history', 'state', 'help',
  'group_link', 'group_joining', 'group_state']);
const isResult = (e) => RESULT_EVENTS.has(e.ev) || (e.ev === 'error' && e.cmd !== undefined);

// ---------------------------------------------------------------------------
// the command line, the run's directory, the exit

// `--pg-cluster` for pgCluster.
const flagOf = (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

// The options: the programs the script runs (`programs`: keys such as
// 'whisperd', 'chat', 'devices', 'pgCluster': each --key PATH is required,
// made absolute and must be executable), --timeout SECONDS (default
// `timeout`), --workdir DIR, --keep, --trace, and the script's own (`own`:
// key -> [default, what the value is]; a boolean default makes a flag, a
// number one a number). `check(o, usage)` looks at the result.
function parseOptions(script, argv, { programs = [], timeout = 20, own = {}, check = null } = {}) {
  const words = [
    ...programs.map((k) => `${flagOf(k)} PATH`),
    ...Object.entries(own).map(([k, [d, what]]) => `[${flagOf(k)}${typeof d === 'boolean' ? '' : ` ${what}`}]`),
    '[--timeout SECONDS]', '[--workdir DIR]', '[--keep]', '[--trace]',
  ];
  const usage = (msg) => {
    if (msg) process.stderr.write(`${script}: ${msg}\n`);
    process.stderr.write(`usage: node ${script} ${words.join(' ')}\n`);
    process.exit(2);
  };
  const o = { timeout, workdir: null, keep: false, trace: false };
  const kinds = { '--timeout': ['timeout', 'number'], '--workdir': ['workdir', 'text'], '--keep': ['keep', 'flag'], '--trace': ['trace', 'flag'] };
  for (const k of programs) {
    o[k] = null;
    kinds[flagOf(k)] = [k, 'program'];
  }
  for (const [k, [d]] of Object.entries(own)) {
    o[k] = d;
    kinds[flagOf(k)] = [k, typeof d === 'boolean' ? 'flag' : typeof d === 'number' ? 'number' : 'text'];
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') usage();
    if (!kinds[a]) usage(`unknown option ${a}`);
    const [k, kind] = kinds[a];
    if (kind === 'flag') {
      o[k] = true;
      continue;
    }
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    const v = argv[++i];
    o[k] = kind === 'program' ? path.resolve(v) : kind === 'number' ? Number(v) : v;
  }
  if (programs.some((k) => !o[k])) {
    const names = programs.map(flagOf);
    usage(names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are required` : `${names[0]} is required`);
  }
  if (!(o.timeout > 0)) usage('--timeout must be a positive number of seconds');
  for (const k of programs) {
    try {
      fs.accessSync(o[k], fs.constants.X_OK);
    } catch {
      usage(`not an executable: ${o[k]}`);
    }
  }
  if (check) check(o, usage);
  return o;
}

// The run's directory: a new one in --workdir, or in the system's
// temporary directory.
function workDir(o, name) {
  return o.workdir
    ? fs.mkdtempSync(path.join(path.resolve(o.workdir), `${name}-`))
    : fs.mkdtempSync(path.join(os.tmpdir(), `whisper-${name}-`));
}

// The end of a run: its directory kept (saying what is in it: `kept`) if
// anything failed or with --keep, else removed; the totals; the exit code.
function finish(script, o, dir, { passed, failed, fatal = false }, kept) {
  if (failed || fatal || o.keep) process.stderr.write(`${script}: kept ${dir} (${kept})\n`);
  else fs.rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed || fatal ? 1 : 0;
}

// Runs `run` (async, giving the exit code) and exits with its code (1 if it throws).
function exitWith(script, run) {
  run().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${script}: ${e && e.stack ? e.stack : e}\n`);
      process.exit(1);
    }
  );
}

// ---------------------------------------------------------------------------
// the test

// A run of scenarios. `scenarios`: [key, label, method] (the label and the
// method default to the key), run in order; the checks of each are counted
// under its key, and those of the processes' output under 'script'.
class Test {
  constructor(o, dir, scenarios) {
    this.o = o;
    this.dir = dir;
    this.timeoutMs = o.timeout * 1000;
    this.t0 = Date.now();
    this.traceFd = fs.openSync(path.join(dir, 'events.log'), 'w');
    this.scenarios = scenarios.map((s) => {
      const [key, label = key, method = key] = Array.isArray(s) ? s : [s];
      return [key, label, method];
    });
    this.stats = {};
    this.notes = {};
    for (const [k] of this.scenarios) this.stats[k] = { passed: 0, failed: 0 };
    this.stats.script = { passed: 0, failed: 0 };
    this.cat = this.scenarios[0][0];
    this.procs = []; // every process object made (Proc adds itself), stopped at the end
    this.seq = 0;
  }

  // The script's whole run: options (parseOptions's `spec`), directory,
  // scenarios, summary; `kept` says what the kept directory holds.
  static main(script, spec, kept) {
    exitWith(script, async () => {
      const o = parseOptions(script, process.argv.slice(2), spec);
      const dir = workDir(o, script.replace(/\.js$/, ''));
      const t = new this(o, dir);
      process.stderr.write(`${script}: work directory ${dir}\n`);
      const whole = await t.runScenarios();
      await t.cleanup();
      const totals = t.summary();
      fs.closeSync(t.traceFd);
      process.stderr.write(`${script}: ${((Date.now() - t.t0) / 1000).toFixed(1)}s\n`);
      return finish(script, o, dir, { ...totals, fatal: !whole }, kept);
    });
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

  // Runs the scenarios; false if the run stopped early (a scenario that
  // throws stops the run when stops(name) says so).
  async runScenarios() {
    for (const [name, , method] of this.scenarios) {
      if (this.skip(name)) continue;
      if (!(await this.runOne(name, () => this[method]())) && this.stops(name)) return false;
      if (!(await this.between(name))) return false;
    }
    return true;
  }

  // One step of scenario `name`: what it throws is a failed check of it.
  async runOne(name, fn) {
    this.cat = name;
    this.ev(`=== ${name}`);
    try {
      await fn();
      return true;
    } catch (e) {
      this.check(name, false, `stopped: ${e instanceof Error ? e.message : String(e)}`);
      this.ev(e && e.stack ? e.stack : String(e));
      return false;
    }
  }

  // Whether to leave scenario `name` out.
  skip() {
    return false;
  }

  // Whether an exception in scenario `name` stops the run: in the first,
  // or with whisperd gone.
  stops(name) {
    return name === this.scenarios[0][0] || !!(this.server && this.server.exited);
  }

  // After scenario `name`: false stops the run.
  async between() {
    return true;
  }

  // Every process still running: SIGKILLed.
  async cleanup() {
    for (const p of this.procs) await p.kill9('cleanup');
  }

  summary() {
    let passed = 0;
    let failed = 0;
    for (const [k, label] of this.scenarios) {
      const s = this.stats[k];
      passed += s.passed;
      failed += s.failed;
      if (s.failed) process.stdout.write(`FAIL ${label}: ${s.failed} of ${s.passed + s.failed} checks failed\n`);
      else if (this.notes[k]) process.stdout.write(`${/^NOT RUN/.test(this.notes[k]) ? '--' : 'ok'} ${label}: ${this.notes[k]} (${s.passed} checks)\n`);
      else process.stdout.write(`-- ${label}: not run\n`);
    }
    const s = this.stats.script;
    passed += s.passed;
    failed += s.failed;
    if (s.failed) process.stdout.write(`FAIL script output: ${s.failed} bad lines\n`);
    return { passed, failed };
  }

  chat(account, device, server) {
    return new Chat(this, account, device, server);
  }

  // Starts new clients at once and waits until each registered and caught up.
  async register(chats) {
    for (const c of chats) c.start();
    for (const c of chats) {
      const r = await c.waitFor((e) => e.ev === 'registered', 'registered');
      this.ok(!!r, `${c.key} registered`);
      await c.waitFor((e) => e.ev === 'caught_up', 'caught_up');
    }
  }

  // A unique, recognisable text.
  text(label) {
    this.seq++;
    return `${label}-${this.seq}-${Math.random().toString(36).slice(2, 8)}`;
  }

  message(c, id, desc) {
    return c.waitFor((e) => e.ev === 'message' && e.id === id, desc || `message ${id}`);
  }

  status(c, id, status, to, device, desc) {
    return c.waitFor(
      (e) => e.ev === 'status' && e.id === id && e.status === status && (to === undefined || (e.to === to && e.device === device)),
      desc || `status ${status} of ${id}${to ? ` for ${to}.${device}` : ''}`
    );
  }

  // The next media event (WHISPER_EV_MEDIA) of job `id` at `c` matching `pred` (from `from` on).
  media(c, id, pred, desc, from = 0) {
    return c.waitFor((e) => e.ev === 'media' && e.id === id && pred(e), `${desc} (${id.slice(0, 8)})`, { from });
  }

  // Waits until cond() (it may be async) holds, asked every pollMs (for a
  // state in files or in a server's answers).
  async until(cond, desc, pollMs = 5) {
    const t0 = Date.now();
    while (!(await cond())) {
      if (Date.now() - t0 > this.timeoutMs) throw new Error(`no ${desc} within ${this.o.timeout}s`);
      await delay(pollMs);
    }
  }
}

// ---------------------------------------------------------------------------
// processes

// A child process with its stderr in a file (`lines`: the current run's
// lines) and JSON lines on stdout: `events` holds the current run's
// events, `all` every run's, each tagged with its run number.
class Proc {
  constructor(t, key, file, logName) {
    this.t = t;
    this.key = key;
    this.file = file;
    this.logPath = path.join(t.dir, logName);
    this.run = 0;
    this.events = [];
    this.all = [];
    this.lines = [];
    this.waiters = [];
    this.proc = null;
    this.exited = true;
    if (t.procs) t.procs.push(this);
  }

  spawn(args, onStderrLine, opts = {}) {
    this.run++;
    this.events = [];
    this.lines = [];
    this.buf = '';
    this.errBuf = '';
    this.exited = false;
    this.exitCode = null;
    this.exitSignal = null;
    fs.appendFileSync(this.logPath, `--- run ${this.run} ${new Date().toISOString()}: ${this.file} ${args.join(' ')}\n`);
    this.t.ev(`${this.key}: start (run ${this.run}) ${args.join(' ')}`);
    const p = spawn(this.file, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
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
    p.stdin.on('error', () => {}); // EPIPE after a kill: reported by the waits
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

  // Resolves with found() once it gives something other than undefined,
  // asked now and at every event, up to the timeout.
  waitOn(found, desc, timeoutMs) {
    return new Promise((resolve, reject) => {
      const t0 = Date.now();
      let timer = null;
      const look = () => {
        const x = found();
        if (x !== undefined) {
          if (timer) clearTimeout(timer);
          resolve(x);
          return;
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

  // The first event of the current run at index >= from that satisfies pred.
  waitFor(pred, desc, { from = 0, timeoutMs = this.t.timeoutMs } = {}) {
    return this.waitOn(() => {
      for (let i = from; i < this.events.length; i++) if (pred(this.events[i])) return this.events[i];
      return undefined;
    }, desc, timeoutMs);
  }

  // Until cond(events) holds.
  waitUntil(cond, desc, timeoutMs = this.t.timeoutMs) {
    return this.waitOn(() => (cond(this.events) ? true : undefined), desc, timeoutMs);
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

  // Ends stdin and waits for the exit (SIGKILL after the timeout); the exit code.
  async quit() {
    if (this.exited) return this.exitCode;
    this.t.ev(`${this.key}: end of input`);
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), this.t.timeoutMs);
    await this.exitPromise;
    clearTimeout(timer);
    return this.exitCode;
  }

  async kill9(why) {
    if (this.exited || !this.proc) return;
    this.t.ev(`${this.key}: SIGKILL (${why})`);
    this.proc.kill('SIGKILL');
    await this.exitPromise;
  }
}

// whisper-chat: account.device, its store and key file in t.dir, talking
// to `server` (anything with a url; t.server if none).
class Chat extends Proc {
  constructor(t, account, device, server = null) {
    super(t, `${account}.${device}`, t.o.chat, `${account}${device}.stderr`);
    this.account = account;
    this.device = device;
    this.server = server;
    this.db = path.join(t.dir, `${account}${device}.db`);
    this.keyFile = path.join(t.dir, `${account}${device}.key`);
    this.anchorFile = path.join(t.dir, `${account}${device}.anchor`);
  }

  args() {
    return [
      '--db', this.db, '--key-file', this.keyFile, '--account', this.account,
      '--device', String(this.device), '--server', (this.server || this.t.server).url,
      '--backoff-max-ms', String(this.t.backoffMs || 1000),
      ...(this.t.anchors ? ['--anchor-file', this.anchorFile] : []), ...(this.t.chatArgs || []),
    ];
  }

  start() {
    this.spawn([...this.args(), '--script']);
  }

  // Starts and waits until logged in with the mailbox drained.
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

  // Message events across all runs.
  messages(pred = () => true) {
    return this.all.filter((e) => e.ev === 'message' && pred(e));
  }
}

// whisperd on loopback: its store, key and blob directory in t.dir; a free
// port at the first start and the same one after; its metrics on a free
// port of their own at each start. `name` tells several apart (their logs
// are NAME.stderr).
class Whisperd extends Proc {
  constructor(t, name = 'whisperd') {
    super(t, name, t.o.whisperd, `${name}.stderr`);
    this.db = path.join(t.dir, 'server.db');
    this.keyFile = path.join(t.dir, 'server.key');
    this.blobDir = path.join(t.dir, 'blobs'); // the default: beside the store
    this.port = 0;
    this.metricsPort = 0; // GET /metrics: its own listener, a free port each start
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  // Starts and waits for the listening line; `extra`: more options (the
  // test's own, then these); `env`: its environment.
  async start(extra = [], env = undefined) {
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
    }, env ? { env } : {});
    let timer;
    const port = await Promise.race([
      ready,
      this.exitPromise.then(() => {
        throw new Fatal(`${this.key} exited (${this.exitSignal || `code ${this.exitCode}`}) before listening${this.stderrTail()}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Fatal(`${this.key} did not print "listening on" within ${this.t.o.timeout}s${this.stderrTail()}`)), this.t.timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (this.port && port !== this.port) throw new Fatal(`${this.key} listens on ${port}, asked for ${this.port}`);
    this.port = port;
  }

  // SIGTERM, and the exit code (SIGKILL after the timeout).
  async stop() {
    if (this.exited) return this.exitCode;
    this.t.ev(`${this.key}: SIGTERM`);
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), this.t.timeoutMs);
    await this.exitPromise;
    clearTimeout(timer);
    return this.exitCode;
  }

  // Its /metrics as {name: value} (a labelled one under name{labels}).
  async metrics() {
    const r = await httpRequest({ port: this.metricsPort, path: '/metrics', timeoutMs: this.t.timeoutMs });
    if (r.status !== 200) throw new Error(`GET /metrics on ${this.key}'s metrics port: ${r.status}`);
    const m = {};
    for (const line of r.body.toString().split('\n')) {
      const x = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\d+(?:\.\d+)?)$/.exec(line);
      if (x) m[x[1]] = Number(x[2]);
    }
    return m;
  }
}

// whisper-blob-devices (tests/integration/blob_devices.c): devices logged
// in over the sync protocol, which ask for upload tokens.
class Devices extends Proc {
  constructor(t) {
    super(t, 'devices', t.o.devices, 'devices.stderr');
  }

  start(url = this.t.server.url) {
    this.spawn(['--url', url]);
  }

  // NAME's next login (from the events at `from` on).
  online(name, from = 0) {
    return this.waitFor((e) => e.ev === 'online' && e.name === name, `${name} online`, { from });
  }

  // A token of NAME (waiting for its login): {token, expires_ms, max_size}, or the error event.
  async token(name, size) {
    for (;;) {
      const from = this.events.length;
      this.write(`token ${name}${size !== undefined ? ` ${size}` : ''}`);
      const e = await this.waitFor((x) => (x.ev === 'token' || x.ev === 'error') && (x.name === name || x.cmd === 'token'), `a token for ${name}`, { from });
      if (e.ev === 'error' && e.cmd === 'token') { // not online yet (a restart): again
        await this.online(name, from);
        continue;
      }
      return e;
    }
  }
}

// ---------------------------------------------------------------------------
// HTTP

// One request on a connection of its own: {status, headers, body (a Buffer)}.
function httpRequest({ port, method = 'GET', path: p, headers = {}, body = null, tls = false, timeoutMs = 10000 }) {
  const hs = { ...headers };
  if (body || method === 'POST' || method === 'PATCH') hs['Content-Length'] = String(body ? body.length : 0);
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).request({ host: '127.0.0.1', port, method, path: p, headers: hs, agent: false, rejectUnauthorized: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${p}: no answer in time`)));
    req.end(body || undefined);
  });
}

const TUS = { 'Tus-Resumable': '1.0.0' };
const OCTETS = 'application/offset+octet-stream';

// A tus 1.0 client of a whisperd's blob store (/v1/blobs), every request on
// a connection of its own and traced. The blobs made are in t.model (id ->
// {length, offset, data: random bytes}); `acct` is what this client did
// since the node's current run began (whisperd's counters start again).
class Tus {
  constructor(t, node) {
    this.t = t;
    this.node = node;
    this.acctRun = -1;
  }

  get acct() {
    if (this.acctRun !== this.node.run) {
      this.acctRun = this.node.run;
      this.acctNow = { counts: {}, bytesIn: 0, bytesOut: 0 }; // by status; PATCHed; in GET answers
    }
    return this.acctNow;
  }

  async request(method, p, headers = {}, body = null) {
    const r = await httpRequest({ port: this.node.port, method, path: p, headers, body, timeoutMs: this.t.timeoutMs });
    this.t.ev(`http ${this.node.key} ${method} ${short(p, 40)} -> ${r.status}${r.headers['upload-offset'] !== undefined ? ` offset ${r.headers['upload-offset']}` : ''} (${r.body.length} bytes)`);
    if (p.startsWith('/v1/blobs')) {
      const a = this.acct;
      a.counts[r.status] = (a.counts[r.status] || 0) + 1;
      if (method === 'GET' && (r.status === 200 || r.status === 206)) a.bytesOut += r.body.length;
    }
    return r;
  }

  auth(token) {
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  // POST: on 201 r.id, and the blob in t.model.
  async create(token, length, extra = {}) {
    const r = await this.request('POST', '/v1/blobs', { ...TUS, ...this.auth(token), 'Upload-Length': String(length), ...extra });
    if (r.status === 201) {
      const m = /^\/v1\/blobs\/([0-9a-f]{64})$/.exec(r.headers.location || '');
      this.t.ok(m, `201 without a Location /v1/blobs/<64 hex>: ${r.headers.location}`);
      if (m) {
        r.id = m[1];
        this.t.model.set(r.id, { length, offset: 0, data: crypto.randomBytes(length) });
      }
    }
    return r;
  }

  head(id, token, extra = {}) {
    return this.request('HEAD', `/v1/blobs/${id}`, { ...TUS, ...this.auth(token), ...extra });
  }

  async patch(id, token, offset, buf, extra = {}) {
    const r = await this.request('PATCH', `/v1/blobs/${id}`, { ...TUS, ...this.auth(token), 'Upload-Offset': String(offset), 'Content-Type': OCTETS, ...extra }, buf);
    if (r.status === 204 && this.t.model.has(id)) this.took(this.t.model.get(id), Number(r.headers['upload-offset']));
    return r;
  }

  // The blob's offset is now `now`.
  took(b, now) {
    this.acct.bytesIn += now - b.offset;
    b.offset = now;
  }

  // The bytes [from, to) of the blob's content, PATCHed.
  put(id, token, from, to) {
    return this.patch(id, token, from, this.t.model.get(id).data.subarray(from, to));
  }

  del(id, token) {
    return this.request('DELETE', `/v1/blobs/${id}`, { ...TUS, ...this.auth(token) });
  }

  get(id, headers = {}) {
    return this.request('GET', `/v1/blobs/${id}`, headers);
  }

  // HEAD's Upload-Offset, or minus the status.
  async offsetOf(id, token) {
    const r = await this.head(id, token);
    return r.status === 200 ? Number(r.headers['upload-offset']) : -r.status;
  }

  // A PATCH whose body the caller writes: {req, response}.
  openPatch(id, token, offset, total) {
    const req = http.request({
      host: '127.0.0.1', port: this.node.port, method: 'PATCH', path: `/v1/blobs/${id}`, agent: false,
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
    this.t.ev(`http ${this.node.key} PATCH ${id.slice(0, 8)} (open, ${total} bytes at ${offset})`);
    return { req, response };
  }
}

// ---------------------------------------------------------------------------
// PostgreSQL

// A private PostgreSQL (--pg-cluster: tests/tools/pg_cluster.sh) on
// loopback, in a directory of its own; psql for queries.
class Pg {
  constructor(t, name) {
    this.t = t;
    this.dir = path.join(os.tmpdir(), `whisper-${name}-pg-${process.pid}`);
  }

  cmd(op, ...args) {
    execFileSync(this.t.o.pgCluster, [op, this.dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  // Starts it with databases `dbs` (conninfo: the first's).
  start(...dbs) {
    this.cmd('start', ...dbs);
    this.conninfo = fs.readFileSync(path.join(this.dir, 'conninfo'), 'utf8').trim();
  }

  restart() {
    this.t.ev('PostgreSQL: restart');
    this.cmd('restart');
  }

  // The same, while the test goes on.
  restartAsync() {
    this.t.ev('PostgreSQL: restart');
    return new Promise((resolve, reject) => {
      execFile(this.t.o.pgCluster, ['restart', this.dir], (err) => (err ? reject(err) : resolve()));
    });
  }

  stop() {
    try {
      this.cmd('stop');
    } catch (e) {
      this.t.ev(`pg stop: ${e.message}`);
    }
  }

  // A query's answer, as psql -tA prints it.
  sql(q, conninfo = this.conninfo) {
    return execFileSync('psql', [conninfo, '-tAc', q], { encoding: 'utf8' }).trim();
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

module.exports = {
  Fatal, short, delay, sha256, fileSize, RESULT_EVENTS, isResult, whisperCode,
  parseOptions, workDir, finish, exitWith, Test,
  Proc, Chat, Whisperd, Devices, httpRequest, TUS, OCTETS, Tus, Pg,
};
