/*
 * whisper-bench: what libwhisper's 1:1 sessions cost on this machine, set
 * beside the floor the crypto alone would cost.
 *
 * Each figure comes from a timed loop of at least --seconds (1 s; 0.2 s
 * with --quick) measured with clock_gettime(CLOCK_MONOTONIC), after an
 * untimed warm-up. The floor of an operation is the sum of the costs of the
 * primitives the protocol must compute for it (each primitive timed in a
 * tight loop in the same run), counted from src/protocol/session.c; see
 * print_model() and tests/bench/README.md. "% of floor" is
 * floor_time / measured_time * 100: 100% would mean no overhead at all.
 *
 * The program exits 0 whatever the percentages (they are informational) and
 * 1 only when a library call fails.
 */
#define _POSIX_C_SOURCE 200809L

#include <openssl/crypto.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "whisper/whisper.h"

#define NOW_MS 1700000000000ULL
#define SMALL_LEN 100
#define BIG_LEN (1024u * 1024u)
#define MAC_LEN 8      /* the truncated MAC at the end of a SignalMessage */
#define MAC_IK_LEN 66  /* the MAC also covers both 33-byte identity keys */
#define SETUP_BATCH 64 /* bundles made (untimed) before each timed batch */

static double g_loop_s = 1.0;   /* length of each timed loop */
static double g_warmup_s = 0.1; /* length of each warm-up */

/* --- timing ------------------------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef void (*op_fn)(void *arg);

/* Runs fn for at least `secs` in chunks that double while they are short, so
 * that reading the clock costs nothing measurable. Returns seconds per call;
 * *calls_out (may be NULL) receives the number of calls. */
static double run_for(op_fn fn, void *arg, double secs, unsigned long *calls_out) {
  unsigned long calls = 0, chunk = 1;
  double t0 = now_s(), t_prev = t0, t = t0;
  for (;;) {
    for (unsigned long i = 0; i < chunk; i++) fn(arg);
    calls += chunk;
    t = now_s();
    if (t - t0 >= secs) break;
    if (t - t_prev < 0.01 && chunk < (1ul << 20)) chunk *= 2;
    t_prev = t;
  }
  if (calls_out) *calls_out = calls;
  return (t - t0) / (double)calls;
}

/* Warm-up, then the timed loop. */
static double time_op(op_fn fn, void *arg, unsigned long *calls) {
  run_for(fn, arg, g_warmup_s, NULL);
  return run_for(fn, arg, g_loop_s, calls);
}

static void die(const char *what, int rc, whisper_ctx *ctx) {
  fprintf(stderr, "whisper-bench: %s failed: %d (%s)%s%s\n", what, rc, whisper_strerror(rc),
          ctx ? ": " : "", ctx ? whisper_ctx_last_error(ctx) : "");
  exit(1);
}

#define TRY(what, ctx, expr)                 \
  do {                                       \
    int rc_ = (expr);                        \
    if (rc_ != WHISPER_OK) die(what, rc_, ctx); \
  } while (0)

/* --- primitives ---------------------------------------------------------------- */

typedef struct prim_args {
  wh_rng rng; /* libsodium's, as a context uses by default */
  wh_keypair a, b;
  uint8_t out[80], key[32], salt[32], ikm[160];
  uint8_t iv[16];
  uint8_t *pt, *ct, *dec, *mac_in;
  size_t pt_len, ct_len, mac_len;
  uint8_t sig[WH_SIG_LEN];
} prim_args;

