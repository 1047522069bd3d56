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

const net = require('net');
const path = require('path');
const { Test, Whisperd, Pg } = require('./procs');

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
    super(t, `node${k}`);
    this.k = k;
  }

  async startNode() {
    const args = ['--pg', this.t.pg.conninfo, '--node', String(this.k), '--presence-grace-ms', '300', '--typing-min-ms', '0',
                  '--db', path.join(this.t.dir, `unused${this.k}.db`)];
    if (this.t.o.shards === 2) args.push('--pg-shard', this.t.conninfo2);
    if (this.t.o.noGroupCommit) args.push('--no-group-commit'); // a transaction per frame (group commit is the default)
    this.port = 0;
    await this.start(args);
  }
}

const SCENARIOS = ['setup', ['1:1', '1:1', 'oneToOne'], 'group', 'live', ['node-kill', 'node-kill', 'nodeKill'],
  ['pg-restart', 'pg-restart', 'pgRestart'], 'shutdown'];

class ClusterTest extends Test {
  constructor(o, dir) {
    super(o, dir, SCENARIOS);
    this.pg = new Pg(this, 'cluster');
    this.backoffMs = 500;
  }

  // A failed scenario stops the run.
  stops() {
    return true;
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
    this.pg.start('whisper', 'whisper2');
    this.conninfo2 = this.pg.conninfo.replace('dbname=whisper', 'dbname=whisper2');
    this.nodes = [1, 2, 3].map((k) => new Node(this, k));
    for (const n of this.nodes) await n.startNode();
    this.lb = new Balancer(this);
    await this.lb.listen(this.nodes);
    const at = (i) => ({ url: this.lb.url(i) }); // through the balancer's port for node i
    this.clients = {
      alice: this.chat('alice', 1, at(0)),
      dave: this.chat('dave', 1, at(0)),
      bob: this.chat('bob', 1, at(1)),
      carol: this.chat('carol', 1, at(2)),
    };
    await Promise.all(Object.values(this.clients).map((c) => c.startOnline()));
    const r = this.lb.routes;
    this.ok(r[0][0] === 2 && r[1][1] === 1 && r[2][2] === 1, `the clients on their nodes: ${JSON.stringify(r)}`);
    this.notes.setup = `PostgreSQL (${this.o.shards === 2 ? 'two databases, sharded' : 'one database'}), three nodes${this.o.noGroupCommit ? ' (a transaction per frame)' : ''}, a balancer, alice and dave on node 1, bob on 2, carol on 3`;
  }

  // Rows of the store's table in a database.
  rows(conninfo, table) {
    return Number(this.pg.sql(`SELECT count(*) FROM ${table}`, conninfo));
  }

  async oneToOne() {
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
    const { alice, bob, carol, dave } = this.clients;
    const N = 20;
    const sent = [];
    let restart = null;
    for (let i = 0; i < N; i++) {
      sent.push(carol.send('alice', `stream-c-${i}`));
      sent.push(bob.send('dave', `stream-b-${i}`));
      if (i === 5) restart = this.pg.restartAsync();
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
    const m = await node.metrics();
    return { node: m.whisperd_cluster_node, sent: m.whisperd_cluster_relays_sent_total,
             heard: m.whisperd_cluster_relays_heard_total, dropped: m.whisperd_cluster_relays_dropped_total };
  }

  async shutdown() {
    for (const n of this.nodes.filter((x) => !x.exited)) {
      const m = await this.metrics(n);
      this.ok(m.node === n.k && m.sent > 0 && m.heard > m.sent && m.dropped === 0, `${n.key}'s relay metrics: ${JSON.stringify(m)}`);
    }
    const n0 = this.rows(this.pg.conninfo, 'whisper_records');
    const n1 = this.o.shards === 2 ? this.rows(this.conninfo2, 'whisper_records') : 0;
    if (this.o.shards === 2) this.ok(n0 > 0 && n1 > 0, `records on both shards: ${n0} and ${n1}`);
    else this.ok(n0 > 0, `records in the database: ${n0}`);
    const store = this.o.shards === 2 ? `${n0} records on shard 0, ${n1} on shard 1` : `${n0} records`;
    for (const c of Object.values(this.clients)) {
      const code = await c.quit();
      this.ok(code === 0, `${c.key} exit code ${code}`);
    }
    for (const n of this.nodes) {
      if (n.exited) continue;
      const code = await n.stop();
      this.ok(code === 0, `${n.key} exit code ${code}`);
    }
    this.notes.shutdown = `relay metrics on every live node; ${store}; clients exit 0, nodes 0 on SIGTERM`;
  }

  async cleanup() {
    await super.cleanup();
    if (this.lb) this.lb.close();
    this.pg.stop();
  }
}

ClusterTest.main('cluster.js', {
  programs: ['whisperd', 'chat', 'pgCluster'],
  timeout: 30,
  own: { shards: [1, '1|2'], noGroupCommit: [false, ''] },
  check: (o, usage) => {
    if (o.shards !== 1 && o.shards !== 2) usage('--shards is 1 or 2');
  },
}, 'events.log, node*.stderr, the clients\' stores');
