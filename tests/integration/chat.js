#!/usr/bin/env node
// whisper-chat as a person uses it: a real whisperd on loopback and
// whisper-chat processes in --script mode (and once in human mode, for the
// QR drawing). It checks, scenario by scenario:
//
//   setup    whisperd on a free port; alice.1, bob.1 and carol.1 register
//   read     messages named by #number of the last history listing, by an id
//            prefix, and all at once (read <conversation>): the read ticks
//            that reach the sender are those of the messages named, and only
//            those; numbers stay until the next listing; wrong names refused
//   content  reply (the quote at the other side), react / unreact, edit (edited
//            on both sides; another's message refused), delete for everyone (a
//            tombstone), forward (forwarded, many times), call signalling; the
//            human history shows them
//   prefix   an id prefix two messages share is refused as ambiguous
//   safety   safety gives the digits and the QR code's text; a scanned text
//            (or the digits) compared: a match, a mismatch, one's own code;
//            verify marks verified only on a match; the drawing in human mode
//            is a QR code (finder patterns, timing, quiet zone) of that text
//   link     a new device's link code as QR text; device 1 approves with the
//            scanned text
//   block    bob blocks alice: her message never comes and stays at one tick,
//            his send to her is refused; bob reports the conversation (what
//            whisperd --reports prints); unblocked, her next message comes
//   help     help lists every command with its usage and a line about it;
//            every command answers in --script mode; hostile lines do no harm
//   shutdown every client exits 0 at end of input (quit answers ok first);
//            whisperd exits 0 on SIGTERM
//
//   node chat.js --whisperd PATH --chat PATH [--timeout SECONDS] [--workdir DIR]
//                [--keep] [--trace]
//
// Every wait has a timeout; no assertion depends on a sleep. See README.md.
'use strict';

const fs = require('fs');
const { spawn, execFileSync } = require('child_process');

const { short, Test, Whisperd, whisperCode } = require('./procs');

// whisper-chat in human mode: `lines` on stdin, then end of input (once
// stdout matches `until`, if given); returns the exit code and stdout.
function runHuman(t, c, lines, until) {
  return new Promise((resolve, reject) => {
    t.ev(`${c.key} (human): start; ${lines.join(' | ')}`);
    const p = spawn(t.o.chat, c.args(), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    p.stdout.setEncoding('utf8');
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      p.stdin.end(lines.map((l) => `${l}\n`).join(''));
    };
    p.stdout.on('data', (d) => {
      out += d;
      if (until && until.test(out)) end();
    });
    p.stderr.on('data', (d) => fs.appendFileSync(c.logPath, d));
    const timer = setTimeout(() => p.kill('SIGKILL'), t.timeoutMs);
    p.on('error', (e) => reject(e));
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      t.ev(`${c.key} (human): exited (${signal || code}); stdout:\n${out}`);
      resolve({ code, signal, out });
    });
    p.stdin.on('error', () => {});
    if (!until) end();
  });
}

// ---------------------------------------------------------------------------
// QR drawings: the half-block art back to modules, and the checks a reader
// makes first (without decoding it)

// The art's rows of modules. Without colours the blocks are the light
// modules (as `qrencode -t UTF8`): true = dark.
function artModules(lines) {
  const rows = [];
  for (const l of lines) {
    const top = [];
    const bottom = [];
    for (const ch of l) {
      top.push(!(ch === '█' || ch === '▀'));
      bottom.push(!(ch === '█' || ch === '▄'));
    }
    rows.push(top, bottom);
  }
  return rows;
}

// Checks that `m` (rows of booleans, the quiet zone included, one extra
// half row at the bottom) is a QR code symbol with a quiet zone of `quiet`
// modules; returns a list of problems.
function qrProblems(m, quiet) {
  const bad = [];
  const width = m.length ? m[0].length : 0;
  if (!m.every((r) => r.length === width)) bad.push('rows of different widths');
  const size = width - 2 * quiet;
  if (size < 21 || (size - 17) % 4 !== 0) bad.push(`a symbol ${size} modules wide is no QR version`);
  if (m.length !== width + 1 && m.length !== width) bad.push(`${m.length / 2} lines for ${width} columns`);
  if (bad.length) return bad;
  const at = (x, y) => m[y + quiet][x + quiet];
  // quiet zone: light all round
  for (let y = 0; y < width; y++)
    for (let x = 0; x < width; x++) {
      const inside = x >= quiet && y >= quiet && x < quiet + size && y < quiet + size;
      if (!inside && m[y][x]) {
        bad.push(`a dark module in the quiet zone at (${x}, ${y})`);
        return bad;
      }
    }
  // finder patterns at three corners: 7x7 dark ring, light ring, 3x3 dark core,
  // and a light separator
  const finder = (ox, oy, name) => {
    for (let y = -1; y <= 7; y++)
      for (let x = -1; x <= 7; x++) {
        const fx = ox + x;
        const fy = oy + y;
        if (fx < 0 || fy < 0 || fx >= size || fy >= size) continue;
        let want;
        if (x === -1 || y === -1 || x === 7 || y === 7) want = false;
        else if (x === 0 || y === 0 || x === 6 || y === 6) want = true;
        else if (x === 1 || y === 1 || x === 5 || y === 5) want = false;
        else want = true;
        if (at(fx, fy) !== want) {
          bad.push(`the ${name} finder pattern is wrong at (${x}, ${y})`);
          return;
        }
      }
  };
  finder(0, 0, 'top left');
  finder(size - 7, 0, 'top right');
  finder(0, size - 7, 'bottom left');
  // timing patterns: row 6 and column 6 alternate between the finders
  for (let i = 8; i < size - 8; i++) {
    if (at(i, 6) !== (i % 2 === 0)) bad.push(`the horizontal timing pattern is wrong at ${i}`);
    if (at(6, i) !== (i % 2 === 0)) bad.push(`the vertical timing pattern is wrong at ${i}`);
  }
  // the dark module next to the bottom left finder
  if (!at(8, size - 8)) bad.push('no dark module at (8, size - 8)');
  return bad;
}

// The QR art that follows line index `from` in human output: the lines
// made only of half blocks and spaces.
function artAfter(lines, from) {
  const art = [];
  for (let i = from; i < lines.length; i++) {
    const l = lines[i];
    if (l.startsWith('  ') && l.length > 20 && /^[█▀▄ ]+$/.test(l.slice(2))) art.push(l.slice(2));
    else if (art.length) break;
  }
  return art;
}

// ---------------------------------------------------------------------------
// the test

const SCENARIOS = [
  ['setup', 'setup'],
  ['read', 'read'],
  ['content', 'content'],
  ['prefix', 'prefix'],
  ['safety', 'safety'],
  ['link', 'link'],
  ['flags', 'flags'],
  ['block', 'block'],
  ['help', 'help'],
  ['shutdown', 'shutdown'],
];

// message content (the content scenario)
const CONTENT_COMMANDS = ['reply', 'react', 'unreact', 'edit', 'delete', 'forward', 'call'];