static void p_dh(void *v) {
  prim_args *p = v;
  if (wh_dh(p->out, p->a.priv, p->b.pub) != 0) die("wh_dh", WHISPER_EINTERNAL, NULL);
}
static void p_keygen(void *v) {
  prim_args *p = v;
  wh_keypair kp;
  if (wh_keypair_generate(&p->rng, &kp) != 0) die("wh_keypair_generate", WHISPER_ERANDOM, NULL);
}
static void p_hmac1(void *v) { /* chain_next() and the message-key seed */
  prim_args *p = v;
  static const uint8_t two = 0x02;
  wh_hmac(p->key, p->key, 32, &two, 1);
}
static void p_hkdf64(void *v) { /* kdf_rk(): salt = root key, ikm = DH output */
  prim_args *p = v;
  wh_hkdf(p->out, 64, p->salt, 32, p->ikm, 32, "WhisperRatchet");
}
static void p_hkdf64_x3dh(void *v) { /* x3dh_derive(): 0xFF*32 || 4 DH outputs */
  prim_args *p = v;
  wh_hkdf(p->out, 64, NULL, 0, p->ikm, 160, "WhisperText");
}
static void p_hkdf80(void *v) { /* message_keys() */
  prim_args *p = v;
  wh_hkdf(p->out, 80, NULL, 0, p->key, 32, "WhisperMessageKeys");
}
static void p_cbc_enc(void *v) {
  prim_args *p = v;
  if (wh_cbc_encrypt(p->ct, p->key, p->iv, p->pt, p->pt_len) != 0)
    die("wh_cbc_encrypt", WHISPER_EINTERNAL, NULL);
}
static void p_cbc_dec(void *v) {
  prim_args *p = v;
  size_t n;
  if (wh_cbc_decrypt(p->dec, &n, p->key, p->iv, p->ct, p->ct_len) != 0 || n != p->pt_len)
    die("wh_cbc_decrypt", WHISPER_EINTERNAL, NULL);
}
static void p_mac(void *v) {
  prim_args *p = v;
  wh_hmac(p->out, p->key, 32, p->mac_in, p->mac_len);
}
static void p_verify(void *v) {
  prim_args *p = v;
  if (wh_xeddsa_verify(p->a.pub + 1, p->b.pub, WH_PUB_LEN, p->sig) != 0)
    die("wh_xeddsa_verify", WHISPER_EINVALIDSIG, NULL);
}

typedef struct prims {
  double dh, keygen, hmac1, hkdf64, hkdf64_x3dh, hkdf80, verify;
  double cbc_enc_small, cbc_dec_small, mac_small;
  double cbc_enc_big, cbc_dec_big, mac_big;
  size_t mac_small_len, mac_big_len;
} prims;

static void print_prim(const char *what, double secs) {
  printf("  %-52s %10.3f us\n", what, secs * 1e6);
  fflush(stdout);
}

/* Times the CBC and MAC primitives for one message size. */
static void time_message_prims(prim_args *p, size_t pt_len, size_t mac_len, double *enc,
                               double *dec, double *mac) {
  char label[96];
  p->pt_len = pt_len;
  p->ct_len = wh_cbc_len(pt_len);
  p->mac_len = mac_len;
  if (wh_cbc_encrypt(p->ct, p->key, p->iv, p->pt, pt_len) != 0)
    die("wh_cbc_encrypt", WHISPER_EINTERNAL, NULL);
  snprintf(label, sizeof label, "AES-256-CBC encrypt, %zu B (wh_cbc_encrypt)", pt_len);
  print_prim(label, *enc = time_op(p_cbc_enc, p, NULL));
  snprintf(label, sizeof label, "AES-256-CBC decrypt, %zu B (wh_cbc_decrypt)", p->ct_len);
  print_prim(label, *dec = time_op(p_cbc_dec, p, NULL));
  snprintf(label, sizeof label, "HMAC-SHA256 over %zu B (the message MAC)", mac_len);
  print_prim(label, *mac = time_op(p_mac, p, NULL));
}

