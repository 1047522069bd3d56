#!/usr/bin/env node
// The messaging demo: a real whisperd on loopback and whisper-chat clients
// driven by a script, narrated. Alice and Bob talk and every tick shows
// (sent, delivered, read); Bob replies to Alice, she reacts, edits a
// message and deletes one for everyone (numbered steps, each checked: pass
// or FAIL); Bob links a second device, signed into his account's device
// list, and Alice is told (the safety number stays);
// Bob goes offline, Alice writes, Bob comes back
// and catches up in order; Alice, Bob and Carol make a group, Carol leaves,
// and the group goes on without her. Alice sends Bob a photo through
// whisperd's blob store: her whisper-chat is killed mid-upload and started
// again, the upload resumes where the server left it, Bob downloads it and
// the bytes are checked (sha256). Then whisperd's metrics.
//
//   node sync-demo.js --whisperd PATH --chat PATH
//
// Everything lives in a temporary directory that is removed at the end.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { spawn } = require('child_process');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.whisperd || !args.chat) {
  console.error('usage: node sync-demo.js --whisperd PATH --chat PATH');
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whisper-demo-'));
const TIMEOUT_MS = 20000;
const procs = [];
const say = (s) => console.log(s);
const tick = { sent: '✓ sent', delivered: '✓✓ delivered', read: '✓✓ read (blue)' };

function fail(msg) {
  console.error(`demo: ${msg}`);
  for (const p of procs) p.kill('SIGKILL');
  process.exit(1);
}

// A whisper-chat process in --script mode: JSON events on stdout.
class Client {
  constructor(account, port, device = 1) {
    this.account = account;
    this.device = device;
    this.port = port;
    this.events = [];
    this.waiters = [];
  }
  start() {
    this.events = [];
    const n = `${this.account}${this.device}`;
    const a = ['--db', path.join(dir, `${n}.db`), '--key-file', path.join(dir, `${n}.key`),
               '--account', this.account, '--device', String(this.device),
               '--server', `ws://127.0.0.1:${this.port}/v1/ws`, '--script'];
    this.p = spawn(args.chat, a, { stdio: ['pipe', 'pipe', fs.openSync(path.join(dir, `${n}.log`), 'a')] });
    procs.push(this.p);
    let buf = '';
    this.p.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try { this.events.push(JSON.parse(line)); } catch { continue; }
        this.wake();
      }
    });
    this.exited = new Promise((r) => this.p.on('exit', r));
    return this;
  }
  wake() { for (const w of this.waiters.splice(0)) w(); }
  cmd(line) { this.p.stdin.write(`${line}\n`); }
  // The first event (from `from` on) matching `pred`; its index + 1 is the next `from`.
  async wait(pred, what, from = 0) {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      for (let i = from; i < this.events.length; i++) if (pred(this.events[i])) return this.events[i];
      if (Date.now() > deadline) fail(`${this.account}: no ${what} within ${TIMEOUT_MS / 1000} s`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
  }
  async stop() { this.p.stdin.end(); await this.exited; }
  async kill() { this.p.kill('SIGKILL'); await this.exited; }
}

async function send(from, to, text) {
  const mark = from.events.length;
  from.cmd(`send ${to.account} ${text}`);
  const r = await from.wait((e) => e.ev === 'sent_cmd' || (e.ev === 'error' && e.cmd), 'send result', mark);
  if (r.ev !== 'sent_cmd') fail(`send failed: ${JSON.stringify(r)}`);
  say(`  ${from.account} -> ${to.account}: "${text}"   (pending in ${from.account}'s outbox)`);
  return r.id;
}

// A command's result (its answer, or an error naming it), from `mark` on.
async function run(c, line) {
  const mark = c.events.length;
  c.cmd(line);
  const r = await c.wait((e) => ['ok', 'sent_cmd', 'history'].includes(e.ev) || (e.ev === 'error' && e.cmd), `result of "${line}"`, mark);
  if (r.ev === 'error') fail(`${c.account}: "${line}" failed: ${r.message}`);
  return r;
}

// A numbered step's verdict; a failed one fails the demo at the end.
let failedSteps = 0;
function verdict(n, what, ok, detail) {
  say(`  ${n}. ${what}: ${ok ? 'pass' : `FAIL (${detail})`}`);
  if (!ok) failedSteps++;
}

const status = (c, id, s, to) => c.wait((e) => e.ev === 'status' && e.id === id && e.status === s && (!to || e.to === to),
                                        `${s} for ${id}`);
const message = (c, text) => c.wait((e) => e.ev === 'message' && e.body === text, `message "${text}"`);

