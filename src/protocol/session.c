/*
 * Signal 1:1 sessions: X3DH (both roles) and the Double Ratchet, with
 * libsignal 0.52.x's record logic (archived states, simultaneous
 * initiation, limits). docs/protocol.md describes each step.
 *
 * Every public function loads what it needs inside one store transaction,
 * works on decoded copies, and writes back only on success.
 */
#include <stdlib.h>
#include <string.h>

#include "protocol/pb.h"
#include "protocol/state.h"
#include "versioned.h"
#include "storage.pb-c.h"
#include "wire.pb-c.h"
#include <sodium.h>

#define MAC_LEN 8

/* --- KDFs ------------------------------------------------------------------ */

static void kdf_rk(uint8_t root_out[32], uint8_t ck_out[32], const uint8_t root[32],
                   const uint8_t dh[32]) {
  uint8_t okm[64];
  wh_hkdf(okm, sizeof okm, root, 32, dh, 32, "WhisperRatchet");
  memcpy(root_out, okm, 32);
  memcpy(ck_out, okm + 32, 32);
  wh_wipe(okm, sizeof okm);
}

static void chain_next(uint8_t ck[32]) { wh_chain_step(NULL, ck); }

/* The message keys at the chain's position `index`, moving the chain one
 * step on. */
static void message_keys_step(wh_msgkey *k, uint8_t ck[32], uint32_t index) {
  uint8_t seed[32], okm[80];
  wh_chain_step(seed, ck);
  wh_hkdf(okm, sizeof okm, NULL, 0, seed, 32, "WhisperMessageKeys");
  memcpy(k->cipher, okm, 32);
  memcpy(k->mac, okm + 32, 32);
  memcpy(k->iv, okm + 64, 16);
  k->index = index;
  wh_wipe(seed, sizeof seed);
  wh_wipe(okm, sizeof okm);
}

static void compute_mac(uint8_t out[MAC_LEN], const uint8_t mac_key[32],
                        const uint8_t sender_ik[WH_PUB_LEN], const uint8_t receiver_ik[WH_PUB_LEN],
                        const uint8_t *msg, size_t len) {
  uint8_t full[32];
  wh_iov parts[3] = {{sender_ik, WH_PUB_LEN}, {receiver_ik, WH_PUB_LEN}, {msg, len}};
  wh_hmacv(full, mac_key, 32, parts, 3);
  memcpy(out, full, MAC_LEN);
  wh_wipe(full, sizeof full);
}

/* --- wire messages ----------------------------------------------------------- */

typedef struct sigmsg {
  const uint8_t *bytes; /* the whole message, version byte to MAC */
  size_t len;
  uint8_t version;
  uint8_t ratchet[WH_PUB_LEN];
  uint32_t counter;
  const uint8_t *ct; /* points into bytes: no copy of a large ciphertext */
  size_t ct_len;
} sigmsg;

static int version_check(whisper_ctx *ctx, uint8_t byte, const char *what) {
  uint8_t v = byte >> 4;
  if (v < WH_SESSION_VERSION)
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "%s: legacy message version %u", what, v);
  if (v > 4) return wh_fail(ctx, WHISPER_EINVALIDMSG, "%s: unrecognized message version %u", what, v);
  return WHISPER_OK;
}

/* A protobuf varint (at most 10 bytes); 0 on success. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 70 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7F) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/*
 * Reads a SignalMessage's protobuf without copying its ciphertext (which
 * may be megabytes): fields 1 ratchet_key, 2 counter, 3 previous_counter
 * (ignored, as libsignal does), 4 ciphertext; any order, the last
 * occurrence wins, unknown fields skipped, as protobuf parsers do.
 */
static int signal_message_fields(sigmsg *m, const uint8_t *p, const uint8_t *end) {
  const uint8_t *ratchet = NULL;
  size_t ratchet_len = 0;
  int have_counter = 0, have_ct = 0;
  while (p < end) {
    uint64_t tag, v = 0;
    if (read_varint(&p, end, &tag) != 0 || tag >> 3 == 0 || tag >> 3 > UINT32_MAX) return -1;
    uint64_t field = tag >> 3;
    unsigned wire = (unsigned)(tag & 7);
    const uint8_t *data = NULL;
    switch (wire) {
      case 0: /* varint */
        if (read_varint(&p, end, &v) != 0) return -1;
        break;
      case 1: /* 64-bit */
      case 5: /* 32-bit */
        if ((size_t)(end - p) < (wire == 1 ? 8u : 4u)) return -1;
        p += wire == 1 ? 8 : 4;
        break;
      case 2: /* length-delimited */
        if (read_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p)) return -1;
        data = p;
        p += v;
        break;
      default: /* groups are not protobuf-3 and not Signal's */
        return -1;
    }
    int expect = field == 1 || field == 4 ? 2 : field == 2 || field == 3 ? 0 : -1;
    if (expect >= 0 && (unsigned)expect != wire) return -1;
    if (field == 1) ratchet = data, ratchet_len = (size_t)v;
    if (field == 2) m->counter = (uint32_t)v, have_counter = 1;
    if (field == 4) m->ct = data, m->ct_len = (size_t)v, have_ct = 1;
  }
  if (ratchet == NULL || !have_counter || !have_ct) return -2;
  if (!wh_pub_ok(ratchet, ratchet_len)) return -3;
  memcpy(m->ratchet, ratchet, WH_PUB_LEN);
  return 0;
}

static int signal_message_parse(whisper_ctx *ctx, sigmsg *m, const uint8_t *b, size_t len) {
  memset(m, 0, sizeof *m);
  if (b == NULL || len < 1 + MAC_LEN)
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "SignalMessage too short (%zu bytes)", len);
  int rc = version_check(ctx, b[0], "SignalMessage");
  if (rc != WHISPER_OK) return rc;
  switch (signal_message_fields(m, b + 1, b + len - MAC_LEN)) {
    case 0: break;
    case -2: return wh_fail(ctx, WHISPER_EINVALIDMSG, "SignalMessage: a required field is missing");
    case -3: return wh_fail(ctx, WHISPER_EINVALIDMSG, "SignalMessage: bad ratchet key");
    default: return wh_fail(ctx, WHISPER_EINVALIDMSG, "SignalMessage: bad protobuf");
  }
  m->bytes = b;
  m->len = len;
  m->version = b[0] >> 4;
  return WHISPER_OK;
}

typedef struct prekeymsg {
  Whisper__Wire__PreKeySignalMessage *pb;
  uint8_t version;
  sigmsg inner;
} prekeymsg;

static int prekey_message_parse(whisper_ctx *ctx, prekeymsg *m, const uint8_t *b, size_t len) {
  memset(m, 0, sizeof *m);
  if (b == NULL || len < 1) return wh_fail(ctx, WHISPER_EINVALIDMSG, "PreKeySignalMessage is empty");
  int rc = version_check(ctx, b[0], "PreKeySignalMessage");
  if (rc != WHISPER_OK) return rc;
  m->version = b[0] >> 4;
  Whisper__Wire__PreKeySignalMessage *p =
      whisper__wire__pre_key_signal_message__unpack(&wh_pb_alloc, len - 1, b + 1);
  if (p == NULL) return wh_fail(ctx, WHISPER_EINVALIDMSG, "PreKeySignalMessage: bad protobuf");
  m->pb = p;
  if (!p->has_base_key || !p->has_identity_key || !p->has_message || !p->has_signed_pre_key_id)
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "PreKeySignalMessage: a required field is missing");
  else if (m->version != WH_SESSION_VERSION || p->has_kyber_pre_key_id || p->has_kyber_ciphertext)
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG,
                 "PreKeySignalMessage: Kyber (version 4) sessions are not supported");
  else if (!wh_pub_ok(p->base_key.data, p->base_key.len) ||
           !wh_pub_ok(p->identity_key.data, p->identity_key.len))
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "PreKeySignalMessage: bad base or identity key");
  else
    rc = signal_message_parse(ctx, &m->inner, p->message.data, p->message.len);
  if (rc != WHISPER_OK) {
    whisper__wire__pre_key_signal_message__free_unpacked(p, &wh_pb_alloc);
    m->pb = NULL;
  }
  return rc;
}

