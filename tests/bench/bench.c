/*
 * whisper-bench: what libwhisper's 1:1 sessions and group messages (sender
 * keys) cost on this machine, set beside the floor the crypto alone would
 * cost.
 *
 * Each figure comes from a timed loop of at least --seconds (1 s; 0.2 s
 * with --quick) measured with clock_gettime(CLOCK_MONOTONIC), after an
 * untimed warm-up: the fastest of its 5 slices, marked [CPU n%] when even
 * that slice lost the CPU to other processes. The floor of an operation is
 * the sum of the costs of the primitives the protocol must compute for it
 * (each primitive timed in a tight loop in the same run; where OpenSSL and
 * libsodium both have it, X25519 and the SHA-256 based MACs and KDFs, both
 * are timed and the faster counts), counted from
 * src/protocol/session.c and src/protocol/sender_key.c; see print_model() and
 * tests/bench/README.md. "% of floor" is floor_time / measured_time * 100:
 * 100% would mean no overhead at all.
 *
 * Figures 11-14 are the SQLite store's: durable decrypt-and-store
 * (whisper_session_decrypt_store, whisper_session_decrypt_batch) into a
 * store on disk, set beside a bare SQLite insert of the same size measured
 * in the same run (their "floor"); see run_store_figures().
 *
 * The program exits 0 whatever the percentages (they are informational) and
 * 1 only when a library call (or a call of the bare SQLite figure) fails.
 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* realpath() */

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "bench_search.h"
#include "crypto/crypto.h"
#include "whisper/whisper.h"
#include "wire.pb-c.h" /* only to read the sizes of real messages */

#define NOW_MS 1700000000000ULL
#define SMALL_LEN 100
#define BIG_LEN (1024u * 1024u)
#define MAC_LEN 8       /* the truncated MAC at the end of a SignalMessage */
#define MAC_IK_LEN 66   /* the MAC also covers both 33-byte identity keys */
#define SETUP_BATCH 64  /* bundles made (untimed) before each timed batch */
#define GROUP_BATCH 64  /* group messages encrypted (untimed) before each timed batch */
#define FANOUT 1024     /* member devices an SKDM is distributed to */
#define FANOUT_NAMES 32 /* receiving contexts; each stands for 32 device ids */
#define STORE_BATCH 100 /* messages per transaction in 13 and 14; pre-encrypted in batches of it */
#define STORE_ID_LEN 16 /* each message's id (a client message id, 16 bytes like a UUID) */
#define ATT_LEN (100u * 1024u * 1024u) /* figure 16's plaintext: 100 MiB */
#define ATT_PIECE (1024u * 1024u)      /* fed to the encryptor and decryptor at a time */
#define ONLY_MAX 16     /* the highest --only */
#define SEARCH_N 100000 /* messages of figure 15 (--search-messages) */

static double g_loop_s = 1.0;   /* length of each timed loop */
static double g_warmup_s = 0.1; /* length of each warm-up */
static int g_only;              /* --only N: that operation alone, no floor */
static int g_store_only;        /* --store: the store figures (11-14) with their bare inserts */
static const char *g_dir_opt;   /* --dir D: where the store figures put their databases */
static size_t g_search_n;       /* --search-messages N (0: SEARCH_N, or 2000 with --quick) */
static int g_att_rss;           /* --attachment-rss(-fed): a 1 GiB attachment streamed, peak RSS
                                 * (2: with the fed decryptor) */

/* --- timing ------------------------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* This thread's CPU time: beside each slice's wall time, it tells whether
 * other processes took the CPU during the slice. */
static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double load_average(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time / wall time of the last slice run, and of the slice each figure
 * was taken from (below 0.95: other processes ran; the figure is marked). */
static double g_slice_busy = 1, g_figure_busy = 1;
static int g_disturbed; /* figures marked */
#define BUSY_OK 0.95

/* The store figures wait for the disk, so their CPU time / wall time says
 * nothing about other processes: for them "busy" is 1 - the time this
 * thread was runnable but waited for a CPU (its run-queue wait, from
 * /proc/thread-self/schedstat) / wall time, and their CPU time / wall time
 * is kept apart (g_slice_cpu, g_figure_cpu: how much of the slice was
 * computing rather than waiting for the disk). */
static double g_slice_cpu = 1, g_figure_cpu = 1;
static double g_io_wall, g_io_cpu; /* wall and CPU time spent in the store figures */

/* " [CPU 83%]" after a figure whose slice was disturbed, else "". */
static const char *busy_mark(void) {
  static char mark[32];
  mark[0] = 0;
  if (g_figure_busy < BUSY_OK) {
    snprintf(mark, sizeof mark, " [CPU %.0f%%]", g_figure_busy * 100);
    g_disturbed++;
  }
  return mark;
}

typedef void (*op_fn)(void *arg);

/* Runs fn for at least `secs` in chunks that double while they are short, so
 * that reading the clock costs nothing measurable. Returns seconds per call
 * and adds the calls made to *calls (may be NULL). */
static double run_for(op_fn fn, void *arg, double secs, unsigned long *calls_out) {
  unsigned long calls = 0, chunk = 1;
  double c0 = thread_cpu_s(), t0 = now_s(), t_prev = t0, t = t0;
  for (;;) {
    for (unsigned long i = 0; i < chunk; i++) fn(arg);
    calls += chunk;
    t = now_s();
    if (t - t0 >= secs) break;
    if (t - t_prev < 0.01 && chunk < (1ul << 20)) chunk *= 2;
    t_prev = t;
  }
  g_slice_busy = (thread_cpu_s() - c0) / (t - t0);
  if (calls_out) *calls_out += calls;
  return (t - t0) / (double)calls;
}

/* One figure: a warm-up, then a timed loop of at least g_loop_s made of
 * SLICES back-to-back slices of g_loop_s / SLICES each. The figure is the
 * fastest slice's time per call (the slice least disturbed by other
 * processes: the machine may be shared); *mean gets the whole loop's.
 * g_figure_busy tells whether even that slice was disturbed. */
#define SLICES 5
typedef double (*slice_fn)(void *arg, double secs, unsigned long *calls);

static double best_of_slices(slice_fn run, void *arg, unsigned long *calls, double *mean) {
  double best = 0, total = 0;
  unsigned long n = 0;
  run(arg, g_warmup_s, NULL);
  for (int i = 0; i < SLICES; i++) {
    unsigned long before = n;
    double per = run(arg, g_loop_s / SLICES, &n);
    total += per * (double)(n - before);
    if (i == 0 || per < best) {
      best = per;
      g_figure_busy = g_slice_busy;
      g_figure_cpu = g_slice_cpu;
    }
  }
  if (calls) *calls = n;
  if (mean) *mean = total / (double)n;
  return best;
}

typedef struct fn_slice {
  op_fn fn;
  void *arg;
} fn_slice;

static double fn_slice_run(void *v, double secs, unsigned long *calls) {
  fn_slice *f = v;
  return run_for(f->fn, f->arg, secs, calls);
}

static double time_op(op_fn fn, void *arg, unsigned long *calls, double *mean) {
  fn_slice f = {fn, arg};
  return best_of_slices(fn_slice_run, &f, calls, mean);
}

static void die(const char *what, int rc, whisper_ctx *ctx) {
  fprintf(stderr, "whisper-bench: %s failed: %d (%s)%s%s\n", what, rc, whisper_strerror(rc),
          ctx ? ": " : "", ctx ? whisper_ctx_last_error(ctx) : "");
  exit(1);
}

#define TRY(what, ctx, expr)                    \
  do {                                          \
    int rc_ = (expr);                           \
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
  uint8_t gsig[WH_SIG_LEN]; /* a's signature over pt[0..g_len): a group message's */
  uint8_t z[64];            /* the signature's randomness */
  size_t g_len;
  EVP_PKEY_CTX *dh_ctx; /* OpenSSL X25519: a's private key, b's public key as the peer */
} prim_args;

/* The store's own primitives: sealing a row (XChaCha20-Poly1305, the row
 * id as AD) and one keyed BLAKE2b (a row id or a history tag). */
typedef struct store_prim {
  uint8_t key[32], nonce[24], ad[64], in[64], out[32];
  uint8_t *buf;
  size_t len, ad_len, in_len;
} store_prim;

static void p_seal(void *v) {
  store_prim *p = v;
  unsigned long long clen;
  p->nonce[0]++;
  crypto_aead_xchacha20poly1305_ietf_encrypt(p->buf, &clen, p->buf, p->len, p->ad, p->ad_len,
                                             NULL, p->nonce, p->key);
}
static void p_tag(void *v) {
  store_prim *p = v;
  p->in[0]++;
  crypto_generichash(p->out, sizeof p->out, p->in, p->in_len, p->key, sizeof p->key);
}

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
static void p_step(void *v) { /* wh_chain_step(): the seed and the next chain key */
  prim_args *p = v;
  wh_chain_step(p->out, p->key);
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
static void p_hkdf48(void *v) { /* sender_key.c seed_keys(): iv || cipher key */
  prim_args *p = v;
  wh_hkdf(p->out, 48, NULL, 0, p->key, 32, "WhisperGroup");
}
static void p_sign_g(void *v) { /* a SenderKeyMessage's signature */
  prim_args *p = v;
  if (wh_xeddsa_sign(p->out, p->a.priv, p->pt, p->g_len, p->z) != 0)
    die("wh_xeddsa_sign", WHISPER_EINTERNAL, NULL);
}
static void p_verify_g(void *v) {
  prim_args *p = v;
  if (wh_xeddsa_verify(p->a.pub + 1, p->pt, p->g_len, p->gsig) != 0)
    die("wh_xeddsa_verify", WHISPER_EINVALIDSIG, NULL);
}
static void p_rand64(void *v) { /* the randomness each signature takes */
  prim_args *p = v;
  if (wh_random(&p->rng, p->z, sizeof p->z) != 0) die("wh_random", WHISPER_ERANDOM, NULL);
}

/* The same hash-based primitives from libsodium (portable C), so that each
 * floor is the faster of the two libraries: HMAC-SHA256 through
 * crypto_auth_hmacsha256_*, keyed once where the computation allows it (the
 * chain step's two MACs, HKDF's expand blocks: the keyed state is copied),
 * as the fastest use of the API would. libsodium 1.0.18 has no HKDF of its
 * own (crypto_kdf_hkdf_sha256_* came in 1.0.19): it is RFC 5869 over these
 * MACs, as wh_hkdf() is. Checked against the library's once
 * (check_sodium_prims()). */
static void s_hmac(uint8_t out[32], const uint8_t *key, size_t key_len, const uint8_t *msg,
                   size_t len) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, key_len);
  crypto_auth_hmacsha256_update(&st, msg, len);
  crypto_auth_hmacsha256_final(&st, out);
}

static void s_chain_step(uint8_t seed[32], uint8_t ck[32]) {
  static const uint8_t one = 0x01, two = 0x02;
  crypto_auth_hmacsha256_state a, b;
  crypto_auth_hmacsha256_init(&a, ck, 32);
  b = a;
  crypto_auth_hmacsha256_update(&a, &one, 1);
  crypto_auth_hmacsha256_final(&a, seed);
  crypto_auth_hmacsha256_update(&b, &two, 1);
  crypto_auth_hmacsha256_final(&b, ck);
}

static void s_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                   const uint8_t *ikm, size_t ikm_len, const char *info) {
  static const uint8_t zero_salt[32];
  uint8_t prk[32], t[32], counter = 1;
  size_t info_len = strlen(info), done = 0;
  crypto_auth_hmacsha256_state keyed, st;
  if (salt == NULL) {
    salt = zero_salt;
    salt_len = sizeof zero_salt;
  }
  s_hmac(prk, salt, salt_len, ikm, ikm_len); /* extract */
  crypto_auth_hmacsha256_init(&keyed, prk, sizeof prk);
  while (done < out_len) { /* expand, keyed once */
    size_t n = out_len - done < 32 ? out_len - done : 32;
    st = keyed;
    if (counter > 1) crypto_auth_hmacsha256_update(&st, t, sizeof t);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)info, info_len);
    crypto_auth_hmacsha256_update(&st, &counter, 1);
    crypto_auth_hmacsha256_final(&st, t);
    memcpy(out + done, t, n);
    done += n;
    counter++;
  }
}

static void s_hmac1(void *v) {
  prim_args *p = v;
  static const uint8_t two = 0x02;
  s_hmac(p->key, p->key, 32, &two, 1);
}
static void s_step(void *v) {
  prim_args *p = v;
  s_chain_step(p->out, p->key);
}
static void s_hkdf64(void *v) {
  prim_args *p = v;
  s_hkdf(p->out, 64, p->salt, 32, p->ikm, 32, "WhisperRatchet");
}
static void s_hkdf64_x3dh(void *v) {
  prim_args *p = v;
  s_hkdf(p->out, 64, NULL, 0, p->ikm, 160, "WhisperText");
}
static void s_hkdf80(void *v) {
  prim_args *p = v;
  s_hkdf(p->out, 80, NULL, 0, p->key, 32, "WhisperMessageKeys");
}
static void s_hkdf48(void *v) {
  prim_args *p = v;
  s_hkdf(p->out, 48, NULL, 0, p->key, 32, "WhisperGroup");
}
static void s_mac(void *v) {
  prim_args *p = v;
  s_hmac(p->out, p->key, 32, p->mac_in, p->mac_len);
}

/* OpenSSL's X25519: EVP_PKEY_derive on keys and a context made before the
 * clock (a's private key, b's public key, the peer set): the derivation
 * alone, the least an OpenSSL X25519 can cost. */
static void o_dh(void *v) {
  prim_args *p = v;
  size_t n = 32;
  if (EVP_PKEY_derive(p->dh_ctx, p->out, &n) != 1 || n != 32)
    die("EVP_PKEY_derive (X25519)", WHISPER_EINTERNAL, NULL);
}

/* The libsodium primitives compute what the library's do (once, untimed),
 * and so does OpenSSL's X25519. */
static void check_alt_prims(prim_args *p) {
  static const uint8_t one = 0x01;
  uint8_t a[80], b[80], ck_a[32], ck_b[32];
  int ok = 1;
  wh_hmac(a, p->key, 32, &one, 1);
  s_hmac(b, p->key, 32, &one, 1);
  ok &= memcmp(a, b, 32) == 0;
  wh_hmac(a, p->key, 32, p->mac_in, 1000);
  s_hmac(b, p->key, 32, p->mac_in, 1000);
  ok &= memcmp(a, b, 32) == 0;
  memcpy(ck_a, p->key, 32);
  memcpy(ck_b, p->key, 32);
  wh_chain_step(a, ck_a);
  s_chain_step(b, ck_b);
  ok &= memcmp(a, b, 32) == 0 && memcmp(ck_a, ck_b, 32) == 0;
  wh_hkdf(a, 80, NULL, 0, p->key, 32, "WhisperMessageKeys");
  s_hkdf(b, 80, NULL, 0, p->key, 32, "WhisperMessageKeys");
  ok &= memcmp(a, b, 80) == 0;
  wh_hkdf(a, 64, p->salt, 32, p->ikm, 32, "WhisperRatchet");
  s_hkdf(b, 64, p->salt, 32, p->ikm, 32, "WhisperRatchet");
  ok &= memcmp(a, b, 64) == 0;
  wh_hkdf(a, 64, NULL, 0, p->ikm, 160, "WhisperText");
  s_hkdf(b, 64, NULL, 0, p->ikm, 160, "WhisperText");
  ok &= memcmp(a, b, 64) == 0;
  if (!ok) die("libsodium's HMAC/HKDF (not the library's result)", WHISPER_EINTERNAL, NULL);
  size_t n = 32;
  if (wh_dh(a, p->a.priv, p->b.pub) != 0 || EVP_PKEY_derive(p->dh_ctx, b, &n) != 1 || n != 32 ||
      memcmp(a, b, 32) != 0)
    die("OpenSSL's X25519 (not libsodium's result)", WHISPER_EINTERNAL, NULL);
}