const COMMANDS = ['send', 'gsend', 'group', 'history', 'read', 'search', 'mute', 'unmute', 'archive', 'pin', 'flags', 'typing', 'subscribe', 'safety', 'verify', 'accept', 'trust', 'link-approve', 'device-remove', 'status', 'help', 'quit'];
COMMANDS.push('block', 'unblock', 'blocked', 'report'); // (the block scenario's)

class ChatTest extends Test {
  constructor(o, dir) {
    super(o, dir, SCENARIOS);
    this.server = new Whisperd(this);
  }

  // The ids the read receipts seen at `c` so far name (from `to`).
  readIds(c, to) {
    return new Set(c.all.filter((e) => e.ev === 'status' && e.status === 'read' && e.to === to).map((e) => e.id));
  }

  // An ok result of `read` that marked exactly `ids`.
  readOk(r, ids, what) {
    const got = r.ev === 'ok' && r.cmd === 'read' && Array.isArray(r.ids) ? [...r.ids].sort() : null;
    this.ok(got && JSON.stringify(got) === JSON.stringify([...ids].sort()) && r.marked === ids.length,
      `${what}: marked ${JSON.stringify(r)}, expected ${ids.join(' ') || 'nothing'}`);
  }

  // ---- scenarios

  async setup() {
    await this.server.start();
    this.ok(this.server.port > 0, `whisperd port ${this.server.port}`);
    this.alice1 = this.chat('alice', 1);
    this.bob = this.chat('bob', 1);
    this.carol = this.chat('carol', 1);
    await this.register([this.alice1, this.bob, this.carol]);
    // carol only receives (the prefix scenario): she need not be online
    this.ok((await this.carol.quit()) === 0, 'carol.1 exit code at end of input');
    this.notes.setup = `whisperd on 127.0.0.1:${this.server.port}; alice.1, bob.1 and carol.1 registered`;
  }