static void prekeymsg_free(prekeymsg *m) {
  if (m->pb) whisper__wire__pre_key_signal_message__free_unpacked(m->pb, &wh_pb_alloc);
  m->pb = NULL;
}

/* --- records ----------------------------------------------------------------- */

static int state_copy(wh_state *dst, const wh_state *src) {
  *dst = *src;
  const wh_chain *from[1 + WH_MAX_RECV_CHAINS];
  wh_chain *to[1 + WH_MAX_RECV_CHAINS];
  from[0] = &src->sender;
  to[0] = &dst->sender;
  for (int i = 0; i < WH_MAX_RECV_CHAINS; i++) from[i + 1] = &src->recv[i], to[i + 1] = &dst->recv[i];
  for (int i = 0; i <= WH_MAX_RECV_CHAINS; i++) to[i]->keys = NULL, to[i]->cap = 0;
  for (int i = 0; i <= WH_MAX_RECV_CHAINS; i++) {
    if (from[i]->nkeys == 0) {
      to[i]->nkeys = 0;
      continue;
    }
    to[i]->keys = malloc(from[i]->nkeys * sizeof *to[i]->keys);
    if (to[i]->keys == NULL) {
      wh_state_free(dst);
      return WHISPER_ENOMEM;
    }
    memcpy(to[i]->keys, from[i]->keys, from[i]->nkeys * sizeof *to[i]->keys);
    to[i]->cap = from[i]->nkeys;
  }
  return WHISPER_OK;
}

/* A deep copy of a record. */
static int record_copy(wh_record *dst, const wh_record *src) {
  memset(dst, 0, sizeof *dst);
  if (src->has_current) {
    if (state_copy(&dst->cur, &src->cur) != WHISPER_OK) return WHISPER_ENOMEM;
    dst->has_current = 1;
  }
  for (uint32_t i = 0; i < src->narchived; i++) {
    dst->archived[i] = whisper_buf_new(src->archived[i]->data, src->archived[i]->len);
    if (dst->archived[i] == NULL) {
      wh_record_free(dst);
      return WHISPER_ENOMEM;
    }
    dst->narchived++;
  }
  return WHISPER_OK;
}

/*
 * The session memo: the context keeps the records of the last few
 * addresses it used decoded, each with the exact bytes it was read from
 * or written as. A read still asks the store (the store is the truth: other
 * contexts and processes write it, transactions roll back, rows are put
 * back from copies) and decodes only when the bytes are not those: equal
 * bytes decode to an equal record. A call that loads a record borrows the
 * memo's own (record_load: `lent`) and changes it in place; a write makes
 * it the memo's record of the bytes written, and record_done() drops it if
 * the call ends without writing, so the memo never holds a record its
 * bytes do not stand for. Wiped when the context is freed.
 */
#define MEMO_SLOTS 4
#define SEND_MARK_CHAINS 4
#define SEND_MARK_MAX (SEND_MARK_CHAINS * (2 + 2 + WH_PUB_LEN + 1 + 5))

typedef struct mark_chain {
  uint8_t ratchet[WH_PUB_LEN];
  uint32_t counter;
} mark_chain;

typedef struct memo_slot {
  wh_addr a;      /* a.len 0: unused */
  uint8_t *bytes; /* the stored record's bytes (len 0: none known) */
  size_t len, cap;
  int has_r; /* r is what bytes decode to, at rest */
  int lent;  /* r is out with the running call (record_load) */
  wh_record r;
  uint64_t used;
  /* the address's send mark as last written here (mark_len 0: not known) */
  uint8_t mark[SEND_MARK_MAX];
  size_t mark_len, mark_n;
  mark_chain marks[SEND_MARK_CHAINS];
} memo_slot;

struct wh_session_memo {
  memo_slot slot[MEMO_SLOTS];
  uint64_t clock;
};

/* (never on a lent slot) */
static void memo_slot_clear(memo_slot *sl) {
  if (sl->has_r) wh_record_free(&sl->r);
  sl->has_r = 0;
  wh_wipe(sl->bytes, sl->len);
  sl->len = 0;
}

void wh_session_memo_free(whisper_ctx *ctx) {
  struct wh_session_memo *m = ctx->session_memo;
  if (m == NULL) return;
  for (int i = 0; i < MEMO_SLOTS; i++) {
    if (m->slot[i].lent) wh_record_free(&m->slot[i].r);
    memo_slot_clear(&m->slot[i]);
    free(m->slot[i].bytes);
  }
  wh_wipe(m, sizeof *m);
  free(m);
  ctx->session_memo = NULL;
}

static memo_slot *memo_find(whisper_ctx *ctx, const wh_addr *a) {
  struct wh_session_memo *m = ctx->session_memo;
  for (int i = 0; m && i < MEMO_SLOTS; i++)
    if (m->slot[i].a.len == a->len && memcmp(m->slot[i].a.key, a->key, a->len) == 0) {
      m->slot[i].used = ++m->clock;
      return &m->slot[i];
    }
  return NULL;
}

/* The slot of `a` (it may be lent), or the least recently used one not
 * lent, cleared, for it. NULL when there is no memory for the memo (it is
 * then simply not used). */
static memo_slot *memo_slot_for(whisper_ctx *ctx, const wh_addr *a) {
  memo_slot *sl = memo_find(ctx, a);
  if (sl) return sl;
  if (ctx->session_memo == NULL &&
      (ctx->session_memo = calloc(1, sizeof *ctx->session_memo)) == NULL)
    return NULL;
  struct wh_session_memo *m = ctx->session_memo;
  sl = NULL;
  for (int i = 0; i < MEMO_SLOTS; i++)
    if (!m->slot[i].lent && (sl == NULL || m->slot[i].used < sl->used)) sl = &m->slot[i];
  if (sl == NULL) return NULL;
  memo_slot_clear(sl);
  sl->a = *a;
  sl->used = ++m->clock;
  sl->mark_len = 0;
  return sl;
}

/* Room for n bytes (a smaller buffer is wiped whole and freed); -1 when
 * out of memory. */
static int memo_reserve(memo_slot *sl, size_t n) {
  if (n <= sl->cap) return 0;
  size_t cap = (n + 64) & ~(size_t)63; /* a record grows a little at a time */
  uint8_t *b = malloc(cap);
  if (b == NULL) return -1;
  wh_wipe(sl->bytes, sl->cap);
  free(sl->bytes);
  sl->bytes = b;
  sl->cap = cap;
  sl->len = 0;
  return 0;
}

/*
 * Within a batch (whisper_session_decrypt_batch, the engine's batches of
 * entries) the records of the addresses it touches are kept decoded: a
 * load gets a copy, a successful message replaces the kept record, and
 * wh_record_cache_end() writes each changed record once, before the batch
 * commits. A failed message never reaches record_store, so it leaves the
 * kept record as it was. Up to CACHE_SLOTS addresses (a batch of the
 * backlog interleaves its senders' messages: with fewer slots than
 * senders, every message wrote one record out and read another back).
 */
#define CACHE_SLOTS 64
typedef struct cache_slot {
  wh_addr a;
  wh_record r;
  int present, dirty;
} cache_slot;

struct wh_record_cache {
  cache_slot *slot; /* grown as addresses come, up to CACHE_SLOTS (a batch of one entry
                     * zeroes one slot, not sixty-four) */
  int n, cap;
};

static int record_write(whisper_ctx *ctx, const wh_addr *a, wh_record *r);

