#!/usr/bin/env node
// Crash safety of a persistent peer: SIGKILL at random points while two
// peers exchange thousands of messages, restart on the same --db, and check
// that nothing acknowledged is lost, no message key is used twice, no
// duplicate is accepted, and the conversation goes on.
//
//   node crash.js --peer CMD [--batch] [--messages N] [--seed S] [--kill-every R]
//                 [--workdir DIR] [--keep] [--timeout SECONDS] [--trace]
//
// CMD is a peer command line (the runner appends `--db PATH`); the word
// `libsignal` stands for the reference peer. With --batch the receiver
// decrypts with libwhisper's decrypt_batch (decrypt and store in history,
// one transaction per batch) and the test also checks the history. See
// README.md.
'use strict';

const fs = require('fs');
const path = require('path');
const { PeerProc, Rng, pb, splitCommand, short } = require('../interop/scenarios/harness');
const { Fatal, parseOptions, workDir, finish, exitWith } = require('./procs');

// ---------------------------------------------------------------------------
// options

const OPTIONS = {
  timeout: 60,
  own: { peer: [null, 'CMD'], batch: [false], messages: [3000, 'N'], seed: ['1', 'S'], killEvery: [50, 'R'] },
  check: (o, usage) => {
    if (!o.peer) {
      const def = path.resolve(__dirname, '..', '..', 'build', 'tests', 'interop', 'whisper-peer', 'whisper-peer');
      if (!fs.existsSync(def)) usage('--peer is required');
      o.peer = def;
    }
    if (o.peer === 'libsignal') {
      if (o.batch) usage('--batch needs a libwhisper peer: the libsignal peer has no decrypt_batch or history');
      const dir = path.resolve(__dirname, '..', 'interop', 'libsignal-peer');
      if (!fs.existsSync(path.join(dir, 'node_modules', '@signalapp', 'libsignal-client'))) {
        usage(`the reference peer is not installed: run "npm ci" in ${dir}`);
      }
      o.peer = `${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(dir, 'peer.js'))}`;
    }
    try {
      splitCommand(o.peer);
    } catch (e) {
      usage(e.message);
    }
    if (!(Number.isInteger(o.messages) && o.messages >= 10)) usage('--messages must be an integer >= 10');
    if (!(o.killEvery >= 2)) usage('--kill-every must be a number >= 2 (requests per kill on average)');
  },
};

// ---------------------------------------------------------------------------
// helpers

const B = (s) => Buffer.from(s, 'base64');
const WINDOW = 5; // out-of-order delivery: among the oldest WINDOW undelivered
const OVERDUE_RUNS = 2; // a message is delivered at the latest 2 runs after it was sent
const STRICT_CHAINS = 3; // replays on the newest 3 receiving chains must be duplicate_message
// --batch: decrypt_batch requests of 1..MAX_BATCH messages. The inbox may
// grow larger there: a message is delivered at the latest 4 runs after it
// was sent (at most 3 newer receiving chains: its own is still kept).
const MAX_BATCH = 50;
const OVERDUE_RUNS_BATCH = 4;

