#!/usr/bin/env node
// The sync protocol end to end: a real whisperd on loopback and several
// whisper-chat processes in --script mode (one JSON object per line on
// stdout, commands on stdin). It checks, scenario by scenario:
//
//   setup     whisperd on a free port; alice.1, bob.1 register; alice.2 joins
//             alice through the link flow (link_code -> link-approve)
//   1:1       sent, delivered and read on every device of both accounts,
//             and the ticks in the history
//   offline   bob stopped, alice sends; bob restarted (and SIGKILLed while
//             catching up, restarted again): each message exactly once, in order
//   lost-ack  alice.1 SIGKILLed right after a send (before or around the Sent),
//             restarted: the outbox resend is idempotent, bob gets it once
//   group     5 members, a leave and a removal: the departed get nothing
//             after leaving, the others keep reading (sender keys rotated)
//   admin     group administration with whisper-chat's commands: bob
//             promoted, the name set by him and shown everywhere, only
//             admins send (carol's gsend refused), an invite link made and
//             frank joining by it (and reading and writing), the link
//             revoked (gina's join with it refused), frank leaving; no
//             change refused anywhere
//   typing    typing notices 1:1 and in the group, and their expiry;
//             presence online / offline with last seen
//   crash     whisperd SIGKILLed mid-stream, restarted on the same db: every
//             message the server acknowledged delivered exactly once, in order
//   shutdown  end of input: every client exits 0; SIGTERM: whisperd exits 0
//
//   node sync.js --whisperd PATH --chat PATH [--timeout SECONDS] [--workdir DIR]
//                [--keep] [--trace]
//
// Every assertion waits for events with a timeout; none depends on a sleep.
// Absence ("nothing after leaving", "exactly once") is checked behind a
// fence: a later message through the same mailbox, whose arrival proves
// that everything before it in the mailbox has arrived. See README.md.
'use strict';

const fs = require('fs');

const { isResult, Test, Whisperd } = require('./procs');

// ---------------------------------------------------------------------------
// the test

const SCENARIOS = [
  ['setup', 'setup'],
  ['direct', '1:1'],
  ['devices', 'devices'],
  ['offline', 'offline'],
  ['lostack', 'lost-ack', 'lostAck'],
  ['group', 'group'],
  ['admin', 'admin'],
  ['typing', 'typing'],
  ['crash', 'crash'],
  ['restore', 'restore'],
  ['shutdown', 'shutdown'],
];

class SyncTest extends Test {
  constructor(o, dir) {
    super(o, dir, SCENARIOS);
    this.anchors = true; // whisper-chat --anchor-file (the restore scenario)
    this.whisperdArgs = ['--presence-grace-ms', '300', '--typing-ttl-ms', '1500', '--typing-min-ms', '0'];
    this.server = new Whisperd(this);
  }

  // typing and admin need the group scenario's group
  skip(name) {
    return (name === 'typing' || name === 'admin') && !this.gid;
  }

  // Only a failed setup stops the run.
  stops(name) {
    return name === 'setup';
  }

  // whisperd died (or a scenario failed with it down): it comes back for
  // the next scenario, on the same port and db.
  async between(name) {
    if (!this.server.exited || name === 'shutdown') return true;
    this.check(name, this.server.exitSignal === 'SIGKILL' && name === 'crash', `whisperd is not running after ${name} (${this.server.exitSignal || `code ${this.server.exitCode}`})${this.server.stderrTail()}`);
    return this.runOne(name, () => this.server.start());
  }

  // ---- helpers over events

  // Waits until every id in `ids` has `status` (or a later one) at `c` for
  // (to, device): a status only moves forward, and a status event may be
  // skipped when a later one arrives in the same batch.
  async statusAtLeast(c, ids, status, to, device, desc) {
    const rank = { sent: 1, delivered: 2, read: 3 };
    const want = rank[status];
    await c.waitUntil((evs) => {
      const seen = new Map();
      for (const e of c.all) {
        if (e.ev !== 'status' || !ids.includes(e.id)) continue;
        if (to !== undefined && e.status !== 'sent' && (e.to !== to || e.device !== device)) continue;
        seen.set(e.id, Math.max(seen.get(e.id) || 0, rank[e.status] || 0));
      }
      return ids.every((id) => (seen.get(id) || 0) >= want);
    }, desc);
  }

  // The history of `conv` at `c` holds each of `ids` exactly once, in
  // that order, with increasing seq.
  async checkHistory(c, conv, ids, label) {
    const h = await c.cmd(`history ${conv} 1000`);
    const rows = h.messages.filter((m) => ids.includes(m.id));
    for (const id of ids) {
      const n = rows.filter((m) => m.id === id).length;
      this.ok(n === 1, `${label}: ${id} ${n} times, expected once`);
    }
    const order = rows.map((m) => m.id);
    this.ok(JSON.stringify(order) === JSON.stringify(ids), `${label}: order ${order.join(' ')}, sent ${ids.join(' ')}`);
    const seqs = rows.map((m) => m.seq);
    this.ok(seqs.every((x, i) => i === 0 || x > seqs[i - 1]), `${label}: seqs not increasing: ${seqs.join(' ')}`);
    return rows;
  }

