#!/usr/bin/env node
// Interop peer built on the official libsignal Node binding
// (@signalapp/libsignal-client 0.52.3).
//
//   node peer.js --db PATH
//
// Speaks the line-based JSON peer protocol: one request object per line on
// stdin, exactly one response object per line on stdout, in order. Logs go to
// stderr only. See README.md in this folder.
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const SignalClient = require('@signalapp/libsignal-client');
// The binding's own wrappers for distribution ids go through the `uuid`
// package, which rejects UUIDs that are not RFC 4122 (version/variant bits),
// while libsignal itself takes any 16 bytes. Where a distribution id crosses
// the boundary we call the native functions with the raw bytes instead.
const Native = require('@signalapp/libsignal-client/Native');

const {
  ErrorCode,
  ProtocolAddress,
  PublicKey,
  PrivateKey,
  IdentityKeyPair,
  PreKeyBundle,
  PreKeyRecord,
  SignedPreKeyRecord,
  SessionRecord,
  SenderKeyRecord,
  SignalMessage,
  PreKeySignalMessage,
  SenderKeyDistributionMessage,
  CiphertextMessageType,
  Fingerprint,
  DecryptionErrorMessage,
  PlaintextContent,
} = SignalClient;

const DB_FORMAT = 'libwhisper-libsignal-peer/1';
const SIGNED_PREKEY_ID = 1;
const FINGERPRINT_ITERATIONS = 5200;
const FINGERPRINT_VERSION = 2;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Requests answered together after one durable write (group commit). Each
// response is still written only after the state it produced is on disk.
const MAX_BATCH = 512;

// ---------------------------------------------------------------------------
// logging and errors

const VERBOSE = ['1', 'true', 'yes'].includes(String(process.env.PEER_VERBOSE || '').toLowerCase());
function log(...args) {
  process.stderr.write(`[libsignal-peer] ${args.join(' ')}\n`);
}

// libsignal reports some failures only through its log: e.g. a 1:1 message
// "from too far into the future" surfaces as "decryption failed" once every
// session state has been tried. The log lines of the running request are
// kept so that the error can be classified precisely.
let requestLog = null;
SignalClient.initLogger(SignalClient.LogLevel.Info, (level, target, file, line, message) => {
  if (requestLog) requestLog.push(message);
  if (VERBOSE) log(`libsignal[${level}] ${target}: ${message}`);
});

class PeerError extends Error {
  constructor(code, message) {
    super(message);
    this.peerCode = code;
  }
}
const badRequest = (msg) => new PeerError('bad_request', msg);

// ---------------------------------------------------------------------------
// argument parsing

function parseArgs(argv) {
  let db = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--db' && i + 1 < argv.length) {
      db = argv[++i];
    } else if (argv[i].startsWith('--db=')) {
      db = argv[i].slice(5);
    } else {
      log(`unknown argument: ${argv[i]}`);
      process.exit(2);
    }
  }
  if (!db) {
    log('usage: node peer.js --db PATH');
    process.exit(2);
  }
  return { db: path.resolve(db) };
}

// ---------------------------------------------------------------------------
// persistent state

function emptyState() {
  return {
    format: DB_FORMAT,
    name: null,
    device_id: null,
    registration_id: null,
    identity: null, // serialized IdentityKeyPair, base64
    next_prekey_id: 1,
    tables: {
      prekeys: {}, // id -> serialized PreKeyRecord
      signed_prekeys: {}, // id -> serialized SignedPreKeyRecord
      sessions: {}, // addrKey -> serialized SessionRecord
      identities: {}, // addrKey -> serialized PublicKey (TOFU or trusted)
      peer_trust: {}, // name -> serialized PublicKey (trust without device_id)
      sender_keys: {}, // senderKey -> serialized SenderKeyRecord
    },
  };
}

function loadState(dbPath) {
  if (!fs.existsSync(dbPath)) return null;
  const text = fs.readFileSync(dbPath, 'utf8');
  const st = JSON.parse(text);
  if (!st || st.format !== DB_FORMAT) {
    throw new Error(`${dbPath}: not a ${DB_FORMAT} database`);
  }
  const base = emptyState();
  for (const t of Object.keys(base.tables)) {
    if (!st.tables[t]) st.tables[t] = {};
  }
  return st;
}

