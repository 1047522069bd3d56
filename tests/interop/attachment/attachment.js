#!/usr/bin/env node
// Signal's attachment format, libwhisper against independent code: the
// blobs made here with node:crypto (AES-256-CBC, HMAC-SHA256, SHA-256) and
// libsignal-client's IncrementalMac (0.52.3, from ../libsignal-peer, whose
// `npm ci` installs it), and libwhisper's through att-tool (att-tool.c).
//
//   node attachment.js --tool PATH/att-tool [--workdir DIR] [--keep]
//   node attachment.js --tool PATH/att-tool --write-vectors tests/vectors/attachment.json
//
// Checks, printing one line per group and exiting 1 on any failure:
//  - sizes: libwhisper's padded size of every n up to 100000, of a sample
//    up to 1 GiB and of the neighbours of every bucket up to 2^40 equals
//    Signal's max(541, floor(1.05^ceil(log(n)/log(1.05)))); its blob size
//    is IV + PKCS#7(padded) + MAC; its chunk size equals libsignal's
//    inferChunkSize for blob sizes around both of libsignal's thresholds
//    and a sample up to 2^32-1 (the binding takes a u32);
//  - node -> whisper: blobs made here decrypt in libwhisper (with the
//    incremental MAC, one pass; without it, two passes) to the plaintext,
//    fed in random pieces; libwhisper encrypting the same plaintext under
//    the same key and IV makes the byte-identical blob, digest and
//    incremental MAC; a flipped byte, a cut, a wrong size and a wrong key
//    give libwhisper's distinct errors, and libwhisper never releases more
//    plaintext than the chunks libsignal's ValidatingWritable accepted
//    before the flipped byte;
//  - whisper -> node: blobs libwhisper makes have the IV, the MAC over
//    IV || ciphertext, the digest, the plaintext hash, Signal's padding
//    bucket (zeros, then PKCS#7) and decrypt here to the plaintext; their
//    incremental MAC is the one libsignal's DigestingWritable makes, its
//    chunk size libsignal's inferChunkSize, and libsignal's
//    ValidatingWritable accepts the blob with it (and refuses it with a
//    flipped byte);
//  - the vectors in tests/vectors/attachment.json (which test_attachment
//    checks without Node) are the ones computed here.
//
// Key, IV and plaintext come from a seed (see derive()), so every run makes
// the same blobs.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { createRequire } = require('node:module');

const PEER_DIR = path.join(__dirname, '..', 'libsignal-peer');
const peerRequire = createRequire(path.join(PEER_DIR, 'package.json'));
let IncrementalMac, LIBSIGNAL_VERSION;
try {
  IncrementalMac = peerRequire('@signalapp/libsignal-client/dist/incremental_mac');
  LIBSIGNAL_VERSION = peerRequire('@signalapp/libsignal-client/package.json').version;
} catch (e) {
  process.stderr.write(`cannot load libsignal-client (run \`npm ci\` in ${PEER_DIR}): ${e.message}\n`);
  process.exit(2);
}
const { DigestingWritable, ValidatingWritable, everyNthByte, inferChunkSize, chunkSizeInBytes } = IncrementalMac;

const VECTORS = path.join(__dirname, '..', '..', 'vectors', 'attachment.json');
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------
// arguments, failures

function parseArgs(argv) {
  const a = { tool: null, workdir: null, keep: false, writeVectors: null };
  for (let i = 0; i < argv.length; i++) {
    const o = argv[i];
    if (o === '--keep') a.keep = true;
    else if (o === '--tool') a.tool = argv[++i];
    else if (o === '--workdir') a.workdir = argv[++i];
    else if (o === '--write-vectors') a.writeVectors = argv[++i];
    else throw new Error(`unknown option ${o}`);
  }
  if (!a.tool) throw new Error('usage: attachment.js --tool PATH/att-tool [--workdir DIR] [--keep] [--write-vectors FILE]');
  return a;
}

let failures = 0;
let checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) {
    failures++;
    process.stdout.write(`FAIL ${what}\n`);
  }
  return cond;
}

// ---------------------------------------------------------------------------
// Signal's format, here

const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const hex = (b) => Buffer.from(b).toString('hex');