static cache_slot *cache_find(whisper_ctx *ctx, const wh_addr *a) {
  struct wh_record_cache *c = ctx->record_cache;
  for (int i = 0; c && i < c->n; i++)
    if (c->slot[i].a.len == a->len && memcmp(c->slot[i].a.key, a->key, a->len) == 0)
      return &c->slot[i];
  return NULL;
}

/* A slot for `a`: a free one, or the oldest after writing it out. */
static int cache_slot_for(whisper_ctx *ctx, const wh_addr *a, cache_slot **out) {
  struct wh_record_cache *c = ctx->record_cache;
  cache_slot *sl;
  if (c->n == c->cap && c->cap < CACHE_SLOTS) {
    int cap = c->cap ? 2 * c->cap : 4;
    cache_slot *more = realloc(c->slot, (size_t)cap * sizeof *more);
    if (more != NULL) c->slot = more, c->cap = cap; /* (else: the oldest makes room) */
  }
  if (c->n < c->cap) {
    sl = &c->slot[c->n++];
  } else if (c->n == 0) {
    return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  } else {
    sl = &c->slot[0];
    if (sl->dirty) {
      int rc = record_write(ctx, &sl->a, &sl->r);
      if (rc != WHISPER_OK) return rc;
    }
    wh_record_free(&sl->r);
    memmove(&c->slot[0], &c->slot[1], (size_t)(c->n - 1) * sizeof *sl);
    sl = &c->slot[c->n - 1];
  }
  memset(sl, 0, sizeof *sl);
  sl->a = *a;
  *out = sl;
  return WHISPER_OK;
}

static void identity_memo_clear(whisper_ctx *ctx) {
  for (int i = 0; i < WH_IDENTITY_MEMO; i++) ctx->identity_memo[i].valid = 0;
  ctx->identity_memo_next = 0;
}

int wh_record_cache_begin(whisper_ctx *ctx) {
  identity_memo_clear(ctx);
  ctx->record_cache = calloc(1, sizeof *ctx->record_cache);
  return ctx->record_cache ? WHISPER_OK : wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
}

int wh_record_cache_end(whisper_ctx *ctx, int write) {
  struct wh_record_cache *c = ctx->record_cache;
  int rc = WHISPER_OK;
  if (c == NULL) return WHISPER_OK;
  ctx->record_cache = NULL;
  identity_memo_clear(ctx);
  for (int i = 0; i < c->n; i++) {
    if (write && rc == WHISPER_OK && c->slot[i].dirty)
      rc = record_write(ctx, &c->slot[i].a, &c->slot[i].r);
    wh_record_free(&c->slot[i].r);
  }
  free(c->slot);
  free(c);
  return rc;
}

/* The slot whose record `r` is, if it is one. */
static memo_slot *memo_of(whisper_ctx *ctx, const wh_record *r) {
  struct wh_session_memo *m = ctx->session_memo;
  for (int i = 0; m && i < MEMO_SLOTS; i++)
    if (&m->slot[i].r == r) return &m->slot[i];
  return NULL;
}

/* The stored record of `a`, in *r. With `lend`: the memo's own record
 * when the stored bytes are the ones it stands for, else decoded into the
 * memo (lent either way), else (no memo) into buf. Without: in buf, moved
 * out of the memo or decoded (the batch cache keeps it). On failure *r is
 * buf, cleared. */
static int record_read(whisper_ctx *ctx, const wh_addr *a, wh_record *buf, wh_record **r,
                       int lend) {
  const uint8_t *v;
  size_t n;
  *r = buf;
  int rc = wh_get_view(ctx, WHISPER_REC_SESSION, a->key, a->len, &v, &n);
  memo_slot *sl = memo_find(ctx, a);
  if (sl && sl->lent) sl = NULL; /* (a call loads an address once) */
  if (rc != WHISPER_OK) {
    memset(buf, 0, sizeof *buf);
    if (sl) memo_slot_clear(sl);
    return rc;
  }
  if (sl && sl->has_r && sl->len == n && memcmp(sl->bytes, v, n) == 0) {
    sl->has_r = 0;
    if (lend) {
      sl->lent = 1;
      *r = &sl->r;
    } else {
      *buf = sl->r; /* moved; the slot's copy is left as it is (what sl->bytes holds anyway) */
    }
    return WHISPER_OK;
  }
  if (lend && (sl = memo_slot_for(ctx, a)) != NULL && !sl->lent) {
    memo_slot_clear(sl);
    if (memo_reserve(sl, n) == 0) {
      rc = wh_record_decode(&sl->r, v, n);
      if (rc == WHISPER_OK) {
        memcpy(sl->bytes, v, n);
        sl->len = n;
        sl->lent = 1;
        *r = &sl->r;
        return WHISPER_OK;
      }
      memset(buf, 0, sizeof *buf);
      if (rc == WHISPER_ECORRUPT) return wh_fail(ctx, rc, "the stored session record is corrupt");
      return rc;
    }
  }
  rc = wh_record_decode(buf, v, n); /* (it clears buf first) */
  if (rc == WHISPER_ECORRUPT) {
    if (sl && !sl->lent) memo_slot_clear(sl);
    return wh_fail(ctx, rc, "the stored session record is corrupt");
  }
  return rc;
}

/* Ends a call's use of the record record_load gave it: a lent record not
 * written is dropped from the memo (it may have changed), one in buf is
 * freed. */
static void record_done(whisper_ctx *ctx, wh_record *r, wh_record *buf) {
  if (r == buf) {
    wh_record_free(buf);
    return;
  }
  memo_slot *sl = memo_of(ctx, r);
  if (sl && sl->lent) {
    wh_record_free(&sl->r);
    sl->lent = 0;
  }
}

/* The same for a call that did not change the record: a lent one goes
 * back into the memo as it was. */
static void record_done_unchanged(whisper_ctx *ctx, wh_record *r, wh_record *buf) {
  memo_slot *sl = r == buf ? NULL : memo_of(ctx, r);
  if (sl && sl->lent) {
    sl->lent = 0;
    sl->has_r = 1;
    return;
  }
  record_done(ctx, r, buf);
}

/* Loads the record of `a` into *r (see record_read); inside a batch, a copy
 * of the batch's kept record, in buf. End with record_done(). */
static int record_load(whisper_ctx *ctx, const wh_addr *a, wh_record *buf, wh_record **r) {
  if (ctx->record_cache == NULL) return record_read(ctx, a, buf, r, 1);
  *r = buf;
  cache_slot *sl = cache_find(ctx, a);
  if (sl == NULL) {
    wh_record fresh, *f;
    int rc = record_read(ctx, a, &fresh, &f, 0);
    if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) {
      memset(buf, 0, sizeof *buf);
      return rc;
    }
    int rc2 = cache_slot_for(ctx, a, &sl);
    if (rc2 != WHISPER_OK) {
      if (rc == WHISPER_OK) wh_record_free(&fresh);
      memset(buf, 0, sizeof *buf);
      return rc2;
    }
    sl->present = rc == WHISPER_OK;
    if (sl->present) sl->r = fresh;
  }
  memset(buf, 0, sizeof *buf);
  if (!sl->present) return WHISPER_ENOTFOUND;
  return record_copy(buf, &sl->r) == WHISPER_OK ? WHISPER_OK
                                                 : wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
}

/* Keeps `r` as the address's record: written at once, or, inside a batch,
 * moved into the kept copy (then `r` is left empty). The caller frees `r`
 * either way. */
static int record_store(whisper_ctx *ctx, const wh_addr *a, wh_record *r) {
  if (ctx->record_cache == NULL) return record_write(ctx, a, r);
  cache_slot *sl = cache_find(ctx, a);
  int rc = sl ? WHISPER_OK : cache_slot_for(ctx, a, &sl);
  if (rc != WHISPER_OK) return rc;
  if (sl->present) wh_record_free(&sl->r);
  sl->r = *r;
  memset(r, 0, sizeof *r);
  sl->present = sl->dirty = 1;
  return WHISPER_OK;
}