  async read() {
    const { alice1, bob } = this;
    // alice's conversation with bob: b1 b2 (bob), a1 (alice), b3 b4 (bob)
    const b = [];
    for (const label of ['b1', 'b2']) {
      const id = await bob.send('alice', this.text(label));
      await this.message(alice1, id, `bob's ${label}`);
      b.push(id);
    }
    const a1 = await alice1.send('bob', this.text('a1'));
    await this.message(bob, a1, "alice's a1");
    for (const label of ['b3', 'b4']) {
      const id = await bob.send('alice', this.text(label));
      await this.message(alice1, id, `bob's ${label}`);
      b.push(id);
    }
    const [b1, b2, b3, b4] = b;
    for (const id of b) await this.status(bob, id, 'delivered', 'alice', 1, `delivered of ${id}`);

    // numbers before any listing: a clear error
    const early = await alice1.fails('read bob #2');
    this.ok(early.ev === 'error' && /history bob/.test(early.message), `read by number before any history: ${JSON.stringify(early)}`);

    const h = await alice1.cmd('history bob');
    const order = h.messages.map((m) => m.id);
    this.ok(JSON.stringify(order) === JSON.stringify([b1, b2, a1, b3, b4]), `history bob: ${order.join(' ')}`);
    this.ok(JSON.stringify(h.messages.map((m) => m.n)) === JSON.stringify([1, 2, 3, 4, 5]), `history numbers: ${JSON.stringify(h.messages.map((m) => m.n))}`);
    this.ok(this.readIds(bob, 'alice').size === 0, 'a read tick at bob before alice read anything');

    // #2: b2 only
    this.readOk(await alice1.cmd('read bob #2'), [b2], 'read bob #2');
    await this.status(bob, b2, 'read', 'alice', 1, 'the read tick of #2 (b2) at bob');
    // by prefix (6 digits, upper case): b3 only
    this.readOk(await alice1.cmd(`read bob ${b3.slice(0, 6).toUpperCase()}`), [b3], 'read bob <prefix of b3>');
    await this.status(bob, b3, 'read', 'alice', 1, 'the read tick of b3 at bob');
    let seen = this.readIds(bob, 'alice');
    this.ok(!seen.has(b1) && !seen.has(b4), `read ticks at bob for messages alice did not read: ${[...seen].join(' ')}`);
    // everything else received: b1 and b4 (not a1, alice's own)
    this.readOk(await alice1.cmd('read bob'), [b1, b4], 'read bob (all)');
    await this.status(bob, b1, 'read', 'alice', 1, 'the read tick of b1 at bob');
    await this.status(bob, b4, 'read', 'alice', 1, 'the read tick of b4 at bob');
    this.readOk(await alice1.cmd('read bob'), [], 'read bob again (nothing new)');
    seen = this.readIds(bob, 'alice');
    this.ok(!seen.has(a1), 'bob got a read tick for his own view of alice\'s message');

    // what does not name a received message is refused, and says why
    const refusals = [
      ['read bob 3', /own message/],                 // #3 is alice's own a1
      ['read bob #6', /#1 to #5/],
      ['read bob #0', /#1 to #5/],
      ['read bob #x', /not a message number/],
      ['read bob abc', /at least 4 hex digits/],
      ['read bob zzzz', /not a message/],
      ['read bob ffffffffffffffffffffffffffffffffff', /no message|longer/],
      [`read bob ${'a'.repeat(200)}`, /longer than any message id/],
      ['read bob #99999999999999999999999', /#1 to #5/],
      ['read', /usage/],
    ];
    const unknownPrefix = ['0123', '4567', '89ab', 'cdef', 'fedc'].find((p) => !order.some((id) => id.startsWith(p)));
    refusals.push([`read bob ${unknownPrefix}`, /no message of bob has an id starting with|no #/]);
    for (const [line, re] of refusals) {
      const r = await alice1.fails(line);
      this.ok(r.ev === 'error' && r.cmd === 'read' && re.test(r.message || ''), `${line}: ${JSON.stringify(r)}`);
    }
    // a refused word refuses the whole line: nothing marked
    const r2 = await alice1.fails(`read bob #1 #9`);
    this.ok(r2.ev === 'error', `read bob #1 #9: ${JSON.stringify(r2)}`);

    // the explicit form of before still works
    this.readOk(await alice1.cmd(`read bob bob ${b1}`), [b1], 'read bob bob <b1> (explicit form)');

    // numbers stay until the next listing: b5 arrives, #5 is still b4
    const b5 = await bob.send('alice', this.text('b5'));
    await this.message(alice1, b5, "bob's b5");
    this.readOk(await alice1.cmd('read bob #5'), [b4], 'read bob #5 after b5 arrived (the listing is kept)');
    this.readOk(await alice1.cmd('read bob #5 5 #5'), [b4], 'a message named thrice is marked once');
    // a new, shorter listing numbers the newest three: b3 b4 b5
    const h2 = await alice1.cmd('history bob 3');
    this.ok(JSON.stringify(h2.messages.map((m) => [m.n, m.id])) === JSON.stringify([[1, b3], [2, b4], [3, b5]]), `history bob 3: ${JSON.stringify(h2.messages.map((m) => [m.n, m.id]))}`);
    this.readOk(await alice1.cmd('read bob #1'), [b3], 'read bob #1 after the new listing');
    const r4 = await alice1.fails('read bob #4');
    this.ok(r4.ev === 'error' && /#1 to #3/.test(r4.message), `read bob #4 after a listing of 3: ${JSON.stringify(r4)}`);
    this.readOk(await alice1.cmd('read bob'), [b5], 'read bob (all): only the new b5');
    await this.status(bob, b5, 'read', 'alice', 1, 'the read tick of b5 at bob');

    // a group: read <group conversation> marks what each member sent
    const g = await alice1.cmd('group create bob');
    await bob.waitFor((e) => e.ev === 'group' && e.conversation === g.conversation, 'the new group at bob');
    const g1 = await alice1.cmd(`gsend ${g.group} ${this.text('g1')}`);
    await this.message(bob, g1.id, "alice's g1 in the group");
    const gb = [];
    for (const label of ['gb1', 'gb2']) {
      const r = await bob.cmd(`gsend ${g.group} ${this.text(label)}`);
      await this.message(alice1, r.id, `bob's ${label} in the group`);
      gb.push(r.id);
    }
    const hg = await alice1.cmd(`history ${g.conversation}`);
    this.ok(JSON.stringify(hg.messages.map((m) => m.id)) === JSON.stringify([g1.id, ...gb]), `history of the group: ${JSON.stringify(hg.messages.map((m) => m.id))}`);
    this.readOk(await alice1.cmd(`read ${g.conversation} #2`), [gb[0]], 'read <group> #2');
    this.readOk(await alice1.cmd(`read ${g.conversation}`), [gb[1]], 'read <group> (all)');
    for (const id of gb) await this.status(bob, id, 'read', 'alice', 1, `the read tick of group message ${id} at bob`);
    this.notes.read = 'history numbered #1..#5; read bob #2, by an upper-case 6-digit prefix, then all (the rest received, not the own one): exactly those read ticks at bob; nothing new the second time; own message, out of range, too short, not hex, unknown, too long refused; the explicit form; numbers kept until the next listing, renumbered by it; in a group, by number and all, read ticks at the sender';
  }

  async content() {
    const { alice1, bob } = this;
    // help lists the content commands, and each answers without arguments
    const h = await alice1.cmd('help');
    const names = new Set((h.commands || []).map((r) => r.command));
    for (const n of CONTENT_COMMANDS) {
      this.ok(names.has(n), `help does not list ${n}`);
      const r = await alice1.fails(n);
      this.ok(r.ev === 'error' && r.cmd === n && /usage/.test(r.message || ''), `${n} without arguments: ${JSON.stringify(r)}`);
    }
    // numbered messages of a conversation, by id, from a fresh history
    const numbers = async (c, conv) => {
      const l = await c.cmd(`history ${conv}`);
      const by = new Map();
      for (const m of l.messages) by.set(m.id, m);
      return by;
    };

    // --- a reply, by #number: the quote shows on the other side
    const firstText = `first words of a message long enough to be cut short in a quote ${this.text('c1')}`;
    const c1 = await alice1.send('bob', firstText);
    await this.message(bob, c1, "alice's c1");
    let atBob = await numbers(bob, 'alice');
    const replyText = this.text('reply');
    const r1 = (await bob.cmd(`reply alice #${atBob.get(c1).n} ${replyText}`)).id;
    const got = await this.message(alice1, r1, "bob's reply");
    this.ok(got.body === replyText && got.quote && got.quote.id === c1 && got.quote.own === true &&
      got.quote.from === 'alice' && firstText.startsWith(got.quote.excerpt || '-') && got.quote.excerpt.length >= 20,
      `the reply at alice: ${JSON.stringify(got)}`);
    let atAlice = await numbers(alice1, 'bob');
    const q = atAlice.get(r1);
    this.ok(q && q.quote && q.quote.id === c1 && q.quote.own === true && firstText.startsWith(q.quote.excerpt),
      `the reply in alice's history: ${JSON.stringify(q)}`);
    atBob = await numbers(bob, 'alice');
    const qb = atBob.get(r1);
    this.ok(qb && qb.own && qb.quote && qb.quote.id === c1 && qb.quote.from === 'alice' && qb.quote.own === false,
      `the reply in bob's history: ${JSON.stringify(qb)}`);
    const bad = await bob.fails(`reply alice #99 ${this.text('x')}`);
    this.ok(bad.ev === 'error' && bad.cmd === 'reply' && /#1 to #/.test(bad.message), `reply to #99: ${JSON.stringify(bad)}`);

    // --- reactions: set, replaced, removed (alice reacts to bob's reply)
    const nR1 = atAlice.get(r1).n;
    const reaction = (c, target, emoji) => c.waitFor((e) => e.ev === 'reaction' && e.target_id === target && e.emoji === emoji,
      `the reaction "${emoji}" to ${target}`, { from: 0 });
    const ra = await alice1.cmd(`react bob #${nR1} 👍`);
    this.ok(ra.ev === 'ok' && ra.cmd === 'react' && ra.id === r1 && ra.emoji === '👍', `react: ${JSON.stringify(ra)}`);
    const e1 = await reaction(bob, r1, '👍');
    this.ok(e1.from === 'alice' && e1.conversation === 'alice' && e1.target_own === true && e1.target_sender === 'bob' && e1.removed === false,
      `the reaction event at bob: ${JSON.stringify(e1)}`);
    await alice1.cmd(`react bob #${nR1} ❤️`);
    await reaction(bob, r1, '❤️');
    atBob = await numbers(bob, 'alice');
    this.ok(JSON.stringify(atBob.get(r1).reactions.map((x) => [x.from, x.emoji])) === JSON.stringify([['alice', '❤️']]),
      `bob's history after the reaction was replaced: ${JSON.stringify(atBob.get(r1).reactions)}`);
    const un = await alice1.cmd(`unreact bob #${nR1}`);
    this.ok(un.ev === 'ok' && un.cmd === 'unreact' && un.id === r1, `unreact: ${JSON.stringify(un)}`);
    const e3 = await reaction(bob, r1, '');
    this.ok(e3.removed === true, `the removal at bob: ${JSON.stringify(e3)}`);
    atBob = await numbers(bob, 'alice');
    this.ok(atBob.get(r1).reactions.length === 0, `bob's history after the reaction was removed: ${JSON.stringify(atBob.get(r1).reactions)}`);
    // bob reacts to alice's c1 by an id prefix
    await bob.cmd(`react alice ${c1.slice(0, 8)} 👍`);
    const e4 = await reaction(alice1, c1, '👍');
    this.ok(e4.from === 'bob' && e4.target_own === true, `bob's reaction at alice: ${JSON.stringify(e4)}`);
    for (const [line, re] of [['react bob #1 +1', /one emoji/], [`react bob #1 ${'👍'.repeat(40)}`, /emoji/], ['react bob #1 👍 👍', /usage/]]) {
      const r = await alice1.fails(line);
      this.ok(r.ev === 'error' && r.cmd === 'react' && re.test(r.message || ''), `${line}: ${JSON.stringify(r)}`);
    }

    // --- an edit: edited on both sides; someone else's message refused
    atAlice = await numbers(alice1, 'bob');
    const newText = this.text('c1-edited');
    const ed = await alice1.cmd(`edit bob #${atAlice.get(c1).n} ${newText}`);
    this.ok(ed.ev === 'ok' && ed.cmd === 'edit' && ed.id === c1, `edit: ${JSON.stringify(ed)}`);
    const ee = await bob.waitFor((e) => e.ev === 'edited' && e.target_id === c1, 'the edit at bob');
    this.ok(ee.body === newText && ee.from === 'alice' && ee.target_sender === 'alice' && ee.target_own === false, `the edited event at bob: ${JSON.stringify(ee)}`);
    atBob = await numbers(bob, 'alice');
    atAlice = await numbers(alice1, 'bob');
    this.ok(atBob.get(c1).body === newText && atBob.get(c1).edited === true, `c1 in bob's history: ${JSON.stringify(atBob.get(c1))}`);
    this.ok(atAlice.get(c1).body === newText && atAlice.get(c1).edited === true, `c1 in alice's history: ${JSON.stringify(atAlice.get(c1))}`);
    this.ok(atAlice.get(r1).edited === false, 'the reply marked edited');
    const notMine = await alice1.fails(`edit bob #${atAlice.get(r1).n} ${this.text('not-mine')}`);
    this.ok(notMine.ev === 'error' && notMine.cmd === 'edit' && /bob's message: you can only edit your own/.test(notMine.message),
      `alice edits bob's reply: ${JSON.stringify(notMine)}`);
    const notMine2 = await bob.fails(`edit alice #${atBob.get(c1).n} ${this.text('not-mine')}`);
    this.ok(notMine2.ev === 'error' && /only edit your own/.test(notMine2.message), `bob edits alice's message: ${JSON.stringify(notMine2)}`);
    this.ok((await numbers(bob, 'alice')).get(r1).body === replyText, 'the reply changed after the refused edit');

    // --- a delete for everyone: a tombstone at the recipient
    const d1 = await alice1.send('bob', this.text('oops'));
    await this.message(bob, d1, "alice's d1");
    const del = await alice1.cmd(`delete bob ${d1.slice(0, 8)}`);
    this.ok(del.ev === 'ok' && del.cmd === 'delete' && del.id === d1, `delete: ${JSON.stringify(del)}`);
    const de = await bob.waitFor((e) => e.ev === 'deleted' && e.target_id === d1, 'the delete at bob');
    this.ok(de.from === 'alice' && de.target_sender === 'alice', `the deleted event at bob: ${JSON.stringify(de)}`);
    atBob = await numbers(bob, 'alice');
    this.ok(atBob.get(d1) && atBob.get(d1).deleted === true && atBob.get(d1).body === '', `d1 in bob's history: ${JSON.stringify(atBob.get(d1))}`);
    this.ok((await numbers(alice1, 'bob')).get(d1).deleted === true, "d1 not deleted in alice's history");
    const delOther = await bob.fails(`delete alice #${atBob.get(c1).n}`);
    this.ok(delOther.ev === 'error' && /only delete your own/.test(delOther.message), `bob deletes alice's message: ${JSON.stringify(delOther)}`);
    const editDeleted = await alice1.fails(`edit bob ${d1.slice(0, 8)} ${this.text('back')}`);
    this.ok(editDeleted.ev === 'error' && /deleted/.test(editDeleted.message), `an edit of the deleted message: ${JSON.stringify(editDeleted)}`);

    // --- a forward to another conversation, then back and forth until "many times"
    const carol = this.carol;
    await carol.startOnline();
    const fw = await alice1.cmd(`forward carol bob ${r1.slice(0, 8)}`);
    this.ok(fw.ev === 'sent_cmd' && fw.conversation === 'carol', `forward: ${JSON.stringify(fw)}`);
    const fc = await this.message(carol, fw.id, 'the forward at carol');
    this.ok(fc.body === replyText && fc.forwarded === 1 && fc.from === 'alice', `the forward at carol: ${JSON.stringify(fc)}`);
    this.ok((await numbers(carol, 'alice')).get(fw.id).forwarded === 1, "the forward in carol's history");
    this.ok((await carol.quit()) === 0, 'carol.1 exit code at end of input');
    let id = r1;
    let [from, to] = [alice1, bob];
    for (let k = 1; k <= 5; k++) {
      const f = await from.cmd(`forward ${to.account} ${to.account} ${id.slice(0, 8)}`);
      const m = await this.message(to, f.id, `forward ${k}`);
      this.ok(m.forwarded === k && m.body === replyText, `forward ${k}: ${JSON.stringify(m)}`);
      id = f.id;
      [from, to] = [to, from];
    }
    const fwErr = await alice1.fails('forward carol bob #999');
    this.ok(fwErr.ev === 'error' && fwErr.cmd === 'forward', `forward of #999: ${JSON.stringify(fwErr)}`);

    // --- call signalling: an offer reaches the peer as an event, and the call goes on
    const offer = await alice1.cmd('call bob offer v=0 offer-sdp');
    this.ok(offer.ev === 'ok' && offer.cmd === 'call' && /^[0-9a-f]{32}$/.test(offer.call_id || '') && offer.type === 'offer', `call offer: ${JSON.stringify(offer)}`);
    const co = await bob.waitFor((e) => e.ev === 'call' && e.type === 'offer', 'the call offer at bob');
    this.ok(co.call_id === offer.call_id && co.from === 'alice' && co.data === 'v=0 offer-sdp', `the offer at bob: ${JSON.stringify(co)}`);
    const ans = await bob.cmd('call alice answer v=0 answer-sdp');
    this.ok(ans.call_id === offer.call_id, `the answer takes the offer's call id: ${JSON.stringify(ans)}`);
    const ca = await alice1.waitFor((e) => e.ev === 'call' && e.type === 'answer', 'the answer at alice');
    this.ok(ca.call_id === offer.call_id && ca.data === 'v=0 answer-sdp', `the answer at alice: ${JSON.stringify(ca)}`);
    await alice1.cmd(`call bob hangup ${offer.call_id}`);
    const ch = await bob.waitFor((e) => e.ev === 'call' && e.type === 'hangup', 'the hangup at bob');
    this.ok(ch.call_id === offer.call_id && ch.data === '', `the hangup at bob: ${JSON.stringify(ch)}`);
    for (const [line, re] of [['call bob ring', /usage/], ['call bob answer 0123456789', /32 hex digits/],
      ['call carol hangup', /which call/], ['call alice offer', /another account/], [`call bob ice ${'x'.repeat(70000)}`, /at most/]]) {
      const r = await alice1.fails(line);
      this.ok(r.ev === 'error' && r.cmd === 'call' && re.test(r.message || ''), `${short(line, 50)}: ${JSON.stringify(r)}`);
    }

    // lines a careless or hostile user may type: an error each, no harm
    const hostile = [
      'reply', 'reply bob', 'reply bob #1', `reply bob ${'#'.repeat(3000)} x`, 'reply \u0001 #1 x', `reply ${'b'.repeat(300)} #1 x`,
      'react bob', 'react bob #1', 'react bob #1 \u001b[31m', 'unreact bob', 'unreact bob #1 extra', 'unreact bob zzzz',
      'edit bob', 'edit bob #1', 'edit #00 #1 x', 'delete', 'delete bob', 'delete bob #1 #2', 'delete bob -1',
      'forward', 'forward carol', 'forward carol bob', 'forward bob bob #1 extra', 'forward alice bob #1',
      'call', 'call bob', 'call bob offr', 'call bob OFFER', `call ${'z'.repeat(100)} offer`, 'call bob busy ffffffffffffffffffffffffffffffffff',
    ];
    const rs = await alice1.cmds(hostile);
    this.ok(rs.every((r) => r.ev === 'error'), `hostile lines: ${JSON.stringify(rs.map((r, i) => [hostile[i].slice(0, 30), r.ev]).filter((x) => x[1] !== 'error'))}`);
    const st = await alice1.cmd('status');
    this.ok(st.ev === 'state' && st.online === true, `status after the hostile lines: ${JSON.stringify(st)}`);

    // --- how a person sees it: bob in human mode, first the live lines of
    // what alice did while he was away, then his history
    this.ok((await bob.quit()) === 0, 'bob.1 exit code at end of input');
    atAlice = await numbers(alice1, 'bob');
    const live = this.text('live-reply');
    const lr = (await alice1.cmd(`reply bob #${atAlice.get(r1).n} ${live}`)).id;
    await alice1.cmd(`react bob #${atAlice.get(r1).n} 🎉`);
    const newText2 = this.text('c1-edited-again');
    await alice1.cmd(`edit bob #${atAlice.get(c1).n} ${newText2}`);
    const d2 = await alice1.send('bob', this.text('oops-again'));
    await alice1.cmd(`delete bob ${d2.slice(0, 8)}`);
    const offer2 = await alice1.cmd('call bob offer v=0 live-sdp');
    const human = await runHuman(this, bob, ['history alice'], /is calling you[^]*\n/);
    this.ok(human.code === 0, `bob.1 in human mode exit code ${human.code}`);
    const lines = human.out.split('\n');
    const has = (re, what) => this.ok(lines.some((l) => re.test(l)), `no ${what} line in human mode`);
    const liveAt = lines.findIndex((l) => /\[alice\] alice\.1: /.test(l) && l.includes(live));
    this.ok(liveAt >= 0 && /^ {10}↪ you: "reply-/.test(lines[liveAt + 1] || ''), `the live reply and its quote: ${JSON.stringify(lines.slice(liveAt, liveAt + 2))}`);
    has(new RegExp(`\\[alice\\] alice\\.1 reacted 🎉 to your message "${replyText}"  \\(${r1.slice(0, 8)}\\)$`), 'live reaction');
    has(new RegExp(`\\[alice\\] alice\\.1 edited a message: ${newText2}  \\(${c1.slice(0, 8)}\\)$`), 'live edit');
    has(new RegExp(`\\[alice\\] alice\\.1 deleted a message for everyone: 🚫 this message was deleted  \\(${d2.slice(0, 8)}\\)$`), 'live delete');
    has(new RegExp(`^☎ alice\\.1 is calling you \\(call ${offer2.call_id}\\)`), 'live call offer');
    const lineOf = (i) => lines.findIndex((l) => /^ {2}#\d/.test(l) && l.includes(`(${i.slice(0, 8)})`));
    const at = (i, d = 0) => lines[lineOf(i) + d] || '';
    this.ok(/^ {10}↪ alice: "first words of a message long enough to…"$/.test(at(r1, 1)), `the quote under the reply: "${at(r1, 1)}"`);
    this.ok(/^ {10}🎉 alice$/.test(at(r1, 2)), `alice's reaction under the reply: "${at(r1, 2)}"`);
    this.ok(at(c1).includes(newText2) && at(c1).includes('(edited)'), `the edited message: "${at(c1)}"`);
    this.ok(/^ {10}👍 you$/.test(at(c1, 1)), `bob's reaction under c1: "${at(c1, 1)}"`);
    for (const d of [d1, d2]) this.ok(at(d).includes('🚫 this message was deleted') && !at(d).includes('oops'), `the tombstone: "${at(d)}"`);
    // bob holds forwards 1 to 5 (2 and 4 his own)
    const fwdLines = lines.filter((l) => /: \[forwarded\] /.test(l));
    const many = lines.filter((l) => /: \[forwarded many times\] /.test(l));
    this.ok(fwdLines.length === 4 && many.length === 1 && many[0].includes(id.slice(0, 8)), `forwarded lines: ${JSON.stringify([...fwdLines, ...many])}`);
    await bob.startOnline();
    this.ok((await numbers(bob, 'alice')).get(lr).quote.id === r1, "the live reply in bob's history");
    this.notes.content = 'help lists reply, react, unreact, edit, delete, forward, call (usage errors without arguments); a reply by #number shows its quote at alice (event and history) and bob; a reaction set, replaced, removed (events, history), one by an id prefix; an edit shows edited on both sides, edits of the other\'s message refused; a delete for everyone leaves a tombstone at bob; a forward to carol shows forwarded 1, back and forth up to 5; a call offer, answer (its id remembered) and hangup as events; hostile lines refused; in human mode the live lines of a reply (its quote), a reaction, an edit, a delete and a call offer, and bob\'s history: quotes, (edited), reactions, tombstones, forwarded and forwarded many times';
  }

  async prefix() {
    const { alice1 } = this;
    // Ids are random: send to carol (offline) until two share 4 hex digits
    // (expected after some 320 messages; 2000 miss it with odds of e^-30).
    let pair = null;
    let sent = 0;
    let ids = [];
    while (!pair && sent < 2000) {
      const lines = [];
      for (let i = 0; i < 100; i++) lines.push(`send carol ${this.text('p')}`);
      const rs = await alice1.cmds(lines);
      this.ok(rs.every((r) => r.ev === 'sent_cmd'), `sends to carol: ${JSON.stringify(rs.find((r) => r.ev !== 'sent_cmd'))}`);
      sent += lines.length;
      const h = await alice1.cmd('history carol 10000');
      const by = new Map();
      ids = h.messages.map((m) => m.id);
      for (const m of h.messages) {
        const p = m.id.slice(0, 4);
        // an all-decimal prefix may also be a #number of the listing (msgref.c
        // then says "both", not "ambiguous"): only a prefix with a hex letter
        if (/^[0-9]+$/.test(p)) continue;
        if (by.has(p)) {
          pair = [by.get(p), m.id, p];
          break;
        }
        by.set(p, m.id);
      }
    }
    if (!this.ok(!!pair, `no two of ${sent} ids share 4 hex digits`)) return;
    const [x, y, p] = pair;
    const r = await alice1.fails(`read carol ${p}`);
    this.ok(r.ev === 'error' && /ambiguous/.test(r.message) && r.message.includes(x.slice(0, 8)) && r.message.includes(y.slice(0, 8)),
      `read carol ${p} (the ids ${x} and ${y} start with it): ${JSON.stringify(r)}`);
    // a prefix only x has resolves (to alice's own message, which read refuses as such)
    let k = 5;
    while (ids.some((id) => id !== x && id.startsWith(x.slice(0, k)))) k++;
    const r2 = await alice1.fails(`read carol ${x.slice(0, k)}`);
    this.ok(r2.ev === 'error' && /own message/.test(r2.message), `read carol ${x.slice(0, k)} names alice's own message: ${JSON.stringify(r2)}`);
    this.notes.prefix = `${sent} messages to carol until two ids shared a 4-digit prefix (${p}): refused as ambiguous, naming both; a longer prefix resolves`;
  }

  async safety() {
    const { alice1, bob } = this;
    const mine = await alice1.cmd('safety bob');
    const theirs = await bob.cmd('safety alice');
    const QR = /^WHISPER-SAFETY:[0-9A-F]+$/;
    this.ok(/^[0-9]{60}$/.test(mine.number) && mine.trust === 'unverified' && QR.test(mine.qr_text || ''), `safety bob at alice.1: ${JSON.stringify(mine)}`);
    this.ok(theirs.number === mine.number && QR.test(theirs.qr_text || ''), `safety alice at bob.1: ${JSON.stringify(theirs)}`);
    this.ok(theirs.qr_text !== mine.qr_text, 'both sides show the same QR text (each holds its own side first)');
    this.ok(mine.match === undefined, `no comparison asked, yet: ${JSON.stringify(mine)}`);

    // alice scans bob's code
    const good = await alice1.cmd(`safety bob ${theirs.qr_text}`);
    this.ok(good.ev === 'safety' && good.match === true, `alice.1 compares bob's code: ${JSON.stringify(good)}`);
    const lower = await alice1.cmd(`safety bob ${theirs.qr_text.toLowerCase()}`);
    this.ok(lower.match === true, `the code in lower case: ${JSON.stringify(lower)}`);
    const bare = await alice1.cmd(`safety bob ${theirs.qr_text.slice('WHISPER-SAFETY:'.length)}`);
    this.ok(bare.match === true, `the code without its prefix: ${JSON.stringify(bare)}`);
    const back = await bob.cmd(`safety alice ${mine.qr_text}`);
    this.ok(back.match === true, `bob.1 compares alice's code: ${JSON.stringify(back)}`);
    // her own code, and a code one digit off
    const own = await alice1.cmd(`safety bob ${mine.qr_text}`);
    this.ok(own.match === false && /own code/.test(own.why || ''), `alice.1 compares her own code: ${JSON.stringify(own)}`);
    const last = theirs.qr_text.slice(-1);
    const tampered = theirs.qr_text.slice(0, -1) + (last === '0' ? '1' : '0');
    const bad = await alice1.cmd(`safety bob ${tampered}`);
    this.ok(bad.match === false && !/own code/.test(bad.why || ''), `a code one digit off: ${JSON.stringify(bad)}`);
    // the digits, as read out, with blanks
    const spaced = mine.number.match(/.{5}/g).join(' ');
    const digits = await alice1.cmd(`safety bob ${spaced}`);
    this.ok(digits.match === true, `the 60 digits: ${JSON.stringify(digits)}`);
    const wrongDigits = mine.number.slice(0, 59) + (mine.number[59] === '0' ? '1' : '0');
    this.ok((await alice1.cmd(`safety bob ${wrongDigits}`)).match === false, 'the digits one off: a match');
    for (const [line, re] of [
      ['safety bob 12345', /60 digits/],
      ['safety bob WHISPER-SAFETY:', /not a safety code/],
      ['safety bob WHISPER-SAFETY:0A0B', /not a safety code/],
      ['safety bob hello', /not a safety code/],
      [`safety bob ${'AB'.repeat(400)}`, /too long|not a safety code/],
      ['safety', /usage/],
      ['safety nobody-known', /no account key/],
    ]) {
      const r = await alice1.fails(line);
      this.ok(r.ev === 'error' && r.cmd === 'safety' && re.test(r.message || ''), `${short(line, 50)}: ${JSON.stringify(r)}`);
    }

    // verify with a code: not on a mismatch, yes on a match
    const v1 = await alice1.fails(`verify bob ${tampered}`);
    this.ok(v1.ev === 'error' && v1.cmd === 'verify' && /MISMATCH/.test(v1.message), `verify bob <a wrong code>: ${JSON.stringify(v1)}`);
    const v2 = await alice1.fails(`verify bob ${mine.qr_text}`);
    this.ok(v2.ev === 'error' && /MISMATCH/.test(v2.message) && /own code/.test(v2.message), `verify bob <her own code>: ${JSON.stringify(v2)}`);
    this.ok((await alice1.cmd('safety bob')).trust === 'unverified', 'bob verified after a mismatch');
    const v3 = await alice1.cmd(`verify bob ${theirs.qr_text}`);
    this.ok(v3.ev === 'ok' && v3.cmd === 'verify' && v3.match === true && v3.trust === 'verified', `verify bob <his code>: ${JSON.stringify(v3)}`);
    this.ok((await alice1.cmd('safety bob')).trust === 'verified', 'bob not verified after a match');
    const v4 = await bob.cmd(`verify alice ${mine.number}`);
    this.ok(v4.ev === 'ok' && v4.match === true, `verify alice <the digits> at bob.1: ${JSON.stringify(v4)}`);
    const acc = await bob.fails(`accept alice ${mine.qr_text}`);
    this.ok(acc.ev === 'error' && /usage/.test(acc.message), `accept with a code: ${JSON.stringify(acc)}`);

    // the drawing: alice in human mode (stopped meanwhile)
    this.ok((await alice1.quit()) === 0, 'alice.1 exit code at end of input');
    const human = await runHuman(this, alice1, ['safety bob', `safety bob ${theirs.qr_text}`, `safety bob ${tampered}`]);
    this.ok(human.code === 0, `whisper-chat in human mode exit code ${human.code}`);
    const lines = human.out.split('\n');
    const head = lines.findIndex((l) => /safety number with bob \(verified\)/.test(l));
    this.ok(head >= 0, 'no "safety number with bob (verified)" line in human mode');
    const spacedLines = lines.slice(head + 1, head + 3).map((l) => l.trim().replace(/ /g, '')).join('');
    this.ok(spacedLines === mine.number, `the digits in human mode: ${spacedLines}`);
    const art = artAfter(lines, head + 1);
    const m = artModules(art);
    const problems = qrProblems(m, 4);
    this.ok(art.length > 0 && problems.length === 0, `the QR drawing: ${problems.join('; ') || 'none'} (${art.length} lines)`);
    this.ok(lines.some((l) => l.includes(`This code's text: ${mine.qr_text}`)), 'the human output names the code\'s text');
    this.ok(lines.some((l) => /^ {2}(\S+ )?MATCH/.test(l) && !/MISMATCH/.test(l)), 'no MATCH line for bob\'s code in human mode');
    this.ok(lines.some((l) => /MISMATCH/.test(l)), 'no MISMATCH line for a wrong code in human mode');
    await alice1.startOnline();
    this.notes.safety = `the same 60 digits at both ends, each its own QR text; his code matches (any case, with or without the prefix), her own and one digit off do not, the digits match; verify only on a match; in human mode a ${m[0] ? m[0].length - 8 : '?'}-module QR drawing with its finder and timing patterns and quiet zone, MATCH and MISMATCH`;
  }

  async link() {
    const { alice1 } = this;
    const alice2 = this.chat('alice', 2);
    this.alice2 = alice2;
    alice2.start();
    const code = await alice2.waitFor((e) => e.ev === 'link_code', 'a link code');
    this.ok(code.qr_text === `WHISPER-LINK:${(code.code || '').toUpperCase()}`, `link_code: ${JSON.stringify(code)}`);
    for (const [line, re] of [
      ['link-approve WHISPER-LINK:', /usage/],
      ['link-approve WHISPER-LINK:XYZ', /usage/],
      ['link-approve', /usage/],
      [`link-approve ${code.qr_text} extra`, /usage/],
    ]) {
      const r = await alice1.fails(line);
      this.ok(r.ev === 'error' && r.cmd === 'link-approve' && re.test(r.message || ''), `${line}: ${JSON.stringify(r)}`);
    }
    const r = await alice1.cmd(`link-approve ${code.qr_text}`);
    this.ok(r.ev === 'ok' && r.digits === code.digits, `link-approve with the QR text: ${JSON.stringify(r)}, the new device showed ${code.digits}`);
    await alice2.waitFor((e) => e.ev === 'registered', 'registered after the approval');
    await alice2.waitFor((e) => e.ev === 'caught_up', 'caught_up');
    // the human form shows the code as a QR drawing
    this.ok((await alice2.quit()) === 0, 'alice.2 exit code');
    const alice3 = this.chat('alice', 3);
    const human = await runHuman(this, alice3, [], /the code: WHISPER-LINK:[0-9A-F]+\n[^]*Approve only/);
    this.ok(human.code === 0, `alice.3 in human mode exit code ${human.code}`);
    const lines = human.out.split('\n');
    const at = lines.findIndex((l) => /^\* link code [0-9]{8}/.test(l));
    const art = artAfter(lines, at + 1);
    const problems = qrProblems(artModules(art), 4);
    this.ok(at >= 0 && art.length > 0 && problems.length === 0, `the link code's QR drawing: ${problems.join('; ') || (at < 0 ? 'no link code line' : 'none')}`);
    this.ok(lines.some((l) => /the code: WHISPER-LINK:[0-9A-F]+$/.test(l)), 'the link code\'s text in human mode');
    this.notes.link = 'link_code with its QR text; malformed texts refused; link-approve with the scanned text: the new device registered, the digits agree; the human form draws a QR code';
  }

  // mute, archive, pin: on alice.1, seen by alice.2 (linked in `link`)
  async flags() {
    const { alice1, alice2, bob } = this;
    await alice2.startOnline();
    const from = alice2.events.length;
    const m = await alice1.cmd('mute bob 10');
    this.ok(m.ev === 'ok' && m.cmd === 'mute' && m.muted === true && m.muted_until > Date.now() + 9 * 60000 && !m.pinned,
      `mute bob 10: ${JSON.stringify(m)}`);
    const p = await alice1.cmd('pin bob on');
    this.ok(p.muted === true && p.pinned === true && p.archived === false, `pin bob on: ${JSON.stringify(p)}`);
    await alice2.waitFor((e) => e.ev === 'settings' && e.conversation === 'bob' && e.pinned === true,
      'the pin at alice.2', { from });
    const f2 = await alice2.cmd('flags bob');
    this.ok(f2.muted === true && f2.pinned === true && f2.muted_until === m.muted_until,
      `flags bob at alice.2: ${JSON.stringify(f2)}`);
    const from2 = alice2.events.length;
    const u = await alice1.cmd('unmute bob');
    this.ok(u.muted === false && u.pinned === true, `unmute bob: ${JSON.stringify(u)}`);
    await alice2.waitFor((e) => e.ev === 'settings' && e.conversation === 'bob' && e.muted_until === 0,
      'the unmute at alice.2', { from: from2 });
    const a = await alice2.cmd('archive bob on');
    this.ok(a.archived === true && a.pinned === true && a.muted === false, `archive bob on at alice.2: ${JSON.stringify(a)}`);
    for (const [line, re] of [
      ['mute', /usage/],
      ['mute bob 0', /usage/],
      ['mute bob soon', /usage/],
      ['pin bob maybe', /usage/],
      ['archive', /usage/],
      ['flags', /usage/],
      ['mute NOT-A-NAME', /conversation/],
    ]) {
      const r = await alice1.fails(line);
      this.ok(r.ev === 'error' && re.test(r.message || ''), `${line}: ${JSON.stringify(r)}`);
    }
    this.ok((await alice2.quit()) === 0, 'alice.2 exit code');
    // search: words in any case and accents, newest first, in a conversation or all
    const w = this.text('Crème');
    const id1 = await bob.send('alice', `Une ${w} Brûlée for you`);
    await this.message(alice1, id1, 'the crème');
    const id2 = await alice1.send('bob', `more BRULEE and ${w.toUpperCase()}`);
    await this.message(bob, id2, 'more brûlée');
    const s1 = await alice1.cmd('search brulee');
    this.ok(s1.ev === 'ok' && s1.cmd === 'search' && s1.messages.length >= 2 && s1.messages[0].id === id2 &&
      s1.messages.some((x) => x.id === id1), `search brulee: ${JSON.stringify(s1)}`);
    const s2 = await alice1.cmd(`search in bob ${w.toLowerCase()} brûlée`);
    this.ok(s2.messages.length === 2, `search in bob, two words: ${JSON.stringify(s2)}`);
    const s3 = await alice1.cmd(`search in carol ${w}`);
    this.ok(s3.messages.length === 0, `search in carol: ${JSON.stringify(s3)}`);
    for (const line of ['search', 'search in bob', 'search in']) {
      const r = await alice1.fails(line);
      this.ok(r.ev === 'error' && /usage/.test(r.message || ''), `${line}: ${JSON.stringify(r)}`);
    }
    this.notes.flags = 'mute for 10 minutes and pin on alice.1 reach alice.2 (settings event, flags), unmute too; archive from alice.2; bad lines refused';
  }

  async block() {
    const { alice1, bob } = this;
    const b = await bob.cmd('block alice');
    this.ok(b.ev === 'ok' && b.cmd === 'block', `block alice: ${JSON.stringify(b)}`);
    const l = await bob.cmd('blocked');
    this.ok(l.ev === 'ok' && JSON.stringify(l.accounts) === '["alice"]', `blocked: ${JSON.stringify(l)}`);
    const from = bob.events.length, afrom = alice1.events.length;
    const lostText = this.text('while-blocked');
    const lost = await alice1.send('bob', lostText);
    await this.status(alice1, lost, 'sent', undefined, undefined, 'one tick for the message to a blocker');
    const e = await bob.fails('send alice are you still there');
    this.ok(e.ev === 'error' && e.cmd === 'send' && e.code === whisperCode('WHISPER_EBLOCKED'), `send to a blocked account: ${JSON.stringify(e)}`);
    const r = await bob.cmd('report alice 3');
    this.ok(r.ev === 'ok' && r.cmd === 'report', `report: ${JSON.stringify(r)}`);
    const bad = await bob.cmds(['block bob', 'block', 'unblock', 'report', 'report alice 51', 'report alice 0',
      'report alice x', `block ${'a'.repeat(65)}`, 'block Alice', 'report #00 1', 'report alice 3 block extra']);
    this.ok(bad.every((x) => x.ev === 'error'), `bad block and report lines: ${JSON.stringify(bad.filter((x) => x.ev !== 'error'))}`);
    const still = await bob.cmd('blocked');
    this.ok(JSON.stringify(still.accounts) === '["alice"]', `the bad lines changed the list: ${JSON.stringify(still)}`);
    const u = await bob.cmd('unblock alice');
    this.ok(u.ev === 'ok' && u.cmd === 'unblock', `unblock: ${JSON.stringify(u)}`);
    const none = await bob.cmd('blocked');
    this.ok(Array.isArray(none.accounts) && none.accounts.length === 0, `blocked after unblock: ${JSON.stringify(none)}`);
    // her next message comes; the one sent while blocked never did (the mailbox keeps order)
    const backText = this.text('after-unblock');
    const back = await alice1.send('bob', backText);
    await this.message(bob, back, 'the message sent after the unblock');
    this.ok(!bob.events.slice(from).some((x) => x.ev === 'message' && x.body === lostText), 'the message sent while blocked came');
    await this.status(alice1, back, 'delivered', 'bob', 1, 'delivered after the unblock');
    this.ok(!alice1.events.slice(afrom).some((x) => x.ev === 'status' && x.id === lost && x.status !== 'sent'),
      'the message sent while blocked got more than one tick');
    // the report, as moderators read it (the store is open in whisperd meanwhile)
    let out = '';
    try {
      out = execFileSync(this.o.whisperd, ['--reports', '--db', this.server.db, '--key-file', this.server.keyFile,
        '--log-level', 'error'], { encoding: 'utf8', timeout: this.timeoutMs });
    } catch (err) {
      this.ok(false, `whisperd --reports: ${err.message}`);
    }
    const reports = out.split('\n').filter((x) => x.trim()).map((x) => JSON.parse(x));
    const mine = reports.filter((x) => x.reporter === 'bob' && x.conversation === 'alice');
    this.ok(mine.length === 1, `bob's report as whisperd --reports prints it: ${short(out, 400)}`);
    const msgs = mine.length ? mine[0].messages : [];
    this.ok(msgs.length >= 1 && msgs.length <= 3 && msgs.every((m) => typeof m.text === 'string' && (m.sender === 'alice' || m.sender === 'bob')),
      `the reported messages: ${JSON.stringify(msgs)}`);
    this.ok(!msgs.some((m) => m.text === lostText), 'the report holds a message bob never got');
    this.notes.block = `block: ${lostText} kept one tick and never came; send to alice refused (WHISPER_EBLOCKED); ${bad.length} bad lines refused; report of ${msgs.length} messages printed by whisperd --reports; unblocked: the next message delivered`;
  }

  async help() {
    const { alice1 } = this;
    const h = await alice1.cmd('help');
    const rows = Array.isArray(h.commands) ? h.commands : [];
    this.ok(rows.length > 0 && rows.every((r) => r.command && r.usage && r.about && r.usage.startsWith(r.command)), `help rows: ${JSON.stringify(rows.find((r) => !(r.command && r.usage && r.about)))}`);
    const names = new Set(rows.map((r) => r.command));
    for (const n of COMMANDS) this.ok(names.has(n), `help does not list ${n}`);
    // every command answers in --script mode, even without its arguments
    for (const n of COMMANDS.filter((x) => x !== 'quit')) {
      const r = await alice1.cmd(n, { allowError: true });
      this.ok(r.ev !== 'error' || r.cmd === n, `${n} without arguments: ${JSON.stringify(r)}`);
    }
    // lines a careless or hostile user may type: an error each, no harm
    const hostile = [
      'read bob #', 'read bob ##1', 'read bob -1', 'read bob 1e3', 'read bob 0x1f', 'read \u0001 #1',
      `read ${'b'.repeat(300)}`, `read bob ${'#'.repeat(5000)}`, `read bob ${'1 '.repeat(2000)}`,
      'safety bob \u001b[31m', 'verify bob ZZZZ', `link-approve ${'A'.repeat(100000)}`,
      'history bob -5', 'history bob 99999999999', '\u00ff\u00fe', 'nosuchcommand',
    ];
    const rs = await alice1.cmds(hostile);
    this.ok(rs.every((r) => r.ev === 'error'), `hostile lines: ${JSON.stringify(rs.filter((r) => r.ev !== 'error').map((r) => r.ev))}`);
    const st = await alice1.cmd('status');
    this.ok(st.ev === 'state' && st.online === true, `status after the hostile lines: ${JSON.stringify(st)}`);
    this.notes.help = `help lists ${rows.length} rows (every command, with usage and a line each); every command answers in script mode; ${hostile.length} hostile lines refused, the client still online`;
  }

  async shutdown() {
    const { alice1, bob } = this;
    const q = await alice1.cmd('quit');
    this.ok(q.ev === 'ok' && q.cmd === 'quit', `quit: ${JSON.stringify(q)}`);
    await alice1.waitFor((e) => e.ev === 'bye', 'bye after quit');
    await alice1.exitPromise;
    this.ok(alice1.exitCode === 0, `alice.1 exit code after quit: ${alice1.exitCode}`);
    this.ok((await bob.quit()) === 0, 'bob.1 exit code at end of input');
    const code = await this.server.stop();
    this.ok(code === 0, `whisperd exit code on SIGTERM: ${code}`);
    this.notes.shutdown = 'quit answered ok and bye, exit 0; end of input exit 0; whisperd 0 on SIGTERM';
  }
}

ChatTest.main('chat.js', { programs: ['whisperd', 'chat'] }, 'events.log: every line in and out; *.stderr; the stores');