static void time_prims(prims *t) {
  prim_args *p = calloc(1, sizeof *p);
  uint8_t z[64];
  if (p == NULL) die("calloc", WHISPER_ENOMEM, NULL);
  p->pt = malloc(BIG_LEN);
  p->ct = malloc(BIG_LEN + 16);
  p->dec = malloc(BIG_LEN + 16);
  p->mac_in = malloc(t->mac_big_len);
  if (!p->pt || !p->ct || !p->dec || !p->mac_in) die("malloc", WHISPER_ENOMEM, NULL);
  randombytes_buf(p->pt, BIG_LEN);
  randombytes_buf(p->mac_in, t->mac_big_len);
  randombytes_buf(p->key, sizeof p->key);
  randombytes_buf(p->salt, sizeof p->salt);
  randombytes_buf(p->ikm, sizeof p->ikm);
  randombytes_buf(p->iv, sizeof p->iv);
  randombytes_buf(z, sizeof z);
  if (wh_keypair_generate(&p->rng, &p->a) != 0 || wh_keypair_generate(&p->rng, &p->b) != 0)
    die("wh_keypair_generate", WHISPER_ERANDOM, NULL);
  /* a signs b's public key, as an identity signs its signed prekey */
  if (wh_xeddsa_sign(p->sig, p->a.priv, p->b.pub, WH_PUB_LEN, z) != 0)
    die("wh_xeddsa_sign", WHISPER_EINTERNAL, NULL);

  printf("Primitive costs (each a tight loop of >= %.1f s after a %.2f s warm-up):\n", g_loop_s,
         g_warmup_s);
  print_prim("X25519 scalar mult (wh_dh)", t->dh = time_op(p_dh, p, NULL));
  print_prim("key generation (wh_keypair_generate)", t->keygen = time_op(p_keygen, p, NULL));
  print_prim("HMAC-SHA256, 32 B key, 1 B message (wh_hmac)", t->hmac1 = time_op(p_hmac1, p, NULL));
  print_prim("HKDF-SHA256 -> 64 B, 32 B salt, 32 B ikm (root KDF)",
             t->hkdf64 = time_op(p_hkdf64, p, NULL));
  print_prim("HKDF-SHA256 -> 64 B, 160 B ikm (X3DH)",
             t->hkdf64_x3dh = time_op(p_hkdf64_x3dh, p, NULL));
  print_prim("HKDF-SHA256 -> 80 B, 32 B ikm (message keys)",
             t->hkdf80 = time_op(p_hkdf80, p, NULL));
  print_prim("XEdDSA verify, 33 B message (wh_xeddsa_verify)",
             t->verify = time_op(p_verify, p, NULL));
  time_message_prims(p, SMALL_LEN, t->mac_small_len, &t->cbc_enc_small, &t->cbc_dec_small,
                     &t->mac_small);
  time_message_prims(p, BIG_LEN, t->mac_big_len, &t->cbc_enc_big, &t->cbc_dec_big, &t->mac_big);
  printf("\n");
  free(p->pt);
  free(p->ct);
  free(p->dec);
  free(p->mac_in);
  sodium_memzero(p, sizeof *p);
  free(p);
}

/* --- devices and messages --------------------------------------------------- */

typedef struct dev {
  whisper_store *st;
  whisper_ctx *ctx;
  const char *name;
} dev;

static void dev_new(dev *d, const char *name) {
  d->name = name;
  TRY("whisper_store_memory_new", NULL, whisper_store_memory_new(&d->st));
  TRY("whisper_ctx_new", NULL, whisper_ctx_new(&d->ctx, d->st));
  TRY("whisper_identity_create", d->ctx, whisper_identity_create(d->ctx, name, 1, 0, NOW_MS));
}

static void dev_free(dev *d) {
  whisper_ctx_free(d->ctx);
  whisper_store_close(d->st);
}

/* Encrypts `pt` from `from` to (to, to_dev) and decrypts it at `to` as
 * coming from (from, from_dev). Returns the length of the wire message and
 * its type. `check` compares the plaintext too. */
static size_t xfer(dev *from, uint32_t from_dev, dev *to, uint32_t to_dev, const uint8_t *pt,
                   size_t len, int check, int *type_out) {
  whisper_buf *msg = NULL, *out = NULL;
  int type = 0;
  TRY("whisper_session_encrypt", from->ctx,
      whisper_session_encrypt(from->ctx, to->name, to_dev, pt, len, NOW_MS, &type, &msg));
  TRY("whisper_session_decrypt", to->ctx,
      whisper_session_decrypt(to->ctx, from->name, from_dev, type, msg->data, msg->len, &out));
  if (out->len != len || (check && len && memcmp(out->data, pt, len) != 0))
    die("the round trip (wrong plaintext)", WHISPER_EINTERNAL, NULL);
  size_t wire = msg->len;
  whisper_buf_free(msg);
  whisper_buf_free(out);
  if (type_out) *type_out = type;
  return wire;
}

/* A confirmed session between a (device 1) and b (device 1): a starts it,
 * b answers, a reads the answer. */
static void connect_pair(dev *a, dev *b, const uint8_t *pt) {
  whisper_prekey_bundle_t bundle;
  int type;
  TRY("whisper_bundle_make", b->ctx, whisper_bundle_make(b->ctx, &bundle, 1));
  TRY("whisper_session_start", a->ctx, whisper_session_start(a->ctx, b->name, 1, &bundle, NOW_MS));
  xfer(a, 1, b, 1, pt, SMALL_LEN, 1, &type);
  if (type != WHISPER_MSG_PREKEY) die("the first message (not a PreKey message)", -1, NULL);
  xfer(b, 1, a, 1, pt, SMALL_LEN, 1, &type);
  if (type != WHISPER_MSG_WHISPER) die("the answer (not a SignalMessage)", -1, NULL);
}

/* --- the operations ---------------------------------------------------------- */

typedef struct msg_args {
  dev *a, *b;
  const uint8_t *pt;
  size_t len;
  int dir; /* alternating: 0 = a to b next, 1 = b to a */
} msg_args;