function saveState(dbPath, st) {
  const dir = path.dirname(dbPath);
  const tmp = `${dbPath}.tmp`;
  const data = JSON.stringify(st);
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, dbPath);
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}

// A per-request overlay over the committed tables: a failed request is simply
// discarded, a successful one is merged (so a failed request changes no state).
class Tx {
  constructor(state) {
    this.state = state;
    this.writes = new Map(); // "table\0key" -> value (undefined = delete)
    this.flags = {};
    this.log = [];
  }
  get(table, key) {
    const k = `${table}\u0000${key}`;
    if (this.writes.has(k)) return this.writes.get(k);
    const v = this.state.tables[table][key];
    return v === undefined ? undefined : v;
  }
  set(table, key, value) {
    this.writes.set(`${table}\u0000${key}`, value);
  }
  del(table, key) {
    this.writes.set(`${table}\u0000${key}`, undefined);
  }
  keys(table) {
    const ks = new Set(Object.keys(this.state.tables[table]));
    for (const [k, v] of this.writes) {
      const i = k.indexOf('\u0000');
      if (k.slice(0, i) !== table) continue;
      const key = k.slice(i + 1);
      if (v === undefined) ks.delete(key);
      else ks.add(key);
    }
    return [...ks];
  }
  // Applies the writes; returns true if anything actually changed.
  commit() {
    let changed = false;
    for (const [k, v] of this.writes) {
      const i = k.indexOf('\u0000');
      const table = k.slice(0, i);
      const key = k.slice(i + 1);
      const t = this.state.tables[table];
      if (v === undefined) {
        if (Object.prototype.hasOwnProperty.call(t, key)) {
          delete t[key];
          changed = true;
        }
      } else if (t[key] !== v) {
        t[key] = v;
        changed = true;
      }
    }
    return changed;
  }
}

const b64 = (buf) => Buffer.from(buf).toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64');
const addrKey = (name, deviceId) => JSON.stringify([name, deviceId]);
const senderKeyKey = (name, deviceId, dist) => JSON.stringify([name, deviceId, dist]);

// ---------------------------------------------------------------------------
// libsignal stores, all reading and writing through the request's Tx

class PeerSessionStore extends SignalClient.SessionStore {
  constructor(tx) {
    super();
    this.tx = tx;
  }
  async saveSession(addr, record) {
    this.tx.set('sessions', addrKey(addr.name(), addr.deviceId()), b64(record.serialize()));
  }
  async getSession(addr) {
    const v = this.tx.get('sessions', addrKey(addr.name(), addr.deviceId()));
    return v === undefined ? null : SessionRecord.deserialize(unb64(v));
  }
  async getExistingSessions(addrs) {
    return Promise.all(
      addrs.map(async (a) => {
        const s = await this.getSession(a);
        if (!s) throw new Error(`no session for ${a.name()}.${a.deviceId()}`);
        return s;
      })
    );
  }
}

// Trust: trust on first use per (name, device). The stored key of a device is
// identities[(name, device)], falling back to peer_trust[name] (set by a
// `trust` request without device_id, which also clears the per-device entries
// of that peer so that it applies to every device, seen or not yet seen).
function storedIdentity(tx, name, deviceId) {
  const v = tx.get('identities', addrKey(name, deviceId));
  if (v !== undefined) return v;
  const p = tx.get('peer_trust', name);
  return p === undefined ? null : p;
}

class PeerIdentityStore extends SignalClient.IdentityKeyStore {
  constructor(tx, ctx) {
    super();
    this.tx = tx;
    this.ctx = ctx;
  }
  async getIdentityKey() {
    return this.ctx.identity.privateKey;
  }
  async getLocalRegistrationId() {
    return this.ctx.state.registration_id;
  }
  async saveIdentity(addr, key) {
    const name = addr.name();
    const dev = addr.deviceId();
    const old = storedIdentity(this.tx, name, dev);
    const nv = b64(key.serialize());
    this.tx.set('identities', addrKey(name, dev), nv);
    return old !== null && old !== nv;
  }
  async isTrustedIdentity(addr, key, _direction) {
    const stored = storedIdentity(this.tx, addr.name(), addr.deviceId());
    if (stored === null) return true; // first use
    return stored === b64(key.serialize());
  }
  async getIdentity(addr) {
    const stored = storedIdentity(this.tx, addr.name(), addr.deviceId());
    return stored === null ? null : PublicKey.deserialize(unb64(stored));
  }
}

