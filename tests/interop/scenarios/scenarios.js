// The interop scenarios. Each one drives a few peers through the harness (see
// harness.js); every request is a recorded step whose outcome is compared to
// the reference (libsignal against libsignal), and each scenario also asserts
// its intent directly.
'use strict';

const { pb } = require('./harness');

// Roles: name/device/registration id of the device, and the side of the
// pairing it runs on (0 = the first command of the assignment, 1 = the second).
const ROLE = {
  alice: { name: 'alice', device: 1, registration_id: 1001, side: 0 },
  bob: { name: 'bob', device: 1, registration_id: 2001, side: 1 },
  bob2: { name: 'bob', device: 2, registration_id: 2002, side: 0 },
  carol: { name: 'carol', device: 1, registration_id: 3001, side: 1 },
  dave: { name: 'dave', device: 1, registration_id: 4001, side: 1 },
};
function roles(...names) {
  const out = {};
  for (const n of names) out[n] = ROLE[n];
  return out;
}
function onSide(r, role, side) {
  r[role] = Object.assign({}, r[role], { side });
  return r;
}

const scenarios = [];
function def(name, opts, run) {
  scenarios.push({
    name,
    roles: opts.roles,
    groups: !!opts.groups,
    description: opts.description,
    run,
  });
}

// ---------------------------------------------------------------------------
// byte-level tampering

const B = (s) => Buffer.from(s, 'base64');
const S = (b) => Buffer.from(b).toString('base64');

function flipByte(b64, index, mask = 0x01) {
  const b = B(b64);
  const i = index < 0 ? b.length + index : index;
  b[i] ^= mask;
  return S(b);
}

// SignalMessage: version byte || protobuf || 8-byte MAC. The ciphertext is
// the last protobuf field, so the byte just before the MAC belongs to it.
function signalFlipCiphertext(b64) {
  return flipByte(b64, -9);
}
function signalFlipMac(b64) {
  return flipByte(b64, -1);
}

// PreKeySignalMessage: version byte || protobuf {5: registration_id,
// 1: prekey_id, 6: signed_prekey_id, 2: base_key, 3: identity_key, 4: message}.
function prekeyEdit(b64, edit) {
  const b = B(b64);
  const fields = pb.decode(b.subarray(1));
  edit(fields);
  return S(Buffer.concat([b.subarray(0, 1), pb.encode(fields)]));
}
function prekeyFlipKeyField(b64, field) {
  return prekeyEdit(b64, (fields) => {
    const f = pb.get(fields, field);
    f.value = Buffer.from(f.value);
    f.value[1] ^= 0x01; // first byte of the u-coordinate, after the 0x05
  });
}
function prekeySetVarint(b64, field, value) {
  return prekeyEdit(b64, (fields) => {
    const f = pb.get(fields, field);
    if (f) f.value = BigInt(value);
    else fields.unshift({ field, wire: 0, value: BigInt(value) });
  });
}
function prekeyFlipInnerCiphertext(b64) {
  return prekeyEdit(b64, (fields) => {
    const f = pb.get(fields, 4);
    f.value = B(signalFlipCiphertext(S(f.value)));
  });
}

const tampered = (msg, body, type = msg.type) => Object.assign({}, msg, { body, type });

// ---------------------------------------------------------------------------
// 1:1 scenarios

def(
  'conversation',
  { roles: roles('alice', 'bob'), description: '60 alternating messages of 0..2000 bytes, then quit' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.hasSession(alice, bob, false);
    await t.hasSession(bob, alice, false);
    const b1 = await t.bundle(bob);
    const b2 = await t.bundle(bob);
    t.check(b2.prekey_id > b1.prekey_id, `prekey_id > ${b1.prekey_id}`, b2.prekey_id, 'bob bundle ids increase');
    t.check(b2.signed_prekey === b1.signed_prekey, 'the same signed prekey', b2.signed_prekey, 'bob bundle signed prekey reused');
    await t.startSession(alice, bob, b2);
    await t.hasSession(alice, bob, true);
    const fixed = [0, 2000, 1, 15, 16, 17, 31, 32, 33, 255, 256, 1999];
    for (let i = 0; i < 60; i++) {
      const size = i < fixed.length ? fixed[i] : t.rng.range(0, 2000);
      const fromAlice = i % 2 === 0;
      const type = fromAlice && i === 0 ? 'prekey' : 'whisper';
      if (fromAlice) await t.exchange(alice, bob, { size, type });
      else await t.exchange(bob, alice, { size, type });
    }
    await t.hasSession(bob, alice, true);
    await t.ok(alice, { op: 'quit' });
    const code = await alice.close(10000);
    t.record('alice exit after quit', `exit ${code}`);
    t.check(code === 0, 'exit code 0 after quit', code, 'alice exit after quit');
    const code2 = await bob.close(10000);
    t.record('bob exit at end of input', `exit ${code2}`);
    t.check(code2 === 0, 'exit code 0 at end of input', code2, 'bob exit at end of input');
  }
);

def(
  'no_one_time_prekey',
  { roles: roles('alice', 'bob'), description: 'session from a bundle without a one-time prekey' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.bundle(bob, false);
    const b = await t.bundle(bob, false);
    await t.startSession(alice, bob, b);
    await t.exchange(alice, bob, { type: 'prekey', size: 100 });
    await t.exchange(alice, bob, { type: 'prekey', size: 0 });
    for (let i = 0; i < 10; i++) {
      await t.exchange(bob, alice, { type: 'whisper' });
      await t.exchange(alice, bob, { type: 'whisper' });
    }
  }
);

def(
  'bursts',
  { roles: roles('alice', 'bob'), description: 'many messages one way before a reply, in both phases' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.startSession(alice, bob, await t.bundle(bob));
    // Prekey phase: ten messages before any reply.
    for (let i = 0; i < 10; i++) await t.exchange(alice, bob, { type: 'prekey', size: t.rng.range(0, 300) });
    for (let i = 0; i < 25; i++) await t.exchange(bob, alice, { type: 'whisper', size: t.rng.range(0, 300) });
    // Random bursts in alternating directions: all encrypted first, then delivered.
    for (let round = 0; round < 8; round++) {
      const [from, to] = round % 2 === 0 ? [alice, bob] : [bob, alice];
      const n = t.rng.range(1, 40);
      const msgs = [];
      for (let i = 0; i < n; i++) msgs.push(await t.encrypt(from, to, { type: 'whisper', size: t.rng.range(0, 2000) }));
      for (const m of msgs) await t.decrypt(to, m);
    }
  }
);