/* Encodes and writes `r`, which then becomes the memo's record of the
 * bytes written: a lent record stays where it is, another moves in (`r` is
 * left empty; the caller frees it either way). */
static int record_write(whisper_ctx *ctx, const wh_addr *a, wh_record *r) {
  wh_state_plan plan;
  size_t n = wh_record_encoded_len(r, &plan);
  memo_slot *sl = memo_of(ctx, r);
  if (sl == NULL && (sl = memo_slot_for(ctx, a)) != NULL) {
    if (sl->lent) sl = NULL; /* (not this record's: not expected) */
    else if (sl->has_r) wh_record_free(&sl->r), sl->has_r = 0;
  }
  if (sl) {
    if (sl->len > n) wh_wipe(sl->bytes + n, sl->len - n);
    sl->len = 0;
  }
  if (sl == NULL || memo_reserve(sl, n) != 0) { /* no memory for the memo: without it */
    whisper_buf *b;
    int rc = wh_record_encode(r, &b);
    if (rc != WHISPER_OK) return wh_fail(ctx, rc, "cannot encode the session record");
    rc = wh_put(ctx, WHISPER_REC_SESSION, a->key, a->len, b->data, b->len);
    whisper_buf_free(b);
    return rc;
  }
  wh_record_encode_to(r, &plan, sl->bytes);
  int rc = wh_put(ctx, WHISPER_REC_SESSION, a->key, a->len, sl->bytes, n);
  if (rc != WHISPER_OK) {
    wh_wipe(sl->bytes, n);
    return rc;
  }
  sl->len = n;
  if (r == &sl->r) {
    sl->lent = 0;
  } else {
    sl->r = *r;
    r->has_current = 0; /* now the memo's; the caller's free wipes this copy */
    r->narchived = 0;
  }
  sl->has_r = 1;
  return WHISPER_OK;
}

/* --- the session generation --------------------------------------------------- */

static const uint8_t GEN_KEY[] = "session-generation";

/* The store's session generation (0 until whisper_sessions_distrust()). */
int wh_session_gen(whisper_ctx *ctx, uint64_t *gen) {
  const uint8_t *v;
  size_t n;
  *gen = 0;
  int rc = wh_get_view(ctx, WHISPER_REC_META, GEN_KEY, sizeof GEN_KEY - 1, &v, &n);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  if (n == 8)
    for (int i = 0; i < 8; i++) *gen = *gen << 8 | v[i];
  return WHISPER_OK;
}

int whisper_sessions_distrust(whisper_ctx *ctx) {
  if (ctx == NULL) return WHISPER_EINVAL;
  uint64_t gen;
  int rc = wh_begin(ctx);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_session_gen(ctx, &gen)) == WHISPER_OK) {
    uint8_t v[8];
    gen++;
    for (int i = 0; i < 8; i++) v[i] = (uint8_t)(gen >> (56 - 8 * i));
    rc = wh_put(ctx, WHISPER_REC_META, GEN_KEY, sizeof GEN_KEY - 1, v, sizeof v);
  }
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

/* --- the ratchet ------------------------------------------------------------- */

static int dh_ratchet_step(whisper_ctx *ctx, wh_state *s, const uint8_t their[WH_PUB_LEN]) {
  uint8_t dh[32], rk[32], ckr[32], cks[32];
  wh_keypair n;
  int rc = WHISPER_OK;
  if (!s->has_sender) return wh_fail(ctx, WHISPER_EINVALIDMSG, "session state has no sender chain");
  if (wh_dh(dh, s->sender_priv, their) != 0) {
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "ratchet key is of low order");
    goto out;
  }
  kdf_rk(rk, ckr, s->root, dh);
  if (wh_keypair_generate(&ctx->rng, &n) != 0) {
    rc = wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
    goto out;
  }
  if (wh_dh(dh, n.priv, their) != 0) {
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "ratchet key is of low order");
    goto out;
  }
  kdf_rk(s->root, cks, rk, dh);
  if (s->nrecv == WH_MAX_RECV_CHAINS) {
    wh_chain_free(&s->recv[0]);
    memmove(&s->recv[0], &s->recv[1], (WH_MAX_RECV_CHAINS - 1) * sizeof s->recv[0]);
    memset(&s->recv[WH_MAX_RECV_CHAINS - 1], 0, sizeof s->recv[0]);
    s->nrecv--;
  }
  wh_chain *c = &s->recv[s->nrecv++];
  memset(c, 0, sizeof *c);
  memcpy(c->ratchet, their, WH_PUB_LEN);
  memcpy(c->ck, ckr, 32);
  s->previous_counter = s->sender.index > 0 ? s->sender.index - 1 : 0;
  wh_chain_free(&s->sender);
  if ((rc = wh_session_gen(ctx, &s->sender_gen)) != WHISPER_OK) goto out;
  memcpy(s->sender.ratchet, n.pub, WH_PUB_LEN);
  memcpy(s->sender_priv, n.priv, WH_KEY_LEN);
  memcpy(s->sender.ck, cks, 32);
  s->sender.index = 0;
out:
  wh_wipe(dh, sizeof dh);
  wh_wipe(rk, sizeof rk);
  wh_wipe(ckr, sizeof ckr);
  wh_wipe(cks, sizeof cks);
  wh_wipe(&n, sizeof n);
  return rc;
}

/* The message key for counter c on chain ch, storing skipped keys. */
static int chain_message_key(whisper_ctx *ctx, const wh_state *s, wh_chain *ch, uint32_t c,
                             wh_msgkey *mk) {
  if (c < ch->index) {
    for (uint32_t i = ch->nkeys; i-- > 0;) {
      if (ch->keys[i].index == c) {
        *mk = ch->keys[i];
        memmove(&ch->keys[i], &ch->keys[i + 1], (ch->nkeys - i - 1) * sizeof *ch->keys);
        ch->nkeys--;
        return WHISPER_OK;
      }
    }
    return wh_fail(ctx, WHISPER_EDUPLICATE, "duplicate message: counter %u, chain at %u", c,
                   ch->index);
  }
  if (c == UINT32_MAX)
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "counter at the end of the chain");
  uint32_t jump = c - ch->index;
  if (jump > WH_MAX_JUMP && memcmp(s->local_ik, s->remote_ik, WH_PUB_LEN) != 0)
    return wh_fail(ctx, WHISPER_ETOOFAR, "message from too far into the future (%u ahead)", jump);
  for (uint32_t i = ch->index; i < c; i++) {
    if (c - i <= WH_MAX_MSG_KEYS) { /* older ones would be evicted at once */
      wh_msgkey k;
      message_keys_step(&k, ch->ck, i);
      int failed = wh_chain_push_key(ch, &k);
      wh_wipe(&k, sizeof k);
      if (failed) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
    } else {
      chain_next(ch->ck);
    }
  }
  message_keys_step(mk, ch->ck, c);
  ch->index = c + 1;
  return WHISPER_OK;
}

/* Decrypts m with state s (modified in place; the caller keeps it only on
 * success). */