function spin(us) {
  const end = process.hrtime.bigint() + BigInt(Math.round(us)) * 1000n;
  while (process.hrtime.bigint() < end) {
    // busy wait: the peer keeps running, this process does not read meanwhile
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The message key a 1:1 ciphertext uses: its SignalMessage's ratchet key
// (field 1) and counter (field 2); for a PreKeySignalMessage the embedded
// SignalMessage (field 4). Layout: version byte, protobuf, 8-byte MAC.
function messageKeyOf(type, body) {
  let b = B(body);
  if (b.length < 1 || b[0] !== 0x34) throw new Error(`version byte ${b.length ? b[0].toString(16) : 'missing'}, not 34`);
  if (type === 'prekey') {
    const outer = pb.decode(b.subarray(1));
    const inner = pb.get(outer, 4);
    if (!inner || inner.wire !== 2) throw new Error('prekey message without an embedded message (field 4)');
    b = inner.value;
    if (b.length < 1 || b[0] !== 0x34) throw new Error(`embedded message version byte ${b.length ? b[0].toString(16) : 'missing'}`);
  }
  if (b.length < 1 + 8) throw new Error('SignalMessage shorter than version byte and MAC');
  const sm = pb.decode(b.subarray(1, b.length - 8));
  const rk = pb.get(sm, 1);
  const ctr = pb.get(sm, 2);
  if (!rk || rk.wire !== 2 || rk.value.length !== 33 || rk.value[0] !== 0x05) throw new Error('no 33-byte ratchet key (field 1)');
  if (!ctr || ctr.wire !== 0) throw new Error('no counter (field 2)');
  return { rk: rk.value.toString('hex'), counter: Number(ctr.value) };
}

// ---------------------------------------------------------------------------
// the test

const CATEGORIES = [
  ['setup', 'setup'],
  ['encrypt', 'exchange'],
  ['restart', 'restarts'],
  ['keys', 'key use'],
  ['delivery', 'delivery'],
  ['duplicates', 'duplicates'],
  ['history', 'history'], // --batch only
  ['final', 'final'],
];

class Side {
  constructor(key, name, device, registrationId, dir) {
    this.key = key;
    this.name = name;
    this.device = device;
    this.registrationId = registrationId;
    this.db = path.join(dir, `${key}.db`);
    this.log = path.join(dir, `${key}.stderr`);
    this.proc = null;
    this.gen = 0; // process generation (1 = first start)
    this.identityKey = null;
    this.other = null;
    this.pool = []; // acknowledged messages to this side not yet known delivered, in send order
    this.delivered = []; // messages this side decrypted (for replays)
    this.chains = []; // ratchet keys of the chains this side received on, oldest first
    this.chainSet = new Set();
    this.kills = 0;
    // --batch
    this.sentNo = 0; // acknowledged messages from this side: the sort key of the next one
    this.inbox = new Map(); // sort key -> every acknowledged message to this side
    this.retry = null; // a decrypt_batch whose response was lost: {entries, msgs, lost}
  }
}

class CrashTest {
  constructor(opts, dir) {
    this.o = opts;
    this.dir = dir;
    this.rng = new Rng(`crash/${opts.seed}`);
    this.alice = new Side('alice', 'alice', 1, 1001, dir);
    this.bob = new Side('bob', 'bob', 1, 2002, dir);
    this.alice.other = this.bob;
    this.bob.other = this.alice;
    this.sides = [this.alice, this.bob];
    this.events = [];
    this.tracePath = path.join(dir, 'events.log');
    this.traceFd = fs.openSync(this.tracePath, 'w');
    this.stats = {};
    for (const [c] of CATEGORIES) this.stats[c] = { passed: 0, failed: 0 };
    this.failures = [];
    this.printedFailures = 0;
    this.msgs = []; // every acknowledged message
    this.nextMsg = 0;
    this.keyUse = new Map(); // "side:rk:counter" -> message
    this.sendChains = new Map(); // side key -> {current rk, retired: Set}
    this.step = 0;
    this.runNo = 0;
    this.run = null;
    this.inSetup = true;
    this.killsEnabled = false;
    this.killEvery = opts.killEvery;
    this.setupKills = 0;
    this.n = {
      encSent: 0,
      encLost: 0,
      decSent: 0,
      decLost: 0,
      replays: 0,
      replaysAfterRestart: 0,
      replaysLenient: 0,
      outOfOrder: 0,
      dupInBatch: 0,
      maybeCommitted: 0,
      maybeNotCommitted: 0,
      killAfter: 0,
      killInFlight: 0,
      killRecovery: 0,
      restarts: 0,
      batches: 0,
      pipelined: 0,
      // --batch
      dbSent: 0,
      dbMsgs: 0,
      dbMax: 0,
      dbLarge: 0,
      dbLost: 0,
      dbLostInFlight: 0,
      dbForgotten: 0,
      retryIdentical: 0,
      retryMerged: 0,
      retryChains: 0,
      retryCommitted: 0,
      retryCommittedKilled: 0,
      retryNotCommitted: 0,
      retryRelost: 0,
      alteredReplays: 0,
      probes: 0,
      historyRows: 0,
    };
  }

  // ---- events and checks ----

  ev(text) {
    const line = `${this.step}\t${text}`;
    this.events.push(line);
    if (this.events.length > 60) this.events.shift();
    fs.writeSync(this.traceFd, line + '\n');
    if (this.o.trace) process.stderr.write(line + '\n');
  }

  check(cat, cond, text) {
    if (cond) {
      this.stats[cat].passed++;
      return true;
    }
    this.stats[cat].failed++;
    const msg = `step ${this.step}: ${text}`;
    this.failures.push({ cat, msg });
    this.ev(`FAIL ${cat}: ${text}`);
    if (this.printedFailures < 20) {
      this.printedFailures++;
      process.stdout.write(`FAIL ${cat}: ${msg}\n`);
      if (this.printedFailures === 1) {
        process.stdout.write(`  the events before it (seed ${this.o.seed}; full trace in ${this.tracePath}):\n`);
        for (const e of this.events.slice(-30)) process.stdout.write(`    ${e}\n`);
      }
    } else if (this.printedFailures === 20) {
      this.printedFailures++;
      process.stdout.write('  (further failures only in the trace)\n');
    }
    return false;
  }

  mid(m) {
    const sk = m.seq === undefined ? '' : ` sk${m.seq}`;
    return `m${m.id}(${m.from.key}->${m.to.key} ${m.type} ${m.rk.slice(2, 10)}#${m.counter}${sk})`;
  }

  // ---- processes ----

  newProc(side) {
    side.gen++;
    const p = new PeerProc({
      role: side.key,
      label: `generation ${side.gen}`,
      cmd: this.o.peer,
      dbPath: side.db,
      logPath: side.log,
      timeoutMs: this.o.timeout * 1000,
    });
    p.killedByUs = false;
    p.start();
    side.proc = p;
    this.ev(`${side.key} start (generation ${side.gen})`);
    return p;
  }

  kill(side, how) {
    const p = side.proc;
    p.killedByUs = true;
    this.ev(`${side.key} KILL -9 ${how}`);
    if (!p.exited) {
      try {
        p.proc.kill('SIGKILL');
      } catch {}
    }
  }

  // A peer died by itself (not our SIGKILL): a failure, then a restart.
  async diedUnexpectedly(side, cat) {
    const p = side.proc;
    await p.exitPromise;
    const how = p.exitSignal ? `was killed by ${p.exitSignal}` : `exited with code ${p.exitCode}`;
    this.check(cat, false, `${side.key} (generation ${side.gen}) ${how} without being killed by the test: ${p.broken || ''}${p.stderrTail()}`);
  }

  // Starts (or restarts) a side's process on its --db and sends init; the
  // identity must be kept. With recoveryKill the first attempt is killed
  // at a random moment of its start (store open, WAL recovery, init).
  async start(side, { recoveryKill = false } = {}) {
    let broken = 0;
    let spawnRetries = 0;
    for (let attempt = 0; ; attempt++) {
      const p = this.newProc(side);
      const init = { op: 'init', name: side.name, device_id: side.device, registration_id: side.registrationId };
      if (recoveryKill && attempt === 0) {
        const pr = p.req(init).then(
          (r) => r,
          () => null
        );
        await sleep(this.rng.int(25));
        this.n.killRecovery++;
        this.kill(side, 'during its start');
        await p.exitPromise;
        const r = await pr;
        this.ev(`${side.key} < init ${r ? (r.ok ? 'ok (answered before the kill)' : r.code) : '(no response)'}`);
        if (r) this.check('restart', r.ok && r.identity_key === side.identityKey, `${side.key} init during the kill: expected ok with the stored identity, got ${JSON.stringify(r)}`);
        continue;
      }
      let res = null;
      try {
        res = await p.req(init);
      } catch (e) {
        // The executable could not be run at all (being relinked by a
        // build, say): not the store's fault; wait and retry for a while.
        if (/^cannot (run|start) /.test(p.broken || '') && spawnRetries++ < 40) {
          this.ev(`${side.key} ${p.broken}: retrying`);
          await sleep(250);
          continue;
        }
        broken++;
        await this.diedUnexpectedly(side, this.inSetup ? 'setup' : 'restart');
        if (broken >= 3) throw new Fatal(`${side.key} cannot be started on ${side.db}${p.stderrTail()}`);
        continue;
      }
      const cat = this.inSetup && side.gen === 1 ? 'setup' : 'restart';
      this.ev(`${side.key} < init ${res.ok ? 'ok' : res.code}`);
      if (side.identityKey === null) {
        this.check(cat, res.ok && typeof res.identity_key === 'string' && B(res.identity_key).length === 33, `${side.key} init: expected ok with a 33-byte identity_key, got ${JSON.stringify(res)}`);
        side.identityKey = res.identity_key;
      } else {
        this.check(cat, res.ok && res.identity_key === side.identityKey, `${side.key} init after restart: expected the stored identity key ${short(side.identityKey, 12)}, got ${JSON.stringify(res)}`);
      }
      return;
    }
  }

  async restart(side) {
    this.n.restarts++;
    const recoveryKill = this.rng.int(100) < 10;
    await this.start(side, { recoveryKill });
    // The session survives (bob has one once a PreKey message went through).
    let expect = true;
    if (side === this.bob && !side.delivered.length) expect = side.pool.some((m) => m.state === 'maybe') ? null : false;
    const r = await this.simple(side, { op: 'has_session', peer: side.other.name, device_id: side.other.device }, 'restart');
    if (r) this.check('restart', r.ok && (expect === null || r.has_session === expect), `${side.key} has_session after restart: expected ${expect === null ? 'a boolean' : expect}, got ${JSON.stringify(r)}`);
    // --batch: half the time, what a lost decrypt_batch left in history.
    if (this.o.batch && this.rng.int(100) < 50 && side.retry) await this.probe(side);
  }

  // One request outside the batches (no kill); null if the peer broke.
  async simple(side, req, cat) {
    this.ev(`${side.key} > ${req.op}`);
    try {
      const r = await side.proc.req(req);
      this.ev(`${side.key} < ${req.op} ${r.ok ? 'ok' : r.code}`);
      return r;
    } catch (e) {
      await this.diedUnexpectedly(side, cat);
      await this.start(side);
      return null;
    }
  }

  // ---- batches ----

  // Writes the requests of `items` to `side` at once (pipelined) and, with
  // a kill plan, kills the process once `after` responses were read (plus a
  // random delay); restarts it after a kill. Every response read is
  // handled, in order, also those read after the kill was sent (they were
  // written before the process died); the others count as lost.
  async batch(side, items, plan) {
    const p = side.proc;
    const other = side.other;
    const reqs = items.map((it) =>
      it.kind === 'encrypt'
        ? { op: 'encrypt', peer: other.name, device_id: other.device, plaintext: it.pt }
        : it.kind === 'dbatch'
          ? { op: 'decrypt_batch', messages: it.entries.map((e) => ({ peer: other.name, device_id: other.device, type: e.msg.type, body: e.msg.body, id: e.id, sort_key: e.sk })) }
          : { op: 'decrypt', peer: other.name, device_id: other.device, type: it.msg.type, body: it.msg.body }
    );
    this.n.batches++;
    if (items.length > 1) this.n.pipelined += items.length;
    for (const it of items) {
      if (it.kind === 'encrypt') {
        this.n.encSent++;
        this.ev(`${side.key} > encrypt to ${other.key} (${B(it.pt).length} bytes)`);
      } else if (it.kind === 'dbatch') {
        const k = it.entries.length;
        this.n.dbSent++;
        this.n.dbMsgs += k;
        this.n.decSent += k;
        if (k > this.n.dbMax) this.n.dbMax = k;
        if (k > 20) this.n.dbLarge++;
        const retry = it.retry ? ` (retry of a batch lost ${side.retry.lost} time${side.retry.lost > 1 ? 's' : ''}${it.identical ? ', identical' : ''})` : '';
        this.ev(`${side.key} > decrypt_batch of ${k}${retry}: ${it.entries.map((e) => this.entryText(e)).join(' ')}`);
      } else {
        this.n.decSent++;
        this.ev(`${side.key} > decrypt ${this.mid(it.msg)} [${it.msg.state}${it.replay ? ', replay' : ''}]`);
      }
    }
    // Responses are handled as they are read (in order), so the trace shows
    // which ones came before the kill; the ones never read come last.
    let unexpected = false;
    const lostOne = (it) => {
      if (!p.killedByUs) unexpected = true;
      if (it.kind === 'encrypt') {
        this.n.encLost++;
        this.ev(`${side.key} < encrypt: no response (lost to the kill)`);
        return;
      }
      if (it.kind === 'dbatch') {
        this.n.dbLost++;
        this.dbatchLost(side, it, 'no response (lost to the kill)');
        return;
      }
      this.n.decLost++;
      const m = it.msg;
      if (m.state === 'pending') m.state = 'maybe';
      if (m.state === 'maybe') m.maybeN++;
      this.ev(`${side.key} < decrypt ${this.mid(m)}: no response (lost to the kill), now ${m.state}`);
    };
    const proms = reqs.map((r, i) =>
      p.req(r).then(
        (v) =>
          items[i].kind === 'encrypt'
            ? this.onEncrypt(side, items[i], v)
            : items[i].kind === 'dbatch'
              ? plan && plan.forget
                ? this.dbatchForgotten(side, items[i], v)
                : this.onDecryptBatch(side, items[i], v)
              : this.onDecrypt(side, items[i], v),
        () => lostOne(items[i])
      )
    );
    if (plan) {
      if (plan.after > 0) await proms[plan.after - 1];
      let how = plan.after === reqs.length ? `after all ${reqs.length} responses` : `after ${plan.after}/${reqs.length} responses`;
      if (plan.forget) how += ' (the decrypt_batch response dropped unused: the app died before using it)';
      if (plan.spinUs) {
        spin(plan.spinUs);
        how += ` + ${plan.spinUs}us`;
      } else if (plan.timerMs !== undefined) {
        await sleep(plan.timerMs);
        how += ` + ${plan.timerMs}ms timer`;
      }
      if (plan.after === reqs.length) this.n.killAfter++;
      else this.n.killInFlight++;
      if (items.some((it, i) => it.kind === 'dbatch' && i >= plan.after)) this.n.dbLostInFlight++;
      if (plan.forget) this.n.dbForgotten++;
      side.kills++;
      this.kill(side, how);
    }
    await Promise.all(proms);
    if (plan) await p.exitPromise;
    if (unexpected) await this.diedUnexpectedly(side, this.inSetup ? 'setup' : 'encrypt');
    if (plan || unexpected || p.exited) await this.restart(side);
  }

  onEncrypt(side, it, res) {
    const other = side.other;
    if (!res.ok) this.ev(`${side.key} < encrypt ${res.code}`);
    if (!this.check('encrypt', res.ok, `${side.key} encrypt to ${other.key}: expected ok, got ${res.code}: ${res.error}`)) return;
    // alice's first messages are PreKey messages (until she decrypted bob's);
    // from then on, both send whisper messages.
    const expType = this.inSetup && side === this.alice ? 'prekey' : 'whisper';
    this.check('encrypt', res.type === expType, `${side.key} encrypt: expected type ${expType}, got ${res.type}`);
    let key;
    try {
      key = messageKeyOf(res.type, res.body);
    } catch (e) {
      this.check('keys', false, `${side.key} encrypt: cannot parse the ciphertext: ${e.message}: ${short(res.body, 80)}`);
      return;
    }
    const m = {
      id: this.nextMsg++,
      from: side,
      to: other,
      pt: it.pt,
      type: res.type,
      body: res.body,
      rk: key.rk,
      counter: key.counter,
      run: this.runNo,
      state: 'pending',
      okN: 0,
      dupResolved: false,
      maybeN: 0,
      deliveredGen: 0,
    };
    if (this.o.batch) {
      // The server's sequence: the sender's message number; the client
      // message id was drawn with the request.
      m.seq = ++side.sentNo;
      m.mid = it.mid;
      other.inbox.set(m.seq, m);
    }
    this.msgs.push(m);
    other.pool.push(m);
    this.ev(`${side.key} < encrypt ok: ${this.mid(m)}`);
    // No message key used twice.
    const k = `${side.key}:${m.rk}:${m.counter}`;
    const prev = this.keyUse.get(k);
    this.check('keys', !prev || prev.body === m.body, `message key used twice: ${this.mid(m)} has the ratchet key and counter of ${prev ? this.mid(prev) : ''} with another ciphertext`);
    if (!prev) this.keyUse.set(k, m);
    // A sender never goes back to a sending chain it left.
    let sc = this.sendChains.get(side.key);
    if (!sc) this.sendChains.set(side.key, (sc = { current: null, last: -1, retired: new Set() }));
    if (sc.current !== m.rk) {
      this.check('keys', !sc.retired.has(m.rk), `${side.key} went back to its old sending chain ${m.rk.slice(2, 10)} (${this.mid(m)})`);
      if (sc.current) sc.retired.add(sc.current);
      sc.current = m.rk;
      sc.last = -1;
    }
    this.check('keys', m.counter > sc.last, `${side.key} counter went back on chain ${m.rk.slice(2, 10)}: ${m.counter} after ${sc.last} (${this.mid(m)})`);
    sc.last = m.counter;
  }

  // Distinct receiving chains created on `side` after the chain of rk.
  chainAge(side, rk) {
    const i = side.chains.lastIndexOf(rk);
    return i < 0 ? Infinity : side.chains.length - 1 - i;
  }

  markDelivered(side, m) {
    m.state = 'delivered';
    m.deliveredGen = side.gen;
    const i = side.pool.indexOf(m);
    if (i >= 0) side.pool.splice(i, 1);
    side.delivered.push(m);
    if (side.delivered.length > 200) side.delivered.shift();
    if (!side.chainSet.has(m.rk)) {
      side.chainSet.add(m.rk);
      side.chains.push(m.rk);
    }
  }

  onDecrypt(side, it, res) {
    const m = it.msg;
    const what = `${side.key} decrypt ${this.mid(m)}`;
    const got = res.ok ? (res.plaintext === m.pt ? 'ok with the right plaintext' : `ok with a wrong plaintext ${short(res.plaintext, 24)}`) : `${res.code}: ${res.error}`;
    this.ev(`${side.key} < decrypt ${this.mid(m)} ${res.ok ? 'ok' : res.code}`);
    switch (m.state) {
      case 'pending':
      case 'maybe':
        this.settle(side, m, res.ok, res.plaintext, res.code, what, got, 'retried after a kill');
        break;
      case 'delivered': {
        // A replay: never a plaintext again.
        this.n.replays++;
        if (m.deliveredGen < side.gen) this.n.replaysAfterRestart++;
        const age = this.chainAge(side, m.rk);
        const restarted = m.deliveredGen < side.gen ? ', the receiver restarted since' : '';
        if (res.ok) {
          m.okN++;
          this.check('duplicates', false, `${what} again (already decrypted${restarted}): a duplicate was accepted, plaintext returned twice`);
        } else if (age < STRICT_CHAINS) {
          this.check('duplicates', res.code === 'duplicate_message', `${what} again (already decrypted${restarted}): expected duplicate_message, got ${got}`);
        } else {
          // The chain may have been dropped (5 receiving chains are kept): then invalid_message.
          this.n.replaysLenient++;
          this.check('duplicates', res.code === 'duplicate_message' || res.code === 'invalid_message', `${what} again (already decrypted, old chain${restarted}): expected duplicate_message or invalid_message, got ${got}`);
        }
        break;
      }
      default:
        // lost: already reported
        break;
    }
  }

  // A decrypt of m: acknowledged and not yet decrypted ('pending'), it
  // must decrypt now; tried before with the answer lost ('maybe', `why`),
  // it did not commit then (decrypts now) or did (duplicate_message).
  // Counts it and moves it on; 'ok', 'dup', or null (lost).
  settle(side, m, ok, plaintext, code, what, got, why) {
    if (m.state === 'pending') {
      if (this.check('delivery', ok && plaintext === m.pt, `${what} (acknowledged, not yet decrypted): expected ok with its plaintext, got ${got}`) || ok) {
        m.okN++;
        this.markDelivered(side, m);
        return 'ok';
      }
      this.lost(side, m);
      return null;
    }
    if (ok) {
      this.check('delivery', plaintext === m.pt, `${what} (${why}): expected its plaintext, got ${got}`);
      m.okN++;
      this.n.maybeNotCommitted++;
      this.markDelivered(side, m);
      return 'ok';
    }
    if (code === 'duplicate_message') {
      this.check('delivery', true, '');
      m.dupResolved = true;
      this.n.maybeCommitted++;
      this.markDelivered(side, m);
      return 'dup';
    }
    this.check('delivery', false, `${what} (${why}): expected ok or duplicate_message, got ${got}`);
    this.lost(side, m);
    return null;
  }

  lost(side, m) {
    m.state = 'lost';
    const i = side.pool.indexOf(m);
    if (i >= 0) side.pool.splice(i, 1);
  }

  // ---- --batch: decrypt_batch and history ----

  // One message of a decrypt_batch request, for the trace: the message,
  // its state when sent and what makes it special.
  entryText(e) {
    const m = e.msg;
    const flags = [m.state === 'pending' ? 'new' : m.state];
    if (e.dupOf) flags.push('again in this batch');
    if (e.replay) flags.push('replay');
    if (e.altered) flags.push(`replay under another ${e.altered}`);
    if (m.state === 'maybe') flags.push(`lost in attempt ${m.lostIdx}`);
    return `m${m.id}#sk${e.sk}[${flags.join(', ')}]`;
  }

  // A decrypt_batch entry for message m: under its id and sort key.
  entry(m, extra = {}) {
    return Object.assign({ msg: m, id: m.mid, sk: m.seq }, extra);
  }

  // A redelivery of an already decrypted message: mostly under its own id
  // and sort key (refused from history, however old its chain), sometimes
  // under another id or sort key (then the session refuses it).
  replayEntry(side) {
    const d = side.delivered;
    const m = d[d.length - 1 - this.rng.int(d.length)];
    const r = this.rng.int(100);
    if (r < 10) return this.entry(m, { replay: true, altered: 'id', id: this.newId() });
    if (r < 20) return this.entry(m, { replay: true, altered: 'sort key', sk: 3000000000 + this.rng.int(1000000000) });
    return this.entry(m, { replay: true });
  }

  newId() {
    const len = this.rng.int(100) < 80 ? 16 : this.rng.range(1, 64);
    return this.rng.bytes(len).toString('base64');
  }

  batchTarget() {
    const r = this.rng.int(100);
    if (r < 35) return this.rng.range(1, 5);
    if (r < 65) return this.rng.range(6, 20);
    return this.rng.range(21, MAX_BATCH);
  }

  overdue(m) {
    return this.runNo - m.run > (this.o.batch ? OVERDUE_RUNS_BATCH : OVERDUE_RUNS);
  }

  // The messages of one decrypt_batch to `side`, about `k` of them. If a
  // batch's response was lost, this is its retry: the same request again,
  // or its messages in another order with new ones added. Then overdue
  // messages, then messages of the inbox in random order, sometimes one
  // twice, sometimes a redelivery of a decrypted one.
  buildEntries(side, k, { replays = true } = {}) {
    const entries = [];
    const taken = new Set();
    const r = side.retry;
    const overdue = side.pool.filter((m) => this.overdue(m));
    if (r) {
      if (!overdue.some((m) => !r.msgs.has(m)) && this.rng.int(100) < 60) {
        this.n.retryIdentical++;
        return { entries: r.entries.slice(), retry: true, identical: true };
      }
      this.n.retryMerged++;
      entries.push(...this.shuffle(r.entries.slice()));
      for (const e of r.entries) if (!e.replay) taken.add(e.msg);
    }
    // (more overdue messages than fit wait for the next batch: they have a
    // run or two to spare)
    for (const m of overdue) {
      if (!taken.has(m) && entries.length < MAX_BATCH) {
        entries.push(this.entry(m));
        taken.add(m);
      }
    }
    // When the inbox has fewer than k, some batches are filled up with
    // redeliveries (a server sending a whole page again).
    const pad = replays && this.rng.int(100) < 30;
    const again = []; // messages to put in twice
    while (entries.length + again.length < k) {
      const x = this.rng.int(100);
      const cand = side.pool.filter((m) => !taken.has(m));
      if (replays && side.delivered.length && (x < 8 || (!cand.length && pad))) {
        entries.push(this.replayEntry(side));
        continue;
      }
      if (!cand.length) break;
      const m = this.rng.int(100) < 50 ? cand[0] : cand[this.rng.int(cand.length)];
      if (m !== cand[0]) this.n.outOfOrder++;
      entries.push(this.entry(m));
      taken.add(m);
      if (entries.length + again.length < k && this.rng.int(100) < 4) again.push(m);
    }
    // the same message again, somewhere after its first time in the batch
    for (const m of again) {
      const first = entries.findIndex((e) => e.msg === m);
      entries.splice(this.rng.range(first + 1, entries.length), 0, this.entry(m, { dupOf: true }));
    }
    return { entries, retry: !!r, identical: false };
  }

  shuffle(a) {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  dbatchItem(built) {
    return { kind: 'dbatch', entries: built.entries, retry: built.retry, identical: built.identical };
  }

  // --batch: one pipelined batch to one side: on the sender of the current
  // run some encrypts, and (at a random place among them) at most one
  // decrypt_batch when the side reads its inbox: always when a batch must
  // be retried or a message is overdue, else one time in eight, so the
  // inbox grows and batches get large.
  buildBatchMode(side) {
    const items = [];
    let encLeft = side === this.run.sender ? this.run.left : 0;
    if (encLeft > 0) {
      const nEnc = Math.min(encLeft, this.batchSize());
      for (let i = 0; i < nEnc; i++) {
        items.push({ kind: 'encrypt', pt: this.rng.bytes(this.rng.range(0, 160)).toString('base64'), mid: this.newId() });
      }
      encLeft -= nEnc;
      this.run.left = encLeft;
    }
    const read =
      side.retry ||
      side.pool.some((m) => this.overdue(m)) ||
      (side.pool.length && this.rng.int(100) < 12) ||
      (side.delivered.length && this.rng.int(100) < 4);
    if (read) {
      const built = this.buildEntries(side, this.batchTarget());
      if (built.entries.length) items.splice(this.rng.int(items.length + 1), 0, this.dbatchItem(built));
    }
    return items;
  }

  // A decrypt_batch got no response (a kill), or failed as a whole: its
  // new messages may or may not have been committed (all or none). The
  // next decrypt_batch to this side retries it. A retry that is lost too
  // (it holds every message of the lost one, maybe more) makes a chain:
  // each new message remembers the attempt it first was lost in.
  dbatchLost(side, it, why, dropped = false) {
    let r = side.retry;
    if (r) this.n.retryRelost++;
    else r = { entries: null, msgs: new Set(), lost: 0, dropped: false };
    r.lost++;
    if (dropped) r.dropped = true;
    r.entries = it.entries;
    const seen = new Set();
    for (const e of it.entries) {
      const m = e.msg;
      if (e.replay || seen.has(m)) continue;
      seen.add(m);
      if (m.state === 'pending') {
        m.state = 'maybe';
        m.lostIdx = r.lost;
        r.msgs.add(m);
      }
      if (m.state === 'maybe') {
        m.maybeN++;
        delete m.probeStored; // a probe before this attempt says nothing about it
      }
    }
    side.retry = r.msgs.size ? r : null;
    if (side.retry && r.lost === 1) this.n.retryChains++;
    this.ev(`${side.key} < decrypt_batch of ${it.entries.length}: ${why}; ${r.msgs.size} messages now maybe (lost attempt ${r.lost})`);
  }

  // The response of a decrypt_batch read just before its process was
  // killed and dropped (the app died before it could use it): for the test
  // as if it were lost; the retry must find every message stored.
  dbatchForgotten(side, it, res) {
    const rs = res.ok && Array.isArray(res.results) ? res.results.map((r) => (r.ok ? 'ok' : r.code)).join(' ') : `${res.code}: ${res.error}`;
    this.ev(`${side.key} < decrypt_batch of ${it.entries.length} (read, dropped unused): ${rs}`);
    this.dbatchLost(side, it, 'response dropped unused', true);
  }

  onDecryptBatch(side, it, res) {
    const ents = it.entries;
    if (!res.ok || !Array.isArray(res.results) || res.results.length !== ents.length) {
      const got = res.ok ? `${Array.isArray(res.results) ? res.results.length : 'no'} results` : `${res.code}: ${res.error}`;
      this.check('delivery', false, `${side.key} decrypt_batch of ${ents.length}: expected ok with ${ents.length} results, got ${got}`);
      this.dbatchLost(side, it, `failed (${got})`);
      return;
    }
    const short_ = (r) => (r && r.ok ? 'ok' : r && r.code === 'duplicate_message' ? 'dup' : r ? r.code : '?');
    this.ev(`${side.key} < decrypt_batch of ${ents.length}: ${ents.map((e, i) => `m${e.msg.id}:${short_(res.results[i])}`).join(' ')}`);
    const seen = new Set();
    const resolved = []; // messages of the lost attempts: {m, dup}
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      const m = e.msg;
      const r = res.results[i] || {};
      const ok = r.ok === true;
      const got = ok ? (r.plaintext === m.pt ? 'ok with the right plaintext' : `ok with a wrong plaintext ${short(r.plaintext, 24)}`) : `${r.code}: ${r.error}`;
      const what = `${side.key} decrypt_batch message ${i + 1}/${ents.length} ${this.mid(m)}`;
      const first = !seen.has(m);
      if (!e.replay) seen.add(m);
      if (e.altered) {
        // The same ciphertext under another id or sort key: history does
        // not know it, the session refuses it.
        this.n.replays++;
        this.n.alteredReplays++;
        if (ok) {
          m.okN++;
          this.check('duplicates', false, `${what} again under another ${e.altered} (already decrypted): a duplicate was accepted, plaintext returned twice`);
        } else if (this.chainAge(side, m.rk) < STRICT_CHAINS) {
          this.check('duplicates', r.code === 'duplicate_message', `${what} again under another ${e.altered} (already decrypted): expected duplicate_message, got ${got}`);
        } else {
          this.n.replaysLenient++;
          this.check('duplicates', r.code === 'duplicate_message' || r.code === 'invalid_message', `${what} again under another ${e.altered} (already decrypted, old chain): expected duplicate_message or invalid_message, got ${got}`);
        }
        continue;
      }
      if (!first || m.state === 'delivered') {
        // Stored already (earlier in this batch, or before): refused from
        // history, whatever its chain.
        this.n.replays++;
        if (!first) this.n.dupInBatch++;
        else if (m.deliveredGen < side.gen) this.n.replaysAfterRestart++;
        if (ok) m.okN++;
        const where = !first ? 'earlier in the same batch' : m.deliveredGen < side.gen ? 'before, the receiver restarted since' : 'before';
        this.check('duplicates', !ok && r.code === 'duplicate_message', `${what} again under its id and sort key (stored ${where}): expected duplicate_message, got ${ok ? 'a plaintext: a duplicate was accepted' : got}`);
        continue;
      }
      switch (m.state) {
        case 'pending':
        case 'maybe': {
          // 'maybe': in a batch whose response was lost: committed then (all of it) or not.
          const was = m.state;
          const how = this.settle(side, m, ok, r.plaintext, r.code, what, got, 'retried after a lost batch');
          if (was === 'maybe' && how) resolved.push({ m, dup: how === 'dup' });
          break;
        }
        default:
          break; // lost: already reported
      }
    }
    if (it.retry) this.retryResolved(side, resolved);
  }

  // The retry of a lost decrypt_batch (chain of `r.lost` lost attempts,
  // each holding the messages of the one before): every attempt committed
  // all its new messages or none, and a later attempt that commits finds
  // the earlier ones' messages stored. So there is an attempt J such that
  // the messages first lost in attempts 1..J are duplicate_message and the
  // others decrypt now.
  retryResolved(side, resolved) {
    const r = side.retry;
    side.retry = null;
    if (!r) return;
    const dups = resolved.filter((x) => x.dup);
    const oks = resolved.filter((x) => !x.dup);
    const maxDup = Math.max(-1, ...dups.map((x) => x.m.lostIdx));
    const minOk = Math.min(Infinity, ...oks.map((x) => x.m.lostIdx));
    const list = () => this.byAttempt(resolved.map((x) => [x.m, x.dup ? 'duplicate_message' : 'plaintext']));
    this.check('delivery', maxDup < minOk, `${side.key}: a decrypt_batch lost ${r.lost} time(s) was retried and only part of a lost attempt had committed (an attempt commits all its new messages or none; a later one that commits finds the earlier ones' stored): ${list()}`);
    this.check('delivery', resolved.length === r.msgs.size, `${side.key}: the retry of a lost decrypt_batch resolved ${resolved.length} of its ${r.msgs.size} messages`);
    if (dups.length) this.n.retryCommitted++;
    else this.n.retryNotCommitted++;
    if (dups.length && !r.dropped) this.n.retryCommittedKilled++;
    for (const x of resolved) {
      if (x.m.probeStored !== undefined) {
        this.check('history', x.m.probeStored === x.dup, `${this.mid(x.m)}: history ${x.m.probeStored ? 'held' : 'did not hold'} it after the lost batch, but its retry gave ${x.dup ? 'duplicate_message' : 'a plaintext'}`);
      }
      delete x.m.probeStored;
      delete x.m.lostIdx;
    }
  }

  // The history rows of `side`'s conversation with the other side, checked
  // against the messages known: a row is a delivered (or, with `maybes`,
  // possibly delivered) message, under its id and sort key with its
  // plaintext, once; newest first. Returns the rows by sort key.
  checkRows(side, rows, cat, what, { maybes = false } = {}) {
    const bySk = new Map();
    let prev = Infinity;
    let bad = 0;
    const fail = (text) => {
      if (bad++ < 5) this.check(cat, false, `${what}: ${text}`);
    };
    for (const row of rows) {
      if (!(row && Number.isInteger(row.sort_key) && typeof row.id === 'string' && typeof row.plaintext === 'string')) {
        fail(`a malformed row ${short(JSON.stringify(row), 80)}`);
        continue;
      }
      if (row.sort_key >= prev) fail(`rows out of order: sort key ${row.sort_key} after ${prev} (newest first expected)`);
      prev = row.sort_key;
      const m = side.inbox.get(row.sort_key);
      if (!m || m.mid !== row.id) {
        fail(`a row that is no acknowledged message: sort key ${row.sort_key}, id ${short(row.id, 24)}${m ? ` (${this.mid(m)} has id ${short(m.mid, 24)})` : ''}`);
        continue;
      }
      if (bySk.has(row.sort_key)) fail(`${this.mid(m)} stored twice`);
      bySk.set(row.sort_key, m);
      if (!(m.state === 'delivered' || (maybes && m.state === 'maybe'))) fail(`${this.mid(m)} is stored but ${m.state === 'pending' ? 'was never decrypted' : `is ${m.state}`}`);
      if (row.plaintext !== m.pt) fail(`${this.mid(m)} stored with a wrong plaintext ${short(row.plaintext, 24)}`);
    }
    if (bad > 5) this.check(cat, false, `${what}: ${bad - 5} more problems`);
    if (!bad) this.check(cat, true, '');
    return bySk;
  }

  // [message, outcome] pairs of a lost decrypt_batch, for a failure:
  // "attempt 1: duplicate_message m3 m4 (sk 12 13); plaintext m5 (sk 14)".
  byAttempt(pairs) {
    const groups = new Map();
    for (const [m, what] of pairs) {
      const k = `attempt ${m.lostIdx}: ${what}`;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(m);
    }
    return [...groups.keys()]
      .sort()
      .map((k) => `${k} ${groups.get(k).map((m) => `m${m.id}`).join(' ')} (sk ${groups.get(k).map((m) => m.seq).join(' ')})`)
      .join('; ');
  }

  // After a restart with a lost decrypt_batch outstanding: the newest rows
  // of the history show whether its attempts committed: all new messages
  // of an attempt or none; what the probe saw, the retry must confirm.
  async probe(side) {
    const r = side.retry;
    const maybes = [...r.msgs];
    const minSk = Math.min(...maybes.map((m) => m.seq));
    let known = 0;
    for (const m of side.inbox.values()) if (m.seq >= minSk && m.state === 'delivered') known++;
    const limit = known + maybes.length + 1;
    this.n.probes++;
    const res = await this.simple(side, { op: 'history', peer: side.other.name, limit }, 'history');
    if (!res) return;
    if (!this.check('history', res.ok && Array.isArray(res.messages), `${side.key} history after a restart: expected ok with messages, got ${JSON.stringify(res).slice(0, 200)}`)) return;
    const what = `${side.key} history of the ${limit} newest after a restart with a lost decrypt_batch`;
    const rows = res.messages.filter((x) => !(x && x.sort_key < minSk));
    const bySk = this.checkRows(side, rows, 'history', what, { maybes: true });
    let missing = 0;
    for (const m of side.inbox.values()) {
      if (m.seq >= minSk && m.state === 'delivered' && !bySk.has(m.seq)) {
        if (missing++ < 5) this.check('history', false, `${what}: ${this.mid(m)} was decrypted (acknowledged by a response) but is not stored`);
      }
    }
    const stored = maybes.filter((m) => bySk.has(m.seq));
    const absent = maybes.filter((m) => !bySk.has(m.seq));
    const maxStored = Math.max(-1, ...stored.map((m) => m.lostIdx));
    const minAbsent = Math.min(Infinity, ...absent.map((m) => m.lostIdx));
    this.check('history', maxStored < minAbsent, `${what}: part of a lost decrypt_batch is stored: ${this.byAttempt(maybes.map((m) => [m, bySk.has(m.seq) ? 'stored' : 'absent']))}`);
    for (const m of maybes) m.probeStored = bySk.has(m.seq);
    this.ev(`${side.key} history probe: ${stored.length} of the ${maybes.length} messages of the lost batch stored`);
  }

  // The whole history of `side`'s conversation: exactly the messages it
  // decrypted, each once, with its plaintext, in sort-key order (newest
  // first); read at once and in pages of random sizes, the same.
  async checkHistory(side, cat) {
    const peer = side.other.name;
    const res = await this.simple(side, { op: 'history', peer, limit: 4294967295 }, cat);
    if (!res) return;
    if (!this.check(cat, res.ok && Array.isArray(res.messages), `${side.key} history: expected ok with messages, got ${JSON.stringify(res).slice(0, 200)}`)) return;
    const rows = res.messages;
    const what = `${side.key} history (${rows.length} messages)`;
    const bySk = this.checkRows(side, rows, cat, what);
    let delivered = 0;
    let missing = 0;
    for (const m of side.inbox.values()) {
      if (m.state !== 'delivered') continue;
      delivered++;
      if (!bySk.has(m.seq) && missing++ < 5) this.check(cat, false, `${what}: ${this.mid(m)} was decrypted but is not stored`);
    }
    this.check(cat, rows.length === delivered, `${what}: expected the ${delivered} messages ${side.key} decrypted, ${rows.length} stored`);
    this.n.historyRows += rows.length;
    // The same in pages.
    const paged = [];
    for (let guard = 0; guard < 100000; guard++) {
      const req = { op: 'history', peer, limit: this.rng.range(1, 300) };
      const last = paged[paged.length - 1];
      if (last) Object.assign(req, { before_sort_key: last.sort_key, before_id: last.id });
      const pr = await side.proc.req(req).catch(() => null);
      if (!this.check(cat, pr && pr.ok && Array.isArray(pr.messages), `${side.key} history page after ${paged.length}: expected ok, got ${JSON.stringify(pr).slice(0, 200)}`)) return;
      paged.push(...pr.messages);
      if (pr.messages.length < req.limit) break;
    }
    const same = paged.length === rows.length && paged.every((x, i) => x.sort_key === rows[i].sort_key && x.id === rows[i].id && x.plaintext === rows[i].plaintext);
    this.check(cat, same, `${side.key} history in pages: ${paged.length} rows, not the ${rows.length} rows read at once`);
    this.ev(`${side.key} history: ${rows.length} messages, as expected${same ? ', also in pages' : ''}`);
  }

  // ---- the schedule ----

  newRun() {
    this.runNo++;
    const prev = this.run ? this.run.sender : this.bob;
    const sender = this.rng.int(100) < 75 ? prev.other : prev;
    // --batch: longer runs more often, so the inbox has enough for large batches
    const len = this.rng.int(100) < (this.o.batch ? 75 : 85) ? this.rng.range(1, 8) : this.rng.range(9, this.o.batch ? MAX_BATCH : 40);
    this.run = { sender, left: len };
    this.ev(`run ${this.runNo}: ${sender.key} sends ${len}`);
  }

  batchSize() {
    const r = this.rng.int(100);
    if (r < 40) return 1;
    if (r < 70) return this.rng.range(2, 3);
    return this.rng.range(4, 8);
  }

  pickFromWindow(side, taken) {
    const cand = side.pool.filter((m) => !taken.has(m)).slice(0, WINDOW);
    if (!cand.length) return null;
    if (this.rng.int(100) < 65) return cand[0];
    const m = cand[this.rng.int(cand.length)];
    if (m !== cand[0]) this.n.outOfOrder++;
    return m;
  }

  pickReplay(side) {
    const d = side.delivered;
    if (!d.length) return null;
    // Mostly recent ones (their chain is kept: duplicate_message).
    const n = this.rng.int(100) < 85 ? Math.min(d.length, 20) : d.length;
    return d[d.length - 1 - this.rng.int(n)];
  }

  // One pipelined batch to one side: decrypts (oldest first, out of order
  // within a window, overdue messages first, sometimes a duplicate or a
  // replay) and, on the sender of the current run, encrypts.
  buildBatch(side) {
    const items = [];
    const taken = new Set();
    const size = this.batchSize();
    for (const m of side.pool) {
      if (this.runNo - m.run > OVERDUE_RUNS && !taken.has(m)) {
        items.push({ kind: 'decrypt', msg: m });
        taken.add(m);
      }
    }
    let encLeft = side === this.run.sender ? this.run.left : 0;
    while (items.length < size) {
      const r = this.rng.int(100);
      const canEnc = encLeft > 0;
      const canDec = side.pool.some((m) => !taken.has(m));
      if (r < 6 && side.delivered.length) {
        const m = this.pickReplay(side);
        items.push({ kind: 'decrypt', msg: m, replay: true });
      } else if (canEnc && (!canDec || r < 60)) {
        items.push({ kind: 'encrypt', pt: this.rng.bytes(this.rng.range(0, 160)).toString('base64') });
        encLeft--;
      } else if (canDec) {
        const m = this.pickFromWindow(side, taken);
        taken.add(m);
        items.push({ kind: 'decrypt', msg: m });
        if (this.rng.int(100) < 5) {
          items.push({ kind: 'decrypt', msg: m, replay: true });
          this.n.dupInBatch++;
        }
      } else {
        break;
      }
    }
    if (side === this.run.sender) this.run.left = encLeft;
    return items;
  }

  // A kill for a pipelined batch of n requests, with probability as for
  // `weight` requests. --batch: a decrypt_batch of k messages weighs
  // 1 + k/3 (a retry 15 more), and if there is one (at index dbAt) it is
  // mostly still in flight when the kill is sent.
  killPlan(n, weight = n, dbAt = -1) {
    if (!this.killsEnabled) return null;
    const p = 1 - Math.pow(1 - 1 / this.killEvery, weight);
    if (this.rng.u32() / 4294967296 >= p) return null;
    const r = this.rng.int(100);
    if (r < 25) return { after: n }; // right after the last response
    // 0..n-1 responses read, the rest in flight
    const after = dbAt >= 0 && this.rng.int(100) < 70 ? this.rng.int(dbAt + 1) : this.rng.int(n);
    // --batch: the process dies right after decrypt_batch returned, before
    // the app used the result: committed, but as if the response was lost
    if (dbAt >= 0 && r < 40) return { after: dbAt + 1, forget: true };
    if (r < 45) return { after };
    if (r < 85) return { after, spinUs: 1 + this.rng.int(4000) };
    return { after, timerMs: this.rng.int(6) };
  }

  // An encrypt of a random plaintext (with --batch, its client message id).
  encItem(len) {
    const it = { kind: 'encrypt', pt: this.rng.bytes(len).toString('base64') };
    if (this.o.batch) it.mid = this.newId();
    return it;
  }

  weight(items) {
    return items.reduce((w, it) => w + (it.kind === 'dbatch' ? 1 + it.entries.length / 3 + (it.retry ? 15 : 0) : 1), 0);
  }

  async exchange() {
    const target = this.o.messages;
    let lastReport = Date.now();
    const maxSteps = this.step + 50 * target;
    while (this.msgs.length < target) {
      this.step++;
      if (this.step > maxSteps) throw new Fatal(`no progress: ${this.msgs.length} of ${target} messages after ${this.step} steps`);
      if (!this.run || this.run.left === 0) this.newRun();
      // Limit the run to what is still needed.
      this.run.left = Math.min(this.run.left, target - this.msgs.length);
      const side = this.rng.int(100) < 50 ? this.run.sender : this.run.sender.other;
      const items = this.o.batch ? this.buildBatchMode(side) : this.buildBatch(side);
      if (!items.length) continue;
      const dbAt = items.findIndex((it) => it.kind === 'dbatch');
      await this.batch(side, items, this.killPlan(items.length, this.weight(items), dbAt));
      if (Date.now() - lastReport > 10000) {
        lastReport = Date.now();
        process.stderr.write(`crash.js: ${this.msgs.length}/${target} messages, ${this.n.killAfter + this.n.killInFlight} kills\n`);
      }
    }
  }

  // Delivers everything still pending, without kills.
  async drain(cat = 'delivery') {
    for (let round = 0; round < 10; round++) {
      let any = false;
      for (const side of this.sides) {
        while (side.pool.length) {
          any = true;
          this.step++;
          const items = this.o.batch
            ? [this.dbatchItem(this.buildEntries(side, this.rng.range(1, MAX_BATCH), { replays: false }))]
            : side.pool.slice(0, 8).map((m) => ({ kind: 'decrypt', msg: m }));
          const before = side.pool.length;
          await this.batch(side, items, null);
          if (side.pool.length >= before) break; // a peer broke: next round
        }
      }
      if (!any) return;
    }
    this.check(cat, false, `messages still undelivered after draining: ${this.sides.map((s) => s.pool.map((m) => this.mid(m)).join(' ')).join(' ')}`);
  }

  // A few messages each way, each checked (no kills).
  async converse(count, cat) {
    const before = this.msgs.length;
    for (let i = 0; i < count; i++) {
      for (const side of [this.alice, this.bob]) {
        this.step++;
        await this.batch(side, [this.encItem(this.rng.range(1, 100))], null);
        await this.drain(cat);
      }
    }
    const fresh = this.msgs.slice(before);
    this.check(cat, fresh.length === 2 * count, `expected ${2 * count} acknowledged messages in the conversation, got ${fresh.length}`);
    for (const m of fresh) {
      this.check(cat, m.state === 'delivered' && m.okN === 1, `${this.mid(m)} after the crashes: expected it to be decrypted once, state ${m.state}, ${m.okN} plaintexts`);
    }
  }

  async setup() {
    this.ev(`seed ${this.o.seed}, peer ${this.o.peer}`);
    await this.start(this.alice);
    await this.start(this.bob);
    const rb = await this.simple(this.bob, { op: 'bundle' }, 'setup');
    if (!this.check('setup', rb && rb.ok && rb.bundle, `bob bundle: expected ok, got ${JSON.stringify(rb)}`)) throw new Fatal('no bundle');
    const rs = await this.simple(this.alice, { op: 'start_session', peer: 'bob', device_id: 1, bundle: rb.bundle }, 'setup');
    if (!this.check('setup', rs && rs.ok, `alice start_session: expected ok, got ${JSON.stringify(rs)}`)) throw new Fatal('no session');
    // alice sends four PreKey messages (no kill yet). From here on kills
    // happen, at a high rate during the first exchange: bob decrypts until
    // one PreKey message went through (it makes his session and uses up
    // the one-time prekey), answers, and alice decrypts the answer. The
    // other PreKey messages are delivered later, among the crashes.
    this.runNo = 1;
    this.run = { sender: this.alice, left: 0 };
    const pts = [0, 1, 2, 3].map(() => this.encItem(this.rng.range(1, 100)));
    await this.batch(this.alice, pts, null);
    if (!this.check('setup', this.bob.pool.length === 4, `alice's four prekey messages: expected 4 acknowledged, got ${this.bob.pool.length}`)) throw new Fatal('no prekey messages');
    this.killsEnabled = true;
    this.killEvery = 3;
    let guard = 0;
    while (!this.bob.delivered.length) {
      if (++guard > 100) throw new Fatal('bob cannot decrypt any of alice\'s PreKey messages');
      this.step++;
      if (this.o.batch) {
        // one to four of them in a decrypt_batch, in random order
        const it = this.dbatchItem(this.buildEntries(this.bob, this.rng.range(1, 4), { replays: false }));
        if (!it.entries.length) throw new Fatal('bob cannot decrypt any of alice\'s PreKey messages');
        await this.batch(this.bob, [it], this.killPlan(1));
        continue;
      }
      const m = this.pickFromWindow(this.bob, new Set());
      if (!m) throw new Fatal('bob cannot decrypt any of alice\'s PreKey messages');
      await this.batch(this.bob, [{ kind: 'decrypt', msg: m }], this.killPlan(1));
    }
    this.inSetup = false;
    this.runNo = 2;
    this.run = { sender: this.bob, left: 0 };
    while (!this.alice.delivered.length) {
      if (++guard > 200) throw new Fatal('alice cannot decrypt bob\'s answer');
      this.step++;
      if (this.alice.pool.length && this.o.batch) {
        await this.batch(this.alice, [this.dbatchItem(this.buildEntries(this.alice, 1, { replays: false }))], this.killPlan(1));
      } else if (this.alice.pool.length) {
        await this.batch(this.alice, [{ kind: 'decrypt', msg: this.alice.pool[0] }], this.killPlan(1));
      } else {
        await this.batch(this.bob, [this.encItem(20)], this.killPlan(1));
      }
    }
    this.killEvery = this.o.killEvery;
    this.setupKills = this.n.killAfter + this.n.killInFlight + this.n.killRecovery;
  }

  async final() {
    // Everything in flight, then every acknowledged message exactly once.
    await this.drain('delivery');
    let twice = 0;
    let missing = 0;
    for (const m of this.msgs) {
      const n = m.okN + (m.dupResolved ? 1 : 0);
      if (m.state === 'delivered' && n === 1) {
        this.check('delivery', true, '');
        continue;
      }
      if (n > 1) twice++;
      else missing++;
      this.check('delivery', false, `${this.mid(m)} (acknowledged at message ${m.id}): expected decrypted exactly once, state ${m.state}, ${m.okN} plaintexts${m.dupResolved ? ' + 1 duplicate_message after a kill' : ''}`);
    }
    this.ev(`final accounting: ${this.msgs.length} messages, ${missing} not delivered, ${twice} delivered twice`);
    if (this.o.batch) for (const side of this.sides) await this.checkHistory(side, 'history');
    // Both restarted: replays stay duplicates, and the conversation goes on.
    for (const side of this.sides) {
      this.kill(side, 'for the final checks (idle)');
      await side.proc.exitPromise;
      await this.start(side);
    }
    for (const side of this.sides) {
      if (this.o.batch) {
        // redeliveries of any decrypted message, some under another id or sort key
        if (!side.delivered.length) continue;
        const entries = [];
        for (let i = 0; i < 8; i++) entries.push(this.replayEntry(side));
        this.step++;
        await this.batch(side, [{ kind: 'dbatch', entries, retry: false }], null);
        continue;
      }
      const recent = side.delivered.filter((m) => this.chainAge(side, m.rk) < STRICT_CHAINS).slice(-4);
      if (recent.length) {
        this.step++;
        await this.batch(side, recent.map((m) => ({ kind: 'decrypt', msg: m, replay: true })), null);
      }
    }
    this.runNo += 10; // nothing is overdue in the final conversation
    await this.converse(3, 'final');
    // The history after the restarts and the final conversation.
    if (this.o.batch) for (const side of this.sides) await this.checkHistory(side, 'history');
    // End of input: both exit 0.
    for (const side of this.sides) {
      const code = await side.proc.close(10000);
      this.check('final', code === 0, `${side.key} at end of input: expected exit code 0, got ${code === null ? 'no exit within 10s' : code}${side.proc.stderrTail()}`);
    }
  }

  summary(elapsed) {
    const s = this.stats;
    const n = this.n;
    const total = this.msgs.length;
    const exchanged = this.exchanged === undefined ? total : this.exchanged;
    const kills = n.killAfter + n.killInFlight + n.killRecovery;
    const distinctKeys = this.keyUse.size;
    const chains = this.sides.map((x) => `${x.key} ${x.chains.length}`).join(', ');
    const lines = {
      setup: `alice and bob on their own --db, X3DH, four PreKey messages, the first exchange under ${this.setupKills} SIGKILLs`,
      encrypt: `${exchanged} messages acknowledged in ${n.batches} batches (${n.encSent} encrypts and ${n.decSent} decrypts sent, ${n.pipelined} of them pipelined; ${n.encLost} encrypts and ${n.decLost} decrypts lost to kills), ${n.outOfOrder} delivered out of order`,
      restart: `${kills} SIGKILLs (${n.killAfter} right after a response, ${n.killInFlight} with requests in flight, ${n.killRecovery} during a restart; alice ${this.alice.kills}, bob ${this.bob.kills}), every restart kept the identity and the session`,
      keys: `${distinctKeys} distinct (ratchet key, counter) pairs for ${total} ciphertexts; receiving chains: ${chains}`,
      delivery: `every acknowledged message decrypted exactly once; ${n.maybeCommitted + n.maybeNotCommitted} decrypts retried after a kill (${n.maybeCommitted} had committed: duplicate_message, ${n.maybeNotCommitted} had not: plaintext)`,
      duplicates: `${n.replays} replays refused (${n.dupInBatch} in the same batch, ${n.replaysAfterRestart} after a restart of the receiver, ${n.replaysLenient} on an old chain)`,
      final: `both restarted, old messages still duplicates, a conversation both ways, clean exit`,
    };
    if (this.o.batch) {
      const mean = n.dbSent ? (n.dbMsgs / n.dbSent).toFixed(1) : 0;
      lines.encrypt = `${exchanged} messages acknowledged in ${n.batches} pipelined batches (${n.encSent} encrypts, ${n.dbSent} decrypt_batch requests of 1..${n.dbMax} messages, mean ${mean}, ${n.dbLarge} of more than 20; ${n.encLost} encrypts and ${n.dbLost} decrypt_batch requests lost to kills), ${n.outOfOrder} delivered out of order`;
      lines.restart += `; ${n.dbLostInFlight} kills with a decrypt_batch in flight, ${n.dbForgotten} right after one returned (its response dropped unused)`;
      lines.delivery = `every acknowledged message decrypted and stored exactly once; ${n.retryChains} lost decrypt_batch requests retried (${n.retryIdentical + n.retryMerged} retry requests: ${n.retryIdentical} identical, ${n.retryMerged} shuffled with new messages; ${n.retryRelost} lost again): ${n.retryCommitted} had committed (all duplicate_message; ${n.retryCommittedKilled} of them killed between the commit and the response), ${n.retryNotCommitted} had not (all plaintext); ${n.maybeCommitted + n.maybeNotCommitted} messages in them`;
      lines.duplicates = `${n.replays} redeliveries refused (${n.dupInBatch} in the same batch, ${n.replaysAfterRestart} after a restart of the receiver, ${n.alteredReplays} under another id or sort key, ${n.replaysLenient} of them on an old chain)`;
      lines.history = `${n.probes} probes after a restart with a lost batch all-or-nothing and confirmed by the retry; the whole history (${n.historyRows} rows in 4 reads) exactly the decrypted messages, once each, in sort-key order, also in pages`;
    }
    for (const [cat, label] of CATEGORIES) {
      const x = s[cat];
      if (cat === 'history' && !this.o.batch) continue;
      if (x.failed) process.stdout.write(`FAIL ${label}: ${x.failed} of ${x.passed + x.failed} checks failed\n`);
      else process.stdout.write(`ok ${label}: ${lines[cat]} (${x.passed} checks)\n`);
    }
    process.stderr.write(`crash.js: seed ${this.o.seed}, ${(elapsed / 1000).toFixed(1)}s, work directory ${this.dir}\n`);
  }

  totals() {
    let passed = 0;
    let failed = 0;
    for (const [c] of CATEGORIES) {
      passed += this.stats[c].passed;
      failed += this.stats[c].failed;
    }
    return { passed, failed };
  }

  async killAll() {
    for (const side of this.sides) {
      if (side.proc && !side.proc.exited) {
        side.proc.killedByUs = true;
        await side.proc.kill9();
      }
    }
  }
}

exitWith('crash.js', async () => {
  const opts = parseOptions('crash.js', process.argv.slice(2), OPTIONS);
  const dir = workDir(opts, 'crash');
  const t = new CrashTest(opts, dir);
  const t0 = Date.now();
  process.stderr.write(`crash.js: seed ${opts.seed}, ${opts.messages} messages, a kill every ~${opts.killEvery} requests, work directory ${dir}\n`);
  try {
    await t.setup();
    await t.exchange();
    t.exchanged = t.msgs.length;
    t.killsEnabled = false;
    await t.final();
  } catch (e) {
    const fatal = e instanceof Fatal ? e.message : e && e.stack ? e.stack : String(e);
    t.check('final', false, `the run stopped: ${fatal}`);
    await t.killAll();
  }
  fs.closeSync(t.traceFd);
  t.summary(Date.now() - t0);
  return finish('crash.js', opts, dir, t.totals(), 'events.log: every request, response and kill; alice.db, bob.db, *.stderr');
});