/* The primitives both libraries have, each timed both ways: OpenSSL's and
 * libsodium's time; the floor (the field of `prims`) is the faster. */
typedef struct alt_time {
  double openssl, sodium;
} alt_time;

enum { ALT_DH, ALT_HMAC1, ALT_STEP, ALT_HKDF64, ALT_HKDF64_X3DH, ALT_HKDF80, ALT_MAC_SMALL,
       ALT_MAC_BIG, ALT_HKDF48, ALT_MAC_CONTENT, ALT_N };

typedef struct prims {
  alt_time alt[ALT_N];
  double dh, keygen, hmac1, step, hkdf64, hkdf64_x3dh, hkdf80, verify;
  double cbc_enc_small, cbc_dec_small, mac_small;
  double cbc_enc_big, cbc_dec_big, mac_big;
  size_t mac_small_len, mac_big_len;
  /* groups: the signed part of a SenderKeyMessage (version byte + protobuf),
   * the Content that carries an SKDM, the MAC input of its 1:1 message */
  double hkdf48, sign_g, verify_g, rand64, cbc_enc_content, mac_content;
  size_t g_signed_len, content_len, content_mac_len;
} prims;

static void print_prim(const char *what, double secs) {
  printf("  %-52s %10.3f us%s\n", what, secs * 1e6, busy_mark());
  fflush(stdout);
}

/* A primitive both libraries have: OpenSSL's (`ossl`) and libsodium's
 * (`sodium`) each timed as every figure, printed side by side with the
 * faster; *alt gets both, and the floor (the faster) is returned. */
static double time_alt(const char *what, op_fn ossl, op_fn sodium, void *p, alt_time *alt) {
  alt->openssl = time_op(ossl, p, NULL, NULL);
  double busy = g_figure_busy;
  alt->sodium = time_op(sodium, p, NULL, NULL);
  if (busy < g_figure_busy) g_figure_busy = busy; /* marked if either was disturbed */
  int o = alt->openssl <= alt->sodium;
  double floor_s = o ? alt->openssl : alt->sodium;
  printf("  %-52s %10.3f us  %9.3f %9.3f  %-9s%s\n", what, floor_s * 1e6, alt->openssl * 1e6,
         alt->sodium * 1e6, o ? "OpenSSL" : "libsodium", busy_mark());
  fflush(stdout);
  return floor_s;
}

/* Times the CBC and MAC primitives for one message size. */
static void time_message_prims(prim_args *p, size_t pt_len, size_t mac_len, double *enc,
                               double *dec, double *mac, alt_time *mac_alt) {
  char label[96];
  p->pt_len = pt_len;
  p->ct_len = wh_cbc_len(pt_len);
  p->mac_len = mac_len;
  if (wh_cbc_encrypt(p->ct, p->key, p->iv, p->pt, pt_len) != 0)
    die("wh_cbc_encrypt", WHISPER_EINTERNAL, NULL);
  snprintf(label, sizeof label, "AES-256-CBC encrypt, %zu B (wh_cbc_encrypt)", pt_len);
  print_prim(label, *enc = time_op(p_cbc_enc, p, NULL, NULL));
  snprintf(label, sizeof label, "AES-256-CBC decrypt, %zu B (wh_cbc_decrypt)", p->ct_len);
  print_prim(label, *dec = time_op(p_cbc_dec, p, NULL, NULL));
  snprintf(label, sizeof label, "HMAC-SHA256 over %zu B (the message MAC)", mac_len);
  *mac = time_alt(label, p_mac, s_mac, p, mac_alt);
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
  /* OpenSSL's X25519 on the same two keys, made before any clock */
  EVP_PKEY *priv = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, p->a.priv, 32);
  EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, p->b.pub + 1, 32);
  if (priv == NULL || peer == NULL || (p->dh_ctx = EVP_PKEY_CTX_new(priv, NULL)) == NULL ||
      EVP_PKEY_derive_init(p->dh_ctx) != 1 || EVP_PKEY_derive_set_peer(p->dh_ctx, peer) != 1)
    die("OpenSSL's X25519 set-up", WHISPER_EINTERNAL, NULL);
  check_alt_prims(p);

  printf(
      "Primitive costs (each a tight loop, timed as every figure). Where OpenSSL and libsodium\n"
      "both have a primitive, both are timed and the floor is the faster:\n");
  printf("  %-52s %13s  %9s %9s  %s\n", "", "floor", "OpenSSL", "libsodium", "faster");
  t->dh = time_alt("X25519 (OpenSSL EVP_PKEY_derive; libsodium: wh_dh)", o_dh, p_dh, p,
                   &t->alt[ALT_DH]);
  print_prim("key generation (wh_keypair_generate, libsodium)",
             t->keygen = time_op(p_keygen, p, NULL, NULL));
  t->hmac1 = time_alt("HMAC-SHA256, 32 B key, 1 B message (wh_hmac)", p_hmac1, s_hmac1, p,
                      &t->alt[ALT_HMAC1]);
  t->step = time_alt("chain step: seed + next key (wh_chain_step)", p_step, s_step, p,
                     &t->alt[ALT_STEP]);
  t->hkdf64 = time_alt("HKDF-SHA256 -> 64 B, 32 B salt, 32 B ikm (root KDF)", p_hkdf64, s_hkdf64,
                       p, &t->alt[ALT_HKDF64]);
  t->hkdf64_x3dh = time_alt("HKDF-SHA256 -> 64 B, 160 B ikm (X3DH)", p_hkdf64_x3dh,
                            s_hkdf64_x3dh, p, &t->alt[ALT_HKDF64_X3DH]);
  t->hkdf80 = time_alt("HKDF-SHA256 -> 80 B, 32 B ikm (message keys)", p_hkdf80, s_hkdf80, p,
                       &t->alt[ALT_HKDF80]);
  print_prim("XEdDSA verify, 33 B message (wh_xeddsa_verify)",
             t->verify = time_op(p_verify, p, NULL, NULL));
  time_message_prims(p, SMALL_LEN, t->mac_small_len, &t->cbc_enc_small, &t->cbc_dec_small,
                     &t->mac_small, &t->alt[ALT_MAC_SMALL]);
  time_message_prims(p, BIG_LEN, t->mac_big_len, &t->cbc_enc_big, &t->cbc_dec_big, &t->mac_big,
                     &t->alt[ALT_MAC_BIG]);

  char label[96];
  p->g_len = t->g_signed_len;
  if (wh_xeddsa_sign(p->gsig, p->a.priv, p->pt, p->g_len, z) != 0)
    die("wh_xeddsa_sign", WHISPER_EINTERNAL, NULL);
  memcpy(p->z, z, sizeof p->z);
  printf("  groups:\n");
  t->hkdf48 = time_alt("HKDF-SHA256 -> 48 B, 32 B ikm (group message keys)", p_hkdf48, s_hkdf48,
                       p, &t->alt[ALT_HKDF48]);
  snprintf(label, sizeof label, "XEdDSA sign, %zu B message (wh_xeddsa_sign)", p->g_len);
  print_prim(label, t->sign_g = time_op(p_sign_g, p, NULL, NULL));
  snprintf(label, sizeof label, "XEdDSA verify, %zu B message (wh_xeddsa_verify)", p->g_len);
  print_prim(label, t->verify_g = time_op(p_verify_g, p, NULL, NULL));
  print_prim("64 random bytes per signature (wh_random; no floor)",
             t->rand64 = time_op(p_rand64, p, NULL, NULL));
  p->pt_len = t->content_len;
  p->mac_len = t->content_mac_len;
  snprintf(label, sizeof label, "AES-256-CBC encrypt, %zu B (the SKDM's Content)", p->pt_len);
  print_prim(label, t->cbc_enc_content = time_op(p_cbc_enc, p, NULL, NULL));
  snprintf(label, sizeof label, "HMAC-SHA256 over %zu B (its 1:1 message MAC)", p->mac_len);
  t->mac_content = time_alt(label, p_mac, s_mac, p, &t->alt[ALT_MAC_CONTENT]);
  printf("\n");
  EVP_PKEY_CTX_free(p->dh_ctx);
  EVP_PKEY_free(priv);
  EVP_PKEY_free(peer);
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
  TRY("whisper_identity_generate", d->ctx, whisper_identity_generate(d->ctx, name, 1, 0, NOW_MS));
}

static void dev_free(dev *d) {
  whisper_ctx_free(d->ctx);
  whisper_store_free(d->st);
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
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  int type;
  TRY("whisper_bundle_generate", b->ctx, whisper_bundle_generate(b->ctx, 1, &bundle));
  TRY("whisper_session_start", a->ctx, whisper_session_start(a->ctx, b->name, 1, &bundle, NOW_MS));
  xfer(a, 1, b, 1, pt, SMALL_LEN, 1, &type);
  if (type != WHISPER_MSG_PREKEY) die("the first message (not a PreKey message)", -1, NULL);
  xfer(b, 1, a, 1, pt, SMALL_LEN, 1, &type);
  if (type != WHISPER_MSG_WHISPER) die("the answer (not a SignalMessage)", -1, NULL);
}

/* --- groups ------------------------------------------------------------------ */

/* The distribution (group) every group figure uses. */
static const uint8_t G_UUID[WHISPER_DISTRIBUTION_ID_LEN] = {
    0x6b, 0x2f, 0x1e, 0x9a, 0x40, 0x07, 0x4c, 0x3d, 0x9e, 0x51, 0x22, 0x8c, 0x0f, 0x7a, 0x93, 0x14};

/* b learns a's (device 1) sender key: a's SKDM, processed directly. */
static void group_join(dev *a, dev *b) {
  whisper_buf *skdm = NULL;
  TRY("whisper_sender_key_generate", a->ctx, whisper_sender_key_generate(a->ctx, G_UUID, &skdm));
  TRY("whisper_sender_key_process", b->ctx,
      whisper_sender_key_process(b->ctx, a->name, 1, skdm->data, skdm->len));
  whisper_buf_free(skdm);
}

/* Decrypts a group message at `to` as coming from (from, 1); `check`
 * compares the plaintext too. Frees msg. */
static void group_recv(dev *from, dev *to, whisper_buf *msg, const uint8_t *pt, size_t len,
                       int check) {
  whisper_buf *out = NULL;
  TRY("whisper_sender_key_decrypt", to->ctx,
      whisper_sender_key_decrypt(to->ctx, from->name, 1, msg->data, msg->len, &out));
  if (out->len != len || (check && len && memcmp(out->data, pt, len) != 0))
    die("the group round trip (wrong plaintext)", WHISPER_EINTERNAL, NULL);
  whisper_buf_free(msg);
  whisper_buf_free(out);
}

/* A group message from `from` decrypted at `to`. Returns the length of the
 * wire message. */
static size_t group_xfer(dev *from, dev *to, const uint8_t *pt, size_t len, int check) {
  whisper_buf *msg = NULL;
  TRY("whisper_sender_key_encrypt", from->ctx, whisper_sender_key_encrypt(from->ctx, G_UUID, pt, len, &msg));
  size_t wire = msg->len;
  group_recv(from, to, msg, pt, len, check);
  return wire;
}

/* A sender with 1:1 sessions with FANOUT member devices: FANOUT_NAMES
 * receiving contexts, each under FANOUT / FANOUT_NAMES device ids (the
 * sender only needs the sessions; each comes from a fresh bundle of the
 * context it names, so that the receivers can decrypt what they get). */
typedef struct fanout_args {
  dev *sender;
  dev *recv; /* FANOUT_NAMES */
  int ack;   /* 1: each session acknowledged (a reply received), else PreKey phase */
  whisper_device_t devices[FANOUT];
  whisper_envelope_t env[FANOUT];
} fanout_args;

#define FANOUT_PER_NAME (FANOUT / FANOUT_NAMES)

static void fanout_setup(fanout_args *f, const uint8_t *pt) {
  f->env[0].size = sizeof f->env[0]; /* the library repeats it in every element */
  for (int i = 0; i < FANOUT; i++) {
    dev *r = &f->recv[i / FANOUT_PER_NAME];
    uint32_t dev_id = (uint32_t)(i % FANOUT_PER_NAME) + 1;
    whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
    int type;
    f->devices[i].name = r->name;
    f->devices[i].device_id = dev_id;
    TRY("whisper_bundle_generate", r->ctx, whisper_bundle_generate(r->ctx, 1, &bundle));
    TRY("whisper_session_start", f->sender->ctx,
        whisper_session_start(f->sender->ctx, r->name, dev_id, &bundle, NOW_MS));
    if (f->ack) { /* a first message and the answer: the session is acknowledged */
      xfer(f->sender, 1, r, dev_id, pt, SMALL_LEN, 1, &type);
      if (type != WHISPER_MSG_PREKEY) die("the first message (not a PreKey message)", -1, NULL);
      xfer(r, dev_id, f->sender, 1, pt, SMALL_LEN, 1, &type);
      if (type != WHISPER_MSG_WHISPER) die("the answer (not a SignalMessage)", -1, NULL);
    }
  }
}

/* One distribution to all FANOUT devices: every envelope must be there. */
static void op_distribute(void *v) {
  fanout_args *f = v;
  TRY("whisper_sender_key_distribute", f->sender->ctx,
      whisper_sender_key_distribute(f->sender->ctx, G_UUID, f->devices, FANOUT, NOW_MS, f->env));
  for (int i = 0; i < FANOUT; i++) {
    if (f->env[i].status != WHISPER_OK)
      die("whisper_sender_key_distribute (a device)", f->env[i].status, NULL);
    whisper_buf_free(f->env[i].body);
    f->env[i].body = NULL;
  }
}

/* An untimed distribution, checked: every envelope has the expected type,
 * each receiving context processes one of its envelopes
 * (whisper_sender_key_receive_distribution) and then decrypts a group message
 * from the sender. Sets *content_len (the Content carrying the SKDM: the
 * 1:1 plaintext) and *mac_len (what the 1:1 MAC covers: 66 + the
 * SignalMessage less its MAC). */