// Signal's size buckets (Signal-Desktop's logPadSize; Android's is the same
// formula in Java doubles).
function signalPad(n) {
  return Math.max(541, Math.floor(1.05 ** Math.ceil(Math.log(n) / Math.log(1.05))));
}
const paddedSize = (n) => Math.max(n, signalPad(n)); // never below the size
const blobSize = (n) => 16 + (Math.floor(paddedSize(n) / 16) + 1) * 16 + 32;
const libsignalChunk = (blobLen) => chunkSizeInBytes(inferChunkSize(blobLen));

// Key, IV and plaintext from a seed: the AES-256-CTR keystream (key
// SHA-256("libwhisper attachment vector: " || seed), IV zero) over zeros;
// key = stream[0..64), iv = stream[64..80), plaintext = stream[80..80+n).
function derive(seed, n) {
  const k = sha256(Buffer.from(`libwhisper attachment vector: ${seed}`));
  const s = crypto.createCipheriv('aes-256-ctr', k, Buffer.alloc(16)).update(Buffer.alloc(80 + n));
  return { seed, key: s.subarray(0, 64), iv: s.subarray(64, 80), plaintext: s.subarray(80) };
}

// A deterministic PRNG for piece sizes and samples.
function prng(seed) {
  let s = BigInt(seed) & 0xffffffffffffffffn;
  return (max) => {
    s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    return Number((s >> 11n) % BigInt(max));
  };
}

function pieces(buf, seed, max = 150000) {
  const r = prng(seed);
  const out = [];
  for (let at = 0; at < buf.length;) {
    const take = Math.min(1 + r(max), buf.length - at);
    out.push(buf.subarray(at, at + take));
    at += take;
  }
  return out;
}

// libsignal's incremental MAC of `blob` (DigestingWritable), fed in pieces;
// the chunk size inferred from the blob's size unless `chunk` is given.
function libsignalDigest(macKey, blob, seed, chunk) {
  return new Promise((resolve, reject) => {
    const choice = chunk ? everyNthByte(chunk) : inferChunkSize(blob.length);
    const w = new DigestingWritable(Buffer.from(macKey), choice);
    w.on('error', reject);
    w.on('finish', () => resolve(w.getFinalDigest()));
    for (const p of pieces(blob, seed)) w.write(p);
    w.end();
  });
}

// libsignal's ValidatingWritable over `blob` in pieces: {ok, validated}.
// It counts the bytes of a write only when all of the write's chunks
// verify, so the pieces are at most a chunk (one boundary each): then
// `validated` is exactly the whole chunks before the first bad one.
function libsignalValidate(macKey, blob, imac, seed) {
  return new Promise((resolve) => {
    const w = new ValidatingWritable(Buffer.from(macKey), inferChunkSize(blob.length), Buffer.from(imac));
    let done = false;
    const end = (ok, error) => {
      if (done) return;
      done = true;
      resolve({ ok, validated: w.validatedSize(), error });
    };
    w.on('error', (e) => end(false, e.message));
    w.on('finish', () => end(true));
    const chunk = libsignalChunk(blob.length);
    for (const p of pieces(blob, seed, chunk)) w.write(p, () => {}); // a failed write reports through 'error'
    w.end();
  });
}

// The blob of a plaintext, as Signal makes it.
async function nodeEncrypt(m) {
  const n = m.plaintext.length;
  const c = crypto.createCipheriv('aes-256-cbc', m.key.subarray(0, 32), m.iv); // PKCS#7
  const ct = Buffer.concat([c.update(m.plaintext), c.update(Buffer.alloc(paddedSize(n) - n)), c.final()]);
  const mac = crypto.createHmac('sha256', m.key.subarray(32)).update(m.iv).update(ct).digest();
  const blob = Buffer.concat([m.iv, ct, mac]);
  return {
    blob,
    digest: sha256(blob),
    plaintextHash: sha256(m.plaintext),
    imac: await libsignalDigest(m.key.subarray(32), blob, n + 7),
    chunk: libsignalChunk(blob.length),
  };
}

// ---------------------------------------------------------------------------
// att-tool

