#!/usr/bin/env node
// whisperd as a cluster: three nodes over one PostgreSQL (or the store
// sharded over two databases, --shards 2), real processes throughout:
//
//   setup     a private PostgreSQL cluster (tests/tools/pg_cluster.sh) on
//             loopback; three whisperd with --pg and --node 1..3; a load
//             balancer in this script (one port per node, falling over to
//             the next live node), and whisper-chat clients spread over
//             the nodes: alice and dave on node 1, bob on node 2, carol on 3
//   1:1       messages between clients on different nodes arrive at once,
//             with delivered ticks
//   group     a group of four across the three nodes: everyone reads
//             everyone
//   live      typing and presence across nodes
//   node-kill node 2 SIGKILLed while alice streams to bob: bob reconnects
//             through the balancer to node 3 and gets every message exactly
//             once, in order
//   pg-restart PostgreSQL restarted while carol streams to alice and bob to
//             dave: every message exactly once, in order
//   shutdown  clients exit 0, nodes stop on SIGTERM with status 0
//
//   node cluster.js --whisperd PATH --chat PATH --pg-cluster PATH [--shards 1|2]
//                   [--timeout SECONDS] [--workdir DIR] [--keep] [--trace]
'use strict';

const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { execFile, execFileSync } = require('child_process');
const { Fatal, Chat, Whisperd } = require('./procs');

function usage(msg) {
  if (msg) process.stderr.write(`cluster.js: ${msg}\n`);
  process.stderr.write('usage: node cluster.js --whisperd PATH --chat PATH --pg-cluster PATH [--shards 1|2] [--timeout S] [--workdir DIR] [--keep] [--trace]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { whisperd: null, chat: null, pgCluster: null, shards: 1, timeout: 30, workdir: null, keep: false, trace: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--whisperd') o.whisperd = val();
    else if (a === '--chat') o.chat = val();
    else if (a === '--pg-cluster') o.pgCluster = val();
    else if (a === '--shards') o.shards = Number(val());
    else if (a === '--timeout') o.timeout = Number(val());
    else if (a === '--workdir') o.workdir = val();
    else if (a === '--keep') o.keep = true;
    else if (a === '--trace') o.trace = true;
    else usage(`unknown option ${a}`);
  }
  if (!o.whisperd || !o.chat || !o.pgCluster) usage('--whisperd, --chat and --pg-cluster are needed');
  if (o.shards !== 1 && o.shards !== 2) usage('--shards is 1 or 2');
  return o;
}

// ---------------------------------------------------------------------------
// the load balancer: port i sends to node i while it listens, else to the
// next node that does (a client whose node died reconnects elsewhere)

class Balancer {
  constructor(t) {
    this.t = t;
    this.servers = [];
    this.ports = [];
    this.routes = []; // [client port][node] connections made, for the notes
  }

  async listen(nodes) {
    this.nodes = nodes;
    for (let i = 0; i < nodes.length; i++) {
      const srv = net.createServer((sock) => this.accept(sock, i));
      await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
      this.servers.push(srv);
      this.ports.push(srv.address().port);
      this.routes.push(nodes.map(() => 0));
    }
  }

  url(i) {
    return `ws://127.0.0.1:${this.ports[i]}/v1/ws`;
  }

  accept(sock, pref) {
    const tryNode = (k, left) => {
      const node = this.nodes[k];
      if (left === 0) {
        sock.destroy();
        return;
      }
      if (node.exited) {
        tryNode((k + 1) % this.nodes.length, left - 1);
        return;
      }
      const up = net.connect(node.port, '127.0.0.1');
      let connected = false;
      up.on('connect', () => {
        connected = true;
        this.routes[pref][k]++;
        sock.pipe(up);
        up.pipe(sock);
      });
      up.on('error', () => {
        if (!connected) tryNode((k + 1) % this.nodes.length, left - 1);
        else sock.destroy();
      });
      up.on('close', () => sock.destroy());
      sock.on('error', () => up.destroy());
      sock.on('close', () => up.destroy());
    };
    tryNode(pref, this.nodes.length);
  }

  close() {
    for (const s of this.servers) s.close();
  }
}

// ---------------------------------------------------------------------------