static int state_decrypt(whisper_ctx *ctx, wh_state *s, const sigmsg *m, whisper_buf **pt) {
  wh_chain *ch = NULL;
  wh_msgkey mk;
  uint8_t mac[MAC_LEN];
  int rc;
  if (m->version != s->version)
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "message version %u on a version %u session",
                   m->version, s->version);
  for (uint32_t i = 0; i < s->nrecv; i++)
    if (memcmp(s->recv[i].ratchet, m->ratchet, WH_PUB_LEN) == 0) ch = &s->recv[i];
  if (ch == NULL) {
    if ((rc = dh_ratchet_step(ctx, s, m->ratchet)) != WHISPER_OK) return rc;
    ch = &s->recv[s->nrecv - 1];
  }
  if ((rc = chain_message_key(ctx, s, ch, m->counter, &mk)) != WHISPER_OK) return rc;
  compute_mac(mac, mk.mac, s->remote_ik, s->local_ik, m->bytes, m->len - MAC_LEN);
  if (!wh_ct_eq(mac, m->bytes + m->len - MAC_LEN, MAC_LEN)) {
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "bad MAC");
    goto out;
  }
  whisper_buf *out = wh_buf_alloc(m->ct_len + 16); /* len becomes what the cipher wrote */
  if (out == NULL) {
    rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
    goto out;
  }
  if (wh_cbc_decrypt(out->data, &out->len, mk.cipher, mk.iv, m->ct, m->ct_len) != 0) {
    out->len = m->ct_len + 16;
    whisper_buf_free(out);
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "bad ciphertext (length or padding)");
    goto out;
  }
  s->has_pending = 0;
  *pt = out;
  rc = WHISPER_OK;
out:
  wh_wipe(&mk, sizeof mk);
  return rc;
}

/* libsignal's decrypt_message_with_record: the current state, then each
 * archived state (a success there is promoted). */
static int record_decrypt(whisper_ctx *ctx, wh_record *r, const sigmsg *m, whisper_buf **pt) {
  int cur_rc = WHISPER_ENOSESSION;
  if (!r->has_current && r->narchived == 0)
    return wh_fail(ctx, WHISPER_ENOSESSION, "no session with this device");
  if (r->has_current) {
    wh_state work;
    int rc;
    if (r->narchived == 0) {
      rc = state_decrypt(ctx, &r->cur, m, pt);
      return rc;
    }
    if ((rc = state_copy(&work, &r->cur)) != WHISPER_OK) return wh_fail(ctx, rc, "out of memory");
    rc = state_decrypt(ctx, &work, m, pt);
    if (rc == WHISPER_OK) {
      wh_state_free(&r->cur);
      r->cur = work;
      return WHISPER_OK;
    }
    wh_state_free(&work);
    if (rc == WHISPER_EDUPLICATE || rc == WHISPER_ENOMEM || rc == WHISPER_ERANDOM) return rc;
    cur_rc = rc;
  }
  for (uint32_t i = 0; i < r->narchived; i++) {
    wh_state st;
    int rc = wh_state_decode(&st, r->archived[i]->data, r->archived[i]->len);
    if (rc != WHISPER_OK) return wh_fail(ctx, rc, "an archived session state is corrupt");
    rc = state_decrypt(ctx, &st, m, pt);
    if (rc == WHISPER_OK) {
      whisper_buf_free(r->archived[i]);
      memmove(&r->archived[i], &r->archived[i + 1], (r->narchived - i - 1) * sizeof *r->archived);
      r->narchived--;
      rc = wh_record_promote(r, &st);
      if (rc != WHISPER_OK) {
        whisper_buf_free(*pt);
        *pt = NULL;
        wh_state_free(&st);
        return wh_fail(ctx, rc, "out of memory");
      }
      return WHISPER_OK;
    }
    wh_state_free(&st);
    if (rc == WHISPER_EDUPLICATE || rc == WHISPER_ENOMEM || rc == WHISPER_ERANDOM) return rc;
  }
  if (cur_rc == WHISPER_ETOOFAR)
    return wh_fail(ctx, WHISPER_ETOOFAR, "message from too far into the future");
  return wh_fail(ctx, WHISPER_EINVALIDMSG, "decryption failed");
}

/* --- X3DH -------------------------------------------------------------------- */

static const uint8_t discontinuity[32] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

/* secret = 0xFF*32 || dh[0] || ... ; RK0 || CK0 = HKDF(secret, "WhisperText"). */
static void x3dh_derive(uint8_t rk[32], uint8_t ck[32], uint8_t secret[160], size_t n_dh) {
  uint8_t okm[64];
  memcpy(secret, discontinuity, 32);
  wh_hkdf(okm, sizeof okm, NULL, 0, secret, 32 + 32 * n_dh, "WhisperText");
  memcpy(rk, okm, 32);
  memcpy(ck, okm + 32, 32);
  wh_wipe(okm, sizeof okm);
}

static int is_session_usable(const wh_record *r, uint64_t now_ms) {
  if (!r->has_current || !r->cur.has_sender) return 0;
  if (r->cur.has_pending && r->cur.pending_ts + WH_MAX_PENDING_AGE_S < now_ms / 1000) return 0;
  return 1;
}