static void fanout_check(fanout_args *f, const uint8_t *pt, size_t *content_len, size_t *mac_len) {
  whisper_buf *skdm = NULL, *msg = NULL;
  int want_type = f->ack ? WHISPER_MSG_WHISPER : WHISPER_MSG_PREKEY;
  TRY("whisper_sender_key_distribute", f->sender->ctx,
      whisper_sender_key_distribute(f->sender->ctx, G_UUID, f->devices, FANOUT, NOW_MS, f->env));
  for (int i = 0; i < FANOUT; i++) {
    if (f->env[i].status != WHISPER_OK)
      die("whisper_sender_key_distribute (a device)", f->env[i].status, NULL);
    if (f->env[i].type != want_type) die("whisper_sender_key_distribute (the message type)", -1, NULL);
  }
  size_t inner = f->env[0].body->len;
  if (!f->ack) { /* the SignalMessage inside the PreKey message */
    Whisper__Wire__PreKeySignalMessage *pk = whisper__wire__pre_key_signal_message__unpack(
        NULL, f->env[0].body->len - 1, f->env[0].body->data + 1);
    if (pk == NULL || !pk->has_message) die("reading a PreKey message", -1, NULL);
    inner = pk->message.len;
    whisper__wire__pre_key_signal_message__free_unpacked(pk, NULL);
  }
  *mac_len = MAC_IK_LEN + inner - MAC_LEN;
  TRY("whisper_sender_key_generate", f->sender->ctx, whisper_sender_key_generate(f->sender->ctx, G_UUID, &skdm));
  Whisper__Wire__Content c = WHISPER__WIRE__CONTENT__INIT;
  c.has_sender_key_distribution_message = 1;
  c.sender_key_distribution_message = (ProtobufCBinaryData){skdm->len, skdm->data};
  *content_len = whisper__wire__content__get_packed_size(&c);
  whisper_buf_free(skdm);
  for (int n = 0; n < FANOUT_NAMES; n++) {
    const whisper_envelope_t *e = &f->env[n * FANOUT_PER_NAME + n % FANOUT_PER_NAME];
    TRY("whisper_sender_key_receive_distribution", f->recv[n].ctx,
        whisper_sender_key_receive_distribution(f->recv[n].ctx, f->sender->name, 1, e->type,
                                           e->body->data, e->body->len));
  }
  for (int i = 0; i < FANOUT; i++) {
    whisper_buf_free(f->env[i].body);
    f->env[i].body = NULL;
  }
  TRY("whisper_sender_key_encrypt", f->sender->ctx,
      whisper_sender_key_encrypt(f->sender->ctx, G_UUID, pt, SMALL_LEN, &msg));
  for (int n = 0; n < FANOUT_NAMES; n++) {
    whisper_buf *copy = whisper_buf_new(msg->data, msg->len);
    if (copy == NULL) die("whisper_buf_new", WHISPER_ENOMEM, NULL);
    group_recv(f->sender, &f->recv[n], copy, pt, SMALL_LEN, 1);
  }
  whisper_buf_free(msg);
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

/* Figure 3's floor as one operation: the primitives one 100 B message
 * costs its sender and its receiver, called in the order the protocol calls
 * them (session.c: the chain step and HKDF-80 of message_keys(), CBC and
 * the MAC on the way out; the same step and HKDF, the MAC and CBC on the
 * way in), on the same sizes, and nothing else. The two chain keys start
 * equal and step together, so the receiver derives the sender's keys and
 * its decryption is checked. */
typedef struct floor_one {
  uint8_t ck_send[32], ck_recv[32], seed[32], keys[80], pt[SMALL_LEN], dec[SMALL_LEN + 16];
  uint8_t ct[SMALL_LEN + 16], mac[32];
  uint8_t *mac_in; /* mac_len bytes: the MAC's input of a real 100 B message */
  size_t mac_len;
} floor_one;

static void op_floor_one_way(void *v) {
  floor_one *f = v;
  size_t n = 0;
  wh_chain_step(f->seed, f->ck_send);
  wh_hkdf(f->keys, 80, NULL, 0, f->seed, 32, "WhisperMessageKeys");
  if (wh_cbc_encrypt(f->ct, f->keys, f->keys + 64, f->pt, SMALL_LEN) != 0)
    die("wh_cbc_encrypt (figure 3's floor)", WHISPER_EINTERNAL, NULL);
  wh_hmac(f->mac, f->keys + 32, 32, f->mac_in, f->mac_len);
  wh_chain_step(f->seed, f->ck_recv);
  wh_hkdf(f->keys, 80, NULL, 0, f->seed, 32, "WhisperMessageKeys");
  wh_hmac(f->mac, f->keys + 32, 32, f->mac_in, f->mac_len);
  if (wh_cbc_decrypt(f->dec, &n, f->keys, f->keys + 64, f->ct, wh_cbc_len(SMALL_LEN)) != 0 ||
      n != SMALL_LEN)
    die("wh_cbc_decrypt (figure 3's floor)", WHISPER_EINTERNAL, NULL);
}

/* A figure timed beside its floor: SLICES pairs of slices, each pair a
 * slice of the floor's operation then one of the figure's, back to back, so
 * that both see the machine in the same state (a shared machine's speed
 * drifts between the primitives' loops at the start and a figure timed
 * minutes later). Each is the fastest of its slices; *floor_out gets the
 * floor's. The figure is marked if its chosen slice was disturbed. */
static double paired_slices(op_fn fig, void *fig_arg, op_fn flo, void *flo_arg, double *floor_out,
                            unsigned long *calls, double *mean) {
  double best = 0, best_floor = 0, total = 0;
  unsigned long n = 0, nf = 0;
  run_for(flo, flo_arg, g_warmup_s, NULL);
  run_for(fig, fig_arg, g_warmup_s, NULL);
  for (int i = 0; i < SLICES; i++) {
    double pf = run_for(flo, flo_arg, g_loop_s / SLICES, &nf);
    if (i == 0 || pf < best_floor) best_floor = pf;
    unsigned long before = n;
    double per = run_for(fig, fig_arg, g_loop_s / SLICES, &n);
    total += per * (double)(n - before);
    if (i == 0 || per < best) {
      best = per;
      g_figure_busy = g_slice_busy;
      g_figure_cpu = g_slice_cpu;
    }
  }
  if (calls) *calls = n;
  if (mean) *mean = total / (double)n;
  *floor_out = best_floor;
  return best;
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

typedef struct group_args {
  dev *a, *b;
  const uint8_t *pt;
  whisper_buf *batch[GROUP_BATCH];
} group_args;

static void op_group_encrypt(void *v) {
  group_args *g = v;
  whisper_buf *msg = NULL;
  TRY("whisper_sender_key_encrypt", g->a->ctx,
      whisper_sender_key_encrypt(g->a->ctx, G_UUID, g->pt, SMALL_LEN, &msg));
  whisper_buf_free(msg);
}

static void op_group_both(void *v) {
  group_args *g = v;
  group_xfer(g->a, g->b, g->pt, SMALL_LEN, 0);
}

/* Batches of GROUP_BATCH group decrypts, for at least `secs` of timed
 * decrypts; the batch's messages are encrypted before its clock starts.
 * Returns seconds per decrypt and adds the decrypts made to *calls. */
static double group_decrypt_run(void *v, double secs, unsigned long *calls_out) {
  group_args *g = v;
  double timed = 0, cpu = 0;
  unsigned long calls = 0;
  while (timed < secs) {
    for (int i = 0; i < GROUP_BATCH; i++)
      TRY("whisper_sender_key_encrypt", g->a->ctx,
          whisper_sender_key_encrypt(g->a->ctx, G_UUID, g->pt, SMALL_LEN, &g->batch[i]));
    double c0 = thread_cpu_s(), t0 = now_s();
    for (int i = 0; i < GROUP_BATCH; i++) group_recv(g->a, g->b, g->batch[i], g->pt, SMALL_LEN, 0);
    timed += now_s() - t0;
    cpu += thread_cpu_s() - c0;
    calls += GROUP_BATCH;
  }
  g_slice_busy = cpu / timed;
  if (calls_out) *calls_out += calls;
  return timed / (double)calls;
}

/* Batches of SETUP_BATCH set-ups, for at least `secs` of timed set-ups; the
 * bundles of a batch are made before its clock starts. Returns seconds per
 * set-up and adds the set-ups made to *calls (may be NULL). */
static double setup_run(void *v, double secs, unsigned long *calls_out) {
  setup_args *s = v;
  double timed = 0, cpu = 0;
  unsigned long calls = 0;
  while (timed < secs) {
    for (int i = 0; i < SETUP_BATCH; i++) {
      s->bundles[i].size = sizeof s->bundles[i];
      TRY("whisper_bundle_generate", s->bob->ctx, whisper_bundle_generate(s->bob->ctx, 1, &s->bundles[i]));
    }
    double c0 = thread_cpu_s(), t0 = now_s();
    for (int i = 0; i < SETUP_BATCH; i++) setup_once(s, &s->bundles[i]);
    timed += now_s() - t0;
    cpu += thread_cpu_s() - c0;
    calls += SETUP_BATCH;
  }
  g_slice_busy = cpu / timed;
  if (calls_out) *calls_out += calls;
  return timed / (double)calls;
}

/* --- attachments (16) ------------------------------------------------------------ */

/* Figure 16: a 100 MiB plaintext in memory encrypted (whisper_attachment_
 * encrypt_*, fed 1 MiB at a time) into a sink that keeps the blob, then the
 * blob decrypted (whisper_attachment_decrypt_*, with its incremental MAC,
 * fed 1 MiB at a time) into a sink that counts the plaintext (and, in the
 * untimed check, compares it). The same buffers serve the floor's
 * primitives (time_att_prims()). */
typedef struct att_args {
  uint8_t key[WHISPER_ATTACHMENT_KEY_LEN], iv[WHISPER_ATTACHMENT_IV_LEN];
  uint8_t *pt;      /* ATT_LEN of plaintext, then the padding's zeros, + 16 (room for a CBC decrypt) */
  uint8_t *blob;    /* blob_size */
  uint64_t padded, blob_size;
  uint64_t kept;     /* blob bytes the encryptor's sink kept */
  uint64_t released; /* plaintext bytes the decryptor's sink got */
  int check;         /* the decryptor's sink compares with pt */
  whisper_attachment_result_t res;
  uint8_t *macs; /* the floor's incremental MACs (to compare with res's) */
  size_t nmacs;
  uint8_t out[32];
} att_args;

#define ATT_SINK_ERR 1000 /* a sink's "stop": not a whisper code */

static int att_keep(void *user, const uint8_t *data, size_t len) {
  att_args *a = user;
  if (len > a->blob_size - a->kept) return ATT_SINK_ERR;
  memcpy(a->blob + a->kept, data, len);
  a->kept += len;
  return 0;
}

static int att_plain(void *user, const uint8_t *data, size_t len) {
  att_args *a = user;
  if (len > ATT_LEN - a->released ||
      (a->check && memcmp(data, a->pt + a->released, len) != 0))
    return ATT_SINK_ERR;
  a->released += len;
  return 0;
}

static void att_encrypt(att_args *a) {
  whisper_attachment_encryptor *e = NULL;
  whisper_attachment_result_clear(&a->res);
  a->kept = 0;
  TRY("whisper_attachment_encrypt_new", NULL,
      whisper_attachment_encrypt_new(&e, a->key, a->iv, ATT_LEN, att_keep, a));
  for (size_t off = 0; off < ATT_LEN; off += ATT_PIECE)
    TRY("whisper_attachment_encrypt_update", NULL,
        whisper_attachment_encrypt_update(e, a->pt + off, ATT_PIECE));
  TRY("whisper_attachment_encrypt_finish", NULL, whisper_attachment_encrypt_finish(e, &a->res));
  whisper_attachment_encrypt_free(e);
  if (a->kept != a->blob_size || a->res.blob_size != a->blob_size)
    die("whisper_attachment_encrypt (the blob's size)", WHISPER_EINTERNAL, NULL);
}

static void att_decrypt(att_args *a) {
  whisper_attachment_decryptor *d = NULL;
  whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;
  x.key = a->key;
  x.plaintext_size = ATT_LEN;
  x.digest = a->res.digest;
  x.plaintext_hash = a->res.plaintext_hash;
  x.incremental_mac = a->res.incremental_mac->data;
  x.incremental_mac_len = a->res.incremental_mac->len;
  x.chunk_size = a->res.chunk_size;
  a->released = 0;
  TRY("whisper_attachment_decrypt_new", NULL, whisper_attachment_decrypt_new(&d, &x, att_plain, a));
  for (uint64_t off = 0; off < a->blob_size; off += ATT_PIECE) {
    size_t n = a->blob_size - off < ATT_PIECE ? (size_t)(a->blob_size - off) : ATT_PIECE;
    TRY("whisper_attachment_decrypt_update", NULL,
        whisper_attachment_decrypt_update(d, a->blob + off, n));
  }
  TRY("whisper_attachment_decrypt_finish", NULL, whisper_attachment_decrypt_finish(d));
  if (whisper_attachment_decrypt_released(d) != ATT_LEN || a->released != ATT_LEN)
    die("whisper_attachment_decrypt (the plaintext's size)", WHISPER_EINTERNAL, NULL);
  whisper_attachment_decrypt_free(d);
}

static void op_attachment(void *v) {
  att_args *a = v;
  att_encrypt(a);
  att_decrypt(a);
}

/* The buffers, a random key, IV and plaintext, and one round trip, untimed
 * and checked (the decrypted plaintext compared byte for byte). */
static att_args *att_new(void) {
  att_args *a = calloc(1, sizeof *a);
  if (a == NULL) die("calloc", WHISPER_ENOMEM, NULL);
  a->padded = whisper_attachment_padded_size(ATT_LEN);
  a->blob_size = whisper_attachment_blob_size(ATT_LEN);
  a->res.size = sizeof a->res;
  a->pt = calloc(1, (size_t)a->padded + 16);
  a->blob = malloc((size_t)a->blob_size);
  if (a->pt == NULL || a->blob == NULL) die("malloc (figure 16)", WHISPER_ENOMEM, NULL);
  randombytes_buf(a->key, sizeof a->key);
  randombytes_buf(a->iv, sizeof a->iv);
  randombytes_buf(a->pt, ATT_LEN);
  att_encrypt(a);
  a->check = 1;
  att_decrypt(a);
  a->check = 0;
  return a;
}

static void att_free(att_args *a) {
  if (a == NULL) return;
  whisper_attachment_result_clear(&a->res);
  free(a->pt);
  free(a->blob);
  free(a->macs);
  sodium_memzero(a->key, sizeof a->key);
  free(a);
}

/* The floor's primitives, OpenSSL's, on the same bytes: */
static void pa_cbc_enc(void *v) { /* the padded plaintext -> the blob's ciphertext */
  att_args *a = v;
  if (wh_cbc_encrypt(a->blob + WHISPER_ATTACHMENT_IV_LEN, a->key, a->iv, a->pt, (size_t)a->padded) !=
      0)
    die("wh_cbc_encrypt", WHISPER_EINTERNAL, NULL);
}
static void pa_cbc_dec(void *v) { /* the blob's ciphertext -> the padded plaintext (the same bytes) */
  att_args *a = v;
  size_t n = 0;
  if (wh_cbc_decrypt(a->pt, &n, a->key, a->iv, a->blob + WHISPER_ATTACHMENT_IV_LEN,
                     (size_t)(a->blob_size - WHISPER_ATTACHMENT_IV_LEN - 32)) != 0 ||
      n != a->padded)
    die("wh_cbc_decrypt", WHISPER_EINTERNAL, NULL);
}
static void pa_hmac(void *v) { /* the blob's MAC: over IV || ciphertext */
  att_args *a = v;
  wh_hmac(a->out, a->key + 32, 32, a->blob, (size_t)(a->blob_size - 32));
}
static void pa_imac(void *v) { /* libsignal's incremental MAC over the blob: a clone each chunk */
  att_args *a = v;
  uint32_t chunk = a->res.chunk_size;
  wh_hmac_ctx h, c;
  size_t k = 0;
  if (wh_hmac_init(&h, a->key + 32, 32) != 0) die("wh_hmac_init", WHISPER_EINTERNAL, NULL);
  for (uint64_t off = 0; off < a->blob_size; off += chunk) {
    size_t n = a->blob_size - off < chunk ? (size_t)(a->blob_size - off) : chunk;
    if (wh_hmac_update(&h, a->blob + off, n) != 0) die("wh_hmac_update", WHISPER_EINTERNAL, NULL);
    if (n == chunk) { /* a boundary: the MAC so far, the running state kept */
      if (wh_hmac_dup(&c, &h) != 0 || k >= a->nmacs || wh_hmac_final(&c, a->macs + 32 * k++) != 0)
        die("wh_hmac_dup", WHISPER_EINTERNAL, NULL);
      wh_hmac_free(&c);
    }
  }
  if (k >= a->nmacs || wh_hmac_final(&h, a->macs + 32 * k++) != 0)
    die("wh_hmac_final", WHISPER_EINTERNAL, NULL);
  wh_hmac_free(&h);
}
static void pa_sha_blob(void *v) { /* the digest */
  att_args *a = v;
  if (wh_sha256(a->out, a->blob, (size_t)a->blob_size) != 0) die("wh_sha256", WHISPER_EINTERNAL, NULL);
}
static void pa_sha_pt(void *v) { /* the plaintext's hash */
  att_args *a = v;
  if (wh_sha256(a->out, a->pt, ATT_LEN) != 0) die("wh_sha256", WHISPER_EINTERNAL, NULL);
}

typedef struct att_prims {
  double cbc_enc, cbc_dec, hmac, imac, sha_blob, sha_pt;
  double floor; /* the sum over both directions */
} att_prims;

/* Times the floor's primitives over the figure's bytes, then checks that
 * they computed what the format did (the blob hashes to its digest, its
 * MAC and incremental MAC are the encryptor's, the plaintext's hash too):
 * the floor computes exactly what an attachment must. */
static void time_att_prims(att_args *a, att_prims *t) {
  char label[96];
  a->nmacs = a->res.incremental_mac->len / 32;
  a->macs = malloc(a->res.incremental_mac->len);
  if (a->macs == NULL) die("malloc", WHISPER_ENOMEM, NULL);
  printf("Attachment primitives (16; OpenSSL, over the figure's %u MiB: blob %llu B, padded\n"
         "plaintext %llu B, incremental MAC chunk %u B):\n",
         ATT_LEN >> 20, (unsigned long long)a->blob_size, (unsigned long long)a->padded,
         a->res.chunk_size);
  snprintf(label, sizeof label, "AES-256-CBC encrypt, %llu B (wh_cbc_encrypt)",
           (unsigned long long)a->padded);
  print_prim(label, t->cbc_enc = time_op(pa_cbc_enc, a, NULL, NULL));
  snprintf(label, sizeof label, "AES-256-CBC decrypt, %llu B (wh_cbc_decrypt)",
           (unsigned long long)(a->padded / 16 + 1) * 16);
  print_prim(label, t->cbc_dec = time_op(pa_cbc_dec, a, NULL, NULL));
  snprintf(label, sizeof label, "HMAC-SHA256 over IV || ciphertext, %llu B (wh_hmac)",
           (unsigned long long)(a->blob_size - 32));
  print_prim(label, t->hmac = time_op(pa_hmac, a, NULL, NULL));
  if (memcmp(a->out, a->blob + a->blob_size - 32, 32) != 0)
    die("the floor's HMAC (not the blob's MAC)", WHISPER_EINTERNAL, NULL);
  snprintf(label, sizeof label, "incremental MAC over %llu B (wh_hmac_*, a dup each chunk)",
           (unsigned long long)a->blob_size);
  print_prim(label, t->imac = time_op(pa_imac, a, NULL, NULL));
  if (memcmp(a->macs, a->res.incremental_mac->data, a->res.incremental_mac->len) != 0)
    die("the floor's incremental MAC (not the encryptor's)", WHISPER_EINTERNAL, NULL);
  snprintf(label, sizeof label, "SHA-256 of the blob, %llu B (wh_sha256)",
           (unsigned long long)a->blob_size);
  print_prim(label, t->sha_blob = time_op(pa_sha_blob, a, NULL, NULL));
  if (memcmp(a->out, a->res.digest, 32) != 0)
    die("the floor's digest (not the blob's: the CBC encrypt differs)", WHISPER_EINTERNAL, NULL);
  snprintf(label, sizeof label, "SHA-256 of the plaintext, %u B (wh_sha256)", ATT_LEN);
  print_prim(label, t->sha_pt = time_op(pa_sha_pt, a, NULL, NULL));
  if (memcmp(a->out, a->res.plaintext_hash, 32) != 0)
    die("the floor's plaintext hash (not the encryptor's)", WHISPER_EINTERNAL, NULL);
  t->floor = t->cbc_enc + t->cbc_dec + 2 * t->hmac + 2 * t->imac + 2 * t->sha_blob + 2 * t->sha_pt;
  printf("\n");
}

/* --- --attachment-rss ------------------------------------------------------------ */

/* A 1 GiB attachment encrypted to a file and decrypted from it, in a
 * process that does nothing else: the plaintext comes from a generator (64
 * KiB at a time, as an app reads a file), the encryptor's sink writes the
 * blob to a file (unlinked at once), whisper_attachment_decrypt_source()
 * reads it back (pread, each chunk twice), and the decryptor's sink
 * compares with the plaintext generated again. Prints the time and the
 * process's peak resident memory; then, apart, what the fed decryptor
 * (decrypt_update, which holds a chunk) adds. */
#define RSS_LEN (1024ull * 1024 * 1024)
#define RSS_PIECE (64u * 1024u)
#define RSS_CMP 4096u /* the sink's comparison buffer */
#define RSS_LIMIT_KIB (8u * 1024u)

/* The plaintext's 8-byte word i: splitmix64(i). Cheap and deterministic,
 * so any part can be made again from its offset alone. */
static uint64_t gen_word(uint64_t i) {
  uint64_t z = i * 0x9e3779b97f4a7c15ull + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* The plaintext's bytes [off, off + len), off a multiple of 8. */
static void gen_fill(uint8_t *out, uint64_t off, size_t len) {
  uint64_t w = off / 8;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t v = gen_word(w++);
    memcpy(out + i, &v, 8);
  }
  if (i < len) {
    uint64_t v = gen_word(w);
    memcpy(out + i, &v, len - i);
  }
}

typedef struct rss_run {
  int fd;              /* the blob's file */
  uint64_t blob_bytes; /* blob bytes out of the encryptor */
  uint64_t read_bytes; /* blob bytes the decryptor read */
  uint64_t plain_at;   /* plaintext bytes the decryptor released */
  int mismatch, io_errno;
  uint8_t cmp[RSS_CMP + 8];
} rss_run;

/* The encryptor's sink: the blob to the file. */
static int rss_to_file(void *user, const uint8_t *data, size_t len) {
  rss_run *r = user;
  for (size_t done = 0; done < len;) {
    ssize_t k = write(r->fd, data + done, len - done);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      r->io_errno = k < 0 ? errno : EIO;
      return ATT_SINK_ERR;
    }
    done += (size_t)k;
  }
  r->blob_bytes += len;
  return 0;
}

/* The decryptor's source: the file, at any offset. */
static int rss_source(void *user, uint64_t offset, uint8_t *buf, size_t len, size_t *got) {
  rss_run *r = user;
  size_t n = 0;
  while (n < len) {
    ssize_t k = pread(r->fd, buf + n, len - n, (off_t)(offset + n));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      r->io_errno = errno;
      return ATT_SINK_ERR;
    }
    if (k == 0) break; /* the file's end */
    n += (size_t)k;
  }
  *got = n;
  r->read_bytes += n;
  return 0;
}