  // Reads the history of `conv` at `c` until cond(rows) holds: again after
  // each new event, up to the timeout.
  async waitHistory(c, conv, cond, desc) {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const from = c.events.length;
      const h = await c.cmd(`history ${conv} 1000`);
      if (cond(h.messages)) return h.messages;
      const left = deadline - Date.now();
      if (left <= 0) {
        const rows = h.messages.slice(-6).map((m) => `${m.id}:${m.status || '-'}`).join(' ');
        throw new Error(`${c.key}: no ${desc} within ${this.o.timeout}s (newest rows: ${rows})`);
      }
      // The next event that is not the result of our own history command.
      await c.waitFor((e, i) => e.ev !== 'history' && e._i > from, `news for ${desc}`, { from, timeoutMs: left }).catch(() => {});
    }
  }

  // Sends a fence from `from` to `to` and waits for it at each of
  // `receivers`: whatever the server put in their mailboxes before it has
  // arrived by then.
  async fence(from, to, receivers) {
    const id = await from.send(to, this.text('fence'));
    await Promise.all(receivers.map((r) => this.message(r, id, `the fence ${id} from ${from.key}`)));
    return id;
  }

  // ---- scenarios

  async setup() {
    this.cat = 'setup';
    await this.server.start();
    this.ok(this.server.port > 0, `whisperd port ${this.server.port}`);
    this.alice1 = this.chat('alice', 1);
    this.alice2 = this.chat('alice', 2);
    this.bob = this.chat('bob', 1);
    this.alice1.start();
    this.bob.start();
    for (const c of [this.alice1, this.bob]) {
      const r = await c.waitFor((e) => e.ev === 'registered', 'registered');
      this.ok(!!r, `${c.key} registered`);
      await c.waitFor((e) => e.ev === 'online', 'online');
      await c.waitFor((e) => e.ev === 'caught_up', 'caught_up');
    }
    for (const c of [this.alice1, this.bob]) {
      const mode = fs.statSync(c.keyFile).mode & 0o777;
      this.ok(mode === 0o600, `${c.key}: key file mode ${mode.toString(8)}, expected 600`);
      this.ok(fs.statSync(c.keyFile).size === 32, `${c.key}: key file of ${fs.statSync(c.keyFile).size} bytes`);
    }
    // alice.2 joins alice: it shows a link code, alice.1 approves it.
    this.alice2.start();
    const code = await this.alice2.waitFor((e) => e.ev === 'link_code', 'a link code');
    // a link token: version, device id, identity key, account, the server's 16-byte code
    this.ok(/^0100000002[0-9a-f]{66}05616c696365[0-9a-f]{32}$/.test(code.code || ''), `link token ${JSON.stringify(code.code)}: expected alice's device 2 token`);
    this.ok(/^[0-9]{8}$/.test(code.digits || ''), `link digits ${JSON.stringify(code.digits)}: expected 8 digits`);
    this.ok(!this.alice2.events.some((e) => e.ev === 'registered'), 'alice.2 registered before its link code was approved');
    await this.alice1.cmd(`link-approve ${code.code}`);
    await this.alice2.waitFor((e) => e.ev === 'registered', 'registered after the approval');
    await this.alice2.waitFor((e) => e.ev === 'online', 'online');
    await this.alice2.waitFor((e) => e.ev === 'caught_up', 'caught_up');
    const st = await this.alice2.cmd('status');
    this.ok(st.ev === 'state' && st.online === true && st.connection === 'open' && st.account === 'alice' && st.device === 2,
      `alice.2 status: ${JSON.stringify(st)}`);
    // A second run keeps the identity: no new registration.
    const quit = await this.bob.quit();
    this.ok(quit === 0, `bob.1 exit code at end of input: ${quit}`);
    await this.bob.startOnline();
    this.ok(!this.bob.events.some((e) => e.ev === 'registered'), 'bob.1 registered again after a restart');
    this.notes.setup = `whisperd on 127.0.0.1:${this.server.port}; alice.1 and bob.1 registered, alice.2 linked (link_code, link-approve, registered), identities kept across a restart`;
  }

  async direct() {
    this.cat = 'direct';
    const { alice1, alice2, bob } = this;
    // alice.1 -> bob
    const a1 = await alice1.send('bob', this.text('hello-bob'));
    const m = await this.message(bob, a1, `alice.1's message ${a1}`);
    this.ok(m.from === 'alice' && m.device === 1 && m.conversation === 'alice', `bob.1 got ${JSON.stringify(m)}`);
    this.ok(typeof m.seq === 'number' && m.seq > 0, `message seq ${m.seq}`);
    const own = await this.message(alice2, a1, `alice.1's copy of ${a1}`);
    this.ok(own.conversation === 'bob' && own.from === 'alice' && own.device === 1, `alice.2's copy: ${JSON.stringify(own)}`);
    this.ok(own.seq === m.seq, `the copy's seq ${own.seq}, bob's ${m.seq}`);
    await this.status(alice1, a1, 'sent', undefined, undefined, `sent for ${a1}`);
    await this.statusAtLeast(alice1, [a1], 'delivered', 'bob', 1, `delivered (bob.1) at alice.1`);
    await this.statusAtLeast(alice2, [a1], 'delivered', 'bob', 1, `delivered (bob.1) at alice.2`);
    await bob.cmd(`read alice alice ${a1}`);
    await this.status(alice1, a1, 'read', 'bob', 1, `read (bob.1) of ${a1} at alice.1`);
    await this.status(alice2, a1, 'read', 'bob', 1, `read (bob.1) of ${a1} at alice.2`);

    // bob -> alice (both devices)
    const b1 = await bob.send('alice', this.text('hello-alice'));
    for (const c of [alice1, alice2]) {
      const x = await this.message(c, b1, `bob's message ${b1}`);
      this.ok(x.from === 'bob' && x.device === 1 && x.conversation === 'bob', `${c.key} got ${JSON.stringify(x)}`);
    }
    await this.status(bob, b1, 'sent', undefined, undefined, `sent for ${b1}`);
    await this.statusAtLeast(bob, [b1], 'delivered', 'alice', 1, 'delivered (alice.1) at bob.1');
    await this.statusAtLeast(bob, [b1], 'delivered', 'alice', 2, 'delivered (alice.2) at bob.1');
    await alice1.cmd(`read bob bob ${b1}`);
    await this.status(bob, b1, 'read', 'alice', 1, `read (alice.1) of ${b1}`);
    await alice2.cmd(`read bob bob ${b1}`);
    await this.status(bob, b1, 'read', 'alice', 2, `read (alice.2) of ${b1}`);

    // alice.2 (the linked device) -> bob
    const c1 = await alice2.send('bob', this.text('from-the-linked-device'));
    const y = await this.message(bob, c1, `alice.2's message ${c1}`);
    this.ok(y.from === 'alice' && y.device === 2, `bob.1 got ${JSON.stringify(y)}`);
    await this.message(alice1, c1, `alice.2's copy of ${c1}`);
    await this.status(alice2, c1, 'sent', undefined, undefined, `sent for ${c1}`);
    await this.statusAtLeast(alice2, [c1], 'delivered', 'bob', 1, 'delivered (bob.1) at alice.2');
    await this.statusAtLeast(alice1, [c1], 'delivered', 'bob', 1, 'delivered (bob.1) at alice.1');
    await bob.cmd(`read alice alice ${c1}`);
    await this.status(alice2, c1, 'read', 'bob', 1, `read (bob.1) of ${c1} at alice.2`);
    await this.status(alice1, c1, 'read', 'bob', 1, `read (bob.1) of ${c1} at alice.1`);

    // Every device saw each status of a message once at most.
    for (const c of [alice1, alice2, bob]) {
      const seen = new Set();
      for (const e of c.all.filter((x) => x.ev === 'status')) {
        const k = `${e.id} ${e.status} ${e.to}.${e.device}`;
        this.ok(!seen.has(k), `${c.key}: status event twice: ${k}`);
        seen.add(k);
      }
    }

    // A body with what JSON must escape, and more than ASCII, arrives as sent.
    const odd = `quote " backslash \\ tab\t ctrl\u0001 ünïcødé 😀 ${this.text('odd')}`;
    const oddId = await alice1.send('bob', odd);
    const oddMsg = await this.message(bob, oddId, 'the message with special characters');
    this.ok(oddMsg.body === odd, `body ${JSON.stringify(oddMsg.body)}, sent ${JSON.stringify(odd)}`);
    await bob.cmd(`read alice alice ${oddId}`);
    await this.status(alice1, oddId, 'read', 'bob', 1, `read (bob.1) of ${oddId} at alice.1`);

    // A long one (many WebSocket fragments each way).
    const long = `${this.text('long')} ${'0123456789abcdef'.repeat(4096)}`;
    const longId = await bob.send('alice', long);
    for (const c of [alice1, alice2]) {
      const x = await this.message(c, longId, 'the 64 KiB message');
      this.ok(x.body === long, `${c.key}: the 64 KiB body came back different (${x.body.length} characters)`);
    }

    // The history, oldest first, with ticks.
    const h = await alice1.cmd('history bob 10');
    const ids = h.messages.map((x) => x.id);
    this.ok(JSON.stringify(ids) === JSON.stringify([a1, b1, c1, oddId, longId]), `alice.1 history bob: ids ${ids.join(' ')}, expected ${[a1, b1, c1, oddId, longId].join(' ')}`);
    const ha1 = h.messages.find((x) => x.id === a1);
    this.ok(ha1 && ha1.own === true && ha1.status === 'read', `alice.1 history: its own message ${JSON.stringify(ha1)}: expected own, status read`);
    const hb1 = h.messages.find((x) => x.id === b1);
    this.ok(hb1 && hb1.own === false && hb1.from === 'bob', `alice.1 history: bob's message ${JSON.stringify(hb1)}`);
    const seqs = h.messages.map((x) => x.seq);
    this.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `alice.1 history: seqs not increasing: ${seqs.join(' ')}`);
    const hb = await bob.cmd('history alice 10');
    const bids = hb.messages.map((x) => x.id);
    this.ok(JSON.stringify(bids) === JSON.stringify([a1, b1, c1, oddId, longId]), `bob.1 history alice: ids ${bids.join(' ')}`);
    const hodd = hb.messages.find((x) => x.id === oddId);
    this.ok(hodd && hodd.body === odd, `bob.1 history: the body ${JSON.stringify(hodd && hodd.body)}`);
    const hbb1 = hb.messages.find((x) => x.id === b1);
    this.ok(hbb1 && hbb1.own === true && hbb1.status === 'read', `bob.1 history: its own message ${JSON.stringify(hbb1)}: expected status read`);
    this.notes.direct = 'alice.1 -> bob, bob -> alice (2 devices), alice.2 -> bob: sent, delivered and read at the sender and its other device; copies on the own devices; a body with quotes, backslashes, control characters and non-ASCII intact, a 64 KiB one; history in seq order with ticks';
  }

  // Devices are the account's: a link the peers hear of, safety numbers
  // that do not change with it, a removal the peers hear of, and a removed
  // device that gets nothing more.
  async devices() {
    this.cat = 'devices';
    const { alice1, bob } = this;
    const before = await alice1.cmd('safety bob');
    this.ok(before.ev === 'safety' && /^[0-9]{60}$/.test(before.number) && before.trust === 'unverified', `safety bob at alice.1: ${JSON.stringify(before)}`);
    const mine = await bob.cmd('safety alice');
    this.ok(mine.ev === 'safety' && mine.number === before.number, `the same safety number at bob.1: ${JSON.stringify(mine)}, alice.1 ${before.number}`);
    // bob.2 links: only bob.1's approval, of bob.2's own token, lets it in
    this.bob2 = this.chat('bob', 2);
    const bob2 = this.bob2;
    bob2.start();
    const code = await bob2.waitFor((e) => e.ev === 'link_code', 'a link code');
    const wrong = await alice1.cmd(`link-approve ${code.code}`, { allowError: true });
    this.ok(wrong.ev === 'error', `alice.1 approving bob's token: ${JSON.stringify(wrong)}`);
    await bob.cmd(`link-approve ${code.code}`);
    await bob2.waitFor((e) => e.ev === 'registered', 'registered after the approval');
    await bob2.waitFor((e) => e.ev === 'caught_up', 'caught_up');
    const m1 = alice1.events.length;
    const id1 = await alice1.send('bob', this.text('to-both-bobs'));
    await this.message(bob2, id1, `alice.1's message ${id1} at the new bob.2`);
    const added = await alice1.waitFor((e) => e.ev === 'devices' && e.account === 'bob' && e.device === 2 && e.change === 'added', 'bob added a device', { from: m1 });
    this.ok(!!added, `alice.1 told bob.2 was added: ${JSON.stringify(added)}`);
    const after = await alice1.cmd('safety bob');
    this.ok(after.number === before.number, `safety number with bob after bob.2 joined: ${after.number}, before ${before.number}`);
    await alice1.cmd('verify bob');
    const ver = await alice1.cmd('safety bob');
    this.ok(ver.trust === 'verified', `after verify: ${JSON.stringify(ver)}`);
    // bob.1 removes bob.2: it is closed out and gets nothing more
    const m2 = alice1.events.length;
    await bob.cmd('device-remove 2');
    await bob2.waitFor((e) => e.ev === 'disconnected', 'the removed device cut off');
    const id2 = await alice1.send('bob', this.text('after-the-removal'));
    await this.message(bob, id2, `alice.1's message ${id2} at bob.1`);
    const removed = await alice1.waitFor((e) => e.ev === 'devices' && e.account === 'bob' && e.device === 2 && e.change === 'removed', 'bob removed a device', { from: m2 });
    this.ok(!!removed, `alice.1 told bob.2 was removed: ${JSON.stringify(removed)}`);
    await this.fence(alice1, 'bob', [bob]);
    this.ok(!bob2.messages((e) => e.id === id2).length, 'the removed bob.2 got a message sent after its removal');
    this.ok(!alice1.events.some((e) => e.ev === 'refused'), `alice.1 refused something from the honest server: ${JSON.stringify(alice1.events.filter((e) => e.ev === 'refused'))}`);
    await bob2.quit();
    this.notes.devices = 'the same safety number at both ends, before and after a link; bob.2 linked by bob.1 from its token (alice.1 refused to approve it), alice.1 told "added"; bob.2 removed: cut off, alice.1 told "removed", nothing more reaches it; verify';
  }

  async offline() {
    this.cat = 'offline';
    const { alice1, alice2, bob } = this;
    const code = await bob.quit();
    this.ok(code === 0, `bob.1 exit code at end of input: ${code}`);
    const sent = [];
    for (let i = 0; i < 6; i++) {
      const from = i % 3 === 2 ? alice2 : alice1;
      const id = await from.send('bob', this.text(`offline${i}`));
      await this.status(from, id, 'sent', undefined, undefined, `sent for offline message ${i}`);
      sent.push(id);
    }
    // bob comes back; SIGKILL while it catches up (after its 2nd message),
    // then once more, normally.
    const runBefore = bob.all.length;
    bob.start();
    await bob.waitFor((e) => e.ev === 'message' && sent.includes(e.id), 'the first offline message');
    await bob.waitUntil(() => bob.events.filter((e) => e.ev === 'message').length >= 2 || bob.events.some((e) => e.ev === 'caught_up'),
      'a second message');
    await bob.kill9('while catching up');
    await bob.startOnline();
    await this.fence(alice1, 'bob', [bob]);
    // Events: at most once each over the runs (a run killed after a commit
    // may not have shown its event). The history: exactly once, in order.
    const got = bob.all.slice(runBefore).filter((e) => e.ev === 'message' && sent.includes(e.id));
    const gotIds = got.map((e) => e.id);
    for (const id of sent) {
      const n = gotIds.filter((x) => x === id).length;
      this.ok(n <= 1, `offline message ${id}: ${n} message events at bob.1 over its runs`);
    }
    const shownOrder = sent.filter((id) => gotIds.includes(id));
    this.ok(JSON.stringify(gotIds) === JSON.stringify(shownOrder), `bob.1 events in the order ${gotIds.join(' ')}, sent ${sent.join(' ')}`);
    const unshown = sent.filter((id) => !gotIds.includes(id)).length;
    const lastRun = got.filter((e) => e._run === bob.run).map((e) => e.id);
    this.ok(lastRun.every((id) => sent.indexOf(id) >= sent.length - lastRun.length),
      `the restarted bob.1 showed ${lastRun.join(' ')}: not the last of what was sent`);
    await this.checkHistory(bob, 'alice', sent, 'bob.1 history alice');
    // The senders see them delivered.
    await this.statusAtLeast(alice1, sent, 'delivered', 'bob', 1, 'delivered for every offline message at alice.1');
    await this.statusAtLeast(alice2, sent, 'delivered', 'bob', 1, 'delivered for every offline message at alice.2');
    const killedAfter = got.filter((e) => e._run === bob.run - 1).length;
    this.notes.offline = `bob.1 stopped, 6 messages from alice.1 and alice.2 sent; bob.1 restarted, SIGKILLed after showing ${killedAfter} of them (${unshown} more stored but not shown before the kill), restarted: each in history exactly once, in order, no event twice, delivered at both senders`;
  }

  async lostAck() {
    this.cat = 'lostack';
    const { alice1, alice2, bob } = this;
    // Kill alice.1 at different moments around the Sent: at once, after a
    // short timer, and right when its status sent shows.
    const plans = [
      { desc: 'right after the send command returned', delayMs: 0 },
      { desc: 'after 2 ms', delayMs: 2 },
      { desc: 'after 10 ms', delayMs: 10 },
      { desc: 'when the status sent showed', onSent: true },
    ];
    const ids = [];
    let pendingAtKill = 0;
    for (const plan of plans) {
      const text = this.text('lostack');
      const from = alice1.events.length;
      alice1.write(`send bob ${text}`);
      const r = await alice1.waitFor(isResult, 'the result of the send', { from });
      this.ok(r.ev === 'sent_cmd', `send: ${JSON.stringify(r)}`);
      const id = r.id;
      ids.push(id);
      if (plan.onSent) await this.status(alice1, id, 'sent', undefined, undefined, `sent for ${id}`);
      else if (plan.delayMs) await new Promise((res) => setTimeout(res, plan.delayMs));
      if (!alice1.events.some((e) => e.ev === 'status' && e.id === id && e.status === 'sent')) pendingAtKill++;
      await alice1.kill9(`lost ack: ${plan.desc}`);
      await alice1.startOnline();
    }
    // The outbox resends what the server had not answered: wait until none
    // of them is pending in alice.1's history (a status shown by a run that
    // was then killed may never have been printed: the history is the
    // truth), then a fence: a duplicate would be in bob's mailbox before it.
    const rank = { pending: 0, sent: 1, delivered: 2, read: 3 };
    const atLeast = (status) => (rows) => ids.every((id) => rows.some((m) => m.id === id && rank[m.status] >= rank[status]));
    await this.waitHistory(alice1, 'bob', atLeast('sent'), 'none of the killed sends pending in alice.1\'s history');
    const h = await alice1.cmd('history bob 100');
    for (const id of ids) {
      const n = h.messages.filter((x) => x.id === id).length;
      this.ok(n === 1, `alice.1 history: ${id} ${n} times`);
    }
    await this.fence(alice1, 'bob', [bob, alice2]);
    for (const id of ids) {
      const nb = bob.messages((e) => e.id === id).length;
      this.ok(nb === 1, `bob.1 got ${id} ${nb} times, expected once`);
      const na = alice2.messages((e) => e.id === id).length;
      this.ok(na === 1, `alice.2 got its copy of ${id} ${na} times, expected once`);
    }
    const order = bob.messages((e) => ids.includes(e.id)).map((e) => e.id);
    this.ok(JSON.stringify(order) === JSON.stringify(ids), `bob.1 order ${order.join(' ')}, sent ${ids.join(' ')}`);
    await this.waitHistory(alice1, 'bob', atLeast('delivered'), 'every resent message delivered in alice.1\'s history');
    this.notes.lostack = `alice.1 SIGKILLed ${plans.length} times right after a send (${pendingAtKill} before its Sent was seen), restarted: the outbox resend (same client id) delivered each once`;
  }

  async group() {
    this.cat = 'group';
    const { alice1, alice2, bob } = this;
    this.carol = this.chat('carol', 1);
    this.dave = this.chat('dave', 1);
    this.erin = this.chat('erin', 1);
    const { carol, dave, erin } = this;
    await Promise.all([carol.startOnline(), dave.startOnline(), erin.startOnline()]);
    const r = await alice1.cmd('group create bob carol dave erin');
    this.ok(r.ev === 'group_created' && /^[0-9a-f]{32}$/.test(r.group) && r.conversation === `#${r.group}`, `group create: ${JSON.stringify(r)}`);
    const gid = r.group;
    const conv = `#${gid}`;
    this.gid = gid;
    const everyone = [alice1, alice2, bob, carol, dave, erin];
    await Promise.all(everyone.filter((c) => c !== alice1).map((c) => c.waitFor((e) => e.ev === 'group' && e.conversation === conv, 'the new group')));

    // Before anyone leaves: everyone reads everyone.
    const gsend = async (c, label) => {
      const x = await c.cmd(`gsend ${gid} ${this.text(label)}`);
      this.ok(x.ev === 'sent_cmd' && x.conversation === conv, `gsend: ${JSON.stringify(x)}`);
      return x.id;
    };
    // Each receiver shows the message, or an error about it (a failed
    // check, and the scenario goes on).
    const expectAt = async (id, sender, receivers) => {
      for (const c of receivers) {
        const m = await c.waitFor((e) => (e.ev === 'message' || e.ev === 'error') && e.id === id, `${sender.key}'s group message ${id}`);
        if (m.ev === 'error') {
          this.ok(false, `${c.key} could not read ${sender.key}'s group message ${id}: ${JSON.stringify(m)}`);
          continue;
        }
        this.ok(m.conversation === conv && m.from === sender.account && m.device === sender.device, `${c.key} got ${JSON.stringify(m)}`);
      }
    };
    const before = [];
    for (const [sender, label] of [[alice1, 'g-alice'], [bob, 'g-bob'], [erin, 'g-erin'], [dave, 'g-dave']]) {
      const id = await gsend(sender, label);
      before.push(id);
      await this.status(sender, id, 'sent', undefined, undefined, `sent for group message ${id}`);
      await expectAt(id, sender, everyone.filter((c) => c !== sender));
    }

    // erin leaves; alice (the admin) removes dave.
    const stay = [alice1, alice2, bob, carol];
    const groupEvents = (c) => c.all.filter((x) => x.ev === 'group' && x.conversation === conv).length;
    let counts = new Map(everyone.map((c) => [c, groupEvents(c)]));
    await erin.cmd(`group remove ${gid} erin`);
    await Promise.all([...stay, dave].map((c) => c.waitUntil(() => groupEvents(c) > counts.get(c), 'the group event for erin leaving')));
    // alice removes dave and, at once, writes to the group: that message
    // races the removal (dave may or may not get it), but every member who
    // stays must read it, although alice's engine hears of the removal
    // (and rotates its sender key again) while it distributes its key.
    counts = new Map(everyone.map((c) => [c, groupEvents(c)]));
    const fromA = alice1.events.length;
    alice1.write(`group remove ${gid} dave`);
    alice1.write(`gsend ${gid} ${this.text('g2-alice-racing')}`);
    await alice1.waitUntil((ev) => ev.slice(fromA).filter(isResult).length >= 2, 'the results of group remove and gsend');
    const [rm, rs] = alice1.events.slice(fromA).filter(isResult);
    this.ok(rm.ev === 'ok' && rs.ev === 'sent_cmd', `group remove + gsend: ${JSON.stringify(rm)} ${JSON.stringify(rs)}`);
    const racing = rs.id;
    await this.status(alice1, racing, 'sent', undefined, undefined, `sent for the group message ${racing}`);
    await Promise.all([alice2, bob, carol, dave].map((c) => c.waitUntil(() => groupEvents(c) > counts.get(c), 'the group event for the removal of dave')));
    await expectAt(racing, alice1, [alice2, bob, carol]);

    // Those who stay keep reading each other (with rotated sender keys).
    const after = [];
    for (const [sender, label] of [[alice1, 'g2-alice'], [bob, 'g2-bob'], [carol, 'g2-carol'], [alice2, 'g2-alice2'], [alice1, 'g3-alice']]) {
      const id = await gsend(sender, label);
      after.push(id);
      await this.status(sender, id, 'sent', undefined, undefined, `sent for group message ${id}`);
      await expectAt(id, sender, stay.filter((c) => c !== sender));
    }
    // Fences to erin and dave (1:1, after the group messages were sent):
    // a group message queued for them would have arrived before.
    await this.fence(bob, 'erin', [erin]);
    await this.fence(bob, 'dave', [dave]);
    for (const c of [erin, dave]) {
      const late = c.messages((e) => after.includes(e.id) || (e.conversation === conv && !before.includes(e.id) && !(c === dave && e.id === racing)));
      this.ok(late.length === 0, `${c.key} got group messages after leaving: ${late.map((e) => e.id).join(' ')}`);
      const errs = c.all.filter((e) => e.ev === 'error' && e.cmd === undefined);
      this.ok(errs.length === 0, `${c.key} engine errors: ${errs.map((e) => JSON.stringify(e)).join(' | ')}`);
    }
    // Exactly once everywhere.
    for (const c of everyone) {
      for (const id of [...before, racing, ...after]) {
        const n = c.messages((e) => e.id === id).length;
        this.ok(n <= 1, `${c.key} got ${id} ${n} times`);
      }
    }
    // erin can no longer send to it: refused at once, or by the server
    // (an error event), never sent.
    const fromErin = erin.events.length;
    const x = await erin.cmd(`gsend ${gid} ${this.text('g-erin-after')}`, { allowError: true });
    if (x.ev === 'sent_cmd') {
      let refused = true;
      await erin
        .waitFor((e) => e.ev === 'error' || (e.ev === 'status' && e.id === x.id), 'an error (or a status) for a send to a group erin left', { from: fromErin })
        .catch((e) => {
          refused = false;
          this.ok(false, `erin's send to the group it left: ${e.message}`);
        });
      const s = erin.events.slice(fromErin).find((e) => e.ev === 'status' && e.id === x.id && e.status !== 'pending');
      if (refused) this.ok(!s, `erin's send to the group it left was accepted: ${JSON.stringify(s)}`);
    }
    // alice adds dave back: everyone hears of it, and dave reads what follows
    const fromDave = dave.events.length;
    const addRes = await alice1.cmd(`group add ${gid} dave`);
    this.ok(addRes.ev === 'ok', `group add: ${JSON.stringify(addRes)}`);
    await dave.waitFor((e) => e.ev === 'group' && e.conversation === conv, 'the group event for being added back', { from: fromDave });
    const back = await gsend(alice1, 'g4-dave-is-back');
    await expectAt(back, alice1, [alice2, bob, carol, dave]);
    for (const c of everyone) {
      // what bob.2 sent before its removal and arrives after it is refused, rightly
      const refusedHere = c.all.filter((e) => e.ev === 'refused' && !(e.from === 'bob' && e.device === 2));
      this.ok(refusedHere.length === 0, `${c.key} refused something from the honest server: ${refusedHere.map((e) => JSON.stringify(e)).join(' | ')}`);
    }
    this.notes.group = `6 devices of 5 members; 4 messages before, erin left, alice removed dave and wrote to the group at once (read by all who stay), 5 messages after from 4 devices read by the 4 remaining devices, none at erin or dave (behind fences); dave added back (the group event at dave, reads the next message); no signed change refused anywhere`;
  }

  // Group administration through whisper-chat's group commands, on the
  // group of the previous scenario (alice admin; alice.2, bob, carol,
  // dave members).
  async admin() {
    this.cat = 'admin';
    const { alice1, alice2, bob, carol, dave, gid } = this;
    const conv = `#${gid}`;
    const members = [alice1, alice2, bob, carol, dave];
    const groupEv = (c, pred, desc, from) =>
      c.waitFor((e) => e.ev === 'group' && e.conversation === conv && pred(e), desc, { from });
    const marks = () => new Map(members.map((c) => [c, c.events.length]));
    const show = async (c) => {
      const st = await c.cmd(`group show ${gid}`);
      this.ok(st.ev === 'group_state' && st.group === gid, `group show at ${c.key}: ${JSON.stringify(st)}`);
      return st;
    };
    // alice promotes bob: everyone hears of the admins changing (2)
    let m = marks();
    let r = await alice1.cmd(`group admin ${gid} promote bob`);
    this.ok(r.ev === 'ok', `group admin: ${JSON.stringify(r)}`);
    await Promise.all(members.map((c) => groupEv(c, (e) => e.changed === 2 && e.from === 'alice', 'bob promoted', m.get(c))));
    // bob names the group (the info changed: 4)
    m = marks();
    r = await bob.cmd(`group info ${gid} name Lunch club`);
    this.ok(r.ev === 'ok', `group info: ${JSON.stringify(r)}`);
    await Promise.all(members.map((c) => groupEv(c, (e) => e.changed === 4 && e.from === 'bob', 'the name', m.get(c))));
    let st = await show(carol);
    this.ok(st.name === 'Lunch club' && st.admins.length === 2 && st.admins.includes('bob') && st.member && !st.admin,
      `carol's view: ${JSON.stringify(st)}`);
    // only admins send: carol is refused at once
    m = marks();
    r = await alice1.cmd(`group setting ${gid} admins-send on`);
    this.ok(r.ev === 'ok', `group setting: ${JSON.stringify(r)}`);
    await Promise.all(members.map((c) => groupEv(c, (e) => e.changed === 8, 'only admins send', m.get(c))));
    r = await carol.cmd(`gsend ${gid} ${this.text('not-allowed')}`, { allowError: true });
    this.ok(r.ev === 'error' && /only admins/.test(r.message || ''), `carol's gsend where only admins send: ${JSON.stringify(r)}`);
    // an invite link; frank joins by it
    m = marks();
    r = await alice1.cmd(`group link ${gid} make`);
    this.ok(r.ev === 'group_link' && /^whisper-group:[A-Za-z0-9_-]{66}$/.test(r.link || ''), `group link make: ${JSON.stringify(r)}`);
    const link = r.link;
    await Promise.all(members.map((c) => groupEv(c, (e) => e.changed === 16, 'the link', m.get(c))));
    this.frank = this.chat('frank', 1);
    const { frank } = this;
    await frank.startOnline();
    m = marks();
    r = await frank.cmd(`group join ${link}`);
    this.ok(r.ev === 'group_joining' && r.group === gid, `group join: ${JSON.stringify(r)}`);
    await Promise.all([...members, frank].map((c) => groupEv(c, (e) => e.changed === 1 && e.from === 'frank', 'frank joining', m.get(c))));
    st = await show(frank);
    this.ok(st.member && !st.admin && st.members.length === 5 && st.name === 'Lunch club' && st.admins_send && st.link,
      `frank's view: ${JSON.stringify(st)}`);
    const hello = await alice1.cmd(`gsend ${gid} ${this.text('welcome-frank')}`);
    this.ok(hello.ev === 'sent_cmd', `gsend: ${JSON.stringify(hello)}`);
    await frank.waitFor((e) => e.ev === 'message' && e.id === hello.id, 'alice\'s message at frank');
    // everyone may send again; frank writes
    m = marks();
    const fromFrank = frank.events.length;
    r = await alice1.cmd(`group setting ${gid} admins-send off`);
    this.ok(r.ev === 'ok', `group setting: ${JSON.stringify(r)}`);
    await Promise.all(members.map((c) => groupEv(c, (e) => e.changed === 8, 'everyone sends', m.get(c))));
    await groupEv(frank, (e) => e.changed === 8, 'everyone sends (at frank)', fromFrank);
    const fx = await frank.cmd(`gsend ${gid} ${this.text('frank-says-hi')}`);
    this.ok(fx.ev === 'sent_cmd', `frank's gsend: ${JSON.stringify(fx)}`);
    await Promise.all(members.map((c) => c.waitFor((e) => e.ev === 'message' && e.id === fx.id, `frank's message at ${c.key}`)));
    // the link revoked: gina's join with it is refused by the server
    m = marks();
    r = await alice1.cmd(`group link ${gid} revoke`);
    this.ok(r.ev === 'ok', `group link revoke: ${JSON.stringify(r)}`);
    await Promise.all(members.map((c) => groupEv(c, (e) => e.changed === 16, 'the revocation', m.get(c))));
    this.gina = this.chat('gina', 1);
    const { gina } = this;
    await gina.startOnline();
    const fromGina = gina.events.length;
    r = await gina.cmd(`group join ${link}`);
    this.ok(r.ev === 'group_joining', `gina's join: ${JSON.stringify(r)}`);
    const ge = await gina.waitFor((e) => e.ev === 'error' && e.cmd === undefined && e.conversation === conv, 'the refusal of a revoked link', { from: fromGina });
    this.ok(ge.server_code === 8, `gina's join refused: ${JSON.stringify(ge)}`);
    st = await show(alice1);
    this.ok(!st.members.includes('gina') && !st.link, `alice's view after the revocation: ${JSON.stringify(st)}`);
    // frank leaves
    m = marks();
    const fromFrank2 = frank.events.length;
    r = await frank.cmd(`group leave ${gid}`);
    this.ok(r.ev === 'ok', `group leave: ${JSON.stringify(r)}`);
    await Promise.all(members.map((c) => groupEv(c, (e) => e.changed === 1 && e.from === 'frank', 'frank leaving', m.get(c))));
    await groupEv(frank, (e) => e.changed === 1 && e.from === 'frank', 'frank leaving (at frank)', fromFrank2);
    st = await show(frank);
    this.ok(!st.member, `frank's view after leaving: ${JSON.stringify(st)}`);
    for (const c of [...members, frank, gina]) {
      const refusedHere = c.all.filter((e) => e.ev === 'refused' && !(e.from === 'bob' && e.device === 2));
      this.ok(refusedHere.length === 0, `${c.key} refused something from the honest server: ${refusedHere.map((e) => JSON.stringify(e)).join(' | ')}`);
    }
    this.notes.admin = 'bob promoted, the name set by bob and seen by all, only admins send (carol refused at the call), a link made and frank joined by it (reads, and writes once everyone may), the link revoked (gina refused: server code 8), frank left; no change refused anywhere';
  }

  async typing() {
    this.cat = 'typing';
    const { alice1, alice2, bob, carol } = this;
    const conv = `#${this.gid}`;
    // presence
    const from = bob.events.length;
    await bob.cmd('subscribe alice carol');
    for (const acc of ['alice', 'carol']) {
      const p = await bob.waitFor((e) => e.ev === 'presence' && e.account === acc, `presence of ${acc}`, { from });
      this.ok(p.online === true, `presence of ${acc}: ${JSON.stringify(p)}`);
    }
    const q = await carol.quit();
    this.ok(q === 0, `carol.1 exit code ${q}`);
    const off = await bob.waitFor((e) => e.ev === 'presence' && e.account === 'carol' && e.online === false, 'carol offline', { from });
    this.ok(off.last_seen_ms > 0 && Math.abs(off.last_seen_ms - Date.now()) < 60000, `carol offline: last seen ${off.last_seen_ms}`);
    const from2 = bob.events.length;
    await carol.startOnline();
    await bob.waitFor((e) => e.ev === 'presence' && e.account === 'carol' && e.online === true, 'carol online again', { from: from2 });

    // 1:1 typing, on and off.
    let f = bob.events.length;
    await alice1.cmd('typing bob on');
    const on = await bob.waitFor((e) => e.ev === 'typing' && e.from === 'alice' && e.started === true, 'alice typing', { from: f });
    this.ok(on.conversation === 'alice' && on.device === 1, `typing at bob.1: ${JSON.stringify(on)}`);
    f = bob.events.length;
    await alice1.cmd('typing bob off');
    const stop = await bob.waitFor((e) => e.ev === 'typing' && e.from === 'alice' && e.started === false, 'alice stopped typing', { from: f });
    this.ok(stop.conversation === 'alice', `typing off at bob.1: ${JSON.stringify(stop)}`);

    // Group typing reaches the members online; a notice without "off"
    // lapses (whisperd --typing-ttl-ms 1500).
    const marks = [alice1, alice2, bob].map((c) => c.events.length);
    await carol.cmd(`typing ${conv} on`);
    const t0 = Date.now();
    for (const [k, c] of [alice1, alice2, bob].entries()) {
      const e = await c.waitFor((x) => x.ev === 'typing' && x.from === 'carol' && x.started === true, 'carol typing in the group', { from: marks[k] });
      this.ok(e.conversation === conv, `group typing at ${c.key}: ${JSON.stringify(e)}`);
    }
    for (const [k, c] of [alice1, alice2, bob].entries()) {
      const e = await c.waitFor((x) => x.ev === 'typing' && x.from === 'carol' && x.started === false, 'carol\'s typing lapsing', { from: marks[k] });
      this.ok(e.conversation === conv, `lapse at ${c.key}: ${JSON.stringify(e)}`);
    }
    const lapse = Date.now() - t0;
    this.ok(lapse >= 1000, `the typing indicator lapsed after ${lapse} ms, before the 1500 ms ttl`);
    this.notes.typing = `presence online, offline with last seen, online again; typing on/off 1:1; group typing at 3 devices, lapsing after ${lapse} ms`;
  }

  async crash() {
    this.cat = 'crash';
    const { alice1, alice2, bob, carol } = this;
    // Two streams written at once: alice.1 -> bob (30), carol -> alice (20).
    const N1 = 30;
    const N2 = 20;
    const m1 = alice1.events.length;
    const m2 = carol.events.length;
    for (let i = 0; i < N1; i++) alice1.write(`send bob ${this.text(`crash-a${i}`)}`);
    for (let i = 0; i < N2; i++) carol.write(`send alice ${this.text(`crash-c${i}`)}`);
    await alice1.waitUntil((ev) => ev.slice(m1).filter(isResult).length >= N1, `${N1} send results`);
    await carol.waitUntil((ev) => ev.slice(m2).filter(isResult).length >= N2, `${N2} send results`);
    const ids1 = alice1.events.slice(m1).filter(isResult);
    const ids2 = carol.events.slice(m2).filter(isResult);
    this.ok(ids1.every((e) => e.ev === 'sent_cmd') && ids2.every((e) => e.ev === 'sent_cmd'),
      `a send failed: ${[...ids1, ...ids2].filter((e) => e.ev !== 'sent_cmd').map((e) => JSON.stringify(e)).join(' | ')}`);
    const A = ids1.slice(0, N1).map((e) => e.id);
    const C = ids2.slice(0, N2).map((e) => e.id);
    // SIGKILL whisperd once a few have gone through.
    const sentIn = (c, ids) => c.all.filter((e) => e.ev === 'status' && e.status === 'sent' && ids.includes(e.id)).length;
    await alice1.waitUntil(() => sentIn(alice1, A) >= 5, 'the 5th status sent');
    const clients = this.procs.filter((p) => p !== this.server && !p.exited);
    const marks = clients.map((c) => c.events.length);
    const sentBefore = sentIn(alice1, A) + sentIn(carol, C);
    await this.server.kill9('mid-stream');
    const ackedAtKill = [...alice1.all, ...carol.all].filter((e) => e.ev === 'status' && e.status === 'sent' && (A.includes(e.id) || C.includes(e.id))).map((e) => e.id);
    // Every client notices; one of them fails to reconnect while whisperd
    // is down (the engine backs off); then whisperd comes back.
    await Promise.all(clients.map((c, k) => c.waitFor((e) => e.ev === 'disconnected', 'the disconnect when whisperd died', { from: marks[k] })));
    const refused = await Promise.any(clients.map((c, k) => c.waitFor((e) => e.ev === 'disconnected' && /cannot connect/.test(e.reason || ''), 'a refused reconnect', { from: marks[k] }))).catch(() => {
      throw new Error('no client reported a refused reconnect (a "disconnected" event with "cannot connect") while whisperd was down');
    });
    this.ok(!!refused, 'no client saw a refused reconnect');
    const downMs = Date.now();
    await this.server.start(); // the same port and db
    // The clients reconnect (backoff capped at 1 s) and log in again.
    await Promise.all(clients.map((c, k) => c.waitFor((e) => e.ev === 'online', 'online after the restart of whisperd', { from: marks[k] })));
    const reconnectMs = Date.now() - downMs;
    const attempts = clients.reduce((n, c, k) => n + c.events.slice(marks[k]).filter((e) => e.ev === 'disconnected' && /cannot connect/.test(e.reason || '')).length, 0);
    // Every message is eventually acknowledged (the outbox is durable) ...
    await this.statusAtLeast(alice1, A, 'sent', undefined, undefined, `status sent for all ${N1} of alice.1's messages`);
    await this.statusAtLeast(carol, C, 'sent', undefined, undefined, `status sent for all ${N2} of carol's messages`);
    // ... and, behind fences, delivered exactly once and in order.
    await this.fence(alice1, 'bob', [bob, alice2]);
    await this.fence(carol, 'alice', [alice1, alice2]);
    const checkStream = (c, ids, label) => {
      const got = c.messages((e) => ids.includes(e.id));
      const gotIds = got.map((e) => e.id);
      for (const id of ids) {
        const n = gotIds.filter((x) => x === id).length;
        this.ok(n === 1, `${label}: ${id}${ackedAtKill.includes(id) ? ' (acknowledged before the kill)' : ''} arrived ${n} times at ${c.key}`);
      }
      this.ok(JSON.stringify(gotIds) === JSON.stringify(ids), `${label}: order at ${c.key} differs from the send order`);
      const seqs = got.map((e) => e.seq);
      this.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `${label}: seqs at ${c.key} not increasing: ${seqs.join(' ')}`);
    };
    checkStream(bob, A, 'alice.1 -> bob');
    checkStream(alice2, A, 'alice.1 -> bob (the copy)');
    checkStream(alice1, C, 'carol -> alice');
    checkStream(alice2, C, 'carol -> alice');
    await this.checkHistory(bob, 'alice', A, 'bob.1 history alice');
    await this.checkHistory(alice1, 'bob', A, 'alice.1 history bob');
    await this.checkHistory(alice2, 'bob', A, 'alice.2 history bob');
    await this.checkHistory(alice1, 'carol', C, 'alice.1 history carol');
    await this.checkHistory(alice2, 'carol', C, 'alice.2 history carol');
    await this.checkHistory(carol, 'alice', C, 'carol history alice');
    await this.statusAtLeast(alice1, A, 'delivered', 'bob', 1, 'delivered for the whole stream at alice.1');
    await this.statusAtLeast(carol, C, 'delivered', 'alice', 1, 'delivered (alice.1) for the whole stream at carol');
    await this.statusAtLeast(carol, C, 'delivered', 'alice', 2, 'delivered (alice.2) for the whole stream at carol');
    this.ok(attempts < 20 * clients.length, `${attempts} refused reconnects while whisperd was down: no backoff?`);
    this.notes.crash = `whisperd SIGKILLed after ${sentBefore} of ${N1 + N2} messages were acknowledged, restarted on the same db and port (${attempts} refused reconnects meanwhile; all ${clients.length} clients back ${reconnectMs} ms after the restart): all ${N1 + N2} acknowledged, each delivered exactly once and in order (to bob, alice.1, alice.2), delivered ticks at the senders`;
  }

  // bob.1's store is replaced by an older copy of itself while alice goes
  // on writing: at its start the anchor it kept catches it, no session in
  // the copy encrypts again, and the conversation goes on both ways, every
  // new message exactly once, the ticks true.
  async restore() {
    this.cat = 'restore';
    const { alice1, bob } = this;
    this.ok(fs.existsSync(bob.anchorFile), 'bob.1 kept no anchor');
    await this.fence(alice1, 'bob', [bob]);
    const quit = await bob.quit();
    this.ok(quit === 0, `bob.1 exit code: ${quit}`);
    const copy = `${bob.db}.copy`;
    for (const x of ['', '-wal']) if (fs.existsSync(bob.db + x)) fs.copyFileSync(bob.db + x, copy + x);
    await bob.startOnline();
    // what happens after the copy: both ways
    const after = [];
    for (let i = 0; i < 3; i++) after.push(await alice1.send('bob', this.text(`restore-a${i}`)));
    for (const id of after) await this.message(bob, id, `alice.1's message ${id} before the restore`);
    const fromBob = await bob.send('alice', this.text('restore-b0'));
    await this.message(alice1, fromBob, "bob's message before the restore");
    const q2 = await bob.quit();
    this.ok(q2 === 0, `bob.1 exit code: ${q2}`);
    // the restore
    for (const x of ['', '-wal', '-shm']) fs.rmSync(bob.db + x, { force: true });
    for (const x of ['', '-wal']) if (fs.existsSync(copy + x)) fs.copyFileSync(copy + x, bob.db + x);
    const mark = bob.all.length;
    await bob.startOnline();
    const rb = bob.all.slice(mark).find((e) => e.ev === 'rollback');
    this.ok(!!rb, 'bob.1 did not notice its store was restored from an older copy');
    // and the conversation goes on, both ways
    const next = [];
    for (let i = 0; i < 3; i++) next.push(await alice1.send('bob', this.text(`restore-c${i}`)));
    for (const id of next) await this.message(bob, id, `alice.1's message ${id} after the restore`);
    const back = [];
    for (let i = 0; i < 3; i++) back.push(await bob.send('alice', this.text(`restore-d${i}`)));
    for (const id of back) await this.message(alice1, id, `bob's message ${id} after the restore`);
    for (const id of next) await this.statusAtLeast(alice1, [id], 'delivered', 'bob', 1, `delivered (bob.1) of ${id}`);
    for (const id of back) await this.statusAtLeast(bob, [id], 'delivered', 'alice', 1, `delivered (alice.1) of ${id}`);
    // each exactly once, where each device shows it
    for (const id of [...after, ...next]) {
      const n = bob.all.filter((e) => e.ev === 'message' && e.id === id).length;
      this.ok(n === 1, `bob.1 showed ${id} ${n} times`);
    }
    for (const id of [fromBob, ...back]) {
      const n = alice1.all.filter((e) => e.ev === 'message' && e.id === id).length;
      this.ok(n === 1, `alice.1 showed ${id} ${n} times`);
    }
    // (a receipt alice sent under a session the copy is behind cannot be
    // read, and nothing keeps it to send again: a true error, about no message)
    const mine = new Set([...after, ...next, fromBob, ...back]);
    const errs = bob.all.slice(mark).filter((e) => e.ev === 'error' && e.cmd === undefined && mine.has(e.id));
    this.ok(errs.length === 0, `bob.1 engine errors about messages after the restore: ${errs.map((e) => JSON.stringify(e)).join(' | ')}`);
    this.notes.restore = 'bob.1 stopped and copied, 3 messages in and 1 out, stopped, the copy put back: the kept anchor caught it at the start (rollback); then 3 messages each way after it, each once, delivered ticks at both ends';
  }

  async shutdown() {
    this.cat = 'shutdown';
    for (const c of this.procs) {
      if (c === this.server || c.exited) continue;
      const code = await c.quit();
      this.ok(code === 0, `${c.key} exit code at end of input: ${code}${c.stderrTail()}`);
      const bye = c.events.some((e) => e.ev === 'bye');
      this.ok(bye, `${c.key}: no "bye" line at end of input`);
    }
    const code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code after SIGTERM: ${code}${this.server.stderrTail()}`);
    // Keys never show: no line of stdout holds a key file's bytes.
    for (const c of this.procs) {
      if (c === this.server) continue;
      const key = fs.readFileSync(c.keyFile).toString('hex');
      const leaked = c.all.some((e) => JSON.stringify(e).includes(key));
      this.ok(!leaked, `${c.key}: its store key appears on stdout`);
    }
    this.notes.shutdown = 'every client exited 0 at end of input, whisperd 0 on SIGTERM; no store key on stdout';
  }
}

SyncTest.main('sync.js', { programs: ['whisperd', 'chat'] }, 'events.log: every line in and out; *.stderr; the stores');