def(
  'out_of_order',
  { roles: roles('alice', 'bob'), description: 'seeded shuffles across five ratchet steps, prekey phase included' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.startSession(alice, bob, await t.bundle(bob));
    const heldAB = [];
    const heldBA = [];
    for (let round = 0; round < 4; round++) {
      for (const [from, to, held] of [
        [alice, bob, heldAB],
        [bob, alice, heldBA],
      ]) {
        const msgs = [];
        for (let i = 0; i < 6; i++) {
          const type = from === alice && round === 0 ? 'prekey' : 'whisper';
          msgs.push(await t.encrypt(from, to, { type, size: t.rng.range(0, 500) }));
        }
        const order = t.rng.shuffle(msgs);
        for (const m of order.slice(0, 3)) await t.decrypt(to, m);
        held.push(...order.slice(3));
      }
    }
    // Deliver everything held back, shuffled, the two directions interleaved.
    const all = t.rng.shuffle([...heldAB, ...heldBA]);
    for (const m of all) await t.decrypt(m.to, m);
    for (let i = 0; i < 4; i++) {
      await t.exchange(alice, bob, { type: 'whisper' });
      await t.exchange(bob, alice, { type: 'whisper' });
    }
  }
);

def(
  'duplicates',
  { roles: roles('alice', 'bob'), description: 'prekey and whisper messages replayed' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.startSession(alice, bob, await t.bundle(bob));
    const p0 = await t.exchange(alice, bob, { type: 'prekey' });
    await t.decryptFails(bob, p0, 'duplicate_message', 'bob decrypt replayed prekey message p0');
    const p1 = await t.encrypt(alice, bob, { type: 'prekey' });
    const p2 = await t.encrypt(alice, bob, { type: 'prekey' });
    await t.decrypt(bob, p2);
    await t.decrypt(bob, p1);
    await t.decryptFails(bob, p1, 'duplicate_message', 'bob decrypt replayed prekey message p1');
    await t.decryptFails(bob, p2, 'duplicate_message', 'bob decrypt replayed prekey message p2');
    const r0 = await t.exchange(bob, alice, { type: 'whisper' });
    await t.decryptFails(alice, r0, 'duplicate_message', 'alice decrypt replayed r0');
    const w0 = await t.exchange(alice, bob, { type: 'whisper' });
    await t.decryptFails(bob, w0, 'duplicate_message', 'bob decrypt replayed w0');
    await t.decryptFails(bob, p0, 'duplicate_message', 'bob decrypt replayed p0 after ratchet');
    const r1 = await t.encrypt(bob, alice);
    const r2 = await t.encrypt(bob, alice);
    const r3 = await t.encrypt(bob, alice);
    await t.decrypt(alice, r3);
    await t.decrypt(alice, r1);
    await t.decryptFails(alice, r1, 'duplicate_message', 'alice decrypt replayed skipped r1');
    await t.decrypt(alice, r2);
    await t.decryptFails(alice, r2, 'duplicate_message', 'alice decrypt replayed skipped r2');
    await t.decryptFails(alice, r3, 'duplicate_message', 'alice decrypt replayed r3');
    await t.exchange(alice, bob, { type: 'whisper' });
    await t.exchange(bob, alice, { type: 'whisper' });
    await t.decryptFails(bob, w0, 'duplicate_message', 'bob decrypt replayed w0 on an old chain');
  }
);

def(
  'tampering',
  { roles: roles('alice', 'bob'), description: 'flipped, truncated, garbage and mislabelled messages fail and change nothing' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.startSession(alice, bob, await t.bundle(bob));
    const p0 = await t.encrypt(alice, bob, { type: 'prekey', size: 64 });
    const bad = [
      ['base key flipped', prekeyFlipKeyField(p0.body, 2)],
      ['identity key flipped', prekeyFlipKeyField(p0.body, 3)],
      ['unknown one-time prekey id', prekeySetVarint(p0.body, 1, 0xfffff)],
      ['unknown signed prekey id', prekeySetVarint(p0.body, 6, 0xfffff)],
      ['inner ciphertext flipped', prekeyFlipInnerCiphertext(p0.body)],
      ['inner MAC flipped', signalFlipMac(p0.body)],
      ['truncated by one byte', S(B(p0.body).subarray(0, B(p0.body).length - 1))],
      ['truncated to half', S(B(p0.body).subarray(0, B(p0.body).length >> 1))],
      ['garbage', S(Buffer.concat([Buffer.from([0x34]), t.rng.bytes(80)]))],
      ['one byte', S(Buffer.from([0x34]))],
      ['empty', ''],
      ['version 0x24', flipByte(p0.body, 0, 0x34 ^ 0x24)],
    ];
    for (const [what, body] of bad) {
      await t.decryptFails(bob, tampered(p0, body), 'invalid_message', `bob decrypt prekey message: ${what}`);
    }
    // The genuine message still works: nothing above changed bob's state
    // (the one-time prekey is still there, no identity was saved).
    await t.decrypt(bob, p0, 'bob decrypt genuine prekey message');
    await t.exchange(bob, alice, { type: 'whisper', size: 64 });
    const w = await t.encrypt(alice, bob, { type: 'whisper', size: 64 });
    const badW = [
      ['ciphertext byte flipped', signalFlipCiphertext(w.body)],
      ['MAC byte flipped', signalFlipMac(w.body)],
      ['truncated by one byte', S(B(w.body).subarray(0, B(w.body).length - 1))],
      ['truncated to 5 bytes', S(B(w.body).subarray(0, 5))],
      ['garbage', S(t.rng.bytes(90))],
      ['version 0x24', flipByte(w.body, 0, 0x34 ^ 0x24)],
      ['version 0x54', flipByte(w.body, 0, 0x34 ^ 0x54)],
      ['empty', ''],
    ];
    for (const [what, body] of badW) {
      await t.decryptFails(bob, tampered(w, body), 'invalid_message', `bob decrypt whisper message: ${what}`);
    }
    await t.decryptFails(bob, tampered(w, w.body, 'prekey'), 'invalid_message', 'bob decrypt whisper message labelled prekey');
    const p1 = await t.encrypt(bob, alice, { type: 'whisper', size: 10 });
    await t.decrypt(bob, w, 'bob decrypt genuine whisper message');
    // bob's messages are checked the same way on alice's side.
    await t.decryptFails(alice, tampered(p1, signalFlipMac(p1.body)), 'invalid_message', 'alice decrypt whisper: MAC flipped');
    await t.decrypt(alice, p1);
    for (let i = 0; i < 3; i++) {
      await t.exchange(alice, bob, { type: 'whisper' });
      await t.exchange(bob, alice, { type: 'whisper' });
    }
    // A prekey message from a second, fresh session of alice, delivered with
    // the wrong type flag.
    await t.startSession(alice, bob, await t.bundle(bob));
    const p2 = await t.encrypt(alice, bob, { type: 'prekey' });
    await t.decryptFails(bob, tampered(p2, p2.body, 'whisper'), 'invalid_message', 'bob decrypt prekey message labelled whisper');
    await t.decrypt(bob, p2);
    await t.exchange(bob, alice, { type: 'whisper' });
    await t.exchange(alice, bob, { type: 'whisper' });
  }
);