static void op_one_way(void *v) {
  msg_args *m = v;
  xfer(m->a, 1, m->b, 1, m->pt, m->len, 0, NULL);
}

static void op_alternating(void *v) {
  msg_args *m = v;
  if (m->dir == 0)
    xfer(m->a, 1, m->b, 1, m->pt, m->len, 0, NULL);
  else
    xfer(m->b, 1, m->a, 1, m->pt, m->len, 0, NULL);
  m->dir ^= 1;
}

typedef struct setup_args {
  dev *alice, *bob;
  const uint8_t *pt;
  int fresh;         /* 1: a new address per set-up; 0: always the same one */
  uint32_t next_dev; /* the next address's device id when fresh */
  whisper_prekey_bundle_t bundles[SETUP_BATCH];
} setup_args;

/* One set-up: Alice processes Bob's bundle, encrypts a first message, Bob
 * decrypts it. */
static void setup_once(setup_args *s, const whisper_prekey_bundle_t *bundle) {
  uint32_t dev_id = s->fresh ? s->next_dev++ : 1;
  int type;
  TRY("whisper_session_start", s->alice->ctx,
      whisper_session_start(s->alice->ctx, s->bob->name, dev_id, bundle, NOW_MS));
  xfer(s->alice, dev_id, s->bob, dev_id, s->pt, SMALL_LEN, 0, &type);
  if (type != WHISPER_MSG_PREKEY) die("the first message (not a PreKey message)", -1, NULL);
}

/* Batches of SETUP_BATCH set-ups; the bundles of a batch are made before
 * its clock starts. Returns seconds per set-up. */
static double setup_run(setup_args *s, double secs, unsigned long *calls_out) {
  double timed = 0;
  unsigned long calls = 0;
  while (timed < secs) {
    for (int i = 0; i < SETUP_BATCH; i++)
      TRY("whisper_bundle_make", s->bob->ctx, whisper_bundle_make(s->bob->ctx, &s->bundles[i], 1));
    double t0 = now_s();
    for (int i = 0; i < SETUP_BATCH; i++) setup_once(s, &s->bundles[i]);
    timed += now_s() - t0;
    calls += SETUP_BATCH;
  }
  if (calls_out) *calls_out = calls;
  return timed / (double)calls;
}

static double time_setup(setup_args *s, unsigned long *calls) {
  setup_run(s, g_warmup_s, NULL);
  return setup_run(s, g_loop_s, calls);
}

/* --- the cost model ------------------------------------------------------------ */

typedef struct model {
  double enc_small, dec_small, enc_big, dec_big, dh_step, alice_x3dh, bob_x3dh;
  double setup, alternating, one_way, big;
} model;

static void build_model(const prims *t, model *m) {
  double msg_keys = t->hmac1 + t->hkdf80; /* message_keys(): seed HMAC + HKDF-80 */
  double chain = t->hmac1;                /* chain_next() */
  m->enc_small = msg_keys + chain + t->cbc_enc_small + t->mac_small;
  m->dec_small = msg_keys + chain + t->mac_small + t->cbc_dec_small;
  m->enc_big = msg_keys + chain + t->cbc_enc_big + t->mac_big;
  m->dec_big = msg_keys + chain + t->mac_big + t->cbc_dec_big;
  m->dh_step = 2 * t->dh + t->keygen + 2 * t->hkdf64;
  m->alice_x3dh = t->verify + 2 * t->keygen + 5 * t->dh + t->hkdf64_x3dh + t->hkdf64;
  m->bob_x3dh = 4 * t->dh + t->hkdf64_x3dh;
  m->setup = m->alice_x3dh + m->enc_small + m->bob_x3dh + m->dh_step + m->dec_small;
  m->alternating = m->enc_small + m->dh_step + m->dec_small;
  m->one_way = m->enc_small + m->dec_small;
  m->big = m->enc_big + m->dec_big;
}