/* The decryptor's sink: the plaintext must be the generator's. */
static int rss_compare(void *user, const uint8_t *data, size_t len) {
  rss_run *r = user;
  while (len) {
    uint64_t at = r->plain_at, base = at & ~7ull;
    size_t skip = (size_t)(at - base), n = len < RSS_CMP ? len : RSS_CMP;
    gen_fill(r->cmp, base, skip + n);
    if (at + n > RSS_LEN || memcmp(r->cmp + skip, data, n) != 0) {
      r->mismatch = 1;
      return ATT_SINK_ERR;
    }
    r->plain_at += n;
    data += n;
    len -= n;
  }
  return 0;
}

/* This process's memory from /proc/self/status, in KiB (-1: not said):
 * VmRSS, VmHWM (its peak), and VmRSS's two parts: RssAnon (the heap,
 * mmap'd buffers, stacks) and RssFile (pages of the program and its shared
 * libraries: code and read-only data, shared with every process that maps
 * them, counted once touched, and the kernel maps up to 16 neighbouring
 * pages already in the page cache on each fault). */
typedef struct proc_mem {
  long rss, hwm, anon, file;
} proc_mem;

static void proc_mem_read(proc_mem *m) {
  char line[256];
  m->rss = m->hwm = m->anon = m->file = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) m->rss = atol(line + 6);
    if (strncmp(line, "VmHWM:", 6) == 0) m->hwm = atol(line + 6);
    if (strncmp(line, "RssAnon:", 8) == 0) m->anon = atol(line + 8);
    if (strncmp(line, "RssFile:", 8) == 0) m->file = atol(line + 8);
  }
  fclose(f);
}

static long ru_maxrss_kib(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (long)ru.ru_maxrss : -1;
}

/* The highest of VmRSS, VmHWM and ru_maxrss read so far (the kernel's
 * counters are approximate: VmHWM read later may come out a little lower
 * than a VmRSS read before). */
static long g_peak_kib = -1;

static void peak_note(long kib) {
  if (kib > g_peak_kib) g_peak_kib = kib;
}

static void print_rss(const char *when) {
  proc_mem m;
  proc_mem_read(&m);
  peak_note(m.rss);
  peak_note(m.hwm);
  peak_note(ru_maxrss_kib());
  printf("  %-31s VmRSS %6ld KiB (anon %5ld, file %5ld), VmHWM %6ld, ru_maxrss %6ld\n", when,
         m.rss, m.anon, m.file, m.hwm, ru_maxrss_kib());
}

/* Where the resident pages are, from /proc/self/smaps: the Rss of each
 * file's mappings summed (the anonymous ones as "anon"). */
static void print_mappings(const char *when) {
  struct {
    char name[48];
    long kib;
  } t[40];
  int nt = 0;
  char line[512], cur[48] = "anon";
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b;
    char perms[8], path[256] = "";
    if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &a, &b, perms, path) >= 3) {
      const char *base = strrchr(path, '/');
      const char *name = base ? base + 1 : path[0] == '[' && strcmp(path, "[heap]") ? path : "anon";
      snprintf(cur, sizeof cur, "%.47s", name); /* (a longer name cut) */
      continue;
    }
    if (strncmp(line, "Rss:", 4) != 0) continue;
    long kib = atol(line + 4);
    int i = 0;
    while (i < nt && strcmp(t[i].name, cur) != 0) i++;
    if (i == nt) {
      if (nt == (int)(sizeof t / sizeof t[0])) continue;
      snprintf(t[nt].name, sizeof t[nt].name, "%s", cur);
      t[nt++].kib = 0;
    }
    t[i].kib += kib;
  }
  fclose(f);
  printf("  %-31s", when);
  for (int i = 0; i < nt; i++)
    if (t[i].kib) printf(" %s %ld", t[i].name, t[i].kib);
  printf(" (KiB)\n");
}

static void print_machine(void);
static int fs_describe(const char *path, char *out, size_t n);

/* The blob's file: a new file under --dir, else under the first of /tmp,
 * /var/tmp and the working directory that is not in memory (a tmpfs file
 * would be RAM, if not this process's), unlinked at once. */
static int rss_file_open(char *where, size_t n) {
  static const char *const cands[] = {"/tmp", "/var/tmp", "."};
  const char *base = g_dir_opt;
  char path[PATH_MAX];
  for (size_t i = 0; base == NULL && i < sizeof cands / sizeof cands[0]; i++)
    if (access(cands[i], W_OK) == 0 && !fs_describe(cands[i], where, n)) base = cands[i];
  if (base == NULL) base = "/tmp";
  snprintf(path, sizeof path, "%s/whisper-bench-blob-XXXXXX", base);
  int fd = mkstemp(path);
  if (fd < 0) {
    fprintf(stderr, "whisper-bench: mkstemp(%s): %s\n", path, strerror(errno));
    exit(1);
  }
  unlink(path);
  int mem = fs_describe(base, where, n);
  if (mem) snprintf(where + strlen(where), n - strlen(where), " (IN MEMORY)");
  return fd;
}

static void rss_expect(whisper_attachment_expect_t *x, const uint8_t *key,
                       const whisper_attachment_result_t *res) {
  memset(x, 0, sizeof *x);
  x->size = sizeof *x;
  x->key = key;
  x->plaintext_size = RSS_LEN;
  x->digest = res->digest;
  x->plaintext_hash = res->plaintext_hash;
  x->incremental_mac = res->incremental_mac->data;
  x->incremental_mac_len = res->incremental_mac->len;
  x->chunk_size = res->chunk_size;
}

/* The decryption's checks: OK, all the generator's bytes, released. */
static void rss_check(int rc, const rss_run *r, const whisper_attachment_decryptor *d,
                      const char *what) {
  if (rc == ATT_SINK_ERR && r->mismatch)
    die("the decrypted plaintext (not the generator's)", rc, NULL);
  if (rc == ATT_SINK_ERR) {
    fprintf(stderr, "whisper-bench: the blob's file: %s\n", strerror(r->io_errno));
    exit(1);
  }
  if (rc != WHISPER_OK) die(what, rc, NULL);
  if (r->mismatch || r->plain_at != RSS_LEN || whisper_attachment_decrypt_released(d) != RSS_LEN)
    die("the decrypted plaintext (not all the generator's)", WHISPER_EINTERNAL, NULL);
}

/* Decrypts the file with the fed decryptor: the file read once, 64 KiB at a
 * time, into decrypt_update. */
static int rss_decrypt_fed(whisper_attachment_decryptor *d, rss_run *r, uint8_t *buf,
                           uint64_t blob_size) {
  int rc = WHISPER_OK;
  for (uint64_t off = 0; rc == WHISPER_OK && off < blob_size; off += RSS_PIECE) {
    size_t got = 0;
    rc = rss_source(r, off, buf, RSS_PIECE, &got);
    if (rc == WHISPER_OK) rc = whisper_attachment_decrypt_update(d, buf, got);
  }
  return rc == WHISPER_OK ? whisper_attachment_decrypt_finish(d) : rc;
}