class PeerPreKeyStore extends SignalClient.PreKeyStore {
  constructor(tx) {
    super();
    this.tx = tx;
  }
  async savePreKey(id, record) {
    this.tx.set('prekeys', String(id), b64(record.serialize()));
  }
  async getPreKey(id) {
    const v = this.tx.get('prekeys', String(id));
    if (v === undefined) {
      this.tx.flags.missingPreKey = true;
      throw new Error(`no prekey with id ${id}`);
    }
    return PreKeyRecord.deserialize(unb64(v));
  }
  async removePreKey(id) {
    this.tx.del('prekeys', String(id));
  }
}

class PeerSignedPreKeyStore extends SignalClient.SignedPreKeyStore {
  constructor(tx) {
    super();
    this.tx = tx;
  }
  async saveSignedPreKey(id, record) {
    this.tx.set('signed_prekeys', String(id), b64(record.serialize()));
  }
  async getSignedPreKey(id) {
    const v = this.tx.get('signed_prekeys', String(id));
    if (v === undefined) {
      this.tx.flags.missingPreKey = true;
      throw new Error(`no signed prekey with id ${id}`);
    }
    return SignedPreKeyRecord.deserialize(unb64(v));
  }
}

// No Kyber: bundles never carry a Kyber prekey, so nothing is ever stored.
class PeerKyberPreKeyStore extends SignalClient.KyberPreKeyStore {
  constructor(tx) {
    super();
    this.tx = tx;
  }
  async saveKyberPreKey(_id, _record) {
    throw new Error('kyber prekeys are not supported by this peer');
  }
  async getKyberPreKey(id) {
    this.tx.flags.missingPreKey = true;
    throw new Error(`no kyber prekey with id ${id}`);
  }
  async markKyberPreKeyUsed(_id) {}
}