const JUMP = 25000;
def(
  'skip_limit',
  { roles: roles('alice', 'bob'), description: 'counter jump of 25000 accepted, 25001 too far; only 2000 skipped keys kept' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.startSession(alice, bob, await t.bundle(bob));
    await t.exchange(alice, bob, { type: 'prekey' });
    await t.exchange(bob, alice, { type: 'whisper' });
    // A fresh sending chain of alice: counters 0..JUMP+1.
    const n = JUMP + 2;
    const pts = [];
    for (let i = 0; i < n; i++) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i);
      pts.push(S(b));
    }
    const res = await t.many(
      alice,
      pts.map((pt) => ({ op: 'encrypt', ...t.addr(bob), plaintext: pt })),
      `alice encrypt x${n} (pipelined)`,
      (rs) => `types=${[...new Set(rs.map((r) => r.type))].join(',')}`
    );
    const m = res.map((r, i) => ({ from: alice, to: bob, type: r.type, body: r.body, pt: pts[i] }));
    await t.decryptFails(bob, m[JUMP + 1], 'too_far_ahead', `bob decrypt counter ${JUMP + 1} (jump ${JUMP + 1})`);
    await t.decrypt(bob, m[JUMP], `bob decrypt counter ${JUMP} (jump ${JUMP})`);
    await t.decryptFails(bob, m[JUMP - 2001], 'duplicate_message', `bob decrypt counter ${JUMP - 2001} (2001st newest skipped)`);
    await t.decrypt(bob, m[JUMP - 2000], `bob decrypt counter ${JUMP - 2000} (oldest kept skipped key)`);
    await t.decrypt(bob, m[JUMP - 1], `bob decrypt counter ${JUMP - 1} (newest skipped key)`);
    await t.decryptFails(bob, m[JUMP - 2000], 'duplicate_message', `bob decrypt counter ${JUMP - 2000} again`);
    await t.decryptFails(bob, m[0], 'duplicate_message', 'bob decrypt counter 0');
    await t.decrypt(bob, m[JUMP + 1], `bob decrypt counter ${JUMP + 1} (now next)`);
    await t.exchange(bob, alice, { type: 'whisper' });
    await t.exchange(alice, bob, { type: 'whisper' });
  }
);

def(
  'simultaneous_initiation',
  { roles: roles('alice', 'bob'), description: 'both start sessions and send prekey messages, then converge' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    const ba = await t.bundle(bob);
    const ab = await t.bundle(alice);
    await t.startSession(alice, bob, ba);
    await t.startSession(bob, alice, ab);
    const a1 = await t.encrypt(alice, bob, { type: 'prekey' });
    const b1 = await t.encrypt(bob, alice, { type: 'prekey' });
    await t.decrypt(alice, b1);
    await t.decrypt(bob, a1);
    for (let i = 0; i < 10; i++) {
      await t.exchange(alice, bob);
      await t.exchange(bob, alice);
    }
    // Both sides converged on one session: a burst each way, then replies.
    for (let i = 0; i < 3; i++) await t.exchange(alice, bob, { type: 'whisper' });
    for (let i = 0; i < 3; i++) await t.exchange(bob, alice, { type: 'whisper' });
    await t.hasSession(alice, bob, true);
    await t.hasSession(bob, alice, true);
  }
);