int whisper_session_start(whisper_ctx *ctx, const char *name, uint32_t device_id,
                          const whisper_prekey_bundle_t *in, uint64_t now_ms) {
  whisper_prekey_bundle_t bundle, *b = &bundle; /* the fields both sides have */
  wh_addr a;
  wh_record rbuf, *r = &rbuf;
  wh_state s;
  wh_keypair ek, ra;
  uint8_t secret[160], ck0[32], dh[32];
  int trusted = 0, rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if ((rc = wh_addr_make(ctx, &a, name, device_id)) != WHISPER_OK) return rc;
  if (in == NULL) return wh_fail(ctx, WHISPER_EINVAL, "bundle is NULL");
  if ((rc = WH_SIZE_CHECK(ctx, "bundle", in->size, whisper_prekey_bundle_t,
                          WHISPER_PREKEY_BUNDLE)) != WHISPER_OK)
    return rc;
  wh_versioned_in(&bundle, sizeof bundle, in);
  if (!wh_pub_ok(b->identity_key, WH_PUB_LEN) || !wh_pub_ok(b->signed_prekey, WH_PUB_LEN) ||
      (b->has_prekey && !wh_pub_ok(b->prekey, WH_PUB_LEN)))
    return wh_fail(ctx, WHISPER_EINVALIDKEY, "the bundle holds a malformed key");
  if ((rc = wh_local_identity(ctx)) != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  memset(&s, 0, sizeof s);
  memset(&rbuf, 0, sizeof rbuf);
  rc = wh_identity_is_trusted(ctx, &a, b->identity_key, &trusted);
  if (rc != WHISPER_OK) goto out;
  if (!trusted) {
    rc = wh_fail(ctx, WHISPER_EUNTRUSTED, "the identity key of %s.%u changed", name, device_id);
    goto out;
  }
  if (wh_xeddsa_verify(b->identity_key + 1, b->signed_prekey, WH_PUB_LEN,
                       b->signed_prekey_signature) != 0) {
    rc = wh_fail(ctx, WHISPER_EINVALIDSIG, "the signed prekey's signature does not verify");
    goto out;
  }
  if (wh_keypair_generate(&ctx->rng, &ek) != 0 || wh_keypair_generate(&ctx->rng, &ra) != 0) {
    rc = wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
    goto out;
  }
  size_t n_dh = b->has_prekey ? 4 : 3;
  if (wh_dh(secret + 32, ctx->identity.priv, b->signed_prekey) != 0 ||
      wh_dh(secret + 64, ek.priv, b->identity_key) != 0 ||
      wh_dh(secret + 96, ek.priv, b->signed_prekey) != 0 ||
      (b->has_prekey && wh_dh(secret + 128, ek.priv, b->prekey) != 0)) {
    rc = wh_fail(ctx, WHISPER_EINVALIDKEY, "the bundle holds a low-order key");
    goto out;
  }
  s.version = WH_SESSION_VERSION;
  x3dh_derive(s.root, ck0, secret, n_dh);
  memcpy(s.local_ik, ctx->identity.pub, WH_PUB_LEN);
  memcpy(s.remote_ik, b->identity_key, WH_PUB_LEN);
  /* Bob's signed prekey is his first ratchet key. */
  s.nrecv = 1;
  memcpy(s.recv[0].ratchet, b->signed_prekey, WH_PUB_LEN);
  memcpy(s.recv[0].ck, ck0, 32);
  if (wh_dh(dh, ra.priv, b->signed_prekey) != 0) {
    rc = wh_fail(ctx, WHISPER_EINVALIDKEY, "the bundle holds a low-order key");
    goto out;
  }
  kdf_rk(s.root, s.sender.ck, s.root, dh);
  s.has_sender = 1;
  if ((rc = wh_session_gen(ctx, &s.sender_gen)) != WHISPER_OK) goto out;
  memcpy(s.sender.ratchet, ra.pub, WH_PUB_LEN);
  memcpy(s.sender_priv, ra.priv, WH_KEY_LEN);
  s.has_pending = 1;
  s.pending_has_prekey = b->has_prekey;
  s.pending_prekey_id = b->prekey_id;
  s.pending_spk_id = (int32_t)b->signed_prekey_id;
  memcpy(s.pending_base, ek.pub, WH_PUB_LEN);
  s.pending_ts = now_ms / 1000;
  s.local_reg = ctx->registration_id;
  s.remote_reg = b->registration_id;
  memcpy(s.alice_base, ek.pub, WH_PUB_LEN);

  rc = record_load(ctx, &a, &rbuf, &r);
  if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  if (rc == WHISPER_OK) rc = wh_record_promote(r, &s);
  if (rc == WHISPER_OK) rc = wh_identity_save(ctx, &a, b->identity_key);
  if (rc == WHISPER_OK) rc = record_store(ctx, &a, r);
out:
  wh_state_free(&s);
  record_done(ctx, r, &rbuf);
  wh_wipe(&ek, sizeof ek);
  wh_wipe(&ra, sizeof ra);
  wh_wipe(secret, sizeof secret);
  wh_wipe(ck0, sizeof ck0);
  wh_wipe(dh, sizeof dh);
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

int whisper_session_exists(whisper_ctx *ctx, const char *name, uint32_t device_id, uint64_t now_ms,
                           int *out) {
  wh_addr a;
  wh_record rbuf, *r;
  int rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (out == NULL) return wh_fail(ctx, WHISPER_EINVAL, "out is NULL");
  *out = 0;
  if ((rc = wh_addr_make(ctx, &a, name, device_id)) != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = record_load(ctx, &a, &rbuf, &r);
  if (rc == WHISPER_OK) {
    *out = is_session_usable(r, now_ms);
    record_done_unchanged(ctx, r, &rbuf);
  } else if (rc == WHISPER_ENOTFOUND) {
    rc = WHISPER_OK;
  }
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, n++;
  return n;
}

/*
 * Builds version || SignalMessage || MAC, encrypting the plaintext straight
 * into its place: the four fields are written directly, in the encoding
 * protobuf-c gives them (fields in order, the ciphertext last), so a
 * megabyte message is neither copied nor held twice.
 */
static uint8_t *put_varint(uint8_t *p, uint64_t v) {
  for (;; v >>= 7) {
    *p++ = (uint8_t)(v >= 0x80 ? (v & 0x7F) | 0x80 : v);
    if (v < 0x80) return p;
  }
}

static int signal_message_seal(whisper_ctx *ctx, whisper_buf **out, const wh_state *s,
                               const wh_msgkey *mk, const uint8_t *pt, size_t pt_len) {
  /* fields 1 (ratchet_key), 2 (counter), 3 (previous_counter), as
   * protobuf-c packs them (test_session's wire sheet checks every byte) */
  size_t head = 2 + WH_PUB_LEN + 1 + varint_len(s->sender.index) + 1 +
                varint_len(s->previous_counter);
  size_t ct_len = wh_cbc_len(pt_len);
  size_t body = 1 + head + 1 + varint_len(ct_len) + ct_len;
  whisper_buf *b = wh_buf_alloc(body + MAC_LEN); /* every byte is written below */
  if (b == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  uint8_t *p = b->data;
  *p++ = (uint8_t)(s->version << 4 | 4);
  *p++ = 1 << 3 | 2;
  *p++ = WH_PUB_LEN;
  memcpy(p, s->sender.ratchet, WH_PUB_LEN);
  p += WH_PUB_LEN;
  *p++ = 2 << 3;
  p = put_varint(p, s->sender.index);
  *p++ = 3 << 3;
  p = put_varint(p, s->previous_counter);
  *p++ = 4 << 3 | 2; /* field 4, length-delimited */
  p = put_varint(p, ct_len);
  if (wh_cbc_encrypt(p, mk->cipher, mk->iv, pt, pt_len) != 0) {
    whisper_buf_free(b);
    return wh_fail(ctx, WHISPER_EINTERNAL, "AES-CBC encryption failed");
  }
  compute_mac(b->data + body, mk->mac, s->local_ik, s->remote_ik, b->data, body);
  *out = b;
  return WHISPER_OK;
}

static int prekey_message_wrap(whisper_buf **out, const wh_state *s, const whisper_buf *inner) {
  Whisper__Wire__PreKeySignalMessage pb = WHISPER__WIRE__PRE_KEY_SIGNAL_MESSAGE__INIT;
  pb.has_pre_key_id = s->pending_has_prekey;
  pb.pre_key_id = s->pending_prekey_id;
  pb.has_base_key = pb.has_identity_key = pb.has_message = 1;
  pb.has_registration_id = pb.has_signed_pre_key_id = 1;
  pb.base_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)s->pending_base};
  pb.identity_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)s->local_ik};
  pb.message = (ProtobufCBinaryData){inner->len, inner->data};
  pb.registration_id = s->local_reg;
  pb.signed_pre_key_id = (uint32_t)s->pending_spk_id;
  size_t n = whisper__wire__pre_key_signal_message__get_packed_size(&pb);
  whisper_buf *b = whisper_buf_new(NULL, 1 + n);
  if (b == NULL) return WHISPER_ENOMEM;
  b->data[0] = (uint8_t)(s->version << 4 | 4);
  whisper__wire__pre_key_signal_message__pack(&pb, b->data + 1);
  *out = b;
  return WHISPER_OK;
}

/* --- send marks: a restored session row is caught before it reuses a key ---- */

/* A mark of chains that each have both fields (the form written here),
 * as protobuf-c packs SendMark: field 1 per chain, each ratchet_key (1)
 * then counter (2). Returns the length (at most SEND_MARK_MAX). */
static size_t send_mark_encode(uint8_t *out, const mark_chain *c, size_t n) {
  uint8_t *p = out;
  for (size_t i = 0; i < n; i++) {
    *p++ = 1 << 3 | 2;
    *p++ = (uint8_t)(2 + WH_PUB_LEN + 1 + varint_len(c[i].counter));
    *p++ = 1 << 3 | 2;
    *p++ = WH_PUB_LEN;
    memcpy(p, c[i].ratchet, WH_PUB_LEN);
    p += WH_PUB_LEN;
    *p++ = 2 << 3;
    p = put_varint(p, c[i].counter);
  }
  return (size_t)(p - out);
}

static int send_mark_refused(whisper_ctx *ctx) {
  return wh_fail(ctx, WHISPER_EROLLEDBACK,
                 "the session with that device is older than keys it already used (restored?)");
}

static int mark_chain_plain(const Whisper__Store__SendMark__Chain *c) {
  return c->has_ratchet_key && c->ratchet_key.len == WH_PUB_LEN && c->has_counter &&
         c->base.n_unknown_fields == 0;
}

/* Refuses index `index` on chain `ratchet` if that chain was used at or
 * past it, else records it (in the caller's transaction, beside the
 * session it writes). The mark's row is read every time; when its bytes
 * are the ones this context last wrote for the address (the session memo
 * keeps them), their chains are known without decoding. */