async function main() {
  say('== whisperd: the reference server, on loopback');
  // /metrics is served on a listener of its own (loopback; a free port here)
  const d = spawn(args.whisperd, ['--port', '0', '--db', path.join(dir, 'server.db'), '--key-file', path.join(dir, 'server.key'),
                                  '--metrics-listen', '127.0.0.1:0'],
                  { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(d);
  let metricsPort = 0;
  const port = await new Promise((resolve) => {
    let err = '';
    const timer = setTimeout(() => fail(`whisperd did not start:\n${err}`), TIMEOUT_MS);
    d.stderr.on('data', (b) => {
      err += b;
      const mm = /metrics on [^\s:]+:(\d+)/.exec(err); // printed before the listening line
      if (mm) metricsPort = Number(mm[1]);
      const m = /listening on [^\s:]+:(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  say(`  listening on 127.0.0.1:${port} (metrics on 127.0.0.1:${metricsPort}, loopback only)`);

  say('\n== alice and bob register (identity key, signed prekey, one-time prekeys) and log in');
  const alice = new Client('alice', port).start();
  const bob = new Client('bob', port).start();
  await alice.wait((e) => e.ev === 'caught_up', 'caught_up');
  await bob.wait((e) => e.ev === 'caught_up', 'caught_up');
  say('  both online; their mailboxes are empty');

  say('\n== a conversation, with every tick (the session is set up from bob\'s bundle on demand)');
  let id = await send(alice, bob, 'hello bob');
  await status(alice, id, 'sent');
  say(`    ${tick.sent}       the server took it and gave it a sequence number`);
  const m = await message(bob, 'hello bob');
  say(`  bob decrypted and stored it (server seq ${m.seq}), then acknowledged it`);
  await status(alice, id, 'delivered', 'bob');
  say(`    ${tick.delivered}  bob's device has it`);
  bob.cmd(`read alice alice ${m.id}`);
  await status(alice, id, 'read', 'bob');
  say(`    ${tick.read} bob read it`);
  id = await send(bob, alice, 'hi alice, all good here');
  await message(alice, 'hi alice, all good here');
  await status(bob, id, 'delivered', 'alice');
  say(`    ${tick.delivered}  (and back again)`);

  say('\n== message content: a reply, a reaction, an edit and a delete for everyone (end to end, on every device)');
  // bob names alice's message by the #number his history shows for it
  let h = await run(bob, 'history alice');
  const hello = h.messages.find((x) => x.body === 'hello bob');
  const reply = await run(bob, `reply alice #${hello.n} hello to you too`);
  const r = await alice.wait((e) => e.ev === 'message' && e.id === reply.id, 'the reply');
  say(`  bob: reply alice #${hello.n} hello to you too   ->  alice sees  ↪ you: "${r.quote ? r.quote.excerpt : '?'}"  hello to you too`);
  verdict(1, 'the reply quotes "hello bob" at alice', r.quote && r.quote.id === m.id && r.quote.excerpt === 'hello bob',
          JSON.stringify(r.quote));
  h = await run(alice, 'history bob');
  const nReply = h.messages.find((x) => x.id === reply.id).n;
  await run(alice, `react bob #${nReply} 👍`);
  const re = await bob.wait((e) => e.ev === 'reaction' && e.target_id === reply.id, 'the reaction');
  say(`  alice: react bob #${nReply} 👍   ->  bob sees "alice.1 reacted ${re.emoji} to your message"`);
  verdict(2, 'the reaction reaches bob', re.emoji === '👍' && re.from === 'alice', JSON.stringify(re));
  const nHello = h.messages.find((x) => x.id === m.id).n;
  await run(alice, `edit bob #${nHello} hello bob, how are you?`);
  const ed = await bob.wait((e) => e.ev === 'edited' && e.target_id === m.id, 'the edit');
  h = await run(bob, 'history alice');
  const edited = h.messages.find((x) => x.id === m.id);
  say(`  alice: edit bob #${nHello} hello bob, how are you?   ->  bob's history: "${edited.body}" (edited)`);
  verdict(3, 'the edit shows at bob, marked edited', ed.body === 'hello bob, how are you?' && edited.edited === true &&
          edited.body === ed.body, JSON.stringify(edited));
  const oops = await send(alice, bob, 'oops, wrong chat');
  await message(bob, 'oops, wrong chat');
  await run(alice, `delete bob ${oops.slice(0, 8)}`);
  await bob.wait((e) => e.ev === 'deleted' && e.target_id === oops, 'the delete');
  h = await run(bob, 'history alice');
  const gone = h.messages.find((x) => x.id === oops);
  say(`  alice: delete bob ${oops.slice(0, 8)}   ->  bob's history: 🚫 this message was deleted`);
  verdict(4, 'a tombstone at bob, the text gone', gone && gone.deleted === true && gone.body === '', JSON.stringify(gone));

  say('\n== bob links a second device; his first device signs it into his account\'s device list');
  let mark0 = alice.events.length;
  alice.cmd('safety bob');
  const before = await alice.wait((e) => e.ev === 'safety', 'safety number', mark0);
  say(`  safety number alice <-> bob: ${before.number.match(/.{5}/g).join(' ')}`);
  const bob2 = new Client('bob', port, 2).start();
  const tok = await bob2.wait((e) => e.ev === 'link_code', 'link token');
  say(`  bob's new device shows a link token (a QR code) and the digits ${tok.digits}; bob's phone shows the same`);
  bob.cmd(`link-approve ${tok.code}`);
  await bob2.wait((e) => e.ev === 'caught_up', 'caught_up');
  say('  approved: the token binds the new device\'s own key, so the server cannot slip in another');
  mark0 = alice.events.length;
  await send(alice, bob, 'to both of your devices');
  await message(bob2, 'to both of your devices');
  await alice.wait((e) => e.ev === 'devices' && e.account === 'bob' && e.change === 'added', 'devices added', mark0);
  say('  alice is told: "bob added a device (2)"; both of bob\'s devices read the message');
  mark0 = alice.events.length;
  alice.cmd('safety bob');
  const after = await alice.wait((e) => e.ev === 'safety', 'safety number', mark0);
  if (after.number !== before.number) fail('the safety number changed with a linked device');
  say('  the safety number is unchanged: it covers the account key, so one comparison covers every device');
  mark0 = alice.events.length;
  bob.cmd('device-remove 2');
  await bob2.wait((e) => e.ev === 'disconnected', 'disconnected');
  await send(alice, bob, 'just your phone now');
  await message(bob, 'just your phone now');
  await alice.wait((e) => e.ev === 'devices' && e.account === 'bob' && e.change === 'removed', 'devices removed', mark0);
  say('  bob removed it: the server dropped it, and alice is told "bob removed a device (2)"; it gets nothing more');
  await bob2.stop();

  say('\n== bob goes offline; alice writes anyway');
  await bob.stop();
  const offline = ['are you there?', 'the meeting moved to 3pm', 'see you then'];
  const ids = [];
  for (const t of offline) {
    ids.push(await send(alice, bob, t));
    await status(alice, ids[ids.length - 1], 'sent');
  }
  say(`    ${tick.sent} x3: the server keeps them in bob's mailbox (and would wake him by push)`);

  say('\n== bob comes back: the mailbox is resumed where he left it');
  bob.start();
  await bob.wait((e) => e.ev === 'caught_up', 'caught_up');
  const got = bob.events.filter((e) => e.ev === 'message').map((e) => e.body);
  for (const t of got) say(`  bob got: "${t}"`);
  if (JSON.stringify(got) !== JSON.stringify(offline)) fail(`bob's catch-up was ${JSON.stringify(got)}`);
  for (const i of ids) await status(alice, i, 'delivered', 'bob');
  say(`    ${tick.delivered} x3 on alice's side, in order, each exactly once`);

  say('\n== a group: alice, bob and carol (sender keys, fanned out by the server)');
  const carol = new Client('carol', port).start();
  await carol.wait((e) => e.ev === 'caught_up', 'caught_up');
  let mark = alice.events.length;
  alice.cmd('group create bob carol');
  const g = await alice.wait((e) => e.ev === 'group_created', 'group_created', mark);
  say(`  group ${g.conversation} created`);
  await bob.wait((e) => e.ev === 'group' && e.conversation === g.conversation, 'group notice');
  await carol.wait((e) => e.ev === 'group' && e.conversation === g.conversation, 'group notice');
  mark = alice.events.length;
  alice.cmd(`gsend ${g.group} lunch on friday?`);
  await alice.wait((e) => e.ev === 'sent_cmd', 'gsend result', mark);
  await message(bob, 'lunch on friday?');
  await message(carol, 'lunch on friday?');
  say('  alice: "lunch on friday?"  -> encrypted once, delivered to bob and carol');
  mark = carol.events.length;
  carol.cmd(`group remove ${g.group} carol`);
  await carol.wait((e) => e.ev === 'ok' || e.ev === 'group', 'leave result', mark);
  await alice.wait((e) => e.ev === 'group' && e.conversation === g.conversation && JSON.stringify(e).includes('carol'),
                   'leave notice');
  say('  carol left: alice and bob rotate their sender keys');
  mark = alice.events.length;
  alice.cmd(`gsend ${g.group} just the two of us then`);
  await alice.wait((e) => e.ev === 'sent_cmd', 'gsend result', mark);
  await message(bob, 'just the two of us then');
  say('  alice: "just the two of us then" -> bob reads it; carol has no key for it');
  // carol's mailbox gets nothing more: a later 1:1 message is the fence.
  await send(alice, carol, 'bye carol');
  await message(carol, 'bye carol');
  if (carol.events.some((e) => e.ev === 'message' && e.body === 'just the two of us then'))
    fail('carol read a message sent after she left');
  say('  (checked: carol\'s mailbox held nothing from the group after she left)');

  say('\n== a photo: encrypted on alice\'s device, uploaded to whisperd\'s blob store, cut off halfway and resumed');
  const PHOTO = 4 << 20;
  const photo = path.join(dir, 'beach.jpg');
  fs.writeFileSync(photo, crypto.randomBytes(PHOTO));
  const sha = (f) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  const mib = (n) => `${(n / (1 << 20)).toFixed(1)} MiB`;
  const photoSha = sha(photo);
  const sf = await run(alice, `send-file bob ${photo} the beach at sunset`);
  say(`  alice: send-file bob beach.jpg the beach at sunset   (${mib(PHOTO)}, sha256 ${photoSha.slice(0, 16)}…)`);
  say('    encrypted under a fresh key (AES-256-CBC + HMAC-SHA256, as Signal does) into her media folder');
  const media = (c, state, pred = () => true, from = 0) =>
    c.wait((e) => e.ev === 'media' && e.id === sf.id && (e.state === state || e.state === 'failed') && pred(e), `media ${state}`, from);
  const up = await media(alice, 'uploading', (e) => e.done > 0);
  if (up.state === 'failed') fail(`the upload failed: ${JSON.stringify(up)}`);
  say(`  ⇪ uploading: ${mib(up.done)} of ${mib(up.total)} acknowledged by the server (tus: PATCH, Upload-Offset)`);
  await alice.kill();
  const cut = Math.max(...alice.events.filter((e) => e.ev === 'media' && e.id === sf.id && e.state === 'uploading').map((e) => e.done));
  const cutOff = alice.events.some((e) => e.ev === 'media' && e.id === sf.id && e.state === 'sent');
  say(`  ✗ alice's whisper-chat is killed (SIGKILL) with ${mib(cut)} acknowledged; the job waits in her store`);
  alice.start();
  await alice.wait((e) => e.ev === 'caught_up', 'caught_up');
  const again = await alice.wait((e) => e.ev === 'media' && e.id === sf.id, 'the upload after the restart');
  say(`  alice starts again: the job asks the server where it stands (HEAD: Upload-Offset) and goes on at ${mib(again.state === 'uploading' ? again.done : cut)}, not at 0`);
  const done = await media(alice, 'sent');
  if (done.state === 'failed') fail(`the upload failed: ${JSON.stringify(done)}`);
  say('  ⇪ uploaded: only now the message goes to bob, end to end: where the blob is, its key and digests');
  const pm = await bob.wait((e) => e.ev === 'message' && e.id === sf.id, 'the photo message');
  const a = pm.attachment || {};
  say(`  bob sees: 📎 ${a.name} (${mib(a.size || 0)}, ${a.type}) "${pm.body}"   [${a.state}: the server has it, bob does not yet]`);
  const saved = path.join(dir, 'bob-beach.jpg');
  await run(bob, `download alice ${sf.id.slice(0, 8)} ${saved}`);
  const dl = await media(bob, 'downloaded');
  if (dl.state === 'failed') fail(`the download failed: ${JSON.stringify(dl)}`);
  say('  ⇩ bob: download alice … : fetched with Range requests, each piece verified before it is written');
  const savedSha = fs.existsSync(saved) ? sha(saved) : '(no file)';
  say(`  bob's copy: sha256 ${savedSha.slice(0, 16)}…`);
  verdict(5, 'the upload was cut mid-way and resumed, and bob\'s copy is byte for byte alice\'s photo',
          !cutOff && cut < up.total && savedSha === photoSha,
          cutOff ? 'the upload had ended before the kill' : `sha256 ${savedSha} vs ${photoSha}`);

  say(`\n== whisperd /metrics (Prometheus, on its own port ${metricsPort}), an excerpt`);
  const metrics = await new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${metricsPort}/metrics`, (r) => {
      let b = '';
      r.on('data', (c) => (b += c));
      r.on('end', () => resolve(b));
    }).on('error', reject);
  });
  for (const l of metrics.split('\n'))
    if (/^whisperd_(connections|messages_sent_total|entries_delivered_total|mailbox_depth|delivery_latency_seconds_count|blob_bytes_in_total|blob_bytes_out_total|blobs_stored) /.test(l))
      say(`  ${l}`);

  for (const c of [alice, bob, carol]) await c.stop();
  if (failedSteps) fail(`${failedSteps} checked step${failedSteps === 1 ? '' : 's'} failed`);
  d.kill('SIGTERM');
  const code = await new Promise((r) => d.on('exit', r));
  if (code !== 0) fail(`whisperd exited with ${code}`);
  say('\n== everyone logged off; whisperd stopped cleanly (everything it acknowledged was already on disk)');
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => fail(e.stack || String(e)));