static int run_attachment_rss(int fed) {
  uint8_t key[WHISPER_ATTACHMENT_KEY_LEN], iv[WHISPER_ATTACHMENT_IV_LEN];
  whisper_attachment_result_t res = WHISPER_ATTACHMENT_RESULT_INIT;
  whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;
  char where[1024];
  rss_run *r = calloc(1, sizeof *r);
  uint8_t *buf = malloc(RSS_PIECE);
  if (r == NULL || buf == NULL) die("malloc", WHISPER_ENOMEM, NULL);
  print_machine();
  r->fd = rss_file_open(where, sizeof where);
  randombytes_buf(key, sizeof key);
  randombytes_buf(iv, sizeof iv);
  memset(&res, 0, sizeof res);
  res.size = sizeof res;
  printf("--attachment-rss%s: a %llu MiB plaintext from a generator (%u KiB at a time), blob\n"
         "%llu B in a file (unlinked) on %s; load average %.2f\n",
         fed ? "-fed" : "", RSS_LEN >> 20, RSS_PIECE >> 10,
         (unsigned long long)whisper_attachment_blob_size(RSS_LEN), where, load_average());
  proc_mem m0; /* libraries loaded and initialised (wh_crypto_init), nothing encrypted */
  proc_mem_read(&m0);
  print_rss("at the start:");
  print_mappings("at the start, by mapping:");

  /* 1: encrypt, the blob to the file */
  double t0 = now_s(), c0 = cpu_s();
  whisper_attachment_encryptor *e = NULL;
  TRY("whisper_attachment_encrypt_new", NULL,
      whisper_attachment_encrypt_new(&e, key, iv, RSS_LEN, rss_to_file, r));
  for (uint64_t off = 0; off < RSS_LEN; off += RSS_PIECE) {
    gen_fill(buf, off, RSS_PIECE);
    int rc = whisper_attachment_encrypt_update(e, buf, RSS_PIECE);
    if (rc == ATT_SINK_ERR) rss_check(rc, r, NULL, NULL);
    TRY("whisper_attachment_encrypt_update", NULL, rc);
  }
  int rc = whisper_attachment_encrypt_finish(e, &res);
  if (rc == ATT_SINK_ERR) rss_check(rc, r, NULL, NULL);
  TRY("whisper_attachment_encrypt_finish", NULL, rc);
  whisper_attachment_encrypt_free(e);
  double t1 = now_s(), c1 = cpu_s();
  if (r->blob_bytes != res.blob_size || lseek(r->fd, 0, SEEK_END) != (off_t)res.blob_size)
    die("the encryption (the blob's size)", -1, NULL);
  printf("  1. encrypt, blob to the file:   %6.2f s, %6.1f MB/s of plaintext (CPU %.0f%%)\n",
         t1 - t0, (double)RSS_LEN / (t1 - t0) / 1e6, (c1 - c0) / (t1 - t0) * 100);
  print_rss("after 1:");

  /* 2: decrypt from the file: the decryptor reading it (each chunk twice),
   * or fed it (holding each chunk until its MAC checks) */
  whisper_attachment_decryptor *d = NULL;
  rss_expect(&x, key, &res);
  TRY("whisper_attachment_decrypt_new", NULL,
      whisper_attachment_decrypt_new(&d, &x, rss_compare, r));
  rc = fed ? rss_decrypt_fed(d, r, buf, res.blob_size)
           : whisper_attachment_decrypt_source(d, rss_source, r);
  double t2 = now_s(), c2 = cpu_s();
  rss_check(rc, r, d, fed ? "whisper_attachment_decrypt_update/finish"
                          : "whisper_attachment_decrypt_source");
  printf("  2. decrypt from the file:       %6.2f s, %6.1f MB/s of plaintext (CPU %.0f%%), %s\n"
         "     checked: %llu B released, all the generator's; the digest, MAC, incremental MAC\n"
         "     (%zu MACs, chunk %u B) and plaintext hash verified; %llu B of the file read\n",
         t2 - t1, (double)RSS_LEN / (t2 - t1) / 1e6, (c2 - c1) / (t2 - t1) * 100,
         fed ? "fed (decrypt_update)" : "read by the decryptor (decrypt_source)",
         (unsigned long long)RSS_LEN, res.incremental_mac->len / 32, res.chunk_size,
         (unsigned long long)r->read_bytes);
  print_rss("after 2:");
  print_mappings("after 2, by mapping:");
  whisper_attachment_decrypt_free(d);
  whisper_attachment_result_clear(&res);

  /* the generator alone (the same buffer) */
  double g0 = now_s();
  for (uint64_t off = 0; off < RSS_LEN; off += RSS_PIECE) gen_fill(buf, off, RSS_PIECE);
  double g1 = now_s();
  printf("  the generator alone: %.2f s for %llu MiB (in 1 and in 2 once each)\n", g1 - g0,
         RSS_LEN >> 20);
  close(r->fd);
  free(buf);
  free(r);
  sodium_memzero(key, sizeof key);

  /* last: the peak over the process's whole life */
  proc_mem m;
  proc_mem_read(&m);
  long maxrss = ru_maxrss_kib();
  peak_note(m.hwm);
  peak_note(maxrss);
  printf("peak resident memory of the process: %ld KiB (VmHWM %ld, ru_maxrss %ld at the end;\n"
         "the highest of all readings): %s 8 MiB (%u KiB); of it, before the first byte was\n"
         "encrypted: VmRSS %ld KiB (anon %ld, file %ld)\n",
         g_peak_kib, m.hwm, maxrss,
         g_peak_kib >= 0 && g_peak_kib < (long)RSS_LIMIT_KIB ? "under" : "OVER", RSS_LIMIT_KIB,
         m0.rss, m0.anon, m0.file);
  printf("whisper-bench --attachment-rss%s: load average %.2f\n", fed ? "-fed" : "",
         load_average());
  return 0;
}

/* --- the SQLite store (11-14) -------------------------------------------------- */

/* This thread's run-queue wait (runnable, waiting for a CPU) in seconds,
 * from /proc/thread-self/schedstat; -1 if the kernel does not say. */
static double runq_wait_s(void) {
  unsigned long long run = 0, wait = 0;
  FILE *f = fopen("/proc/thread-self/schedstat", "r");
  if (f == NULL) return -1;
  int n = fscanf(f, "%llu %llu", &run, &wait);
  fclose(f);
  return n == 2 ? (double)wait * 1e-9 : -1;
}

/* A slice of a figure that waits for the disk: g_slice_busy from the
 * run-queue wait (1 when unknown: such slices are never marked), and
 * g_slice_cpu = CPU time / wall time. */
typedef struct io_slice {
  double t0, cpu0, wait0;
} io_slice;

static void io_slice_start(io_slice *s) {
  s->wait0 = runq_wait_s();
  s->cpu0 = thread_cpu_s();
  s->t0 = now_s();
}

static void io_slice_end(const io_slice *s) {
  double t = now_s(), cpu = thread_cpu_s(), wait = runq_wait_s(), wall = t - s->t0;
  g_slice_cpu = (cpu - s->cpu0) / wall;
  g_slice_busy = s->wait0 < 0 || wait < 0 ? 1 : 1 - (wait - s->wait0) / wall;
}

static void sq_die(sqlite3 *db, const char *what) {
  fprintf(stderr, "whisper-bench: %s failed: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

/* A bare insert's database: rows of (k, v) into a rowid table, or, for
 * the ordered bare insert, (key, value) into a table of the store's
 * `ordered` shape, keys ascending as one conversation's history keys. */
typedef struct bare_db {
  char path[PATH_MAX];
  int sync, per_txn, ordered;
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *insert;
  uint8_t *k, *v;
  size_t k_len;
  uint64_t seq; /* the ordered keys' sort key */
} bare_db;

/* One store figure: Alice (memory store) encrypts to Bob, whose store is
 * the SQLite store at `path`; and the bare insert of the same
 * configuration in its own database (and, for a batched figure, the
 * ordered bare insert in another). */
typedef struct store_fig {
  int num;     /* the figure's number, 11-14 */
  int sync;    /* WHISPER_SYNC_FULL or WHISPER_SYNC_NORMAL, for both databases */
  int per_txn; /* messages (rows) per transaction: 1 or STORE_BATCH */
  char path[PATH_MAX];
  dev alice, bob;
  const uint8_t *pt;
  uint64_t next;   /* the last message's sequence (its id and sort key) */
  size_t pos, len; /* the queue: in[pos..len) are encrypted, not yet decrypted */
  whisper_buf *wire[STORE_BATCH];
  uint8_t ids[STORE_BATCH][STORE_ID_LEN];
  whisper_incoming_t in[STORE_BATCH];
  bare_db bare, obare;
} store_fig;

static char g_store_dir[PATH_MAX]; /* made with mkdtemp; removed at exit */
static store_fig *g_store_figs;
static int g_nstore;

/* Removes every database the store figures made (also after a failure). */
static void store_cleanup(void) {
  static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
  char p[PATH_MAX + 16];
  if (g_store_dir[0] == 0) return;
  for (int i = 0; i < g_nstore; i++) {
    if (g_store_figs[i].path[0]) whisper_store_sqlite_delete(g_store_figs[i].path);
    for (size_t j = 0; j < sizeof sfx / sizeof sfx[0]; j++) {
      const bare_db *b[2] = {&g_store_figs[i].bare, &g_store_figs[i].obare};
      for (int m = 0; m < 2; m++) {
        if (b[m]->path[0] == 0) continue;
        snprintf(p, sizeof p, "%s%s", b[m]->path, sfx[j]);
        unlink(p);
      }
    }
  }
  rmdir(g_store_dir);
  g_store_dir[0] = 0;
}

/* Bob's device: a SQLite store under a random 32-byte key. */
static void dev_new_sqlite(dev *d, const char *name, const char *path, int sync) {
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  uint8_t key[32];
  const char *why = "";
  randombytes_buf(key, sizeof key);
  o.key = key;
  o.key_len = sizeof key;
  o.synchronous = sync;
  d->name = name;
  int rc = whisper_store_sqlite_open(&d->st, path, &o, &why);
  sodium_memzero(key, sizeof key);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisper-bench: whisper_store_sqlite_open(%s): %s\n", path, why);
    die("whisper_store_sqlite_open", rc, NULL);
  }
  TRY("whisper_ctx_new", NULL, whisper_ctx_new(&d->ctx, d->st));
  TRY("whisper_identity_generate", d->ctx, whisper_identity_generate(d->ctx, name, 1, 0, NOW_MS));
}

/* Encrypts the next STORE_BATCH messages (untimed): WhisperMessages, each
 * with its meta (conversation: the sender's name; a new 16-byte id; the
 * sequence as sort key). */
static void store_refill(store_fig *f) {
  for (size_t i = 0; i < STORE_BATCH; i++) {
    whisper_incoming_t *m = &f->in[i];
    int type = 0;
    whisper_buf_free(f->wire[i]);
    f->wire[i] = NULL;
    TRY("whisper_session_encrypt", f->alice.ctx,
        whisper_session_encrypt(f->alice.ctx, f->bob.name, 1, f->pt, SMALL_LEN, NOW_MS, &type,
                                &f->wire[i]));
    if (type != WHISPER_MSG_WHISPER) die("a store message (not a SignalMessage)", -1, NULL);
    uint64_t seq = ++f->next;
    memcpy(f->ids[i], "whbench-", 8);
    for (int b = 0; b < 8; b++) f->ids[i][15 - b] = (uint8_t)(seq >> (8 * b));
    memset(m, 0, sizeof *m);
    m->size = sizeof *m;
    m->meta.size = sizeof m->meta;
    m->name = f->alice.name;
    m->device_id = 1;
    m->type = type;
    m->body = f->wire[i]->data;
    m->body_len = f->wire[i]->len;
    m->meta.conversation = f->alice.name;
    m->meta.id = f->ids[i];
    m->meta.id_len = STORE_ID_LEN;
    m->meta.sender = f->alice.name;
    m->meta.sender_device = 1;
    m->meta.sort_key = seq;
    m->meta.timestamp_ms = NOW_MS + seq;
  }
  f->pos = 0;
  f->len = STORE_BATCH;
}

/* The next message, in a transaction of its own. `check` compares the
 * plaintext. */
static void store_one(store_fig *f, int check) {
  whisper_incoming_t *m = &f->in[f->pos++];
  whisper_buf *pt = NULL;
  TRY("whisper_session_decrypt_store", f->bob.ctx,
      whisper_session_decrypt_store(f->bob.ctx, m->name, m->device_id, m->type, m->body,
                                    m->body_len, &m->meta, &pt));
  if (pt->len != SMALL_LEN || (check && memcmp(pt->data, f->pt, SMALL_LEN) != 0))
    die("whisper_session_decrypt_store (wrong plaintext)", WHISPER_EINTERNAL, NULL);
  whisper_buf_free(pt);
}

/* The whole queue (STORE_BATCH messages) in one transaction. */
static void store_batch(store_fig *f) {
  TRY("whisper_session_decrypt_batch", f->bob.ctx,
      whisper_session_decrypt_batch(f->bob.ctx, f->in + f->pos, f->len - f->pos));
  for (size_t i = f->pos; i < f->len; i++) {
    whisper_incoming_t *m = &f->in[i];
    if (m->result != WHISPER_OK)
      die("whisper_session_decrypt_batch (a message)", m->result, f->bob.ctx);
    if (m->plaintext == NULL || m->plaintext->len != SMALL_LEN)
      die("whisper_session_decrypt_batch (wrong plaintext)", WHISPER_EINTERNAL, NULL);
    whisper_buf_free(m->plaintext);
    m->plaintext = NULL;
  }
  f->pos = f->len;
}

/* Decrypt-and-store for at least `secs` of timed calls; the messages are
 * encrypted in batches of STORE_BATCH before the clock starts. Returns
 * seconds per message and adds the messages to *calls (may be NULL). */
static double store_run(void *v, double secs, unsigned long *calls_out) {
  store_fig *f = v;
  double timed = 0;
  unsigned long calls = 0;
  io_slice s;
  io_slice_start(&s);
  while (timed < secs) {
    if (f->pos == f->len) store_refill(f);
    size_t n = f->per_txn == 1 ? 1 : f->len - f->pos;
    double t0 = now_s();
    if (f->per_txn == 1)
      store_one(f, 0);
    else
      store_batch(f);
    timed += now_s() - t0;
    calls += n;
  }
  io_slice_end(&s);
  if (calls_out) *calls_out += calls;
  return timed / (double)calls;
}

static void sq_exec(sqlite3 *db, const char *sql) {
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) sq_die(db, sql);
}

/* The first column of the first row of `sql`, as text. */
static void sq_text(sqlite3 *db, const char *sql, char *out, size_t n) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) sq_die(db, sql);
  if (sqlite3_step(st) != SQLITE_ROW) sq_die(db, sql);
  snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
}

static void sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
    sq_die(db, sql);
}