static int send_mark_check(whisper_ctx *ctx, const wh_addr *a, const uint8_t ratchet[WH_PUB_LEN],
                           uint32_t index) {
  const uint8_t *v;
  size_t n;
  Whisper__Store__SendMark *m = NULL;
  mark_chain next[SEND_MARK_CHAINS];
  size_t nn = 0;
  int plain = 1;
  int rc = wh_get_view(ctx, WHISPER_REC_SEND_MARK, a->key, a->len, &v, &n);
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
  memo_slot *sl = memo_find(ctx, a);
  memcpy(next[0].ratchet, ratchet, WH_PUB_LEN);
  next[0].counter = index;
  nn = 1;
  Whisper__Store__SendMark__Chain ch[SEND_MARK_CHAINS], *chp[SEND_MARK_CHAINS];
  size_t np = 0;
  whisper__store__send_mark__chain__init(&ch[0]);
  ch[0].has_ratchet_key = ch[0].has_counter = 1;
  ch[0].ratchet_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)ratchet};
  ch[0].counter = index;
  chp[np++] = &ch[0];
  if (rc == WHISPER_OK && sl && sl->mark_len && n == sl->mark_len && memcmp(v, sl->mark, n) == 0) {
    for (size_t i = 0; i < sl->mark_n; i++) {
      const mark_chain *c = &sl->marks[i];
      int same = memcmp(c->ratchet, ratchet, WH_PUB_LEN) == 0;
      if (same && index <= c->counter) return send_mark_refused(ctx);
      if (!same && nn < SEND_MARK_CHAINS) next[nn++] = *c;
    }
  } else {
    if (rc == WHISPER_OK) {
      m = whisper__store__send_mark__unpack(&wh_pb_alloc, n, v);
      if (m == NULL) return wh_fail(ctx, WHISPER_ECORRUPT, "a stored send mark is corrupt");
    }
    for (size_t i = 0; m && i < m->n_chains; i++) {
      const Whisper__Store__SendMark__Chain *c = m->chains[i];
      int same = c->ratchet_key.len == WH_PUB_LEN &&
                 memcmp(c->ratchet_key.data, ratchet, WH_PUB_LEN) == 0;
      if (same && index <= c->counter) {
        whisper__store__send_mark__free_unpacked(m, &wh_pb_alloc);
        return send_mark_refused(ctx);
      }
      if (!same && np < SEND_MARK_CHAINS) {
        chp[np++] = m->chains[i];
        if (!mark_chain_plain(c)) {
          plain = 0;
        } else {
          memcpy(next[nn].ratchet, c->ratchet_key.data, WH_PUB_LEN);
          next[nn++].counter = c->counter;
        }
      }
    }
  }
  if (!plain) { /* a mark not written here: packed by protobuf-c as it was decoded */
    if (sl) sl->mark_len = 0;
    Whisper__Store__SendMark out = WHISPER__STORE__SEND_MARK__INIT;
    out.n_chains = np;
    out.chains = chp;
    rc = wh_put_msg(ctx, WHISPER_REC_SEND_MARK, a->key, a->len, &out.base);
    whisper__store__send_mark__free_unpacked(m, &wh_pb_alloc);
    return rc;
  }
  if (m) whisper__store__send_mark__free_unpacked(m, &wh_pb_alloc);
  uint8_t buf[SEND_MARK_MAX];
  size_t len = send_mark_encode(buf, next, nn);
  rc = wh_put(ctx, WHISPER_REC_SEND_MARK, a->key, a->len, buf, len);
  if (sl) {
    sl->mark_len = 0;
    if (rc == WHISPER_OK) {
      memcpy(sl->mark, buf, len);
      memcpy(sl->marks, next, nn * sizeof *next);
      sl->mark_len = len;
      sl->mark_n = nn;
    }
  }
  return rc;
}

int whisper_session_encrypt(whisper_ctx *ctx, const char *name, uint32_t device_id,
                            const uint8_t *pt, size_t pt_len, uint64_t now_ms, int *type_out,
                            whisper_buf **out) {
  wh_addr a;
  wh_record rbuf, *r;
  wh_msgkey mk;
  whisper_buf *msg = NULL, *wrapped = NULL;
  int rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if ((rc = wh_addr_make(ctx, &a, name, device_id)) != WHISPER_OK) return rc;
  if (type_out == NULL || out == NULL || (pt == NULL && pt_len))
    return wh_fail(ctx, WHISPER_EINVAL, "NULL argument");
  if (pt_len > (size_t)INT32_MAX - 64) return wh_fail(ctx, WHISPER_EINVAL, "plaintext too large");
  *out = NULL;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  memset(&mk, 0, sizeof mk);
  rc = record_load(ctx, &a, &rbuf, &r);
  if (rc == WHISPER_ENOTFOUND) {
    rc = wh_fail(ctx, WHISPER_ENOSESSION, "no session with %s.%u", name, device_id);
    return wh_finish(ctx, rc);
  }
  if (rc != WHISPER_OK) return wh_finish(ctx, rc);
  if (!is_session_usable(r, now_ms)) {
    rc = wh_fail(ctx, WHISPER_ENOSESSION, "no usable session with %s.%u%s", name, device_id,
                 r->has_current && r->cur.has_pending ? " (unacknowledged for over 30 days)" : "");
    goto out;
  }
  wh_state *s = &r->cur;
  if (s->sender.index == UINT32_MAX) {
    rc = wh_fail(ctx, WHISPER_ENOSESSION, "the sending chain is exhausted: start a new session");
    goto out;
  }
  uint64_t gen;
  if ((rc = wh_session_gen(ctx, &gen)) != WHISPER_OK) goto out;
  if (s->sender_gen < gen) {
    rc = wh_fail(ctx, WHISPER_EROLLEDBACK, "the session with %s.%u is from before the store was "
                 "found restored: it may reuse keys", name, device_id);
    goto out;
  }
  if ((rc = send_mark_check(ctx, &a, s->sender.ratchet, s->sender.index)) != WHISPER_OK) goto out;
  message_keys_step(&mk, s->sender.ck, s->sender.index); /* the record is kept only on success */
  if ((rc = signal_message_seal(ctx, &msg, s, &mk, pt, pt_len)) != WHISPER_OK) goto out;
  if (s->has_pending) {
    if ((rc = prekey_message_wrap(&wrapped, s, msg)) != WHISPER_OK) goto oom;
    whisper_buf_free(msg);
    msg = wrapped;
    *type_out = WHISPER_MSG_PREKEY;
  } else {
    *type_out = WHISPER_MSG_WHISPER;
  }
  s->sender.index++;
  if ((rc = wh_identity_check_save(ctx, &a, s->remote_ik)) != WHISPER_OK) goto out;
  rc = record_store(ctx, &a, r);
  goto out;
oom:
  rc = wh_fail(ctx, rc, "out of memory");
out:
  wh_wipe(&mk, sizeof mk);
  record_done(ctx, r, &rbuf);
  rc = wh_finish(ctx, rc);
  if (rc != WHISPER_OK) {
    whisper_buf_free(msg);
    return rc;
  }
  *out = msg;
  return wh_ok(ctx);
}