def(
  'identity_change',
  { roles: roles('alice', 'bob'), description: 'bob re-created with a new identity; refused until trusted (peer-wide trust)' },
  async (t) => {
    let [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.startSession(alice, bob, await t.bundle(bob));
    await t.exchange(alice, bob, { type: 'prekey' });
    await t.exchange(bob, alice, { type: 'whisper' });
    const oldKey = bob.identityKey;
    await bob.close();
    bob = await t.spawn('bob', { fresh: true });
    t.check(bob.identityKey !== oldKey, 'a new identity key', bob.identityKey, 'new bob init');
    // The new bob starts a session with alice and writes first.
    await t.startSession(bob, alice, await t.bundle(alice));
    const p = await t.encrypt(bob, alice, { type: 'prekey' });
    await t.decryptFails(alice, p, 'untrusted_identity', 'alice decrypt prekey message from new bob');
    const nb = await t.bundle(bob);
    await t.fails(alice, { op: 'start_session', ...t.addr(bob), bundle: nb }, 'untrusted_identity', 'alice start_session with new bob');
    await t.encrypt(alice, bob, { type: 'whisper', label: 'alice encrypt on the old session (old key still trusted)' });
    await t.decryptFails(alice, p, 'untrusted_identity', 'alice decrypt prekey message from new bob again');
    await t.ok(alice, { op: 'trust', peer: 'bob', identity_key: bob.identityKey }, 'alice trust bob (all devices) new key');
    await t.fails(alice, { op: 'encrypt', ...t.addr(bob), plaintext: t.plaintext(5) }, 'untrusted_identity', 'alice encrypt on the old session after trust');
    await t.decrypt(alice, p, 'alice decrypt prekey message from new bob after trust');
    await t.exchange(alice, bob, { type: 'whisper' });
    await t.exchange(bob, alice, { type: 'whisper' });
    await t.exchange(alice, bob, { type: 'whisper' });
    await t.hasSession(alice, bob, true);
  }
);

def(
  'identity_change_device',
  { roles: roles('alice', 'bob'), description: 'bob re-created; trust for one device_id, then a new session from his bundle' },
  async (t) => {
    let [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.startSession(alice, bob, await t.bundle(bob));
    await t.exchange(alice, bob, { type: 'prekey' });
    await t.exchange(bob, alice, { type: 'whisper' });
    const oldKey = bob.identityKey;
    await bob.close();
    bob = await t.spawn('bob', { fresh: true });
    t.check(bob.identityKey !== oldKey, 'a new identity key', bob.identityKey, 'new bob init');
    const nb = await t.bundle(bob);
    await t.fails(alice, { op: 'start_session', ...t.addr(bob), bundle: nb }, 'untrusted_identity', 'alice start_session with new bob');
    await t.hasSession(alice, bob, true); // the old session is still there
    await t.ok(alice, { op: 'trust', peer: 'bob', device_id: 1, identity_key: bob.identityKey }, 'alice trust bob.1 new key');
    await t.fails(alice, { op: 'encrypt', ...t.addr(bob), plaintext: t.plaintext(5) }, 'untrusted_identity', 'alice encrypt on the old session after trust');
    await t.startSession(alice, bob, nb, 'alice start_session with new bob after trust');
    await t.exchange(alice, bob, { type: 'prekey' });
    await t.exchange(bob, alice, { type: 'whisper' });
    await t.exchange(alice, bob, { type: 'whisper' });
    // Trusting the old key again makes the new one untrusted.
    await t.ok(alice, { op: 'trust', peer: 'bob', device_id: 1, identity_key: oldKey }, 'alice trust bob.1 old key again');
    await t.fails(alice, { op: 'encrypt', ...t.addr(bob), plaintext: t.plaintext(5) }, 'untrusted_identity', 'alice encrypt to new bob after re-trusting old key');
    const w = await t.encrypt(bob, alice, { type: 'whisper' });
    await t.decryptFails(alice, w, 'untrusted_identity', 'alice decrypt whisper from new bob after re-trusting old key');
    await t.ok(alice, { op: 'trust', peer: 'bob', device_id: 1, identity_key: bob.identityKey }, 'alice trust bob.1 new key again');
    await t.decrypt(alice, w);
    await t.exchange(alice, bob, { type: 'whisper' });
  }
);

def(
  'multi_device',
  { roles: roles('alice', 'bob', 'bob2', 'carol'), description: 'bob devices 1 and 2 and carol, all talking to alice' },
  async (t) => {
    const [alice, bob, bob2, carol] = await t.spawnAll('alice', 'bob', 'bob2', 'carol');
    for (const p of [bob, bob2, carol]) await t.startSession(alice, p, await t.bundle(p));
    await t.hasSession(alice, bob, true);
    await t.hasSession(alice, bob2, true);
    await t.hasSession(alice, carol, true);
    for (let round = 0; round < 4; round++) {
      // Fan-out: the same plaintext to both of bob's devices, another to carol.
      const pt = t.plaintext(t.rng.range(0, 1000));
      const type = round === 0 ? 'prekey' : 'whisper';
      const out = [
        await t.encrypt(alice, bob, { pt, type }),
        await t.encrypt(alice, bob2, { pt, type }),
        await t.encrypt(alice, carol, { type }),
      ];
      for (const m of t.rng.shuffle(out)) await t.decrypt(m.to, m);
      const back = [];
      for (const p of [bob, bob2, carol]) back.push(await t.encrypt(p, alice, { type: 'whisper' }));
      for (const m of t.rng.shuffle(back)) await t.decrypt(alice, m);
    }
    // bob's second device and carol talk too.
    await t.startSession(bob2, carol, await t.bundle(carol));
    await t.exchange(bob2, carol, { type: 'prekey' });
    await t.exchange(carol, bob2, { type: 'whisper' });
    await t.exchange(bob2, carol, { type: 'whisper' });
    const bob3 = { role: 'bob.3', name: 'bob', device: 3 };
    await t.hasSession(alice, bob3, false);
    await t.fails(alice, { op: 'encrypt', ...t.addr(bob3), plaintext: '' }, 'no_session', 'alice encrypt to bob.3');
  }
);

def(
  'malformed',
  { roles: roles('alice', 'bob'), description: 'bad JSON, unknown ops, missing fields, bad base64, bad keys and signatures' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    const badB64 = ['abc', 'YQ', 'YR==', '-_8=', 'Y Q==', 'YQ==\n', '=', 'YQ===', 'YWJj\u00e9'];
    for (const [p, other] of [
      [bob, alice],
      [alice, bob],
    ]) {
      const r = p.role;
      await t.raw(p, 'this is not json', `${r} raw: not JSON`);
      await t.raw(p, '[1,2,3]', `${r} raw: a JSON array`);
      await t.raw(p, '"encrypt"', `${r} raw: a JSON string`);
      await t.fails(p, {}, 'bad_request', `${r} request without op`);
      await t.fails(p, { op: 'frobnicate' }, 'bad_request', `${r} unknown op`);
      await t.fails(p, { op: 42 }, 'bad_request', `${r} numeric op`);
      const to = t.addr(other);
      await t.fails(p, { op: 'encrypt', device_id: 1, plaintext: '' }, 'bad_request', `${r} encrypt without peer`);
      await t.fails(p, { op: 'encrypt', peer: to.peer, plaintext: '' }, 'bad_request', `${r} encrypt without device_id`);
      await t.fails(p, { op: 'encrypt', peer: to.peer, device_id: '1', plaintext: '' }, 'bad_request', `${r} encrypt with device_id "1"`);
      await t.fails(p, { op: 'encrypt', ...to }, 'bad_request', `${r} encrypt without plaintext`);
      for (const s of badB64) {
        await t.fails(p, { op: 'encrypt', ...to, plaintext: s }, 'bad_request', `${r} encrypt plaintext ${JSON.stringify(s)}`);
      }
      await t.fails(p, { op: 'encrypt', ...to, plaintext: 12 }, 'bad_request', `${r} encrypt plaintext 12`);
      await t.fails(p, { op: 'decrypt', ...to, type: 'signal', body: 'NA==' }, 'bad_request', `${r} decrypt type "signal"`);
      await t.fails(p, { op: 'decrypt', ...to, body: 'NA==' }, 'bad_request', `${r} decrypt without type`);
      await t.fails(p, { op: 'decrypt', ...to, type: 'whisper' }, 'bad_request', `${r} decrypt without body`);
      await t.fails(p, { op: 'decrypt', ...to, type: 'whisper', body: 'NA=' }, 'bad_request', `${r} decrypt body "NA="`);
      await t.fails(p, { op: 'has_session', device_id: 1 }, 'bad_request', `${r} has_session without peer`);
      await t.fails(p, { op: 'start_session', ...to }, 'bad_request', `${r} start_session without bundle`);
      await t.fails(p, { op: 'trust', peer: to.peer }, 'bad_request', `${r} trust without identity_key`);
      await t.fails(p, { op: 'trust', peer: to.peer, identity_key: 'BQ' }, 'bad_request', `${r} trust identity_key "BQ"`);
      await t.fails(p, { op: 'trust', peer: to.peer, identity_key: S(Buffer.alloc(33, 6)) }, 'invalid_key', `${r} trust with a type-6 key`);
      await t.fails(p, { op: 'trust', peer: to.peer, identity_key: S(Buffer.alloc(20, 5)) }, 'invalid_key', `${r} trust with a 20-byte key`);

      // Bundles: mismatched device, malformed keys, bad signatures.
      const ob = await t.bundle(other);
      const start = (bundle, code, what, device_id = other.device) =>
        t.fails(p, { op: 'start_session', peer: other.name, device_id, bundle }, code, `${r} start_session: ${what}`);
      await start(ob, 'bad_request', 'device_id 2 but bundle.device_id 1', 2);
      await start({ ...ob, identity_key: S(Buffer.concat([Buffer.from([6]), B(ob.identity_key).subarray(1)])) }, 'invalid_key', 'identity key with type byte 6');
      await start({ ...ob, identity_key: S(B(ob.identity_key).subarray(0, 20)) }, 'invalid_key', 'identity key of 20 bytes');
      await start({ ...ob, signed_prekey: S(B(ob.signed_prekey).subarray(1)) }, 'invalid_key', 'signed prekey without type byte');
      await start({ ...ob, prekey: '' }, 'invalid_key', 'empty one-time prekey');
      await start({ ...ob, signed_prekey: 'BQ' }, 'bad_request', 'signed prekey "BQ"');
      await start({ ...ob, signed_prekey_signature: flipByte(ob.signed_prekey_signature, 10) }, 'invalid_signature', 'signature byte flipped');
      await start({ ...ob, signed_prekey_signature: S(Buffer.alloc(64)) }, 'invalid_signature', 'all-zero signature');
      await start({ ...ob, signed_prekey_signature: S(B(ob.signed_prekey_signature).subarray(0, 63)) }, 'invalid_signature', '63-byte signature');
      await start({ ...ob, signed_prekey: ob.prekey }, 'invalid_signature', 'signature over another key');
      // No session: encrypt, decrypt.
      await t.hasSession(p, other, false);
      await t.fails(p, { op: 'encrypt', ...to, plaintext: 'aGk=' }, 'no_session', `${r} encrypt without a session`);
    }
    // Decrypting a whisper message with no session for the sender.
    await t.startSession(alice, bob, await t.bundle(bob));
    await t.exchange(alice, bob, { type: 'prekey' });
    const w = await t.encrypt(bob, alice, { type: 'whisper' });
    const nobody = { role: 'carol', name: 'carol', device: 1 };
    await t.decryptFails(alice, { ...w, from: nobody }, 'no_session', 'alice decrypt whisper claimed from carol (no session)');
    await t.decryptFails(alice, { ...w, from: { ...nobody, name: 'bob', device: 7 } }, 'no_session', 'alice decrypt whisper claimed from bob.7 (no session)');
    await t.decrypt(alice, w);
    const w2 = await t.encrypt(alice, bob, { type: 'whisper' });
    await t.decryptFails(bob, { ...w2, from: nobody }, 'no_session', 'bob decrypt whisper claimed from carol (no session)');
    await t.decrypt(bob, w2);
    await t.exchange(bob, alice, { type: 'whisper' });
  }
);

def(
  'persistence',
  { roles: roles('alice', 'bob'), description: 'SIGKILL right after responses, restart from --db, continue' },
  async (t) => {
    let [alice, bob] = await t.spawnAll('alice', 'bob');
    const b1 = await t.bundle(bob);
    await t.startSession(alice, bob, b1);
    await t.exchange(alice, bob, { type: 'prekey' });
    await t.exchange(bob, alice, { type: 'whisper' });
    const pts = [];
    for (let i = 0; i < 20; i++) pts.push(t.plaintext(t.rng.range(0, 300)));
    const res = await t.many(alice, pts.map((pt) => ({ op: 'encrypt', ...t.addr(bob), plaintext: pt })), 'alice encrypt x20 (pipelined)');
    const msgs = res.map((r, i) => ({ from: alice, to: bob, type: r.type, body: r.body, pt: pts[i] }));
    await alice.kill9();
    const aliceKey = alice.identityKey;
    alice = await t.spawn('alice', { init: false });
    await t.fails(alice, { op: 'init', name: 'mallory', device_id: 1, registration_id: 1001 }, 'bad_request', 'restarted alice init as mallory');
    await t.fails(alice, { op: 'init', name: 'alice', device_id: 2, registration_id: 1001 }, 'bad_request', 'restarted alice init as device 2');
    const ir = await t.ok(alice, { op: 'init', name: 'alice', device_id: 1, registration_id: 999 }, 'restarted alice init');
    t.check(ir.identity_key === aliceKey, 'the stored identity key', ir.identity_key, 'restarted alice init');
    alice.identityKey = ir.identity_key;
    const ab = await t.bundle(alice);
    t.check(ab.registration_id === 1001, 'the stored registration id 1001', ab.registration_id, 'restarted alice bundle');
    await t.hasSession(alice, bob, true);
    const m20 = await t.encrypt(alice, bob, { type: 'whisper' });
    for (const m of msgs) await t.decrypt(bob, { ...m, from: alice });
    await t.decrypt(bob, m20);
    await t.decryptFails(bob, { ...msgs[5], from: alice }, 'duplicate_message', 'bob decrypt replayed message 5');
    await bob.kill9();
    bob = await t.spawn('bob');
    await t.decryptFails(bob, { ...msgs[6], from: alice }, 'duplicate_message', 'restarted bob decrypt replayed message 6');
    const b2 = await t.bundle(bob);
    t.check(b2.prekey_id > b1.prekey_id, `prekey_id > ${b1.prekey_id}`, b2.prekey_id, 'restarted bob bundle id increases');
    await t.exchange(bob, alice, { type: 'whisper' });
    // Messages in flight across a restart of the receiver.
    const late = [];
    for (let i = 0; i < 5; i++) late.push(await t.encrypt(alice, bob, { type: 'whisper' }));
    await t.decrypt(bob, late[4]);
    await bob.kill9();
    bob = await t.spawn('bob');
    for (const m of late.slice(0, 4)) await t.decrypt(bob, { ...m, to: bob });
    await t.exchange(bob, alice, { type: 'whisper' });
    await t.exchange(alice, bob, { type: 'whisper' });
  }
);

// ---------------------------------------------------------------------------
// retry requests: libsignal's DecryptionErrorMessage inside a PlaintextContent

// The sender's ratchet key of a whisper message (version || protobuf || MAC),
// or of the whisper message inside a prekey message (field 4).
function ratchetKeyOf(type, b64) {
  let b = B(b64);
  if (type === 'prekey') b = pb.get(pb.decode(b.subarray(1)), 4).value;
  return S(pb.get(pb.decode(b.subarray(1, b.length - 8)), 1).value);
}

// 0xC0 || Content{8: DecryptionErrorMessage{1: ratchet_key, 2: timestamp,
// 3: device_id}} || 0x80, written here from the field list (each side's
// output is checked against this, not only against the other side's).
function plaintextContent(demFields, content = (dem) => [{ field: 8, wire: 2, value: dem }]) {
  return Buffer.concat([Buffer.from([0xc0]), pb.encode(content(pb.encode(demFields))), Buffer.from([0x80])]);
}
function demFields({ key, timestamp, device }) {
  const f = [];
  if (key !== null && key !== undefined) f.push({ field: 1, wire: 2, value: B(key) });
  if (timestamp !== undefined) f.push({ field: 2, wire: 0, value: BigInt(timestamp) });
  if (device !== undefined) f.push({ field: 3, wire: 0, value: BigInt(device) });
  return f;
}

def(
  'decryption_error',
  { roles: roles('alice', 'bob'), description: 'retry requests (DecryptionErrorMessage in a PlaintextContent) made by each side, read by the other' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    await t.startSession(alice, bob, await t.bundle(bob));
    const p = await t.encrypt(alice, bob, { type: 'prekey', size: 40 });
    await t.decrypt(bob, p);
    await t.exchange(bob, alice, { type: 'whisper' });
    const w = await t.encrypt(alice, bob, { type: 'whisper', size: 40 }); // never delivered
    const D = t.rng.uuid();
    await t.ok(alice, { op: 'group_create', distribution_id: D }, 'alice group_create');
    const g = await t.ok(alice, { op: 'group_encrypt', distribution_id: D, plaintext: t.plaintext(20) }, 'alice group_encrypt');
    const now = () => 1700000000000 + t.rng.int(1000000000);
    // Originals bob could not decrypt, and what goes into the request for them.
    const cases = [
      ['prekey message', p.body, 'prekey', ratchetKeyOf('prekey', p.body), now(), alice.device],
      ['whisper message', w.body, 'whisper', ratchetKeyOf('whisper', w.body), now(), alice.device],
      ['whisper message, MAC flipped', signalFlipMac(w.body), 'whisper', ratchetKeyOf('whisper', w.body), now(), alice.device],
      ['sender-key message', g.body, 'sender_key', null, now(), alice.device],
      ['whisper message, timestamp 0, device 0', w.body, 'whisper', ratchetKeyOf('whisper', w.body), 0, 0],
      ['whisper message, timestamp 2^32, device 2^31-1', w.body, 'whisper', ratchetKeyOf('whisper', w.body), 2 ** 32, 0x7fffffff],
      ['sender-key message, timestamp 2^53-1, device 2^32-1', g.body, 'sender_key', null, Number.MAX_SAFE_INTEGER, 0xffffffff],
    ];
    let valid = null;
    for (const [what, original, type, key, timestamp, device] of cases) {
      const want = S(plaintextContent(demFields({ key, timestamp, device })));
      const made = new Map();
      for (const maker of [bob, alice]) {
        const label = `${maker.role} decryption_error_make for a ${what}`;
        const r = await t.ok(maker, { op: 'decryption_error_make', original, type, timestamp, device_id: device }, label);
        t.check(r.plaintext_content === want, want, r.plaintext_content, label);
        made.set(maker, r.plaintext_content);
      }
      for (const [reader, maker] of [[alice, bob], [bob, alice]]) {
        const label = `${reader.role} decryption_error_read from ${maker.role} for a ${what}`;
        const r = await t.ok(reader, { op: 'decryption_error_read', plaintext_content: made.get(maker) }, label);
        const got = `${r.timestamp}/${r.device_id}/${r.ratchet_key}`;
        t.check(got === `${timestamp}/${device}/${key}`, `${timestamp}/${device}/${key}`, got, label);
      }
      if (type === 'whisper' && !valid) valid = { key, timestamp, device };
    }
    // Read as both sides read them, from bytes written here.
    const edited = (fields) => S(plaintextContent(demFields(Object.assign({}, valid, fields))));
    const good = B(edited({}));
    const readOk = [
      ['without device_id (0)', edited({ device: undefined }), `${valid.timestamp}/0/${valid.key}`],
      ['without ratchet key', edited({ key: null }), `${valid.timestamp}/${valid.device}/null`],
    ];
    for (const [what, pc, want] of readOk) {
      for (const q of [alice, bob]) {
        const label = `${q.role} decryption_error_read: ${what}`;
        const r = await t.ok(q, { op: 'decryption_error_read', plaintext_content: pc }, label);
        const got = `${r.timestamp}/${r.device_id}/${r.ratchet_key}`;
        t.check(got === want, want, got, label);
      }
    }
    const bad = [
      ['without the 0x80 padding byte', S(good.subarray(0, good.length - 1))],
      ['without the 0xC0 byte', S(good.subarray(1))],
      ['0xC0 0x80 (an empty Content)', S(Buffer.from([0xc0, 0x80]))],
      ['a Content without field 8', S(plaintextContent(demFields(valid), (dem) => [{ field: 7, wire: 2, value: dem }]))],
      ['a Content that is not protobuf', S(Buffer.from([0xc0, 0xff, 0xff, 0x80]))],
      ['without timestamp', edited({ timestamp: undefined })],
      ['a ratchet key of 32 bytes', edited({ key: S(B(valid.key).subarray(0, 32)) })],
      ['a ratchet key of type 0x06', edited({ key: S(Buffer.concat([Buffer.from([0x06]), B(valid.key).subarray(1)])) })],
      ['empty', ''],
    ];
    for (const [what, pc] of bad) {
      for (const q of [alice, bob]) {
        await t.fails(q, { op: 'decryption_error_read', plaintext_content: pc }, 'invalid_message', `${q.role} decryption_error_read: ${what}`);
      }
    }
    const badReq = [
      ['without original', { type: 'whisper', timestamp: 1, device_id: 1 }],
      ['type plaintext', { original: w.body, type: 'plaintext', timestamp: 1, device_id: 1 }],
      ['negative timestamp', { original: w.body, type: 'whisper', timestamp: -1, device_id: 1 }],
      ['timestamp 2^53', { original: w.body, type: 'whisper', timestamp: 2 ** 53, device_id: 1 }],
      ['fractional timestamp', { original: w.body, type: 'whisper', timestamp: 1.5, device_id: 1 }],
      ['device 2^32', { original: w.body, type: 'whisper', timestamp: 1, device_id: 2 ** 32 }],
    ];
    for (const [what, req] of badReq) {
      for (const q of [alice, bob]) {
        await t.fails(q, { op: 'decryption_error_make', ...req }, 'bad_request', `${q.role} decryption_error_make ${what}`);
      }
    }
    for (const q of [alice, bob]) {
      await t.fails(q, { op: 'decryption_error_read', plaintext_content: 'abc' }, 'bad_request', `${q.role} decryption_error_read bad base64`);
    }
    // The session is untouched by all this.
    await t.decrypt(bob, w);
    await t.exchange(bob, alice, { type: 'whisper' });
  }
);

// ---------------------------------------------------------------------------
// group and fingerprint scenarios (--groups)

function skBody(res) {
  return res.body;
}

def(
  'group_basic',
  { groups: true, roles: onSide(onSide(roles('alice', 'bob', 'bob2', 'carol'), 'carol', 0), 'bob2', 1), description: 'sender keys among three members, a late joiner, replays and tampering' },
  async (t) => {
    const [alice, bob, carol] = await t.spawnAll('alice', 'bob', 'carol');
    const members = [alice, bob, carol];
    const D = t.rng.uuid();
    const skdm = new Map();
    for (const p of members) {
      const r = await t.ok(p, { op: 'group_create', distribution_id: D }, `${p.role} group_create`);
      t.check(B(r.skdm)[0] === 0x33, 'an SKDM starting with 0x33', B(r.skdm).subarray(0, 1).toString('hex'), `${p.role} group_create`);
      skdm.set(p, r.skdm);
    }
    for (const p of members) {
      for (const q of members) {
        if (p === q) continue;
        await t.ok(p, { op: 'group_process', sender: q.name, device_id: q.device, skdm: skdm.get(q) }, `${p.role} group_process from ${q.role}`);
      }
    }
    const gsend = async (p, size) => {
      const pt = t.plaintext(size === undefined ? t.rng.range(0, 2000) : size);
      const r = await t.ok(p, { op: 'group_encrypt', distribution_id: D, plaintext: pt }, `${p.role} group_encrypt`);
      t.check(B(r.body)[0] === 0x33, 'a body starting with 0x33', B(r.body).subarray(0, 1).toString('hex'), `${p.role} group_encrypt`);
      return { from: p, body: skBody(r), pt };
    };
    const gdecrypt = async (q, m, label) => {
      label = label || `${q.role} group_decrypt from ${m.from.role}`;
      const r = await t.ok(q, { op: 'group_decrypt', sender: m.from.name, device_id: m.from.device, body: m.body }, label);
      t.check(r.plaintext === m.pt, 'the plaintext sent', r.plaintext, label);
    };
    const gfail = (q, m, body, code, label) =>
      t.fails(q, { op: 'group_decrypt', sender: m.from.name, device_id: m.from.device, body }, code, label);

    const all = [];
    for (let round = 0; round < 3; round++) {
      for (const p of members) {
        const msgs = [];
        for (let i = 0; i < 4; i++) msgs.push(await gsend(p, round === 0 && i === 0 ? 0 : undefined));
        for (const q of members) {
          if (q === p) continue;
          for (const m of t.rng.shuffle(msgs)) await gdecrypt(q, m);
        }
        all.push(...msgs);
      }
    }
    const m0 = all[0];
    await gfail(bob, m0, m0.body, 'duplicate_message', 'bob group_decrypt replay');
    const m1 = await gsend(alice, 100);
    await gfail(bob, m1, flipByte(m1.body, -70), 'invalid_signature', 'bob group_decrypt: ciphertext byte flipped');
    await gfail(bob, m1, flipByte(m1.body, -1), 'invalid_signature', 'bob group_decrypt: signature byte flipped');
    await gfail(bob, m1, S(B(m1.body).subarray(0, 10)), 'invalid_message', 'bob group_decrypt: truncated');
    await gfail(bob, m1, S(t.rng.bytes(120)), 'invalid_message', 'bob group_decrypt: garbage');
    await gfail(bob, m1, '', 'invalid_message', 'bob group_decrypt: empty');
    await gdecrypt(bob, m1, 'bob group_decrypt genuine');
    await gdecrypt(carol, m1);
    await t.fails(bob, { op: 'group_decrypt', sender: 'dave', device_id: 1, body: m1.body }, 'no_session', 'bob group_decrypt claimed from dave');
    await t.fails(bob, { op: 'group_decrypt', sender: 'alice', device_id: 9, body: m1.body }, 'no_session', 'bob group_decrypt claimed from alice.9');
    // Another distribution that bob never heard of.
    const D2 = t.rng.uuid();
    await t.ok(alice, { op: 'group_create', distribution_id: D2 }, 'alice group_create D2');
    const r2 = await t.ok(alice, { op: 'group_encrypt', distribution_id: D2, plaintext: 'aGk=' }, 'alice group_encrypt D2');
    await t.fails(bob, { op: 'group_decrypt', sender: 'alice', device_id: 1, body: r2.body }, 'no_session', 'bob group_decrypt unknown distribution');
    await t.fails(bob, { op: 'group_encrypt', distribution_id: D2, plaintext: 'aGk=' }, 'no_session', 'bob group_encrypt without group_create');
    // Any 16 bytes are a distribution id, not only RFC 4122 UUIDs.
    const D3 = '00112233-4455-6677-8899-aabbccddeeff';
    const c3 = await t.ok(carol, { op: 'group_create', distribution_id: D3 }, 'carol group_create non-RFC-4122 uuid');
    await t.ok(alice, { op: 'group_process', sender: carol.name, device_id: carol.device, skdm: c3.skdm }, 'alice group_process non-RFC-4122 uuid');
    const pt3 = t.plaintext(33);
    const e3 = await t.ok(carol, { op: 'group_encrypt', distribution_id: D3, plaintext: pt3 }, 'carol group_encrypt non-RFC-4122 uuid');
    await gdecrypt(alice, { from: carol, body: e3.body, pt: pt3 }, 'alice group_decrypt non-RFC-4122 uuid');
    // Malformed group requests.
    await t.fails(bob, { op: 'group_create', distribution_id: 'not-a-uuid' }, 'bad_request', 'bob group_create bad uuid');
    await t.fails(bob, { op: 'group_encrypt', distribution_id: D }, 'bad_request', 'bob group_encrypt without plaintext');
    await t.fails(bob, { op: 'group_process', sender: 'alice', device_id: 1, skdm: 'abc' }, 'bad_request', 'bob group_process bad base64');
    await t.fails(bob, { op: 'group_process', sender: 'alice', device_id: 1, skdm: S(t.rng.bytes(50)) }, 'invalid_message', 'bob group_process garbage');
    await t.fails(bob, { op: 'group_decrypt', sender: 'alice', device_id: 1 }, 'bad_request', 'bob group_decrypt without body');
    // A late joiner: dave (bob's second device) gets alice's current SKDM.
    const dave = await t.spawn('bob2');
    const cur = await t.ok(alice, { op: 'group_create', distribution_id: D }, 'alice group_create again (current state)');
    await t.ok(dave, { op: 'group_process', sender: 'alice', device_id: 1, skdm: cur.skdm }, 'bob.2 group_process from alice');
    await gfail(dave, m1, m1.body, 'duplicate_message', 'bob.2 group_decrypt a message older than its SKDM');
    const m2 = await gsend(alice);
    await gdecrypt(dave, m2);
    await gdecrypt(bob, m2);
    // Re-processing an old SKDM does not rewind the chain.
    await t.ok(bob, { op: 'group_process', sender: 'alice', device_id: 1, skdm: skdm.get(alice) }, 'bob group_process alice initial SKDM again');
    await gfail(bob, m2, m2.body, 'duplicate_message', 'bob group_decrypt replay after SKDM re-processed');
    const m3 = await gsend(alice);
    await gdecrypt(bob, m3);
    await gdecrypt(carol, m3);
    await gdecrypt(dave, m3);
  }
);

def(
  'group_rotation',
  { groups: true, roles: onSide(roles('alice', 'bob', 'carol'), 'carol', 1), description: 'the sender starts new chains (a member left); receivers keep old chains for late messages, at most 5' },
  async (t) => {
    let [alice, bob, carol] = await t.spawnAll('alice', 'bob', 'carol');
    const D = t.rng.uuid();
    const send = async (label) => {
      const pt = t.plaintext(t.rng.range(1, 300));
      const r = await t.ok(alice, { op: 'group_encrypt', distribution_id: D, plaintext: pt }, label);
      return { body: r.body, pt, label };
    };
    const read = async (q, m) => {
      const r = await t.ok(q, { op: 'group_decrypt', sender: 'alice', device_id: 1, body: m.body }, `${q.role} reads ${m.label}`);
      t.check(r.plaintext === m.pt, 'the plaintext sent', r.plaintext, `${q.role} reads ${m.label}`);
    };
    const chains = [];
    for (let gen = 0; gen < 6; gen++) {
      if (gen > 0) {
        await alice.close();
        alice = await t.spawn('alice', { fresh: true }); // the old sending state is gone
      }
      const c = await t.ok(alice, { op: 'group_create', distribution_id: D }, `alice chain ${gen}`);
      await t.ok(bob, { op: 'group_process', sender: 'alice', device_id: 1, skdm: c.skdm }, `bob processes chain ${gen}`);
      if (gen === 0) await t.ok(carol, { op: 'group_process', sender: 'alice', device_id: 1, skdm: c.skdm }, 'carol processes chain 0');
      const early = await send(`chain ${gen} message 0`);
      const late = await send(`chain ${gen} message 1 (held back)`);
      await read(bob, early);
      if (gen === 0) await read(carol, early);
      else await t.fails(carol, { op: 'group_decrypt', sender: 'alice', device_id: 1, body: early.body }, 'no_session', `carol (left) cannot read chain ${gen}`);
      chains.push(late);
    }
    // Late messages of the 5 newest chains still decrypt; the oldest chain was dropped.
    await t.fails(bob, { op: 'group_decrypt', sender: 'alice', device_id: 1, body: chains[0].body }, 'no_session', 'bob reads chain 0 late (dropped)');
    for (let gen = 1; gen < 6; gen++) await read(bob, chains[gen]);
  }
);

def(
  'group_limits',
  { groups: true, roles: roles('alice', 'bob'), description: 'sender-key iteration jump 25000 accepted, 25001 too far; 2000 kept' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    const D = t.rng.uuid();
    const c = await t.ok(alice, { op: 'group_create', distribution_id: D }, 'alice group_create');
    await t.ok(bob, { op: 'group_process', sender: 'alice', device_id: 1, skdm: c.skdm }, 'bob group_process');
    const n = JUMP + 2;
    const pts = [];
    for (let i = 0; i < n; i++) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i);
      pts.push(S(b));
    }
    const res = await t.many(alice, pts.map((pt) => ({ op: 'group_encrypt', distribution_id: D, plaintext: pt })), `alice group_encrypt x${n} (pipelined)`);
    const dec = (i, label) => t.ok(bob, { op: 'group_decrypt', sender: 'alice', device_id: 1, body: res[i].body }, label).then((r) => {
      t.check(r.plaintext === pts[i], 'the plaintext sent', r.plaintext, label);
    });
    const fail = (i, code, label) => t.fails(bob, { op: 'group_decrypt', sender: 'alice', device_id: 1, body: res[i].body }, code, label);
    await fail(JUMP + 1, 'too_far_ahead', `bob group_decrypt iteration ${JUMP + 1}`);
    await dec(JUMP, `bob group_decrypt iteration ${JUMP}`);
    await fail(JUMP - 2001, 'duplicate_message', `bob group_decrypt iteration ${JUMP - 2001} (2001st newest skipped)`);
    await dec(JUMP - 2000, `bob group_decrypt iteration ${JUMP - 2000} (oldest kept)`);
    await dec(JUMP - 1, `bob group_decrypt iteration ${JUMP - 1}`);
    await fail(JUMP - 2000, 'duplicate_message', `bob group_decrypt iteration ${JUMP - 2000} again`);
    await dec(JUMP + 1, `bob group_decrypt iteration ${JUMP + 1} (now next)`);
  }
);