static void print_model(const prims *t, const model *m) {
  printf("Cost model (primitives each operation must compute, from src/protocol/session.c):\n");
  printf("  MK     = message keys: HMAC(ck, 0x01) + HKDF-80           %9.3f us\n",
         (t->hmac1 + t->hkdf80) * 1e6);
  printf("  CK     = chain step:   HMAC(ck, 0x02)                     %9.3f us\n", t->hmac1 * 1e6);
  printf("  ENC(n) = MK + CK + AES-CBC encrypt(n) + HMAC(66 + wire - 8 B)\n");
  printf("  DEC(n) = MK + CK + HMAC(66 + wire - 8 B) + AES-CBC decrypt(n padded)\n");
  printf("           ENC(%d) %.3f us, DEC(%d) %.3f us (MAC over %zu B)\n", SMALL_LEN,
         m->enc_small * 1e6, SMALL_LEN, m->dec_small * 1e6, t->mac_small_len);
  printf("           ENC(1 MiB) %.1f us, DEC(1 MiB) %.1f us (MAC over %zu B)\n", m->enc_big * 1e6,
         m->dec_big * 1e6, t->mac_big_len);
  printf("  DHSTEP = 2 X25519 + 1 keygen + 2 HKDF-64 (root KDF)       %9.3f us\n",
         m->dh_step * 1e6);
  printf("  1. set-up    = Alice: XEdDSA verify + 2 keygen + 5 X25519 (4 X3DH, one-time prekey\n"
         "                 included, + 1 ratchet) + HKDF-64(160 B ikm) + HKDF-64 + ENC(100)\n"
         "               + Bob: 4 X25519 + HKDF-64(160 B ikm) + DHSTEP + DEC(100)\n");
  printf("  2. alternate = ENC(100) + DHSTEP + DEC(100)  (each decrypt takes a DH ratchet step)\n");
  printf("  3. one-way   = ENC(100) + DEC(100)           (symmetric chain steps only)\n");
  printf("  4. 1 MiB     = ENC(1 MiB) + DEC(1 MiB)\n");
  printf("  Not counted (not crypto): protobuf, store I/O, record (de)serialisation, allocation,\n"
         "  wiping; randomness is counted inside keygen only.\n\n");
}

/* --- results ------------------------------------------------------------------- */

static void print_rate(const char *label, double secs, double floor_secs, double bar,
                       unsigned long calls, int mb, const char *note) {
  double pct = floor_secs / secs * 100.0;
  char meas[32], flo[32];
  if (mb) {
    snprintf(meas, sizeof meas, "%.1f MB/s", (double)BIG_LEN / secs / 1e6);
    snprintf(flo, sizeof flo, "%.1f MB/s", (double)BIG_LEN / floor_secs / 1e6);
  } else {
    snprintf(meas, sizeof meas, "%.0f /s", 1.0 / secs);
    snprintf(flo, sizeof flo, "%.0f /s", 1.0 / floor_secs);
  }
  printf("  %-34s %13s %13s %7.1f%%  %3.0f%%  %-5s  %9.2f %9.2f %9.2f  %lu%s\n", label, meas, flo,
         pct, bar, pct >= bar ? "PASS" : "BELOW", secs * 1e6, floor_secs * 1e6,
         (secs - floor_secs) * 1e6, calls, note ? note : "");
  fflush(stdout);
}

static void print_cpu(void) {
  char line[256], model_name[256] = "unknown";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "model name", 10) == 0) {
        char *c = strchr(line, ':');
        if (c) {
          snprintf(model_name, sizeof model_name, "%s", c + 2);
          model_name[strcspn(model_name, "\n")] = 0;
        }
        break;
      }
    }
    fclose(f);
  }
  printf("machine: %s; libsodium %s; %s; libwhisper %u\n", model_name, sodium_version_string(),
         OpenSSL_version(OPENSSL_VERSION), whisper_version());
#ifndef __OPTIMIZE__
  printf("WARNING: built without optimisation: the figures mean little (use -DCMAKE_BUILD_TYPE=Release)\n");