function runTool(tool, args, input) {
  const r = spawnSync(tool, args, { input, maxBuffer: 256 * MIB, timeout: 60000 });
  if (r.error) throw new Error(`att-tool ${args[0]}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`att-tool ${args[0]} exited ${r.status}: ${r.stderr}`);
  return String(r.stdout);
}

function toolJson(tool, args) {
  return JSON.parse(runTool(tool, args));
}

function toolDecrypt(ctx, blobFile, exp, opts = {}) {
  const out = path.join(ctx.dir, 'out.bin');
  const args = ['decrypt', '--key', hex(exp.key), '--size', String(exp.size), '--digest', hex(exp.digest),
    '--seed', String(opts.seed ?? 1)];
  if (exp.plaintextHash) args.push('--plaintext-hash', hex(exp.plaintextHash));
  if (exp.imac) args.push('--incremental-mac', hex(exp.imac), '--chunk-size', String(exp.chunk));
  if (opts.stop) args.push('--stop');
  args.push(blobFile, out);
  const r = toolJson(ctx.tool, args);
  r.output = fs.readFileSync(out);
  if (!opts.stop) {
    // the same blob read by the decryptor itself (whisper_attachment_decrypt_source): the
    // same result, and the same plaintext released
    args.splice(args.length - 2, 0, '--source');
    const s = toolJson(ctx.tool, args);
    const sOut = fs.readFileSync(out);
    check(s.rc === r.rc && s.released === r.released && sOut.equals(r.output),
      `decrypt_source gave ${s.error} (${s.released} B released), ` +
      `fed ${r.error} (${r.released} B)`);
  }
  return r;
}

function toolEncrypt(ctx, m, seed) {
  const inFile = path.join(ctx.dir, 'plain.bin');
  const blobFile = path.join(ctx.dir, 'c.blob');
  fs.writeFileSync(inFile, m.plaintext);
  const r = toolJson(ctx.tool, ['encrypt', '--key', hex(m.key), '--iv', hex(m.iv),
    '--size', String(m.plaintext.length), '--seed', String(seed), inFile, blobFile]);
  r.blob = fs.readFileSync(blobFile);
  r.file = blobFile;
  return r;
}

// ---------------------------------------------------------------------------
// sizes

function sizesCheck(ctx) {
  const ns = new Set();
  for (let n = 0; n <= 100000; n++) ns.add(n);
  const r = prng(20240601);
  for (let i = 0; i < 20000; i++) ns.add(r(2 ** 30 + 1)); // uniform up to 1 GiB
  for (let i = 0; i < 20000; i++) ns.add(Math.floor(2 ** (r(30e6) / 1e6))); // log-uniform up to 1 GiB
  for (let k = 0; 1.05 ** k <= 2 ** 40; k++) { // every bucket's neighbours up to the format's limit
    const b = Math.floor(1.05 ** k);
    for (let d = -3; d <= 3; d++) if (b + d >= 0 && b + d <= 2 ** 40) ns.add(b + d);
  }
  ns.add(2 ** 40);
  // chunk sizes: around libsignal's thresholds (256 chunks of 64 KiB, of 2 MiB) and a sample
  const blobs = new Set();
  for (const t of [256 * 65536, 256 * 2 * MIB]) for (let d = -600; d <= 600; d++) blobs.add(t + d);
  for (let i = 0; i < 20000; i++) blobs.add(r(2 ** 32));
  blobs.add(2 ** 32 - 1);
  for (const n of ns) if (blobSize(n) < 2 ** 32) blobs.add(blobSize(n));

  const list = [...ns, ...blobs];
  const lines = runTool(ctx.tool, ['sizes'], list.join('\n') + '\n').trim().split('\n');
  if (!check(lines.length === list.length, `sizes: ${lines.length} answers to ${list.length} sizes`)) return;
  let bad = 0;
  let badChunk = 0;
  let below = 0;
  for (let i = 0; i < list.length; i++) {
    const [n, padded, blob, chunk] = lines[i].split(' ').map(Number);
    if (n !== list[i]) { bad++; continue; }
    if (i < ns.size) {
      if (signalPad(n) < n) below++;
      if (padded !== paddedSize(n) || blob !== blobSize(n)) {
        if (bad++ < 5) process.stdout.write(`  n=${n}: whisper padded ${padded} blob ${blob}, Signal ${paddedSize(n)} ${blobSize(n)}\n`);
      }
    } else if (chunk !== libsignalChunk(n)) {
      if (badChunk++ < 5) process.stdout.write(`  blob ${n}: whisper chunk ${chunk}, libsignal ${libsignalChunk(n)}\n`);
    }
  }
  check(bad === 0, `sizes: ${bad} of ${ns.size} padded/blob sizes differ from Signal's`);
  check(badChunk === 0, `sizes: ${badChunk} of ${blobs.size} chunk sizes differ from libsignal's`);
  process.stdout.write(`ok sizes: ${ns.size} padded sizes (all n <= 100000, 40000 sampled up to 1 GiB, ` +
    `every bucket's neighbours up to 2^40; ${below} where the formula falls below n), ` +
    `${blobs.size} chunk sizes against libsignal\n`);
}

// ---------------------------------------------------------------------------
// node -> whisper

// Plaintext bytes in the chunks wholly before blob offset `bad`.
const verifiedBefore = (bad, chunk) => Math.max(0, Math.floor(bad / chunk) * chunk - 16);

async function nodeToWhisper(ctx, n, negative) {
  const m = derive(`node/${n}`, n);
  const e = await nodeEncrypt(m);
  const what = `node->whisper n=${n}`;
  const file = path.join(ctx.dir, 'node.blob');
  fs.writeFileSync(file, e.blob);
  const exp = { key: m.key, size: n, digest: e.digest, plaintextHash: e.plaintextHash, imac: e.imac, chunk: e.chunk };
  // one pass with libsignal's incremental MAC, two without it
  for (const [label, x] of [['one pass', exp], ['two passes', { ...exp, imac: null }]]) {
    const r = toolDecrypt(ctx, file, x, { seed: n + 1 });
    check(r.error === 'ok' && r.update_rc === 0, `${what} ${label}: ${r.error} (update ${r.update_error})`);
    check(r.passes === (x.imac ? 1 : 2), `${what} ${label}: ${r.passes} passes`);
    check(r.released === n && r.output.equals(m.plaintext), `${what} ${label}: released ${r.released}, plaintext ${r.output.equals(m.plaintext) ? 'equal' : 'differs'}`);
  }
  // libwhisper makes the same blob from the same key, IV and plaintext
  const c = toolEncrypt(ctx, m, n + 3);
  check(c.error === 'ok', `${what}: whisper encrypt ${c.error}`);
  check(c.blob.equals(e.blob), `${what}: whisper's blob (${c.blob.length} bytes) differs from node's (${e.blob.length})`);
  check(c.digest === hex(e.digest) && c.plaintext_hash === hex(e.plaintextHash), `${what}: digests differ`);
  check(c.incremental_mac === hex(e.imac) && c.chunk_size === e.chunk, `${what}: incremental MAC or chunk size differs`);
  check(c.padded_size === paddedSize(n) && c.blob_size === e.blob.length, `${what}: sizes differ`);
  if (!negative) return;

  // what goes wrong, on node's blob
  const flips = [0, 15, 16, e.chunk - 1, e.chunk, e.chunk + 100, Math.floor(e.blob.length / 2),
    e.blob.length - 33, e.blob.length - 32, e.blob.length - 1].filter((o) => o >= 0 && o < e.blob.length);
  for (const at of [...new Set(flips)]) {
    const bad = Buffer.from(e.blob);
    bad[at] ^= 0x40;
    fs.writeFileSync(file, bad);
    const v = await libsignalValidate(m.key.subarray(32), bad, e.imac, at);
    check(!v.ok && v.validated === Math.floor(at / e.chunk) * e.chunk,
      `${what} flip@${at}: libsignal ${v.ok ? 'accepted' : 'refused'} (validated ${v.validated})`);
    for (const x of [exp, { ...exp, imac: null }]) {
      for (const stop of [false, true]) {
        const r = toolDecrypt(ctx, file, x, { seed: at, stop });
        const limit = x.imac ? Math.min(verifiedBefore(at, e.chunk), Math.max(0, v.validated - 16)) : 0;
        const label = `${what} flip@${at} ${x.imac ? 'one pass' : 'two passes'}${stop ? ' stop' : ''}`;
        check(r.error === 'eintegrity', `${label}: ${r.error}`);
        check(r.released <= limit && r.output.length === r.released, `${label}: released ${r.released} > ${limit}`);
        check(r.output.equals(m.plaintext.subarray(0, r.output.length)), `${label}: released bytes are not the plaintext's`);
      }
    }
  }
  fs.writeFileSync(file, e.blob);
  const cuts = [0, 10, e.chunk, e.blob.length - 1].filter((c) => c < e.blob.length);
  for (const cut of cuts) {
    const cutFile = path.join(ctx.dir, 'cut.blob');
    fs.writeFileSync(cutFile, e.blob.subarray(0, cut));
    const r = toolDecrypt(ctx, cutFile, exp);
    check(r.error === 'etruncated' && r.released <= verifiedBefore(cut, e.chunk), `${what} cut@${cut}: ${r.error}, released ${r.released}`);
  }
  const wrong = Buffer.from(m.key);
  wrong[40] ^= 1;
  for (const x of [exp, { ...exp, imac: null }]) {
    const r = toolDecrypt(ctx, file, { ...x, key: wrong });
    check(r.error === 'ekey' && r.released === 0, `${what} wrong key: ${r.error}, released ${r.released}`);
    for (const size of [n + 1, Math.max(0, n - 1), n * 2 + 1000]) {
      if (size === n) continue;
      const s = toolDecrypt(ctx, file, { ...x, size });
      check(s.error === 'esize', `${what} size ${size}: ${s.error}`);
    }
  }
}

// ---------------------------------------------------------------------------
// whisper -> node

async function whisperToNode(ctx, n, negative) {
  const m = derive(`whisper/${n}`, n);
  const what = `whisper->node n=${n}`;
  const c = toolEncrypt(ctx, m, n + 11);
  if (!check(c.error === 'ok', `${what}: encrypt ${c.error}`)) return;
  const blob = c.blob;
  const padded = paddedSize(n);
  check(c.padded_size === padded, `${what}: padded ${c.padded_size}, Signal's bucket ${padded}`);
  check(blob.length === blobSize(n) && c.blob_size === blob.length, `${what}: blob ${blob.length} bytes, expected ${blobSize(n)}`);
  check(blob.subarray(0, 16).equals(m.iv), `${what}: the blob does not start with the IV`);
  const mac = crypto.createHmac('sha256', m.key.subarray(32)).update(blob.subarray(0, blob.length - 32)).digest();
  check(mac.equals(blob.subarray(blob.length - 32)), `${what}: HMAC-SHA256(IV || ciphertext) differs`);
  check(c.digest === hex(sha256(blob)), `${what}: digest is not SHA-256 of the blob`);
  check(c.plaintext_hash === hex(sha256(m.plaintext)), `${what}: plaintext hash differs`);
  check(c.chunk_size === libsignalChunk(blob.length), `${what}: chunk ${c.chunk_size}, libsignal ${libsignalChunk(blob.length)}`);
  const imac = Buffer.from(c.incremental_mac, 'hex');
  const mine = await libsignalDigest(m.key.subarray(32), blob, n);
  check(imac.equals(mine), `${what}: incremental MAC differs from libsignal's DigestingWritable`);
  check(imac.length === 32 * (Math.floor(blob.length / c.chunk_size) + 1), `${what}: ${imac.length / 32} MACs`);
  const v = await libsignalValidate(m.key.subarray(32), blob, imac, n + 5);
  check(v.ok && v.validated === blob.length, `${what}: libsignal's ValidatingWritable ${v.ok ? 'validated ' + v.validated : 'refused: ' + v.error}`);
  // decrypts here: the plaintext, Signal's zeros, PKCS#7 (final() checks it)
  let open;
  try {
    const d = crypto.createDecipheriv('aes-256-cbc', m.key.subarray(0, 32), blob.subarray(0, 16));
    open = Buffer.concat([d.update(blob.subarray(16, blob.length - 32)), d.final()]);
  } catch (e) {
    check(false, `${what}: node cannot decrypt: ${e.message}`);
    return;
  }
  check(open.length === padded, `${what}: ${open.length} bytes once decrypted, bucket ${padded}`);
  check(open.subarray(0, n).equals(m.plaintext), `${what}: the plaintext differs`);
  check(open.subarray(n).every((b) => b === 0), `${what}: the padding is not zeros`);
  if (negative) {
    // the validator is a real check: a flipped byte is refused at its chunk
    const at = Math.min(blob.length - 1, c.chunk_size + 17);
    const bad = Buffer.from(blob);
    bad[at] ^= 1;
    const w = await libsignalValidate(m.key.subarray(32), bad, imac, 3);
    check(!w.ok && w.validated === Math.floor(at / c.chunk_size) * c.chunk_size,
      `${what}: libsignal ${w.ok ? 'accepted' : 'refused'} a flip at ${at} (validated ${w.validated})`);
  }
}

// ---------------------------------------------------------------------------
// chunk sizes chosen here

// libsignal's incremental MAC with chunk sizes chosen here (everyNthByte):
// whisper_incremental_mac makes the same MACs of any bytes, and the
// decryptor takes a blob with MACs libsignal made at any chunk size, also
// one of whole chunks (a MAC at its last boundary, then the same MAC again
// over the whole), which Signal's inferred sizes rarely give.
async function chosenChunks(ctx) {
  const key = derive('imac', 0).key;
  const r = prng(77);
  const file = path.join(ctx.dir, 'imac.bin');
  let pairs = 0;
  for (const [len, chunk] of [[0, 32], [1, 32], [31, 32], [32, 32], [33, 32], [64, 32], [1000, 32],
    [1000, 1], [1000, 999], [1000, 1000], [1000, 1001], [65536 * 3, 65536], [200003, 65536]]) {
    const data = crypto.randomBytes(len);
    fs.writeFileSync(file, data);
    const mine = toolJson(ctx.tool, ['imac', '--key', hex(key), '--chunk-size', String(chunk), file]);
    const theirs = await libsignalDigest(key, data, r(1000) + 1, chunk);
    check(mine.incremental_mac === hex(theirs), `imac len=${len} chunk=${chunk}: differs from libsignal's`);
    pairs++;
  }
  const n = 3000;
  const m = derive(`chunks/${n}`, n);
  const e = await nodeEncrypt(m);
  const len = e.blob.length; // 3184: 2^4 * 199
  const blobFile = path.join(ctx.dir, 'chunks.blob');
  fs.writeFileSync(blobFile, e.blob);
  const chunks = [16, 17, 1000, len / 8, len / 2, len - 1, len, len + 1, 65536];
  for (const chunk of chunks) {
    const imac = await libsignalDigest(m.key.subarray(32), e.blob, chunk, chunk);
    const what = `node->whisper n=${n} chunk=${chunk}`;
    check(imac.length === 32 * (Math.floor(len / chunk) + 1), `${what}: ${imac.length / 32} MACs`);
    const exp = { key: m.key, size: n, digest: e.digest, plaintextHash: e.plaintextHash, imac, chunk };
    const ok = toolDecrypt(ctx, blobFile, exp, { seed: chunk });
    check(ok.error === 'ok' && ok.output.equals(m.plaintext), `${what}: ${ok.error}`);
    const at = Math.min(len - 1, chunk + 5);
    const bad = Buffer.from(e.blob);
    bad[at] ^= 4;
    const badFile = path.join(ctx.dir, 'chunks-bad.blob');
    fs.writeFileSync(badFile, bad);
    const r2 = toolDecrypt(ctx, badFile, exp, { seed: chunk });
    check(r2.error === 'eintegrity' && r2.released <= verifiedBefore(at, chunk),
      `${what} flip@${at}: ${r2.error}, released ${r2.released}`);
  }
  process.stdout.write(`ok chosen chunk sizes: ${pairs} incremental MACs equal to libsignal's, ` +
    `a ${len}-byte blob with MACs every ${chunks.join('/')} bytes decrypts (whole chunks included)\n`);
}

// ---------------------------------------------------------------------------
// vectors

const VECTOR_SIZES = [0, 1, 15, 16, 541, 542, 1000, 65536, 2 * 65536 + 5, 17 * MIB];

async function makeVectors() {
  const vectors = [];
  for (const n of VECTOR_SIZES) {
    const seed = `vector/${n}`;
    const m = derive(seed, n);
    const e = await nodeEncrypt(m);
    const v = {
      seed, size: n, key_hex: hex(m.key), iv_hex: hex(m.iv),
      plaintext_sha256_hex: hex(e.plaintextHash), padded_size: paddedSize(n), blob_size: e.blob.length,
      chunk_size: e.chunk, digest_hex: hex(e.digest), incremental_mac_count: e.imac.length / 32,
    };
    if (e.imac.length <= 8 * 32) v.incremental_mac_hex = hex(e.imac);
    else v.incremental_mac_sha256_hex = hex(sha256(e.imac));
    vectors.push(v);
  }
  const padded = [];
  for (const n of [0, 1, 540, 541, 542, 568, 569, 1000, 65535, 65536, 100000, 1048579, 17 * MIB,
    2 ** 30, 2 ** 40]) padded.push([n, paddedSize(n)]);
  for (const k of [200, 300, 400, 560]) { // a bucket's value, and one above it
    const b = Math.floor(1.05 ** k);
    padded.push([b, paddedSize(b)], [b + 1, paddedSize(b + 1)]);
  }
  const chunks = [];
  for (const b of [0, 592, 16 * MIB - 1, 16 * MIB, 16 * MIB + 1, 17 * MIB + 48, 300 * MIB + 5,
    512 * MIB - 1, 512 * MIB, 2 ** 32 - 1]) chunks.push([b, libsignalChunk(b)]);
  return {
    description: "Signal's attachment format: blobs made by node:crypto (AES-256-CBC, HMAC-SHA256, SHA-256) with Signal's padding buckets, incremental MACs and chunk sizes by libsignal's IncrementalMac. Key, IV and plaintext: the AES-256-CTR keystream (key SHA-256(\"libwhisper attachment vector: \" || seed), IV zero) over zeros; key = stream[0..64), iv = stream[64..80), plaintext = stream[80..80+size). padded_sizes: [n, Signal's bucket]; chunk_sizes: [blob size, libsignal's inferChunkSize].",
    generator: `libsignal-client ${LIBSIGNAL_VERSION} + node ${process.versions.node} (tests/interop/attachment/attachment.js --write-vectors)`,
    vectors, padded_sizes: padded, chunk_sizes: chunks,
  };
}

function vectorsText(v) {
  // one vector per line group, arrays of pairs on one line each
  return JSON.stringify(v, null, 2).replace(/\[\s+(\d+),\s+(\d+)\s+\]/g, '[$1, $2]') + '\n';
}

// ---------------------------------------------------------------------------

const SIZES = [0, 1, 15, 16, 17, 540, 541, 542, 568, 1000, 65535, 65536, 65537, 2 * 65536 + 5,
  MIB + 3, 16 * MIB, 17 * MIB];
const NEGATIVE = new Set([1000, 2 * 65536 + 5, 17 * MIB]);

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const dir = a.workdir || fs.mkdtempSync(path.join(os.tmpdir(), 'whisper-attachment-'));
  fs.mkdirSync(dir, { recursive: true });
  const ctx = { tool: a.tool, dir };
  try {
    const vectors = await makeVectors();
    if (a.writeVectors) {
      fs.writeFileSync(a.writeVectors, vectorsText(vectors));
      process.stdout.write(`wrote ${a.writeVectors}\n`);
      return 0;
    }
    // (the generator line names the node version, which may differ)
    const data = (v) => JSON.stringify([v.vectors, v.padded_sizes, v.chunk_sizes]);
    check(fs.existsSync(VECTORS) && data(JSON.parse(fs.readFileSync(VECTORS, 'utf8'))) === data(vectors),
      `${VECTORS} is not what node and libsignal compute (regenerate with --write-vectors)`);
    process.stdout.write(`ok vectors: ${vectors.vectors.length} in ${path.relative(process.cwd(), VECTORS)}\n`);

    sizesCheck(ctx);

    for (const n of SIZES) {
      const before = failures;
      await nodeToWhisper(ctx, n, NEGATIVE.has(n));
      await whisperToNode(ctx, n, NEGATIVE.has(n));
      if (failures === before) {
        const chunk = libsignalChunk(blobSize(n));
        process.stdout.write(`ok n=${n}: blob ${blobSize(n)}, chunk ${chunk}, both directions` +
          `${NEGATIVE.has(n) ? ', flips/cuts/wrong size/wrong key' : ''}\n`);
      }
    }
    await chosenChunks(ctx);
  } finally {
    if (!a.keep && !a.workdir && failures === 0) fs.rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`work directory: ${dir}\n`);
  }
  process.stdout.write(`${checks - failures} checks passed, ${failures} failed (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  return failures ? 1 : 0;
}

main().then((rc) => process.exit(rc), (e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(2);
});