def(
  'fingerprint',
  { groups: true, roles: roles('alice', 'bob'), description: 'safety numbers agree between the two sides' },
  async (t) => {
    const [alice, bob] = await t.spawnAll('alice', 'bob');
    const ida = S(t.rng.bytes(16));
    const idb = S(t.rng.bytes(16));
    const fa = await t.ok(alice, { op: 'fingerprint', local_identifier: ida, remote_identifier: idb, remote_identity_key: bob.identityKey }, 'alice fingerprint');
    const fb = await t.ok(bob, { op: 'fingerprint', local_identifier: idb, remote_identifier: ida, remote_identity_key: alice.identityKey }, 'bob fingerprint');
    const label = 'fingerprints agree';
    t.check(/^[0-9]{60}$/.test(fa.displayable), '60 digits', fa.displayable, 'alice fingerprint');
    t.check(fa.displayable === fb.displayable, fa.displayable, fb.displayable, label);
    const sa = pb.decode(B(fa.scannable));
    const sb = pb.decode(B(fb.scannable));
    const ver = (s) => Number((pb.get(s, 1) || {}).value);
    const content = (s, n) => S(pb.decode(pb.get(s, n).value).find((f) => f.field === 1).value);
    t.check(ver(sa) === 2 && ver(sb) === 2, 'scannable version 2', `${ver(sa)}/${ver(sb)}`, label);
    t.check(content(sa, 2) === content(sb, 3) && content(sa, 3) === content(sb, 2), 'local and remote swapped', fb.scannable, label);
    const other = await t.ok(alice, { op: 'fingerprint', local_identifier: ida, remote_identifier: idb, remote_identity_key: alice.identityKey }, 'alice fingerprint with another key');
    t.check(other.displayable !== fa.displayable, 'a different number', other.displayable, 'alice fingerprint with another key');
    await t.ok(alice, { op: 'fingerprint', local_identifier: '', remote_identifier: '', remote_identity_key: bob.identityKey }, 'alice fingerprint with empty identifiers');
    await t.fails(alice, { op: 'fingerprint', local_identifier: ida, remote_identifier: idb, remote_identity_key: S(Buffer.alloc(33, 6)) }, 'invalid_key', 'alice fingerprint with a type-6 key');
    await t.fails(alice, { op: 'fingerprint', local_identifier: 'abc', remote_identifier: idb, remote_identity_key: bob.identityKey }, 'bad_request', 'alice fingerprint bad base64');
    await t.fails(alice, { op: 'fingerprint', local_identifier: ida, remote_identity_key: bob.identityKey }, 'bad_request', 'alice fingerprint without remote_identifier');
  }
);

module.exports = { scenarios };