#endif
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: whisper-bench [--quick] [--seconds S]\n"
          "  --quick      each timed loop ~0.2 s (a CI smoke run)\n"
          "  --seconds S  each timed loop S seconds (default 1)\n");
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      g_loop_s = 0.2;
      g_warmup_s = 0.02;
    } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      g_loop_s = atof(argv[++i]);
      if (!(g_loop_s > 0)) {
        usage(stderr);
        return 2;
      }
      g_warmup_s = g_loop_s / 10;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (wh_crypto_init() != 0) die("wh_crypto_init", WHISPER_EINTERNAL, NULL);
  double t_start = now_s();
  print_cpu();
  printf("each figure: a loop of >= %.1f s (CLOCK_MONOTONIC) after a %.2f s warm-up\n\n", g_loop_s,
         g_warmup_s);

  uint8_t *small = malloc(SMALL_LEN), *big = malloc(BIG_LEN);
  if (!small || !big) die("malloc", WHISPER_ENOMEM, NULL);
  randombytes_buf(small, SMALL_LEN);
  randombytes_buf(big, BIG_LEN);

  /* Devices: one pair per scenario, so that no scenario's records carry
   * another's state. */
  dev s_alice, s_bob, r_alice, r_bob, alt_a, alt_b, one_a, one_b, big_a, big_b;
  dev_new(&s_alice, "alice");
  dev_new(&s_bob, "bob");
  dev_new(&r_alice, "alice");
  dev_new(&r_bob, "bob");
  dev_new(&alt_a, "alice");
  dev_new(&alt_b, "bob");
  dev_new(&one_a, "alice");
  dev_new(&one_b, "bob");
  dev_new(&big_a, "alice");
  dev_new(&big_b, "bob");
  connect_pair(&alt_a, &alt_b, small);
  connect_pair(&one_a, &one_b, small);
  connect_pair(&big_a, &big_b, small);

  /* The sizes the MACs cover, from real messages (checked round trips). */
  prims t;
  memset(&t, 0, sizeof t);
  int type;
  size_t wire_small = xfer(&one_a, 1, &one_b, 1, small, SMALL_LEN, 1, &type);
  size_t wire_big = xfer(&big_a, 1, &big_b, 1, big, BIG_LEN, 1, &type);
  t.mac_small_len = MAC_IK_LEN + wire_small - MAC_LEN;
  t.mac_big_len = MAC_IK_LEN + wire_big - MAC_LEN;

  time_prims(&t);
  model m;
  build_model(&t, &m);
  print_model(&t, &m);

  printf("Results (%% of floor = floor time / measured time; bar = the issue's target):\n");
  printf("  %-34s %13s %13s %8s  %4s  %-5s  %9s %9s %9s  %s\n", "operation", "measured", "floor",
         "% floor", "bar", "", "us/op", "floor us", "over us", "ops timed");

  unsigned long calls;
  setup_args *sa = calloc(1, sizeof *sa);
  if (sa == NULL) die("calloc", WHISPER_ENOMEM, NULL);
  sa->alice = &s_alice;
  sa->bob = &s_bob;
  sa->pt = small;
  sa->fresh = 1;
  sa->next_dev = 1;
  double secs = time_setup(sa, &calls);
  print_rate("1. session set-up (new contact)", secs, m.setup, 80, calls, 0, "");

  msg_args alt = {&alt_a, &alt_b, small, SMALL_LEN, 0};
  secs = time_op(op_alternating, &alt, &calls);
  print_rate("2. 100 B, alternating (DH step)", secs, m.alternating, 80, calls, 0, "");

  msg_args one = {&one_a, &one_b, small, SMALL_LEN, 0};
  secs = time_op(op_one_way, &one, &calls);
  print_rate("3. 100 B, one-way (symmetric)", secs, m.one_way, 50, calls, 0, "");

  msg_args bigm = {&big_a, &big_b, big, BIG_LEN, 0};
  secs = time_op(op_one_way, &bigm, &calls);
  print_rate("4. 1 MiB, one-way (enc+dec)", secs, m.big, 50, calls, 1, "");

  /* Informational: the same two devices set up again and again, so that
   * each record carries up to 40 archived states. */
  memset(sa, 0, sizeof *sa);
  sa->alice = &r_alice;
  sa->bob = &r_bob;
  sa->pt = small;
  sa->fresh = 0;
  secs = time_setup(sa, &calls);
  print_rate("1b. set-up, same address again", secs, m.setup, 80, calls, 0, "  (info)");

  printf("\n  1: whisper_session_start + first encrypt (PreKey message) + Bob's decrypt; each\n"
         "     bundle (whisper_bundle_make: a new one-time prekey) is made before the timed\n"
         "     batch, outside the clock. 1b: as 1 but always between the same two addresses\n"
         "     (records grow to 40 archived states). 2-4: whisper_session_encrypt +\n"
         "     whisper_session_decrypt + whisper_buf_free of both buffers; MB = 10^6 bytes of\n"
         "     plaintext, each byte encrypted and decrypted. Memory store throughout.\n");
  printf("\nwhisper-bench: total %.1f s\n", now_s() - t_start);

  free(sa);
  dev_free(&s_alice);
  dev_free(&s_bob);
  dev_free(&r_alice);
  dev_free(&r_bob);
  dev_free(&alt_a);
  dev_free(&alt_b);
  dev_free(&one_a);
  dev_free(&one_b);
  dev_free(&big_a);
  dev_free(&big_b);
  free(small);
  free(big);
  return 0;
}