static void be64_put(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* The bare database: the same journal (WAL) and synchronous mode as
 * libwhisper's store, a table (id INTEGER PRIMARY KEY, k BLOB, v BLOB),
 * rows of k_len + v_len random bytes. The ordered one: the store's
 * `ordered` table (kind, key, value, PRIMARY KEY(kind, key)) WITHOUT ROWID,
 * each key a fixed 16-byte tag, an ascending 8-byte sort key and a fixed
 * 16-byte tag, like one conversation's history keys. */
static void bare_open(bare_db *b, const char *path, int sync, int per_txn, int ordered,
                      size_t k_len, size_t v_len) {
  char jm[16];
  snprintf(b->path, sizeof b->path, "%s", path);
  b->sync = sync;
  b->per_txn = per_txn;
  b->ordered = ordered;
  b->k_len = k_len;
  if (sqlite3_open_v2(b->path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK)
    sq_die(b->db, "sqlite3_open_v2 (the bare database)");
  sq_text(b->db, "PRAGMA journal_mode = WAL", jm, sizeof jm);
  if (strcmp(jm, "wal") != 0) sq_die(b->db, "PRAGMA journal_mode = WAL (not in WAL mode)");
  sq_exec(b->db, sync == WHISPER_SYNC_FULL ? "PRAGMA synchronous = FULL"
                                           : "PRAGMA synchronous = NORMAL");
  if (ordered) {
    sq_exec(b->db, "CREATE TABLE t(kind INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
                   " PRIMARY KEY(kind, key)) WITHOUT ROWID");
    sq_prepare(b->db, "INSERT INTO t(kind, key, value) VALUES (64, ?1, ?2)", &b->insert);
  } else {
    sq_exec(b->db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k BLOB, v BLOB)");
    sq_prepare(b->db, "INSERT INTO t(k, v) VALUES (?1, ?2)", &b->insert);
  }
  sq_prepare(b->db, "BEGIN IMMEDIATE", &b->begin);
  sq_prepare(b->db, "COMMIT", &b->commit);
  if (ordered && k_len < 24) die("the history key is shorter than expected", WHISPER_EINTERNAL, NULL);
  b->k = malloc(k_len);
  b->v = malloc(v_len);
  if (b->k == NULL || b->v == NULL) die("malloc", WHISPER_ENOMEM, NULL);
  randombytes_buf(b->k, k_len);
  randombytes_buf(b->v, v_len);
  /* bindings survive sqlite3_reset(), and a static blob is read at each
   * step: every row carries these bytes (an ordered key with its sort key
   * moved on in place) */
  if (sqlite3_bind_blob(b->insert, 1, b->k, (int)k_len, SQLITE_STATIC) != SQLITE_OK ||
      sqlite3_bind_blob(b->insert, 2, b->v, (int)v_len, SQLITE_STATIC) != SQLITE_OK)
    sq_die(b->db, "sqlite3_bind_blob");
}

static void bare_step(sqlite3 *db, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) sq_die(db, what);
}

/* Bare transactions (BEGIN IMMEDIATE, per_txn inserts, COMMIT) for at
 * least `secs`. Returns seconds per row and adds the rows to *calls. */
static double bare_run(void *v, double secs, unsigned long *calls_out) {
  bare_db *b = v;
  double timed = 0;
  unsigned long calls = 0;
  io_slice s;
  io_slice_start(&s);
  while (timed < secs) {
    double t0 = now_s();
    bare_step(b->db, b->begin, "BEGIN IMMEDIATE");
    for (int i = 0; i < b->per_txn; i++) {
      if (b->ordered) be64_put(b->k + 16, ++b->seq);
      bare_step(b->db, b->insert, "INSERT");
    }
    bare_step(b->db, b->commit, "COMMIT");
    timed += now_s() - t0;
    calls += (unsigned long)b->per_txn;
  }
  io_slice_end(&s);
  if (calls_out) *calls_out += calls;
  return timed / (double)calls;
}

static void bare_close(bare_db *b) {
  if (b->db == NULL) return;
  sqlite3_finalize(b->begin);
  sqlite3_finalize(b->commit);
  sqlite3_finalize(b->insert);
  if (sqlite3_close(b->db) != SQLITE_OK) sq_die(b->db, "sqlite3_close");
  b->db = NULL;
  free(b->k);
  free(b->v);
}

/* What one decrypt-and-store writes, read from Bob's database through a
 * second connection: the rows (of `records` and `ordered`) that are new or
 * changed after one message (each rewrite of a sealed value has a new
 * nonce), and the history row's sizes. The message measured is the second
 * one stored (the first also makes the history salt, once per store); both
 * are checked. */
typedef struct store_writes {
  int rows;
  size_t bytes, hist_k, hist_v;
  char list[256]; /* "records 1234 B, ..." */
  char journal[16];
} store_writes;

#define ALL_ROWS                                                               \
  "SELECT 0 AS t, row AS k, value AS v FROM main.records UNION ALL "          \
  "SELECT kind, key, value FROM main.ordered"

static void store_measure_writes(store_fig *f, store_writes *w) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st;
  memset(w, 0, sizeof *w);
  if (sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
    sq_die(db, "sqlite3_open_v2 (Bob's store, a second connection)");
  sq_text(db, "PRAGMA journal_mode", w->journal, sizeof w->journal);
  if (f->pos == f->len) store_refill(f);
  store_one(f, 1);
  sq_exec(db, "CREATE TEMP TABLE snap AS " ALL_ROWS);
  store_one(f, 1);
  const char *sql = "SELECT t, length(k), length(v) FROM (" ALL_ROWS
                    ") c WHERE NOT EXISTS (SELECT 1 FROM temp.snap s"
                    " WHERE s.t = c.t AND s.k = c.k AND s.v = c.v) ORDER BY t, length(v) DESC";
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) sq_die(db, sql);
  size_t at = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    int t = sqlite3_column_int(st, 0);
    size_t kn = (size_t)sqlite3_column_int(st, 1), vn = (size_t)sqlite3_column_int(st, 2);
    w->rows++;
    w->bytes += kn + vn;
    if (t == WHISPER_REC_HISTORY) w->hist_k = kn, w->hist_v = vn;
    const char *table = t == 0 ? "records" : t == WHISPER_REC_HISTORY ? "history" : "ordered";
    if (at < sizeof w->list)
      at += (size_t)snprintf(w->list + at, sizeof w->list - at, "%s%s %zu + %zu B",
                             at ? ", " : "", table, kn, vn);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (w->hist_v == 0) die("finding the stored history row", WHISPER_EINTERNAL, NULL);
}

/* 1 if `dir` is in memory (tmpfs, ramfs: fsync costs nothing there).
 * Describes its filesystem in `out`: the type, device and mount point from
 * /proc/self/mountinfo (the longest mount point above it), else statfs's
 * magic number. */
static int fs_describe(const char *dir, char *out, size_t n) {
  struct statfs sf;
  char real[PATH_MAX], line[2048], mnt[1024], type[64], src[512];
  int mem = 0;
  size_t best = 0;
  snprintf(out, n, "unknown filesystem");
  if (statfs(dir, &sf) == 0) {
    mem = sf.f_type == 0x01021994 /* TMPFS_MAGIC */ || sf.f_type == (long)0x858458f6 /* RAMFS */;
    snprintf(out, n, "filesystem magic 0x%lx", (unsigned long)sf.f_type);
  }
  if (realpath(dir, real) == NULL) snprintf(real, sizeof real, "%s", dir);
  FILE *f = fopen("/proc/self/mountinfo", "r");
  while (f && fgets(line, sizeof line, f)) {
    const char *dash = strstr(line, " - ");
    if (dash == NULL || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
        sscanf(dash + 3, "%63s %511s", type, src) != 2)
      continue;
    size_t ml = strlen(mnt);
    if (strncmp(real, mnt, ml) != 0 || !(ml == 1 || real[ml] == '/' || real[ml] == 0) || ml < best)
      continue;
    best = ml;
    snprintf(out, n, "%.63s on %.300s, mounted at %.400s", type, src, mnt);
    mem = strcmp(type, "tmpfs") == 0 || strcmp(type, "ramfs") == 0;
  }
  if (f) fclose(f);
  return mem;
}

/* Makes the directory for the databases: under --dir, else under the first
 * of /tmp, /var/tmp and the working directory that is not in memory (else
 * /tmp anyway). Returns 1 if it is in memory. */
static int store_dir_make(char *fs, size_t n) {
  static const char *const cands[] = {"/tmp", "/var/tmp", "."};
  const char *base = g_dir_opt;
  char probe[256];
  for (size_t i = 0; base == NULL && i < sizeof cands / sizeof cands[0]; i++)
    if (access(cands[i], W_OK) == 0 && !fs_describe(cands[i], probe, sizeof probe)) base = cands[i];
  if (base == NULL) base = "/tmp";
  snprintf(g_store_dir, sizeof g_store_dir, "%s/whisper-bench-XXXXXX", base);
  if (mkdtemp(g_store_dir) == NULL) {
    fprintf(stderr, "whisper-bench: mkdtemp(%s) failed\n", g_store_dir);
    g_store_dir[0] = 0;
    exit(1);
  }
  char real[PATH_MAX];
  if (realpath(g_store_dir, real) != NULL) snprintf(g_store_dir, sizeof g_store_dir, "%s", real);
  return fs_describe(g_store_dir, fs, n);
}

/* --- the cost model ------------------------------------------------------------ */

typedef struct model {
  double enc_small, dec_small, enc_big, dec_big, dh_step, alice_x3dh, bob_x3dh;
  double setup, alternating, one_way, big;
  double g_keys, g_enc, g_dec, g_both, enc_content, fanout;
} model;

static void build_model(const prims *t, model *m) {
  /* message_keys_step(): the chain step (seed and next key) + HKDF-80; the
   * chain's cost is inside the step */
  double msg_keys = t->step + t->hkdf80;
  double chain = 0;
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
  /* sender_key.c: chain_step() (seed and next key) + seed_keys() */
  m->g_keys = t->step + t->hkdf48;
  m->g_enc = m->g_keys + t->cbc_enc_small + t->sign_g + chain;
  m->g_dec = t->verify_g + m->g_keys + chain + t->cbc_dec_small;
  m->g_both = m->g_enc + m->g_dec;
  m->enc_content = msg_keys + chain + t->cbc_enc_content + t->mac_content;
  m->fanout = FANOUT * m->enc_content;
}

static void print_model(const prims *t, const model *m) {
  int o = 0, s = 0;
  for (int i = 0; i < ALT_N; i++) {
    if (t->alt[i].openssl <= t->alt[i].sodium)
      o++;
    else
      s++;
  }
  printf("Cost model (primitives each operation must compute, from src/protocol/session.c;\n"
         "each at the faster library's time: OpenSSL for %d of the %d timed both ways,\n"
         "libsodium for %d):\n",
         o, ALT_N, s);
  printf("  MK     = message keys: chain step (HMAC(ck, 0x01), HMAC(ck, 0x02))\n"
         "           + HKDF-80                                         %9.3f us\n",
         (t->step + t->hkdf80) * 1e6);
  printf("  CK     = inside MK (the step moves the chain)             %9.3f us\n", 0.0);
  printf("  ENC(n) = MK + CK + AES-CBC encrypt(n) + HMAC(66 + wire - 8 B)\n");
  printf("  DEC(n) = MK + CK + HMAC(66 + wire - 8 B) + AES-CBC decrypt(n padded)\n");
  printf("           ENC(%d) %.3f us, DEC(%d) %.3f us (MAC over %zu B)\n", SMALL_LEN,
         m->enc_small * 1e6, SMALL_LEN, m->dec_small * 1e6, t->mac_small_len);
  printf("           ENC(1 MiB) %.1f us, DEC(1 MiB) %.1f us (MAC over %zu B)\n", m->enc_big * 1e6,
         m->dec_big * 1e6, t->mac_big_len);
  printf("  DHSTEP = 2 X25519 + 1 keygen + 2 HKDF-64 (root KDF)       %9.3f us\n",
         m->dh_step * 1e6);
  printf(
      "  1. set-up    = Alice: XEdDSA verify + 2 keygen + 5 X25519 (4 X3DH, one-time prekey\n"
      "                 included, + 1 ratchet) + HKDF-64(160 B ikm) + HKDF-64 + ENC(100)\n"
      "               + Bob: 4 X25519 + HKDF-64(160 B ikm) + DHSTEP + DEC(100)\n");
  printf("  2. alternate = ENC(100) + DHSTEP + DEC(100)  (each decrypt takes a DH ratchet step)\n");
  printf("  3. one-way   = ENC(100) + DEC(100)           (symmetric chain steps only)\n");
  printf("  4. 1 MiB     = ENC(1 MiB) + DEC(1 MiB)\n");
  printf(
      "Groups (sender keys, from src/protocol/sender_key.c; G = %zu B, the signed part of a\n"
      "SenderKeyMessage: its version byte and protobuf):\n",
      t->g_signed_len);
  printf("  GK     = group keys: chain step + HKDF-48                  %9.3f us\n", m->g_keys * 1e6);
  printf("  GENC   = GK + AES-CBC encrypt(100) + XEdDSA sign(G) + CK  %9.3f us\n", m->g_enc * 1e6);
  printf("  GDEC   = XEdDSA verify(G) + GK + CK + AES-CBC decrypt(112) %8.3f us\n", m->g_dec * 1e6);
  printf("  6. group encrypt = GENC;  7. group decrypt = GDEC;  8. group enc+dec = GENC + GDEC\n");
  printf(
      "  9, 10. SKDM to %d devices = %d x ENC(%zu) (the Content carrying the SKDM; MAC\n"
      "         over %zu B) = %d x %.3f us\n",
      FANOUT, FANOUT, t->content_len, t->content_mac_len, FANOUT, m->enc_content * 1e6);
  printf(
      "  Not counted (not crypto): protobuf, store I/O, record (de)serialisation, allocation,\n"
      "  wiping; randomness is counted inside keygen only (not the 64 bytes each group\n"
      "  signature takes: %.3f us).\n\n",
      t->rand64 * 1e6);
}

static void print_att_model(const att_prims *a) {
  printf(
      "Attachments (16, from src/crypto/attachment.c: what Signal's format must compute for\n"
      "one file, both directions):\n"
      "  encrypt = AES-CBC encrypt(padded) + HMAC(IV || ct) + incremental HMAC(blob)\n"
      "            + SHA-256(blob) + SHA-256(plaintext)\n"
      "  decrypt = AES-CBC decrypt(ct) + HMAC(IV || ct) + incremental HMAC(blob)\n"
      "            + SHA-256(blob) + SHA-256(plaintext)\n"
      "  16. enc+dec = %.1f + %.1f + 2 x %.1f + 2 x %.1f + 2 x %.1f + 2 x %.1f = %.1f ms\n"
      "      (%.1f MB/s of plaintext)\n\n",
      a->cbc_enc * 1e3, a->cbc_dec * 1e3, a->hmac * 1e3, a->imac * 1e3, a->sha_blob * 1e3,
      a->sha_pt * 1e3, a->floor * 1e3, (double)ATT_LEN / a->floor / 1e6);
}

/* --- results ------------------------------------------------------------------- */