const uuidToBytes = (u) => Buffer.from(u.replace(/-/g, ''), 'hex');
function bytesToUuid(b) {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

class PeerSenderKeyStore extends SignalClient.SenderKeyStore {
  constructor(tx) {
    super();
    this.tx = tx;
  }
  // Native entry points (see the note on `Native` above): no UUID validation.
  async _saveSenderKey(sender, distributionId, record) {
    return this.saveSenderKey(
      ProtocolAddress._fromNativeHandle(sender),
      bytesToUuid(distributionId),
      SenderKeyRecord._fromNativeHandle(record)
    );
  }
  async _getSenderKey(sender, distributionId) {
    const r = await this.getSenderKey(ProtocolAddress._fromNativeHandle(sender), bytesToUuid(distributionId));
    return r === null ? null : r._nativeHandle;
  }
  async saveSenderKey(sender, distributionId, record) {
    this.tx.set(
      'sender_keys',
      senderKeyKey(sender.name(), sender.deviceId(), distributionId),
      b64(record.serialize())
    );
  }
  async getSenderKey(sender, distributionId) {
    const v = this.tx.get(
      'sender_keys',
      senderKeyKey(sender.name(), sender.deviceId(), distributionId)
    );
    return v === undefined ? null : SenderKeyRecord.deserialize(unb64(v));
  }
}

// ---------------------------------------------------------------------------
// request field validation

function has(req, field) {
  return Object.prototype.hasOwnProperty.call(req, field) && req[field] !== undefined;
}

function reqString(req, field) {
  const v = req[field];
  if (typeof v !== 'string' || v.length === 0) {
    throw badRequest(`"${field}" must be a non-empty string`);
  }
  return v;
}

function reqU32(req, field, where = '') {
  const v = req[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw badRequest(`"${where}${field}" must be an integer in 0..2^32-1`);
  }
  return v;
}

function reqDeviceId(req, field = 'device_id', where = '') {
  const v = req[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 0x7fffffff) {
    throw badRequest(`"${where}${field}" must be an integer in 1..2^31-1`);
  }
  return v;
}

// A millisecond timestamp: an integer in 0..2^53-1 (what a JSON number holds exactly).
function reqTimestamp(req, field) {
  const v = req[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw badRequest(`"${field}" must be an integer in 0..2^53-1`);
  }
  return v;
}

// Canonical, padded, standard base64 (checked by re-encoding).
function decodeB64(v, field) {
  if (typeof v !== 'string') throw badRequest(`"${field}" must be a base64 string`);
  const buf = Buffer.from(v, 'base64');
  if (buf.toString('base64') !== v) {
    throw badRequest(`"${field}" is not canonical padded base64`);
  }
  return buf;
}

function reqB64(req, field, where = '') {
  if (!has(req, field)) throw badRequest(`missing "${where}${field}"`);
  return decodeB64(req[field], where + field);
}

function parsePublicKey(buf, field) {
  try {
    return PublicKey.deserialize(buf);
  } catch (e) {
    throw new PeerError('invalid_key', `"${field}" is not a valid public key: ${e.message}`);
  }
}

function reqDistributionId(req, field = 'distribution_id') {
  const v = req[field];
  if (typeof v !== 'string' || !UUID_RE.test(v)) {
    throw badRequest(`"${field}" must be a lower-case UUID string`);
  }
  return v;
}

// ---------------------------------------------------------------------------
// error mapping: libsignal error -> peer error code

function mapError(op, err, tx) {
  if (err instanceof PeerError) return { code: err.peerCode, error: err.message };
  const msg = String((err && err.message) || err);
  const lcode = err && typeof err.code === 'number' ? err.code : null;
  const decrypting = op === 'decrypt' || op === 'group_decrypt';
  let code = null;

  if (lcode === ErrorCode.DuplicatedMessage || /message with old counter/i.test(msg)) {
    code = 'duplicate_message';
  } else if (lcode === ErrorCode.UntrustedIdentity || /untrusted identity/i.test(msg)) {
    code = 'untrusted_identity';
  } else if (
    /too far into the future/i.test(msg) ||
    (tx && decrypting && tx.log.some((l) => /too far into the future/i.test(l)))
  ) {
    code = 'too_far_ahead';
  } else if (
    lcode === ErrorCode.InvalidSenderKeySession ||
    /no sender key state|missing sender key state|invalid sender key session/i.test(msg)
  ) {
    code = 'no_session';
  } else if (/session with .* not found|session not found|no session/i.test(msg)) {
    code = 'no_session';
  } else if (lcode === ErrorCode.InvalidSession) {
    code = decrypting ? 'invalid_message' : 'no_session';
  } else if (tx && tx.flags.missingPreKey) {
    code = 'invalid_message';
  } else if (/signature validation failed|signature verification failed|invalid signature/i.test(msg)) {
    code = op === 'start_session' || op === 'group_decrypt' ? 'invalid_signature' : 'invalid_message';
  } else if (lcode === ErrorCode.VerificationFailed) {
    code = 'invalid_signature';
  } else if (decrypting) {
    code = 'invalid_message';
  } else if (op === 'group_process') {
    code = 'invalid_message';
  } else {
    code = 'internal';
  }
  return { code, error: msg };
}

// ---------------------------------------------------------------------------
// the peer

class Peer {
  constructor(dbPath) {
    this.dbPath = dbPath;
    this.state = loadState(dbPath);
    this.resumed = !!this.state;
    if (!this.state) this.state = emptyState();
    this.identity = this.state.identity
      ? IdentityKeyPair.deserialize(unb64(this.state.identity))
      : null;
    this.dirty = false;
  }

  requireInit() {
    if (!this.identity) throw badRequest('not initialized: send "init" first');
  }

  selfAddress() {
    return ProtocolAddress.new(this.state.name, this.state.device_id);
  }

  async handle(req) {
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      throw badRequest('request must be a JSON object');
    }
    const op = req.op;
    if (typeof op !== 'string') throw badRequest('missing "op"');
    const handler = Peer.ops[op];
    if (!handler) throw badRequest(`unknown op "${op}"`);
    if (op !== 'init' && op !== 'quit') this.requireInit();
    const tx = new Tx(this.state);
    this.lastTx = tx;
    requestLog = tx.log;
    const out = await handler.call(this, req, tx);
    if (tx.commit()) this.dirty = true;
    return out;
  }

  stores(tx) {
    return {
      session: new PeerSessionStore(tx),
      identity: new PeerIdentityStore(tx, { identity: this.identity, state: this.state }),
      prekey: new PeerPreKeyStore(tx),
      signed: new PeerSignedPreKeyStore(tx),
      kyber: new PeerKyberPreKeyStore(tx),
      sender: new PeerSenderKeyStore(tx),
    };
  }

  // --- init ---------------------------------------------------------------
  async op_init(req, tx) {
    const name = reqString(req, 'name');
    const deviceId = reqDeviceId(req);
    const regId = reqU32(req, 'registration_id');
    if (this.identity) {
      if (name !== this.state.name || deviceId !== this.state.device_id) {
        throw badRequest(
          `this database belongs to ${this.state.name}.${this.state.device_id}, not ${name}.${deviceId}`
        );
      }
      return { identity_key: b64(this.identity.publicKey.serialize()) };
    }
    const identity = IdentityKeyPair.generate();
    const spkPriv = PrivateKey.generate();
    const spkPub = spkPriv.getPublicKey();
    const sig = identity.privateKey.sign(spkPub.serialize());
    const spk = SignedPreKeyRecord.new(SIGNED_PREKEY_ID, Date.now(), spkPub, spkPriv, sig);
    tx.set('signed_prekeys', String(SIGNED_PREKEY_ID), b64(spk.serialize()));
    this.state.name = name;
    this.state.device_id = deviceId;
    this.state.registration_id = regId;
    this.state.identity = b64(identity.serialize());
    this.state.next_prekey_id = 1;
    this.identity = identity;
    this.dirty = true;
    return { identity_key: b64(identity.publicKey.serialize()) };
  }

  // --- bundle ---------------------------------------------------------------
  async op_bundle(req, tx) {
    let oneTime = true;
    if (has(req, 'one_time')) {
      if (typeof req.one_time !== 'boolean') throw badRequest('"one_time" must be a boolean');
      oneTime = req.one_time;
    }
    const spkB64 = tx.get('signed_prekeys', String(SIGNED_PREKEY_ID));
    const spk = SignedPreKeyRecord.deserialize(unb64(spkB64));
    let prekeyId = null;
    let prekey = null;
    if (oneTime) {
      prekeyId = this.state.next_prekey_id;
      if (prekeyId > 0xffffff) throw new PeerError('internal', 'prekey ids exhausted');
      const priv = PrivateKey.generate();
      const pub = priv.getPublicKey();
      tx.set('prekeys', String(prekeyId), b64(PreKeyRecord.new(prekeyId, pub, priv).serialize()));
      this.state.next_prekey_id = prekeyId + 1;
      this.dirty = true;
      prekey = b64(pub.serialize());
    }
    return {
      bundle: {
        registration_id: this.state.registration_id,
        device_id: this.state.device_id,
        prekey_id: prekeyId,
        prekey,
        signed_prekey_id: spk.id(),
        signed_prekey: b64(spk.publicKey().serialize()),
        signed_prekey_signature: b64(spk.signature()),
        identity_key: b64(this.identity.publicKey.serialize()),
      },
    };
  }

  // --- sessions -------------------------------------------------------------
  async op_start_session(req, tx) {
    const peer = reqString(req, 'peer');
    const deviceId = reqDeviceId(req);
    const b = req.bundle;
    if (b === null || typeof b !== 'object' || Array.isArray(b)) {
      throw badRequest('"bundle" must be an object');
    }
    const regId = reqU32(b, 'registration_id', 'bundle.');
    const bDev = reqDeviceId(b, 'device_id', 'bundle.');
    if (bDev !== deviceId) throw badRequest('"device_id" differs from "bundle.device_id"');
    const pkIdNull = b.prekey_id === null || b.prekey_id === undefined;
    const pkNull = b.prekey === null || b.prekey === undefined;
    if (pkIdNull !== pkNull) throw badRequest('"bundle.prekey_id" and "bundle.prekey" must both be set or both null');
    const prekeyId = pkIdNull ? null : reqU32(b, 'prekey_id', 'bundle.');
    const prekeyBuf = pkNull ? null : reqB64(b, 'prekey', 'bundle.');
    const spkId = reqU32(b, 'signed_prekey_id', 'bundle.');
    const spkBuf = reqB64(b, 'signed_prekey', 'bundle.');
    const sig = reqB64(b, 'signed_prekey_signature', 'bundle.');
    const ikBuf = reqB64(b, 'identity_key', 'bundle.');
    const prekey = prekeyBuf ? parsePublicKey(prekeyBuf, 'bundle.prekey') : null;
    const spk = parsePublicKey(spkBuf, 'bundle.signed_prekey');
    const ik = parsePublicKey(ikBuf, 'bundle.identity_key');
    const bundle = PreKeyBundle.new(regId, deviceId, prekeyId, prekey, spkId, spk, sig, ik);
    const s = this.stores(tx);
    await SignalClient.processPreKeyBundle(bundle, ProtocolAddress.new(peer, deviceId), s.session, s.identity);
    return {};
  }

  async op_has_session(req, tx) {
    const peer = reqString(req, 'peer');
    const deviceId = reqDeviceId(req);
    const rec = await new PeerSessionStore(tx).getSession(ProtocolAddress.new(peer, deviceId));
    return { has_session: !!rec && rec.hasCurrentState() };
  }

  async op_encrypt(req, tx) {
    const peer = reqString(req, 'peer');
    const deviceId = reqDeviceId(req);
    const pt = reqB64(req, 'plaintext');
    const s = this.stores(tx);
    const ct = await SignalClient.signalEncrypt(pt, ProtocolAddress.new(peer, deviceId), s.session, s.identity);
    let type;
    if (ct.type() === CiphertextMessageType.PreKey) type = 'prekey';
    else if (ct.type() === CiphertextMessageType.Whisper) type = 'whisper';
    else throw new PeerError('internal', `unexpected ciphertext type ${ct.type()}`);
    return { type, body: b64(ct.serialize()) };
  }

  async op_decrypt(req, tx) {
    const peer = reqString(req, 'peer');
    const deviceId = reqDeviceId(req);
    const type = req.type;
    if (type !== 'prekey' && type !== 'whisper') throw badRequest('"type" must be "prekey" or "whisper"');
    const body = reqB64(req, 'body');
    const addr = ProtocolAddress.new(peer, deviceId);
    const s = this.stores(tx);
    let pt;
    if (type === 'prekey') {
      let msg;
      try {
        msg = PreKeySignalMessage.deserialize(body);
      } catch (e) {
        throw new PeerError('invalid_message', `cannot parse PreKeySignalMessage: ${e.message}`);
      }
      pt = await SignalClient.signalDecryptPreKey(msg, addr, s.session, s.identity, s.prekey, s.signed, s.kyber);
    } else {
      let msg;
      try {
        msg = SignalMessage.deserialize(body);
      } catch (e) {
        throw new PeerError('invalid_message', `cannot parse SignalMessage: ${e.message}`);
      }
      pt = await SignalClient.signalDecrypt(msg, addr, s.session, s.identity);
    }
    return { plaintext: b64(pt) };
  }

  // --- groups ---------------------------------------------------------------
  async op_group_create(req, tx) {
    const dist = reqDistributionId(req);
    const s = this.stores(tx);
    // = SenderKeyDistributionMessage.create(), without the UUID check
    const handle = await Native.SenderKeyDistributionMessage_Create(this.selfAddress(), uuidToBytes(dist), s.sender);
    return { skdm: b64(Native.SenderKeyDistributionMessage_Serialize({ _nativeHandle: handle })) };
  }

  async op_group_process(req, tx) {
    const sender = reqString(req, 'sender');
    const deviceId = reqDeviceId(req);
    const buf = reqB64(req, 'skdm');
    let skdm;
    try {
      skdm = SenderKeyDistributionMessage.deserialize(buf);
    } catch (e) {
      throw new PeerError('invalid_message', `cannot parse SenderKeyDistributionMessage: ${e.message}`);
    }
    const s = this.stores(tx);
    await SignalClient.processSenderKeyDistributionMessage(ProtocolAddress.new(sender, deviceId), skdm, s.sender);
    return {};
  }

  async op_group_encrypt(req, tx) {
    const dist = reqDistributionId(req);
    const pt = reqB64(req, 'plaintext');
    const s = this.stores(tx);
    // = groupEncrypt(), without the UUID check
    const handle = await Native.GroupCipher_EncryptMessage(this.selfAddress(), uuidToBytes(dist), pt, s.sender);
    return { body: b64(SignalClient.CiphertextMessage._fromNativeHandle(handle).serialize()) };
  }

  async op_group_decrypt(req, tx) {
    const sender = reqString(req, 'sender');
    const deviceId = reqDeviceId(req);
    const body = reqB64(req, 'body');
    const s = this.stores(tx);
    const pt = await SignalClient.groupDecrypt(ProtocolAddress.new(sender, deviceId), s.sender, body);
    return { plaintext: b64(pt) };
  }

  // --- identities -----------------------------------------------------------
  async op_fingerprint(req, _tx) {
    const localId = reqB64(req, 'local_identifier');
    const remoteId = reqB64(req, 'remote_identifier');
    const remoteKey = parsePublicKey(reqB64(req, 'remote_identity_key'), 'remote_identity_key');
    const fp = Fingerprint.new(
      FINGERPRINT_ITERATIONS,
      FINGERPRINT_VERSION,
      localId,
      this.identity.publicKey,
      remoteId,
      remoteKey
    );
    return {
      displayable: fp.displayableFingerprint().toString(),
      scannable: b64(fp.scannableFingerprint().toBuffer()),
    };
  }

  async op_trust(req, tx) {
    const peer = reqString(req, 'peer');
    const key = parsePublicKey(reqB64(req, 'identity_key'), 'identity_key');
    const kb = b64(key.serialize());
    if (has(req, 'device_id') && req.device_id !== null) {
      const deviceId = reqDeviceId(req);
      tx.set('identities', addrKey(peer, deviceId), kb);
    } else {
      // Every device of that peer, seen or not yet seen.
      tx.set('peer_trust', peer, kb);
      for (const k of tx.keys('identities')) {
        if (JSON.parse(k)[0] === peer) tx.del('identities', k);
      }
    }
    return {};
  }

  // --- retry requests ---------------------------------------------------------
  // libsignal builds a DecryptionErrorMessage only from the original message
  // (forOriginal: the ratchet key is taken from it), and reads one from a
  // PlaintextContent's body (extractFromSerializedBody, as the apps do).
  async op_decryption_error_make(req, _tx) {
    const original = reqB64(req, 'original');
    const types = {
      whisper: CiphertextMessageType.Whisper,
      prekey: CiphertextMessageType.PreKey,
      sender_key: CiphertextMessageType.SenderKey,
    };
    if (typeof req.type !== 'string' || !Object.prototype.hasOwnProperty.call(types, req.type)) {
      throw badRequest('"type" must be "prekey", "whisper" or "sender_key"');
    }
    const timestamp = reqTimestamp(req, 'timestamp');
    const deviceId = reqU32(req, 'device_id');
    let dem;
    try {
      dem = DecryptionErrorMessage.forOriginal(original, types[req.type], timestamp, deviceId);
    } catch (e) {
      throw new PeerError('invalid_message', `cannot make a DecryptionErrorMessage: ${e.message}`);
    }
    return { plaintext_content: b64(PlaintextContent.from(dem).serialize()) };
  }

  async op_decryption_error_read(req, _tx) {
    const buf = reqB64(req, 'plaintext_content');
    let dem;
    try {
      dem = DecryptionErrorMessage.extractFromSerializedBody(PlaintextContent.deserialize(buf).body());
    } catch (e) {
      throw new PeerError('invalid_message', `not a PlaintextContent holding a DecryptionErrorMessage: ${e.message}`);
    }
    const key = dem.ratchetKey();
    return {
      timestamp: dem.timestamp(),
      device_id: dem.deviceId(),
      ratchet_key: key ? b64(key.serialize()) : null,
    };
  }

  async op_quit(_req, _tx) {
    this.quitting = true;
    return {};
  }
}