/* Bob's side of X3DH for a PreKey message with no matching state. */
static int prekey_setup(whisper_ctx *ctx, const prekeymsg *m, wh_state *s, int *used_opk) {
  const Whisper__Wire__PreKeySignalMessage *p = m->pb;
  wh_keypair spk, opk;
  uint8_t secret[160];
  int rc;
  *used_opk = 0;
  rc = wh_load_prekey(ctx, WHISPER_REC_SIGNED_PREKEY, p->signed_pre_key_id, &spk, NULL, NULL);
  if (rc == WHISPER_ENOTFOUND)
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "unknown signed prekey id %u", p->signed_pre_key_id);
  if (rc != WHISPER_OK) return rc;
  if (p->has_pre_key_id) {
    rc = wh_load_prekey(ctx, WHISPER_REC_PREKEY, p->pre_key_id, &opk, NULL, NULL);
    if (rc == WHISPER_ENOTFOUND)
      rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "unknown one-time prekey id %u", p->pre_key_id);
    if (rc != WHISPER_OK) goto out;
  }
  const uint8_t *ik_a = p->identity_key.data, *ek_a = p->base_key.data;
  if (wh_dh(secret + 32, spk.priv, ik_a) != 0 || wh_dh(secret + 64, ctx->identity.priv, ek_a) != 0 ||
      wh_dh(secret + 96, spk.priv, ek_a) != 0 ||
      (p->has_pre_key_id && wh_dh(secret + 128, opk.priv, ek_a) != 0)) {
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "the message holds a low-order key");
    goto out;
  }
  memset(s, 0, sizeof *s);
  s->version = m->version;
  x3dh_derive(s->root, s->sender.ck, secret, p->has_pre_key_id ? 4 : 3);
  s->has_sender = 1;
  if ((rc = wh_session_gen(ctx, &s->sender_gen)) != WHISPER_OK) goto out;
  memcpy(s->sender.ratchet, spk.pub, WH_PUB_LEN);
  memcpy(s->sender_priv, spk.priv, WH_KEY_LEN);
  memcpy(s->local_ik, ctx->identity.pub, WH_PUB_LEN);
  memcpy(s->remote_ik, ik_a, WH_PUB_LEN);
  memcpy(s->alice_base, ek_a, WH_PUB_LEN);
  s->local_reg = ctx->registration_id;
  s->remote_reg = p->has_registration_id ? p->registration_id : 0;
  *used_opk = p->has_pre_key_id;
out:
  wh_wipe(&spk, sizeof spk);
  wh_wipe(&opk, sizeof opk);
  wh_wipe(secret, sizeof secret);
  return rc;
}

/* Does the record already hold the session this PreKey message set up? */
static int record_has_base_key(const wh_record *r, uint8_t version, const uint8_t base[WH_PUB_LEN]) {
  if (r->has_current && r->cur.version == version &&
      memcmp(r->cur.alice_base, base, WH_PUB_LEN) == 0)
    return 1;
  for (uint32_t i = 0; i < r->narchived; i++) {
    wh_state st;
    if (wh_state_decode(&st, r->archived[i]->data, r->archived[i]->len) != WHISPER_OK) continue;
    int same = st.version == version && memcmp(st.alice_base, base, WH_PUB_LEN) == 0;
    wh_state_free(&st);
    if (same) return 1;
  }
  return 0;
}

static int decrypt_prekey(whisper_ctx *ctx, const wh_addr *a, wh_record *buf, wh_record **pr,
                          const uint8_t *body, size_t len, whisper_buf **pt) {
  prekeymsg m;
  wh_state s;
  wh_record *r;
  int rc, trusted = 0, used_opk = 0;
  if ((rc = prekey_message_parse(ctx, &m, body, len)) != WHISPER_OK) return rc;
  const uint8_t *ik = m.pb->identity_key.data;
  if ((rc = wh_identity_is_trusted(ctx, a, ik, &trusted)) != WHISPER_OK) goto out;
  if (!trusted) {
    rc = wh_fail(ctx, WHISPER_EUNTRUSTED, "the sender's identity key changed");
    goto out;
  }
  rc = record_load(ctx, a, buf, pr);
  r = *pr;
  if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  if (rc != WHISPER_OK) goto out;
  if (!record_has_base_key(r, m.version, m.pb->base_key.data)) {
    if ((rc = prekey_setup(ctx, &m, &s, &used_opk)) != WHISPER_OK) goto out;
    if ((rc = wh_record_promote(r, &s)) != WHISPER_OK) {
      wh_state_free(&s);
      rc = wh_fail(ctx, rc, "out of memory");
      goto out;
    }
  }
  /* libsignal saves the identity before decrypting; here nothing is
   * written until the message is known good, so a failed decrypt inside a
   * batch transaction leaves no trace either */
  if ((rc = record_decrypt(ctx, r, &m.inner, pt)) != WHISPER_OK) goto out;
  if ((rc = wh_identity_save(ctx, a, ik)) != WHISPER_OK) goto out;
  if (used_opk) {
    uint8_t key[4];
    wh_be32(key, m.pb->pre_key_id);
    rc = wh_del(ctx, WHISPER_REC_PREKEY, key, 4);
    if (rc == WHISPER_OK) rc = wh_prekey_count_add(ctx, -1);
  }
out:
  prekeymsg_free(&m);
  return rc;
}

static int decrypt_whisper(whisper_ctx *ctx, const wh_addr *a, wh_record *buf, wh_record **pr,
                           const uint8_t *body, size_t len, whisper_buf **pt) {
  sigmsg m;
  int rc;
  if ((rc = signal_message_parse(ctx, &m, body, len)) != WHISPER_OK) return rc;
  rc = record_load(ctx, a, buf, pr);
  if (rc == WHISPER_ENOTFOUND) rc = wh_fail(ctx, WHISPER_ENOSESSION, "no session with this device");
  if (rc == WHISPER_OK) rc = record_decrypt(ctx, *pr, &m, pt);
  if (rc == WHISPER_OK) rc = wh_identity_check_save(ctx, a, (*pr)->cur.remote_ik);
  return rc;
}

int wh_session_decrypt_then(whisper_ctx *ctx, const wh_addr *a, int type, const uint8_t *body,
                            size_t body_len, whisper_buf **pt_out, wh_decrypt_then_fn then,
                            void *arg) {
  wh_record rbuf, *r = &rbuf;
  whisper_buf *pt = NULL;
  int rc;
  memset(&rbuf, 0, sizeof rbuf);
  if (type == WHISPER_MSG_PREKEY)
    rc = decrypt_prekey(ctx, a, &rbuf, &r, body, body_len, &pt);
  else
    rc = decrypt_whisper(ctx, a, &rbuf, &r, body, body_len, &pt);
  if (rc == WHISPER_OK && then) rc = then(ctx, arg, pt);
  if (rc == WHISPER_OK) rc = record_store(ctx, a, r);
  record_done(ctx, r, &rbuf);
  if (rc != WHISPER_OK) {
    whisper_buf_free(pt);
    return rc;
  }
  *pt_out = pt;
  return WHISPER_OK;
}

int wh_session_decrypt_in_txn(whisper_ctx *ctx, const wh_addr *a, int type, const uint8_t *body,
                              size_t body_len, whisper_buf **pt_out) {
  return wh_session_decrypt_then(ctx, a, type, body, body_len, pt_out, NULL, NULL);
}

int wh_session_decrypt_check(whisper_ctx *ctx, wh_addr *a, const char *name, uint32_t device_id,
                             int type, const uint8_t *body, size_t body_len, whisper_buf **pt_out) {
  int rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if ((rc = wh_addr_make(ctx, a, name, device_id)) != WHISPER_OK) return rc;
  if (pt_out == NULL || (body == NULL && body_len))
    return wh_fail(ctx, WHISPER_EINVAL, "NULL argument");
  *pt_out = NULL;
  if (type != WHISPER_MSG_PREKEY && type != WHISPER_MSG_WHISPER)
    return wh_fail(ctx, WHISPER_EINVAL, "unknown message type %d", type);
  return wh_local_identity(ctx);
}

int whisper_session_decrypt(whisper_ctx *ctx, const char *name, uint32_t device_id, int type,
                            const uint8_t *body, size_t body_len, whisper_buf **pt_out) {
  wh_addr a;
  int rc = wh_session_decrypt_check(ctx, &a, name, device_id, type, body, body_len, pt_out);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = wh_finish(ctx, wh_session_decrypt_in_txn(ctx, &a, type, body, body_len, pt_out));
  if (rc != WHISPER_OK) {
    whisper_buf_free(*pt_out);
    *pt_out = NULL;
    return rc;
  }
  return wh_ok(ctx);
}