/* How print_rate() shows a figure: operations per second, MB/s (of a
 * 1 MiB message), or milliseconds per operation. */
enum { U_RATE, U_MBS, U_MS };

/* One line of the results. floor_secs <= 0: no floor (--only). bar: in %
 * of the floor; or, when bar_mbs > 0, an absolute rate in MB/s (the line
 * still shows the % of floor). bytes: what one operation carries, for
 * U_MBS. */
static void print_rate_x(const char *label, double secs, double mean, double floor_secs,
                         double bar, double bar_mbs, size_t bytes, unsigned long calls, int unit,
                         const char *note) {
  char meas[32], flo[32] = "-", pct_s[16] = "-", bar_s[16] = "", verdict[8] = "", fus[16] = "-",
                 over[16] = "-";
  if (unit == U_MBS) {
    snprintf(meas, sizeof meas, "%.1f MB/s", (double)bytes / secs / 1e6);
    if (floor_secs > 0) snprintf(flo, sizeof flo, "%.1f MB/s", (double)bytes / floor_secs / 1e6);
    if (bar_mbs > 0) { /* judged without a floor too */
      snprintf(bar_s, sizeof bar_s, "%.0f MB/s", bar_mbs);
      snprintf(verdict, sizeof verdict, "%s", (double)bytes / secs / 1e6 >= bar_mbs ? "PASS" : "BELOW");
    }
  } else if (unit == U_MS) {
    snprintf(meas, sizeof meas, "%.2f ms", secs * 1e3);
    if (floor_secs > 0) snprintf(flo, sizeof flo, "%.2f ms", floor_secs * 1e3);
  } else {
    snprintf(meas, sizeof meas, "%.0f /s", 1.0 / secs);
    if (floor_secs > 0) snprintf(flo, sizeof flo, "%.0f /s", 1.0 / floor_secs);
  }
  if (floor_secs > 0) {
    double pct = floor_secs / secs * 100.0;
    snprintf(pct_s, sizeof pct_s, "%.1f%%", pct);
    if (bar > 0 && bar_mbs <= 0) { /* bar <= 0: the issue sets none */
      snprintf(bar_s, sizeof bar_s, "%.0f%%", bar);
      snprintf(verdict, sizeof verdict, "%s", pct >= bar ? "PASS" : "BELOW");
    }
    snprintf(fus, sizeof fus, "%.2f", floor_secs * 1e6);
    snprintf(over, sizeof over, "%.2f", (secs - floor_secs) * 1e6);
  }
  printf("  %-33s %12s %12s %7s %8s %-5s %9.2f %9.2f %9s %9s %7lu%s%s\n", label, meas, flo, pct_s,
         bar_s, verdict, secs * 1e6, mean * 1e6, fus, over, calls, note ? note : "", busy_mark());
  fflush(stdout);
}

static void print_rate(const char *label, double secs, double mean, double floor_secs, double bar,
                       unsigned long calls, int unit, const char *note) {
  print_rate_x(label, secs, mean, floor_secs, bar, 0, BIG_LEN, calls, unit, note);
}

/* The line under a fan-out figure: the same per device. */
static void print_per_device(double secs, double mean, double floor_secs) {
  printf("  %-33s %9.2f us", "   per device", secs * 1e6 / FANOUT);
  if (floor_secs > 0)
    printf(" (floor %.2f us, over %.2f us)", floor_secs * 1e6 / FANOUT,
           (secs - floor_secs) * 1e6 / FANOUT);
  printf("; mean %.2f us\n", mean * 1e6 / FANOUT);
  fflush(stdout);
}

static void print_results_header(void) {
  printf("  %-33s %12s %12s %7s %8s %-5s %9s %9s %9s %9s %7s\n", "operation", "measured", "floor",
         "%floor", "bar", "", "us/op", "mean us", "floor us", "over us", "ops");
}

static void print_machine(void) {
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
  printf("machine: %s; load average %.2f; libsodium %s; %s; SQLite %s; libwhisper %u\n",
         model_name, load_average(), sodium_version_string(), OpenSSL_version(OPENSSL_VERSION),
         sqlite3_libversion(), whisper_version());
#ifndef __OPTIMIZE__
  printf(
      "WARNING: built without optimisation: the figures mean little "
      "(configure with -DCMAKE_BUILD_TYPE=Release)\n");
#endif
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: whisper-bench [--quick] [--seconds S] [--only N | --store] [--dir D]\n"
          "                     [--search-messages N]\n"
          "       whisper-bench --attachment-rss | --attachment-rss-fed [--dir D]\n"
          "  --quick      each timed loop ~0.2 s (a CI smoke run, ~15 s in all)\n"
          "  --seconds S  each timed loop S seconds (default 1)\n"
          "  --only N     run operation N (1-4, 5 = 1b, 6-10: groups, 11-14: the SQLite\n"
          "               store, 15: search, 16: attachments) alone, with no floor: for\n"
          "               profiling\n"
          "               (perf record ./whisper-bench --only 4 --seconds 10)\n"
          "  --store      the store figures (11-14) alone, each beside its bare insert\n"
          "  --dir D      put the store figures' databases in a new directory under D\n"
          "               (default: /tmp, or /var/tmp or . if /tmp is in memory)\n"
          "  --search-messages N  the history figure 15 searches (default 100000;\n"
          "               2000 with --quick)\n"
          "  --attachment-rss  nothing else: a 1 GiB attachment from a generator,\n"
          "               encrypted to a file (under D, as the store's databases; 1.1 GB,\n"
          "               unlinked), decrypted from it (plaintext compared); prints the\n"
          "               time, MB/s and the process's peak resident memory (VmHWM,\n"
          "               ru_maxrss) against 8 MiB (~15-30 s)\n"
          "  --attachment-rss-fed  the same with the fed decryptor (decrypt_update), which\n"
          "               holds a chunk (2 MiB here)\n");
}

static int want(int n) {
  return g_only == n || (g_only == 0 && (!g_store_only || (n >= 11 && n <= 14)));
}

/* --- the store figures (11-14) ----------------------------------------------------- */

/* Runs the store figures wanted: for each configuration, the bare insert
 * (its floor: not with --only), then libwhisper's decrypt-and-store. */