Peer.ops = {
  init: Peer.prototype.op_init,
  bundle: Peer.prototype.op_bundle,
  start_session: Peer.prototype.op_start_session,
  has_session: Peer.prototype.op_has_session,
  encrypt: Peer.prototype.op_encrypt,
  decrypt: Peer.prototype.op_decrypt,
  group_create: Peer.prototype.op_group_create,
  group_process: Peer.prototype.op_group_process,
  group_encrypt: Peer.prototype.op_group_encrypt,
  group_decrypt: Peer.prototype.op_group_decrypt,
  fingerprint: Peer.prototype.op_fingerprint,
  trust: Peer.prototype.op_trust,
  decryption_error_make: Peer.prototype.op_decryption_error_make,
  decryption_error_read: Peer.prototype.op_decryption_error_read,
  quit: Peer.prototype.op_quit,
};

// ---------------------------------------------------------------------------
// main loop: strictly sequential, group commit before writing responses

function main() {
  const { db } = parseArgs(process.argv.slice(2));
  let peer;
  try {
    peer = new Peer(db);
  } catch (e) {
    log(`cannot open database: ${e.message}`);
    process.exit(1);
  }
  if (peer.resumed) log(`resumed ${db} (${peer.state.name}.${peer.state.device_id})`);

  const queue = [];
  let inputEnded = false;
  let running = false;
  let finished = false;

  process.stdout.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(0);
    log(`stdout: ${e.message}`);
    process.exit(1);
  });

  function finish() {
    if (finished) return;
    finished = true;
    // Flush stdout, then exit.
    process.stdout.write('', () => process.exit(0));
  }

  async function runOne(line) {
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      return { ok: false, code: 'bad_request', error: `invalid JSON: ${e.message}` };
    }
    const op = req && typeof req === 'object' ? req.op : undefined;
    peer.lastTx = null;
    try {
      const out = await peer.handle(req);
      return Object.assign({ ok: true }, out);
    } catch (err) {
      // libsignal's log lines reach JS through the event loop: let them in
      // before classifying a "decryption failed".
      if (/decryption failed/i.test(String(err && err.message))) {
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 1));
        await new Promise((r) => setImmediate(r));
      }
      const m = mapError(op, err, peer.lastTx);
      const origin = err instanceof PeerError ? 'peer' : `libsignal ${err && err.name}/${err && err.code}`;
      log(`${op} -> ${m.code} (${origin}: ${err && err.message})`);
      if (m.code === 'internal' && err && err.stack) log(err.stack);
      return { ok: false, code: m.code, error: m.error };
    }
  }

  async function pump() {
    if (running) return;
    running = true;
    try {
      while (queue.length > 0) {
        const out = [];
        while (queue.length > 0 && out.length < MAX_BATCH && !peer.quitting) {
          const line = queue.shift();
          out.push(JSON.stringify(await runOne(line)));
        }
        if (peer.dirty) {
          saveState(peer.dbPath, peer.state);
          peer.dirty = false;
        }
        if (out.length) process.stdout.write(out.join('\n') + '\n');
        if (peer.quitting) {
          queue.length = 0;
          finish();
          return;
        }
      }
    } catch (e) {
      log(`fatal: ${e && e.stack ? e.stack : e}`);
      process.exit(1);
    } finally {
      running = false;
    }
    if (inputEnded && queue.length === 0) finish();
  }

  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  rl.on('line', (line) => {
    if (finished || peer.quitting) return;
    if (line.trim() === '') return;
    queue.push(line);
    pump();
  });
  rl.on('close', () => {
    inputEnded = true;
    if (!running) pump();
  });
}

main();