class Node extends Whisperd {
  constructor(t, k) {
    super(t);
    this.key = `node${k}`;
    this.k = k;
    this.logPath = path.join(t.dir, `node${k}.stderr`);
  }

  async startNode() {
    const args = ['--pg', this.t.conninfo, '--node', String(this.k), '--presence-grace-ms', '300', '--typing-min-ms', '0',
                  '--db', path.join(this.t.dir, `unused${this.k}.db`)];
    if (this.t.o.shards === 2) args.push('--pg-shard', this.t.conninfo2);
    this.port = 0;
    await this.start(args);
  }
}

class Client extends Chat {
  constructor(t, account, node) {
    super(t, account, 1);
    this.node = node;
  }

  args() {
    return ['--db', this.db, '--key-file', this.keyFile, '--account', this.account, '--device', '1',
            '--server', this.t.lb.url(this.node), '--backoff-max-ms', '500'];
  }
}

class Test {
  constructor(o) {
    this.o = o;
    this.timeoutMs = o.timeout * 1000;
    this.dir = o.workdir ? path.resolve(o.workdir) : fs.mkdtempSync(path.join(os.tmpdir(), 'whisper-cluster-'));
    fs.mkdirSync(this.dir, { recursive: true });
    this.pgDir = path.join(os.tmpdir(), `whisper-cluster-pg-${process.pid}`);
    this.failures = [];
    this.notes = {};
    this.t0 = Date.now();
    this.cat = 'setup';
  }

  ev(s) {
    const line = `[${((Date.now() - this.t0) / 1000).toFixed(2)}] ${s}`;
    fs.appendFileSync(path.join(this.dir, 'trace.log'), `${line}\n`);
    if (this.o.trace) process.stderr.write(`${line}\n`);
  }

  check(cat, cond, what) {
    const was = this.cat;
    this.cat = cat;
    this.ok(cond, what);
    this.cat = was;
  }

  ok(cond, what) {
    if (!cond) {
      this.failures.push(`${this.cat}: ${what}`);
      this.ev(`FAIL ${this.cat}: ${what}`);
    }
  }