static void run_store_figures(const uint8_t *small, double dec_floor) {
  static const struct {
    int sync, per_txn;
    double bar; /* 0: none in the issue */
    const char *label;
  } cfg[] = {
      {WHISPER_SYNC_FULL, 1, 0, "11. store 1/txn, FULL"},
      {WHISPER_SYNC_NORMAL, 1, 0, "12. store 1/txn, NORMAL"},
      {WHISPER_SYNC_FULL, STORE_BATCH, 33, "13. store 100/txn, FULL"},
      {WHISPER_SYNC_NORMAL, STORE_BATCH, 0, "14. store 100/txn, NORMAL"},
  };
  enum { NCFG = sizeof cfg / sizeof cfg[0] };
  char fs[800], note[96], bare_mark[32];
  double t0 = now_s(), c0 = cpu_s();
  int mem = store_dir_make(fs, sizeof fs);
  g_store_figs = calloc(NCFG, sizeof *g_store_figs);
  if (g_store_figs == NULL) die("calloc", WHISPER_ENOMEM, NULL);
  g_nstore = NCFG;
  atexit(store_cleanup);

  store_writes w;
  int measured = 0;
  for (int i = 0; i < NCFG; i++) {
    store_fig *f = &g_store_figs[i];
    if (!want(11 + i)) continue;
    f->num = 11 + i;
    f->sync = cfg[i].sync;
    f->per_txn = cfg[i].per_txn;
    f->pt = small;
    snprintf(f->path, sizeof f->path, "%.*s/bob-%d.db", PATH_MAX - 32, g_store_dir, f->num);
    dev_new(&f->alice, "alice");
    dev_new_sqlite(&f->bob, "bob", f->path, f->sync);
    connect_pair(&f->alice, &f->bob, small);
    if (!measured) { /* stores one message (checked) */
      store_measure_writes(f, &w);
      measured = 1;
    }
    if (g_only == 0) {
      char bp[PATH_MAX];
      snprintf(bp, sizeof bp, "%.*s/bare-%d.db", PATH_MAX - 32, g_store_dir, f->num);
      bare_open(&f->bare, bp, f->sync, f->per_txn, 0, w.hist_k, w.hist_v);
      if (f->per_txn > 1) {
        snprintf(bp, sizeof bp, "%.*s/bare-ordered-%d.db", PATH_MAX - 32, g_store_dir, f->num);
        bare_open(&f->obare, bp, f->sync, f->per_txn, 1, w.hist_k, w.hist_v);
      }
    }
  }

  printf(
      "\nSQLite store (figures 11-14): Bob's store in %s\n"
      "  (%s%s); SQLite %s, journal_mode %s\n",
      g_store_dir, fs, mem ? ": IN MEMORY" : "", sqlite3_libversion(), w.journal);
  if (mem)
    printf(
        "  WARNING: this filesystem is in memory: fsync costs nothing there and FULL means\n"
        "  nothing; the figures below say little (use --dir on a disk).\n");
  printf(
      "  one decrypt-and-store of 100 B writes %d rows, %zu B (key + sealed value):\n"
      "    %s\n"
      "  the bare insert: one row of k %zu B + v %zu B (the history row's sizes) into\n"
      "  (id INTEGER PRIMARY KEY, k BLOB, v BLOB), same journal and synchronous mode;\n"
      "  13 and 14 also time an ordered bare insert: the same sizes into the store's\n"
      "  ordered table shape (kind, key, value) WITHOUT ROWID, keys ascending as one\n"
      "  conversation's history (what keeping history in key order costs in SQLite)\n",
      w.rows, w.bytes, w.list, w.hist_k, w.hist_v);
  printf(
      "  (%%bare = bare insert time per row / decrypt-and-store time per message * 100;\n"
      "  busy%% = CPU time / wall time of the fastest slice: the rest waited for the disk)\n");
  /* What the design must compute per message beyond the bare insert: the
   * decrypt's crypto (DEC(100), from the cost model), sealing the history
   * row (its kind and key the AD), and one keyed BLAKE2b (the message's
   * history tag). With the bare insert, the floor of 13 and 14. */
  double seal_s = 0, tag_s = 0;
  if (dec_floor > 0) {
    store_prim sp;
    memset(&sp, 0, sizeof sp);
    randombytes_buf(sp.key, sizeof sp.key);
    sp.len = w.hist_v - 24 - 16; /* the sealed plaintext: the value less nonce and tag */
    sp.ad_len = 4 + w.hist_k;   /* kind || key */
    sp.in_len = 1 + 5 + 1 + STORE_ID_LEN; /* "m" || "alice" || 0 || id */
    if (sp.ad_len > sizeof sp.ad) die("the history key is longer than expected", WHISPER_EINTERNAL, NULL);
    if ((sp.buf = malloc(sp.len + 16)) == NULL) die("malloc", WHISPER_ENOMEM, NULL);
    randombytes_buf(sp.buf, sp.len);
    printf("  the store's primitives (tight loops):\n");
    char label[96];
    snprintf(label, sizeof label, "XChaCha20-Poly1305 seal, %zu B + %zu B AD (a history row)",
             sp.len, sp.ad_len);
    print_prim(label, seal_s = time_op(p_seal, &sp, NULL, NULL));
    snprintf(label, sizeof label, "keyed BLAKE2b, %zu B (a message's history tag)", sp.in_len);
    print_prim(label, tag_s = time_op(p_tag, &sp, NULL, NULL));
    printf("  STORE = DEC(100) %.3f + seal %.3f + BLAKE2b %.3f = %.3f us beyond the bare insert\n",
           dec_floor * 1e6, seal_s * 1e6, tag_s * 1e6, (dec_floor + seal_s + tag_s) * 1e6);
    free(sp.buf);
  }
  printf("  %-33s %12s %12s %7s %8s %-5s %9s %9s %9s %9s %7s\n", "configuration", "messages/s",
         "bare rows/s", "%bare", "bar", "", "us/msg", "mean us", "bare us", "over us", "msgs");

  for (int i = 0; i < NCFG; i++) {
    store_fig *f = &g_store_figs[i];
    if (!want(11 + i)) continue;
    unsigned long calls = 0, bare_calls = 0, obare_calls = 0;
    double secs, mean, bare = 0, bare_mean = 0, bare_cpu = 0, obare = 0, obare_mean = 0,
                       obare_cpu = 0;
    char obare_mark[32] = "";
    bare_mark[0] = 0;
    if (g_only == 0) {
      bare = best_of_slices(bare_run, &f->bare, &bare_calls, &bare_mean);
      bare_cpu = g_figure_cpu;
      snprintf(bare_mark, sizeof bare_mark, "%s", busy_mark());
    }
    if (f->obare.db) {
      obare = best_of_slices(bare_run, &f->obare, &obare_calls, &obare_mean);
      obare_cpu = g_figure_cpu;
      snprintf(obare_mark, sizeof obare_mark, "%s", busy_mark());
    }
    secs = best_of_slices(store_run, f, &calls, &mean);
    snprintf(note, sizeof note, " busy %.0f%%%s", g_figure_cpu * 100, mem ? " (in memory)" : "");
    print_rate(cfg[i].label, secs, mean, bare, cfg[i].bar, calls, U_RATE, note);
    if (g_only == 0) {
      printf("  %-33s %9.0f rows/s, %.2f us/row, mean %.2f us, %lu rows, busy %.0f%%%s\n",
             "   bare insert", 1.0 / bare, bare * 1e6, bare_mean * 1e6, bare_calls,
             bare_cpu * 100, bare_mark);
      if (f->obare.db)
        printf("  %-33s %9.0f rows/s, %.2f us/row, mean %.2f us, %lu rows, busy %.0f%%%s\n",
               "   ordered bare insert", 1.0 / obare, obare * 1e6, obare_mean * 1e6, obare_calls,
               obare_cpu * 100, obare_mark);
      if (dec_floor > 0 && f->per_txn > 1) {
        double fl = obare + dec_floor + seal_s + tag_s;
        printf("  %-33s %.2f us/msg = ordered bare + STORE: at most %.1f%% of bare, at %.0f%% "
               "of it now\n",
               "   floor of this design", fl * 1e6, bare / fl * 100, fl / secs * 100);
      }
      fflush(stdout);
    }
  }

  for (int i = 0; i < NCFG; i++) {
    store_fig *f = &g_store_figs[i];
    if (f->num == 0) continue;
    for (size_t j = 0; j < STORE_BATCH; j++) whisper_buf_free(f->wire[j]);
    dev_free(&f->alice);
    dev_free(&f->bob);
    bare_close(&f->bare);
    bare_close(&f->obare);
  }
  store_cleanup();
  free(g_store_figs);
  g_store_figs = NULL;
  g_nstore = 0;
  g_io_wall += now_s() - t0;
  g_io_cpu += cpu_s() - c0;
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
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      g_only = atoi(argv[++i]);
      if (g_only < 1 || g_only > ONLY_MAX) {
        usage(stderr);
        return 2;
      }
    } else if (strcmp(argv[i], "--store") == 0) {
      g_store_only = 1;
    } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      g_dir_opt = argv[++i];
    } else if (strcmp(argv[i], "--search-messages") == 0 && i + 1 < argc) {
      long v = atol(argv[++i]);
      if (v < 1) {
        usage(stderr);
        return 2;
      }
      g_search_n = (size_t)v;
    } else if (strcmp(argv[i], "--attachment-rss") == 0) {
      g_att_rss = 1;
    } else if (strcmp(argv[i], "--attachment-rss-fed") == 0) {
      g_att_rss = 2;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (g_att_rss && argc != (g_dir_opt ? 4 : 2)) { /* alone, in a fresh process */
    usage(stderr);
    return 2;
  }
  if (wh_crypto_init() != 0) die("wh_crypto_init", WHISPER_EINTERNAL, NULL);
  if (g_att_rss) return run_attachment_rss(g_att_rss == 2);
  double t_start = now_s(), cpu_start = cpu_s();
  print_machine();
  printf(
      "each figure: the fastest of %d back-to-back slices of a loop of >= %.1f s\n"
      "(CLOCK_MONOTONIC), after a %.2f s warm-up\n\n",
      SLICES, g_loop_s, g_warmup_s);

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

  /* Groups: a sender and a receiver per figure (6, 7, 8), and two senders
   * with FANOUT sessions each (9: PreKey phase, 10: acknowledged) to the
   * same FANOUT_NAMES receiving contexts. */
  int want_group = want(6) || want(7) || want(8), want_fan = want(9) || want(10);
  dev ge_a, ge_b, gd_a, gd_b, gb_a, gb_b, fan_pk, fan_ack, *fan_recv = NULL;
  static char recv_names[FANOUT_NAMES][8];
  fanout_args *fan_p = NULL, *fan_a = NULL;
  if (want_group) {
    dev_new(&ge_a, "alice");
    dev_new(&ge_b, "bob");
    dev_new(&gd_a, "alice");
    dev_new(&gd_b, "bob");
    dev_new(&gb_a, "alice");
    dev_new(&gb_b, "bob");
    group_join(&ge_a, &ge_b);
    group_join(&gd_a, &gd_b);
    group_join(&gb_a, &gb_b);
    group_xfer(&ge_a, &ge_b, small, SMALL_LEN, 1);
    group_xfer(&gd_a, &gd_b, small, SMALL_LEN, 1);
    t.g_signed_len = group_xfer(&gb_a, &gb_b, small, SMALL_LEN, 1) - WH_SIG_LEN;
  }
  if (want_fan) {
    double t0 = now_s();
    fan_recv = calloc(FANOUT_NAMES, sizeof *fan_recv);
    fan_p = calloc(1, sizeof *fan_p);
    fan_a = calloc(1, sizeof *fan_a);
    if (fan_recv == NULL || fan_p == NULL || fan_a == NULL) die("calloc", WHISPER_ENOMEM, NULL);
    for (int n = 0; n < FANOUT_NAMES; n++) {
      snprintf(recv_names[n], sizeof recv_names[n], "m%02d", n);
      dev_new(&fan_recv[n], recv_names[n]);
    }
    size_t content_len = 0, mac_len = 0;
    if (want(9)) {
      dev_new(&fan_pk, "sender-pk");
      *fan_p = (fanout_args){.sender = &fan_pk, .recv = fan_recv, .ack = 0};
      fanout_setup(fan_p, small);
      fanout_check(fan_p, small, &t.content_len, &t.content_mac_len);
    }
    if (want(10)) {
      dev_new(&fan_ack, "sender-ack");
      *fan_a = (fanout_args){.sender = &fan_ack, .recv = fan_recv, .ack = 1};
      fanout_setup(fan_a, small);
      fanout_check(fan_a, small, &content_len, &mac_len);
    }
    printf("fan-out set-up (untimed): %d x %d sessions in %.1f s", want(9) + want(10), FANOUT,
           now_s() - t0);
    if (want(9) && want(10))
      printf("; 1:1 MAC input %zu B (PreKey phase), %zu B (acknowledged)", t.content_mac_len,
             mac_len);
    printf("\n\n");
  }

  /* Figure 16: 100 MiB and its blob in memory, one round trip checked */
  att_args *att = want(16) ? att_new() : NULL;
  att_prims ap;
  memset(&ap, 0, sizeof ap);

  model m;
  memset(&m, 0, sizeof m);
  if (g_store_only && g_only == 0) {
    printf("--store: the store figures alone (their floor is the bare insert)\n\n");
  } else if (g_only == 0) {
    time_prims(&t);
    if (att) time_att_prims(att, &ap);
    build_model(&t, &m);
    print_model(&t, &m);
    if (att) print_att_model(&ap);
  } else {
    printf("--only %d: no floor measured\n\n", g_only);
  }

  printf(
      "Results (%%floor = floor time / measured time * 100; bar = the issue's target;\n"
      "us/op = the fastest slice, mean us = the whole loop):\n");
  print_results_header();

  unsigned long calls = 0;
  double secs, mean;
  setup_args *sa = calloc(1, sizeof *sa);
  if (sa == NULL) die("calloc", WHISPER_ENOMEM, NULL);
  if (want(1)) {
    sa->alice = &s_alice;
    sa->bob = &s_bob;
    sa->pt = small;
    sa->fresh = 1;
    sa->next_dev = 1;
    secs = best_of_slices(setup_run, sa, &calls, &mean);
    print_rate("1. session set-up (new contact)", secs, mean, m.setup, 80, calls, 0, "");
  }
  if (want(2)) {
    msg_args alt = {&alt_a, &alt_b, small, SMALL_LEN, 0};
    secs = time_op(op_alternating, &alt, &calls, &mean);
    print_rate("2. 100 B alternating (DH step)", secs, mean, m.alternating, 80, calls, 0, "");
  }
  if (want(3)) {
    msg_args one = {&one_a, &one_b, small, SMALL_LEN, 0};
    if (g_only == 3) {
      secs = time_op(op_one_way, &one, &calls, &mean);
      print_rate("3. 100 B one-way (symmetric)", secs, mean, 0, 80, calls, 0, "");
    } else {
      /* judged against its floor timed beside it, slice by slice; the sum
       * of the primitives' own loops (the model's) on the line below */
      floor_one *fo = calloc(1, sizeof *fo);
      if (fo == NULL || (fo->mac_in = malloc(t.mac_small_len)) == NULL)
        die("calloc", WHISPER_ENOMEM, NULL);
      fo->mac_len = t.mac_small_len;
      randombytes_buf(fo->ck_send, sizeof fo->ck_send);
      memcpy(fo->ck_recv, fo->ck_send, sizeof fo->ck_recv);
      memcpy(fo->pt, small, SMALL_LEN);
      randombytes_buf(fo->mac_in, fo->mac_len);
      double floor3 = 0;
      secs = paired_slices(op_one_way, &one, op_floor_one_way, fo, &floor3, &calls, &mean);
      print_rate("3. 100 B one-way (symmetric)", secs, mean, floor3, 80, calls, 0, "");
      printf("     (its floor as the sum of the primitives' own loops, timed above: %.2f us, %.1f%%)\n",
             m.one_way * 1e6, m.one_way / secs * 100);
      free(fo->mac_in);
      sodium_memzero(fo, sizeof *fo);
      free(fo);
    }
  }
  if (want(4)) { /* the issue's bar is a rate: 400 MB/s on this machine */
    /* Each message makes two 1 MiB buffers (the message, the plaintext) and
     * the loop frees them at once. With glibc's defaults the freed top of
     * the heap goes back to the kernel (the trim threshold follows the
     * largest mmap'd block freed) and the next message faults its pages in
     * again, zeroed by the kernel: that is the allocator's policy, not the
     * library's work. 4b measures it so, for the record; 4 with the heap
     * kept (a trim threshold of 64 MiB, as a long-running app's busy heap
     * is), which is the library's own cost. */
    msg_args bigm = {&big_a, &big_b, big, BIG_LEN, 0};
    secs = time_op(op_one_way, &bigm, &calls, &mean);
    print_rate_x("4b. 1 MiB, glibc's default trimming", secs, mean, m.big, 0, 0, BIG_LEN, calls,
                 U_MBS, " (info)");
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 4 << 20);
    secs = time_op(op_one_way, &bigm, &calls, &mean);
    print_rate_x("4. 1 MiB one-way (enc+dec)", secs, mean, m.big, 0, 400, BIG_LEN, calls, U_MBS,
                 "");
  }
  if (want(5)) {
    /* Informational: the same two addresses set up again and again, so
     * that each record carries up to 40 archived states. */
    memset(sa, 0, sizeof *sa);
    sa->alice = &r_alice;
    sa->bob = &r_bob;
    sa->pt = small;
    sa->fresh = 0;
    secs = best_of_slices(setup_run, sa, &calls, &mean);
    print_rate("1b. set-up, same address again", secs, mean, m.setup, 80, calls, 0, " (info)");
  }
  if (want(6)) {
    group_args g = {&ge_a, &ge_b, small, {0}};
    secs = time_op(op_group_encrypt, &g, &calls, &mean);
    print_rate("6. group encrypt 100 B", secs, mean, m.g_enc, 80, calls, 0, " (info)");
  }
  if (want(7)) {
    group_args g = {&gd_a, &gd_b, small, {0}};
    secs = best_of_slices(group_decrypt_run, &g, &calls, &mean);
    print_rate("7. group decrypt 100 B", secs, mean, m.g_dec, 80, calls, 0, " (info)");
  }
  if (want(8)) {
    group_args g = {&gb_a, &gb_b, small, {0}};
    secs = time_op(op_group_both, &g, &calls, &mean);
    print_rate("8. group encrypt + decrypt 100 B", secs, mean, m.g_both, 80, calls, 0, "");
  }
  if (want(9)) {
    secs = time_op(op_distribute, fan_p, &calls, &mean);
    print_rate("9. SKDM to 1024 (PreKey phase)", secs, mean, m.fanout, 80, calls, U_MS, " (info)");
    print_per_device(secs, mean, m.fanout);
  }
  if (want(10)) {
    secs = time_op(op_distribute, fan_a, &calls, &mean);
    print_rate("10. SKDM to 1024 (acknowledged)", secs, mean, m.fanout, 80, calls, U_MS, " (info)");
    print_per_device(secs, mean, m.fanout);
  }
  if (want(16)) {
    secs = time_op(op_attachment, att, &calls, &mean);
    print_rate_x("16. attachment 100 MiB enc+dec", secs, mean, ap.floor, 80, 0, ATT_LEN, calls,
                 U_MBS, "");
    att_free(att);
    att = NULL;
  }
  if (want(11) || want(12) || want(13) || want(14)) run_store_figures(small, m.dec_small);
  if (want(15)) {
    int quick = g_loop_s < 1;
    double t0 = now_s(), c0 = cpu_s();
    printf("\n");
    bench_search(g_dir_opt, g_search_n ? g_search_n : quick ? 2000 : SEARCH_N, quick ? 5 : 21,
                 !quick);
    g_io_wall += now_s() - t0; /* (it waits for the disk too) */
    g_io_cpu += cpu_s() - c0;
  }

  if (g_only == 0)
    printf(
        "\n  1: whisper_session_start + the first encrypt (a PreKey message) + Bob's decrypt,\n"
        "     each with a new address; the bundles (whisper_bundle_generate, each with a new\n"
        "     one-time prekey) are made before each timed batch of %d, outside the clock.\n"
        "  1b: as 1, always between the same two addresses (the records fill up with 40\n"
        "     archived states); informational, not one of the issue's figures.\n"
        "  2-4: whisper_session_encrypt + whisper_session_decrypt + whisper_buf_free of both\n"
        "     buffers. MB = 10^6 bytes of plaintext, each encrypted and decrypted.\n"
        "  6-8: whisper_sender_key_encrypt / whisper_sender_key_decrypt (+ whisper_buf_free) of 100 B,\n"
        "     one sender and one receiver each; for 7 the messages are encrypted in batches\n"
        "     of %d outside the clock. 8 carries the issue's bar; 6 and 7 are its halves.\n"
        "  9, 10: one whisper_sender_key_distribute to %d member devices (%d contexts x %d device\n"
        "     ids; + whisper_buf_free of the %d messages), in ms per distribution, then per\n"
        "     device. 9: the sessions are unacknowledged (each message a PreKey message);\n"
        "     10: each was acknowledged (a reply received) before the clock. No bar in the\n"
        "     issue: the 80%% is informational.\n"
        "  4: its bar is a rate (the issue's 400 MB/s on this machine); %%floor beside it.\n"
        "  16: whisper_attachment_encrypt_* of %u MiB in memory (fed 1 MiB at a time) into\n"
        "     a sink that keeps the blob, then whisper_attachment_decrypt_* of the blob with\n"
        "     its incremental MAC (fed 1 MiB at a time) into a sink that counts; MB/s of\n"
        "     plaintext. One round trip was checked byte for byte before the clock.\n"
        "  1-10: memory store (whisper_store_memory_new) throughout.\n"
        "  11-14: Bob's whisper_session_decrypt_store (11, 12: one message per transaction)\n"
        "     or whisper_session_decrypt_batch of %d messages (13, 14: one transaction),\n"
        "     100 B SignalMessages from Alice (memory store) encrypted outside the clock, into\n"
        "     the SQLite store (WAL) with synchronous=FULL (11, 13) or NORMAL (12, 14); beside\n"
        "     each, a bare SQLite insert of the history row's size in the same configuration\n"
        "     (BEGIN IMMEDIATE, 1 or %d INSERTs, COMMIT). The issue's bar is 13's: 33%%.\n"
        "  Percentages are informational.\n",
        SETUP_BATCH, GROUP_BATCH, FANOUT, FANOUT_NAMES, FANOUT_PER_NAME, FANOUT, ATT_LEN >> 20,
        STORE_BATCH, STORE_BATCH);
  /* the store figures wait for the disk: their time is left out of the ratio */
  double wall = now_s() - t_start - g_io_wall, cpu = cpu_s() - cpu_start - g_io_cpu;
  if (g_disturbed)
    printf(
        "\n%d figure(s) marked [CPU n%%]: even the fastest slice had the CPU only n%% of\n"
        "its wall time (other processes ran): rerun on a quiet machine to trust them.\n",
        g_disturbed);
  printf("\nwhisper-bench: %.1f s in all", wall + g_io_wall);
  if (wall >= 1) /* (too short with --only 11-14 to say anything) */
    printf("; CPU time / wall time %.0f%%%s%s", cpu / wall * 100,
           g_io_wall > 0 ? " outside the store figures" : "",
           cpu / wall < 0.95 ? " (other processes took the CPU: figures are noisy)" : "");
  printf("; load average %.2f\n", load_average());

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
  if (want_group) {
    dev_free(&ge_a);
    dev_free(&ge_b);
    dev_free(&gd_a);
    dev_free(&gd_b);
    dev_free(&gb_a);
    dev_free(&gb_b);
  }
  if (want_fan) {
    if (want(9)) dev_free(&fan_pk);
    if (want(10)) dev_free(&fan_ack);
    for (int n = 0; n < FANOUT_NAMES; n++) dev_free(&fan_recv[n]);
  }
  free(fan_recv);
  free(fan_p);
  free(fan_a);
  free(small);
  free(big);
  return 0;
}