  pg(...args) {
    execFileSync(this.o.pgCluster, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  // The same, while the test goes on (the restart happens under load).
  pgAsync(...args) {
    return new Promise((resolve, reject) => {
      execFile(this.o.pgCluster, args, (err) => (err ? reject(err) : resolve()));
    });
  }

  // The messages `c` got from `from` whose text starts with `prefix`, in order.
  texts(c, from, prefix) {
    return c.all.filter((e) => e.ev === 'message' && e.from === from && typeof e.body === 'string' && e.body.startsWith(prefix)).map((e) => e.body);
  }

  async waitTexts(c, from, prefix, n, what) {
    await c.waitFor(() => this.texts(c, from, prefix).length >= n, what, { from: 0 });
    // a fence: one more message after them proves nothing else was on its way
    const fence = `${prefix}-fence-${Date.now()}`;
    const sender = this.clients[from];
    await sender.send(c.account, fence);
    await c.waitFor((e) => e.ev === 'message' && e.body === fence, `${what}: the fence`);
    return this.texts(c, from, prefix).filter((x) => !x.includes('-fence-'));
  }

  inOrder(got, prefix, n) {
    const want = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    return got.length === want.length && got.every((x, i) => x === want[i]);
  }

  async setup() {
    this.pg('start', this.pgDir, 'whisper', 'whisper2');
    this.conninfo = fs.readFileSync(path.join(this.pgDir, 'conninfo'), 'utf8').trim();
    this.conninfo2 = this.conninfo.replace('dbname=whisper', 'dbname=whisper2');
    this.nodes = [1, 2, 3].map((k) => new Node(this, k));
    for (const n of this.nodes) await n.startNode();
    this.lb = new Balancer(this);
    await this.lb.listen(this.nodes);
    this.clients = {
      alice: new Client(this, 'alice', 0),
      dave: new Client(this, 'dave', 0),
      bob: new Client(this, 'bob', 1),
      carol: new Client(this, 'carol', 2),
    };
    await Promise.all(Object.values(this.clients).map((c) => c.startOnline()));
    const r = this.lb.routes;
    this.ok(r[0][0] === 2 && r[1][1] === 1 && r[2][2] === 1, `the clients on their nodes: ${JSON.stringify(r)}`);
  }

  // Rows of the store's table in a database (psql, PostgreSQL's client).
  rows(conninfo, table) {
    const out = execFileSync('psql', [conninfo, '-tAc', `SELECT count(*) FROM ${table}`], { encoding: 'utf8' });
    return Number(out.trim());
  }

  async oneToOne() {
    this.cat = '1:1';
    const { alice, bob, carol } = this.clients;
    const pairs = [[alice, bob], [bob, carol], [carol, alice]];
    for (const [from, to] of pairs) {
      const text = `hello ${to.account} from ${from.account}`;
      const id = await from.send(to.account, text);
      const m = await to.waitFor((e) => e.ev === 'message' && e.id === id, `${from.account} -> ${to.account}`);
      this.ok(m.body === text && m.from === from.account, `${from.account} -> ${to.account}: ${JSON.stringify(m)}`);
      await from.waitFor((e) => e.ev === 'status' && e.id === id && e.status === 'delivered', `the delivered tick of ${from.account} -> ${to.account}`);
    }
    this.notes['1:1'] = 'node 1 -> 2, 2 -> 3, 3 -> 1, each delivered and ticked';
  }

  async group() {
    this.cat = 'group';
    const { alice, bob, carol, dave } = this.clients;
    const r = await alice.cmd('group create bob carol dave');
    const conv = r.conversation;
    await Promise.all([bob, carol, dave].map((c) => c.waitFor((e) => e.ev === 'group' && e.conversation === conv, 'the new group')));
    for (const from of [alice, bob, carol, dave]) {
      const text = `group hello from ${from.account}`;
      await from.cmd(`gsend ${r.group} ${text}`);
      for (const to of [alice, bob, carol, dave].filter((c) => c !== from))
        await to.waitFor((e) => e.ev === 'message' && e.conversation === conv && e.body === text, `${from.account}'s group message at ${to.account}`);
    }
    this.notes.group = 'four members on three nodes, each message read by the three others';
  }

  async live() {
    this.cat = 'live';
    const { alice, bob, carol } = this.clients;
    let from = carol.events.length;
    await carol.cmd('subscribe bob');
    const p = await carol.waitFor((e) => e.ev === 'presence' && e.account === 'bob', 'bob\'s presence at carol', { from });
    this.ok(p.online === true, `bob (node 2) online for carol (node 3): ${JSON.stringify(p)}`);
    from = bob.events.length;
    await alice.cmd('typing bob on');
    const on = await bob.waitFor((e) => e.ev === 'typing' && e.from === 'alice' && e.started === true, 'alice typing at bob', { from });
    this.ok(on.conversation === 'alice', `typing across nodes: ${JSON.stringify(on)}`);
    await alice.cmd('typing bob off');
    this.notes.live = 'presence (node 2 seen from node 3) and typing (node 1 to node 2)';
  }

  async nodeKill() {
    this.cat = 'node-kill';
    const { alice, bob } = this.clients;
    const N = 30;
    const sent = [];
    for (let i = 0; i < N; i++) {
      sent.push(alice.send('bob', `stream-a-${i}`));
      if (i === 10) await this.nodes[1].kill9('node 2 mid-stream');
    }
    await Promise.all(sent);
    const got = await this.waitTexts(bob, 'alice', 'stream-a', N, `bob's ${N} messages after node 2 died`);
    this.ok(this.inOrder(got, 'stream-a', N), `bob got ${got.length} of ${N}, in order: ${got.join(',')}`);
    this.notes['node-kill'] = `node 2 SIGKILLed after 11 of ${N} sends; bob moved to node ${this.lb.routes[1][2] ? 3 : '?'}; ${got.length} received once, in order`;
  }

  async pgRestart() {
    this.cat = 'pg-restart';
    const { alice, bob, carol, dave } = this.clients;
    const N = 20;
    const sent = [];
    let restart = null;
    for (let i = 0; i < N; i++) {
      sent.push(carol.send('alice', `stream-c-${i}`));
      sent.push(bob.send('dave', `stream-b-${i}`));
      if (i === 5) {
        this.ev('PostgreSQL: restart');
        restart = this.pgAsync('restart', this.pgDir);
      }
      await new Promise((r) => setTimeout(r, 50)); /* the stream spans the restart */
    }
    await Promise.all(sent);
    await restart;
    const a = await this.waitTexts(alice, 'carol', 'stream-c', N, `alice's ${N} messages across the restart`);
    const d = await this.waitTexts(dave, 'bob', 'stream-b', N, `dave's ${N} messages across the restart`);
    this.ok(this.inOrder(a, 'stream-c', N), `alice got ${a.length} of ${N} in order: ${a.join(',')}`);
    this.ok(this.inOrder(d, 'stream-b', N), `dave got ${d.length} of ${N} in order: ${d.join(',')}`);
    this.notes['pg-restart'] = `PostgreSQL restarted after 6 of ${N} sends in two streams; both complete, once, in order`;
  }

  async metrics(node) {
    const text = await new Promise((resolve, reject) => {
      require('http').get(`http://127.0.0.1:${node.metricsPort}/metrics`, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    const get = (name) => {
      const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : -1;
    };
    return { node: get('whisperd_cluster_node'), sent: get('whisperd_cluster_relays_sent_total'),
             heard: get('whisperd_cluster_relays_heard_total'), dropped: get('whisperd_cluster_relays_dropped_total') };
  }

  async shutdown() {
    this.cat = 'shutdown';
    for (const n of this.nodes.filter((x) => !x.exited)) {
      const m = await this.metrics(n);
      this.ok(m.node === n.k && m.sent > 0 && m.heard > m.sent && m.dropped === 0, `${n.key}'s relay metrics: ${JSON.stringify(m)}`);
    }
    const n0 = this.rows(this.conninfo, 'whisper_records');
    const n1 = this.o.shards === 2 ? this.rows(this.conninfo2, 'whisper_records') : 0;
    if (this.o.shards === 2) this.ok(n0 > 0 && n1 > 0, `records on both shards: ${n0} and ${n1}`);
    else this.ok(n0 > 0, `records in the database: ${n0}`);
    this.notes.store = this.o.shards === 2 ? `${n0} records on shard 0, ${n1} on shard 1` : `${n0} records`;
    for (const c of Object.values(this.clients)) {
      const code = await c.quit();
      this.ok(code === 0, `${c.key} exit code ${code}`);
    }
    for (const n of this.nodes) {
      if (n.exited) continue;
      const code = await n.stop();
      this.ok(code === 0, `${n.key} exit code ${code}`);
    }
  }

  async cleanup() {
    for (const c of Object.values(this.clients || {})) await c.kill9('cleanup');
    for (const n of this.nodes || []) await n.kill9('cleanup');
    if (this.lb) this.lb.close();
    try {
      this.pg('stop', this.pgDir);
    } catch (e) {
      this.ev(`pg stop: ${e.message}`);
    }
    if (!this.o.keep && this.failures.length === 0) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const t = new Test(o);
  let fatal = null;
  try {
    await t.setup();
    await t.oneToOne();
    await t.group();
    await t.live();
    await t.nodeKill();
    await t.pgRestart();
    await t.shutdown();
  } catch (e) {
    fatal = e;
    t.failures.push(`${t.cat}: ${e instanceof Fatal ? '' : 'error: '}${e.message}`);
  }
  await t.cleanup();
  const shards = o.shards === 2 ? 'two databases (sharded)' : 'one database';
  for (const [k, v] of Object.entries(t.notes)) process.stdout.write(`  ${k.padEnd(11)} ${v}\n`);
  if (t.failures.length) {
    process.stdout.write(`cluster.js (${shards}): ${t.failures.length} failure(s):\n`);
    for (const f of t.failures) process.stdout.write(`  ${f}\n`);
    if (fatal && o.trace) process.stderr.write(`${fatal.stack}\n`);
    process.stdout.write(`  logs: ${t.dir}\n`);
    process.exit(1);
  }
  process.stdout.write(`cluster.js (${shards}): all checks passed in ${((Date.now() - t.t0) / 1000).toFixed(1)} s\n`);
}

main();
