/*
 * fuzz_server: the server core (include/whisper/server.h) fed sequences of
 * operations over FZS_SLOTS connections: frames received, connections
 * opened and closed, the clock moving, and logins the harness signs (the
 * input format is in fuzz_sync.h). Every input starts from the server
 * world of fuzz_sync.c (alice.1, alice.2, bob.1 and carol.1 registered, a
 * group, five entries in bob.1's mailbox, two pending link codes) on a
 * watching memory store, with a new server whose RNG is fixed, and with
 * alice.1 logged in on slot 0, bob.1 on slot 1 and slot 2 open. The
 * store is put back after each input.
 *
 * Asserts, after every operation:
 *  - every WHISPER_SERVER_SEND frame decodes as a whisper.sync.Frame of
 *    version 1 with a body the server sends (Challenge .. Pong), pushes
 *    with id 0, Errors with a documented code and never ERR_INTERNAL (the
 *    memory store does not fail and holds only what the server wrote);
 *    it goes to an open connection, and a CLOSE too; a PUSH names a
 *    valid account and device;
 *  - whisper_server_receive returns WHISPER_OK on an open connection and
 *    WHISPER_ENOTFOUND on a closed one, and leaves no transaction open;
 *  - every frame received on an open connection (but a deferred one, see
 *    fuzz_sync.h) is answered on it (the
 *    first non-push frame carrying the request's id: the parsed id, or 0
 *    for a frame over the size limit or one that does not parse), except
 *    a Register with a link code, which is held until the code is
 *    approved;
 *  - a frame answered with an Error or StaleDevices changed no stored
 *    byte and committed no transaction with writes (fuzz_common's
 *    watching store); ERR_RATE carries retry_ms;
 *  - a Register held on a link code is answered in the receive in which a
 *    device of its account gets Ok for LinkApprove of that code;
 *  - a tick closes a connection that holds a Register only once the
 *    Register is answered (its code expired: the Error comes before the
 *    CLOSE) or the heartbeat ran out: the auth timeout waits for the code;
 *  - a Send with a (device, client id) the server answered before (in
 *    the input, or alice.1's five of the world) gets the same Sent
 *    (server_seq) and writes nothing;
 *  - whisper_server_disconnected drops the connection's queued output, also when
 *    the server had dropped the connection itself;
 *  - whisper_server_connected refuses an open connection id (EINVAL) and
 *    accepts a closed one; after whisper_server_tick(now) nothing is due:
 *    whisper_server_next_deadline() > now;
 *  - the stats count exactly the open connections;
 * and at the end of the input: the total mailbox depth (stats, and the
 * stored counter) equals the number of stored mailbox entries; each device
 * record's mailbox_count equals the entries under its tag (all at or
 * below mailbox_last), its mailbox_bytes their bytes, its share records
 * (server_mailbox.c) what each other account has among them (a mailbox
 * that keeps none, shares_lazy, has none, and holds less than half of a
 * sender's share), and its
 * prekeys count the one-time prekeys stored under its tag. Slots 3 and 4
 * open with a source (whisper_server_connected_from), so the limits per
 * source run too. Profiles: a ProfileSet answered Ok is stored exactly as
 * sent under the logged-in device's account (ERR_STATE only for a version
 * not above the stored one); a Profile answer is exactly the stored
 * profile of the account it names; every stored profile decodes with a
 * version and 1..WSRV_PROFILE_MAX bytes.
 * Each input runs twice: as above, then with group commit
 * (whisper_server_batch_begin/_end) and records kept between batches:
 * every frame, open and tick in a batch of its own, and deferred frames
 * (fuzz_sync.h) one after another in one batch, ended by the next
 * operation; the same assertions hold (a batch
 * hands out nothing before its end, and a refused frame's writes are
 * undone with its savepoint: they count as no committed write).
 * ASan/UBSan/LSan catch the rest.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sync.h"
#include "server.pb-c.h"
#include "server/server_internal.h"

static fzs_server_world *W;

typedef struct slot {
  int open;
  int have_nonce;
  uint8_t nonce[32];
  int dev; /* the device logged in on it (index in W->dev), -1: none */
  uint64_t last_rx; /* when the server last received on it */
  /* a Register held until its link code is approved */
  int held;
  uint64_t held_id;
  uint8_t held_code[16];
  char held_account[65];
} slot;

/* Sends the server answered Sent in this input, by (device, client id). */
typedef struct sent_rec {
  int dev;
  uint8_t cid[16];
  uint64_t seq; /* 0: sent before the input (the world's), seq unknown */
} sent_rec;

static struct {
  whisper_server *srv;
  uint64_t now;
  slot slot[FZS_SLOTS];
  uint64_t next_id; /* the harness's own requests */
  /* the answer being looked for */
  uint64_t want_conn, want_id;
  int answered, answer_body;
  uint32_t answer_code;
  uint64_t answer_seq; /* of a Sent */
  int deferred;        /* output left queued by a deferred RECV */
  int ticking;         /* the output being drained is a tick's */
  int batching;        /* this run uses group commit */
  int batch_open;      /* a batch is open (deferred frames in it) */
  sent_rec sent[64];
  size_t n_sent;
} H;

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...) {
  if (!fz_verbose()) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

static int slot_of(uint64_t conn) { return conn >= 1 && conn <= FZS_SLOTS ? (int)conn - 1 : -1; }

static int open_slots(void) {
  int n = 0;
  for (int i = 0; i < FZS_SLOTS; i++) n += H.slot[i].open;
  return n;
}

/* The stored profile of `account` (NULL: none); it must decode. */
static Whisper__Server__Profile *stored_profile(const char *account) {
  whisper_store *in = W->fs.inner;
  whisper_buf *b = NULL;
  if (in->ops.get(in->user, WHISPER_REC_SERVER_PROFILE, (const uint8_t *)account, strlen(account), &b) !=
      WHISPER_OK)
    return NULL;
  Whisper__Server__Profile *p = whisper__server__profile__unpack(NULL, b->len, b->data);
  whisper_buf_free(b);
  FZ_ASSERT(p != NULL, "the stored profile of %s does not decode", account);
  FZ_ASSERT(p->has_version && p->version > 0 && p->has_ciphertext && p->ciphertext.len > 0 &&
                p->ciphertext.len <= WSRV_PROFILE_MAX,
            "the stored profile of %s: version %llu, %zu bytes", account, (unsigned long long)p->version,
            p->ciphertext.len);
  return p;
}

/* A Profile answer is exactly the stored profile of the account it names. */
static void check_profile_answer(const Whisper__Sync__Profile *a) {
  FZ_ASSERT(wh_account_ok(a->account), "a Profile of a bad account name");
  Whisper__Server__Profile *p = stored_profile(a->account);
  FZ_ASSERT(p != NULL, "a Profile of %s, which has none stored", a->account);
  FZ_ASSERT(a->has_version && a->version == p->version && a->has_ciphertext &&
                a->ciphertext.len == p->ciphertext.len &&
                memcmp(a->ciphertext.data, p->ciphertext.data, p->ciphertext.len) == 0,
            "a Profile of %s that is not the stored one", a->account);
  whisper__server__profile__free_unpacked(p, NULL);
}

/* Takes and checks all output. */
static void drain(void) {
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  while (whisper_server_take_output(H.srv, &o) > 0) {
    if (o.action == WHISPER_SERVER_PUSH) {
      trace("    PUSH %s.%u depth %llu\n", o.account ? o.account : "(null)", o.device_id,
            (unsigned long long)o.mailbox_depth);
      FZ_ASSERT(o.account != NULL && wh_account_ok(o.account) && o.device_id >= 1 &&
                    o.device_id <= 0x7fffffffu,
                "a PUSH for a bad device");
      continue;
    }
    int k = slot_of(o.conn);
    FZ_ASSERT(k >= 0 && H.slot[k].open, "output (action %d) for connection %llu, which is not open",
              o.action, (unsigned long long)o.conn);
    if (o.action == WHISPER_SERVER_DISCONNECT) {
      trace("    CLOSE %llu\n", (unsigned long long)o.conn);
      FZ_ASSERT(!(H.ticking && H.slot[k].held &&
                  H.now < wsrv_after(H.slot[k].last_rx, W->cfg.heartbeat_ms)),
                "a tick closed connection %llu, which holds Register %llu unanswered, before "
                "the heartbeat ran out",
                (unsigned long long)o.conn, (unsigned long long)H.slot[k].held_id);
      H.slot[k].open = 0;
      H.slot[k].have_nonce = 0;
      H.slot[k].dev = -1;
      H.slot[k].held = 0;
      continue;
    }
    FZ_ASSERT(o.action == WHISPER_SERVER_SEND, "unknown action %d", o.action);
    fzs_frame *f = fzs_unpack(o.frame, o.frame_len);
    FZ_ASSERT(f != NULL, "the server sent %zu bytes that are not a Frame", o.frame_len);
    FZ_ASSERT(f->has_version && f->version == 1, "the server sent a frame of version %u",
              f->version);
    FZ_ASSERT(fzs_is_server_body(f->body_case), "the server sent a frame with body %d",
              f->body_case);
    uint64_t id = f->has_id ? f->id : 0;
    trace("    -> %llu: %s id %llu", (unsigned long long)o.conn, fzs_body_name(f->body_case),
          (unsigned long long)id);
    if (f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR)
      trace(" (%u: %s)", f->error->code, f->error->message ? f->error->message : "");
    trace("\n");
    if (fzs_is_push(f->body_case)) FZ_ASSERT(id == 0, "a push with id %llu", (unsigned long long)id);
    switch (f->body_case) {
      case WHISPER__SYNC__FRAME__BODY_ERROR:
        FZ_ASSERT(f->error->has_code && f->error->code >= 1 && f->error->code <= 12,
                  "an Error with code %u", f->error->code);
        FZ_ASSERT(f->error->code != ERR_INTERNAL, "ERR_INTERNAL: %s (%s)",
                  f->error->message ? f->error->message : "",
                  whisper_server_last_error(H.srv));
        FZ_ASSERT(f->error->code != ERR_RATE || (f->has_retry_ms && f->retry_ms > 0),
                  "ERR_RATE without retry_ms");
        break;
      case WHISPER__SYNC__FRAME__BODY_CHALLENGE:
        FZ_ASSERT(f->challenge->has_nonce && f->challenge->nonce.len == 32, "a bad challenge");
        memcpy(H.slot[k].nonce, f->challenge->nonce.data, 32);
        H.slot[k].have_nonce = 1;
        break;
      case WHISPER__SYNC__FRAME__BODY_DELIVER:
        FZ_ASSERT(f->deliver->has_seq && f->deliver->seq > 0, "a Deliver without its seq");
        break;
      case WHISPER__SYNC__FRAME__BODY_PROFILE:
        check_profile_answer(f->profile);
        break;
      default:
        break;
    }
    if (!H.answered && o.conn == H.want_conn && !fzs_is_push(f->body_case) && id == H.want_id) {
      H.answered = 1;
      H.answer_body = f->body_case;
      H.answer_code = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error->code : 0;
      H.answer_seq = f->body_case == WHISPER__SYNC__FRAME__BODY_SENT ? f->sent->server_seq : 0;
    } else if (H.slot[k].held && !fzs_is_push(f->body_case) && id == H.slot[k].held_id) {
      trace("    (the held Register %llu is answered)\n", (unsigned long long)id);
      H.slot[k].held = 0;
    }
    fzs_frame_free(f);
  }
}

/* --- the store's bookkeeping ----------------------------------------------- */

typedef struct counter {
  uint64_t n, max_seq;
  int seq_at; /* offset of a BE seq in the key, or -1 */
} counter;

static int count_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *val,
                    size_t val_len) {
  counter *c = arg;
  (void)val;
  (void)val_len;
  c->n++;
  if (c->seq_at >= 0 && key_len == (size_t)c->seq_at + 8) {
    uint64_t s = wh_rd64(key + c->seq_at);
    if (s > c->max_seq) c->max_seq = s;
  }
  return 0;
}

static counter count(int kind, const uint8_t *prefix, size_t n, int seq_at) {
  counter c = {0, 0, seq_at};
  whisper_store *in = W->fs.inner;
  FZ_ASSERT(in->ops.scan(in->user, kind, prefix, n, NULL, 0, 0, SIZE_MAX, count_fn, &c) ==
                WHISPER_OK,
            "scan");
  return c;
}

/* A mailbox's entries: their bytes and, per other account, how many and
 * how many bytes (keyed by the sender's tag, as the share records are). */
#define BOOK_SENDERS 64
typedef struct book {
  const char *owner;
  int lazy; /* the mailbox keeps no share records */
  uint64_t bytes;
  struct {
    uint8_t tag[WSRV_TAG_LEN];
    uint64_t n, bytes, seen;
  } s[BOOK_SENDERS];
  int ns;
} book;

static int book_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *val,
                   size_t val_len) {
  (void)key, (void)key_len;
  book *bk = arg;
  bk->bytes += val_len;
  Whisper__Sync__Deliver *d = whisper__sync__deliver__unpack(NULL, val_len, val);
  FZ_ASSERT(d != NULL, "a mailbox entry does not decode");
  if (d->sender && strcmp(d->sender, bk->owner) != 0) {
    wsrv_addr a;
    uint8_t tag[WSRV_TAG_LEN];
    wsrv_addr_make(&a, d->sender, 0);
    wsrv_tag(H.srv, &a, tag);
    int i = 0;
    while (i < bk->ns && memcmp(bk->s[i].tag, tag, WSRV_TAG_LEN) != 0) i++;
    FZ_ASSERT(i < BOOK_SENDERS, "too many senders for the harness");
    if (i == bk->ns) {
      memset(&bk->s[i], 0, sizeof bk->s[i]);
      memcpy(bk->s[i].tag, tag, WSRV_TAG_LEN);
      bk->ns++;
    }
    bk->s[i].n++;
    bk->s[i].bytes += val_len;
  }
  whisper__sync__deliver__free_unpacked(d, NULL);
  return 0;
}

static int share_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *val,
                    size_t val_len) {
  book *bk = arg;
  FZ_ASSERT(!bk->lazy, "%s: a share record in a mailbox that keeps none", bk->owner);
  FZ_ASSERT(key_len == 2 * WSRV_TAG_LEN, "a share record's key is %zu bytes", key_len);
  Whisper__Server__Share *sh = whisper__server__share__unpack(NULL, val_len, val);
  FZ_ASSERT(sh != NULL, "a share record does not decode");
  int i = 0;
  while (i < bk->ns && memcmp(bk->s[i].tag, key + WSRV_TAG_LEN, WSRV_TAG_LEN) != 0) i++;
  FZ_ASSERT(i < bk->ns, "%s: a share record of a sender with no entry", bk->owner);
  FZ_ASSERT(sh->entries == bk->s[i].n && sh->bytes == bk->s[i].bytes,
            "%s: a share says %llu entries, %llu bytes; the mailbox has %llu, %llu", bk->owner,
            (unsigned long long)sh->entries, (unsigned long long)sh->bytes,
            (unsigned long long)bk->s[i].n, (unsigned long long)bk->s[i].bytes);
  bk->s[i].seen = 1;
  whisper__server__share__free_unpacked(sh, NULL);
  return 0;
}

static void check_mailbox_book(const fz_dev *d, const Whisper__Server__Device *dev,
                               const uint8_t tag[WSRV_TAG_LEN]) {
  static book bk;
  memset(&bk, 0, sizeof bk);
  bk.owner = d->name;
  whisper_store *in = W->fs.inner;
  FZ_ASSERT(in->ops.scan(in->user, WHISPER_REC_SERVER_MAILBOX, tag, WSRV_TAG_LEN, NULL, 0, 0,
                         SIZE_MAX, book_fn, &bk) == WHISPER_OK,
            "scan");
  FZ_ASSERT(bk.bytes == dev->mailbox_bytes, "%s.%u: mailbox_bytes %llu, %llu stored", d->name,
            d->device_id, (unsigned long long)dev->mailbox_bytes, (unsigned long long)bk.bytes);
  bk.lazy = dev->shares_lazy;
  FZ_ASSERT(in->ops.scan(in->user, WHISPER_REC_SERVER_SHARE, tag, WSRV_TAG_LEN, NULL, 0, 0,
                         SIZE_MAX, share_fn, &bk) == WHISPER_OK,
            "scan");
  const whisper_server_config_t *cfg = &H.srv->cfg;
  if (bk.lazy)
    FZ_ASSERT(dev->mailbox_count * 2 < cfg->sender_max_entries &&
                  dev->mailbox_bytes * 2 < cfg->sender_max_bytes,
              "%s.%u: %llu entries, %llu bytes and no share records", d->name, d->device_id,
              (unsigned long long)dev->mailbox_count, (unsigned long long)dev->mailbox_bytes);
  for (int i = 0; i < bk.ns && !bk.lazy; i++)
    FZ_ASSERT(bk.s[i].seen, "%s.%u: a sender's entries have no share record", d->name,
              d->device_id);
}

static void check_conns(void) {
  whisper_server_stats_t st = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(H.srv, &st);
  FZ_ASSERT(st.connections == (uint64_t)open_slots(), "stats: %llu connections, %d open",
            (unsigned long long)st.connections, open_slots());
  FZ_ASSERT(st.authenticated <= st.connections, "more connections logged in than open");
}

/* The stored counters against the stored records (scans the whole store:
 * after the start and at the end of each input). */
static void check_books(void) {
  whisper_server_stats_t st = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(H.srv, &st);
  check_conns();
  whisper_store *in = W->fs.inner;
  whisper_buf *b = NULL;
  uint64_t stored_depth = 0;
  if (in->ops.get(in->user, WHISPER_REC_SERVER_META, (const uint8_t *)"mailbox_depth", 13, &b) ==
      WHISPER_OK) {
    FZ_ASSERT(b->len == 8, "the stored depth is not 8 bytes");
    stored_depth = wh_rd64(b->data);
    whisper_buf_free(b);
  }
  counter all = count(WHISPER_REC_SERVER_MAILBOX, NULL, 0, -1);
  FZ_ASSERT(all.n == stored_depth && all.n == st.mailbox_depth,
            "%llu mailbox entries stored, the stored depth says %llu, the stats %llu",
            (unsigned long long)all.n, (unsigned long long)stored_depth,
            (unsigned long long)st.mailbox_depth);
  for (int i = 0; i < FZS_NDEV; i++) {
    fz_dev *d = W->dev[i];
    wsrv_addr a;
    uint8_t tag[WSRV_TAG_LEN];
    wsrv_addr_make(&a, d->name, d->device_id);
    b = NULL;
    if (in->ops.get(in->user, WHISPER_REC_SERVER_DEVICE, a.key, a.len, &b) != WHISPER_OK) continue;
    Whisper__Server__Device *dev = whisper__server__device__unpack(NULL, b->len, b->data);
    whisper_buf_free(b);
    FZ_ASSERT(dev != NULL, "a stored device record does not decode");
    wsrv_tag(H.srv, &a, tag);
    counter mb = count(WHISPER_REC_SERVER_MAILBOX, tag, sizeof tag, WSRV_TAG_LEN);
    counter pk = count(WHISPER_REC_SERVER_PREKEY, tag, sizeof tag, -1);
    FZ_ASSERT(mb.n == dev->mailbox_count, "%s.%u: mailbox_count %llu, %llu entries stored",
              d->name, d->device_id, (unsigned long long)dev->mailbox_count,
              (unsigned long long)mb.n);
    FZ_ASSERT(mb.max_seq <= dev->mailbox_last, "%s.%u: an entry past mailbox_last", d->name,
              d->device_id);
    FZ_ASSERT(pk.n == dev->prekeys, "%s.%u: prekeys %u, %llu stored", d->name, d->device_id,
              dev->prekeys, (unsigned long long)pk.n);
    check_mailbox_book(d, dev, tag);
    whisper__server__device__free_unpacked(dev, NULL);
    Whisper__Server__Profile *p = stored_profile(d->name);
    if (p) whisper__server__profile__free_unpacked(p, NULL);
  }
}

/* --- operations ----------------------------------------------------------------- */

/* With group commit: a batch for the next operation (if none is open). */
static void batch_start(void) {
  if (!H.batching || H.batch_open) return;
  int rc = whisper_server_batch_begin(H.srv);
  FZ_ASSERT(rc == WHISPER_OK, "batch_begin: %d (%s)", rc, whisper_server_last_error(H.srv));
  H.batch_open = 1;
}

/* Ends the open batch: the memory store's commit cannot fail, and nothing
 * was handed out before it. */
static void batch_finish(void) {
  if (!H.batch_open) return;
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  FZ_ASSERT(whisper_server_take_output(H.srv, &o) == 0, "output handed out inside a batch (action %d)",
            o.action);
  H.batch_open = 0;
  int rc = whisper_server_batch_end(H.srv, H.now);
  FZ_ASSERT(rc == WHISPER_OK, "batch_end: %d (%s)", rc, whisper_server_last_error(H.srv));
  FZ_ASSERT(!W->fs.outer->depth, "batch_end left a store transaction open");
}

/* Output a deferred RECV left queued: taken and checked, not attributed. */
static void drain_deferred(void) {
  batch_finish();
  if (!H.deferred) return;
  H.deferred = 0;
  H.want_conn = 0;
  H.answered = 1;
  drain();
}

static void op_open(int k) {
  drain_deferred();
  static const uint8_t src[2] = {0x0a, 0x0b};
  batch_start();
  int rc = k >= 2 ? whisper_server_connected_from(H.srv, (uint64_t)k + 1, &src[k & 1], 1, H.now)
                  : whisper_server_connected(H.srv, (uint64_t)k + 1, H.now);
  batch_finish();
  trace("  open %d: %d\n", k + 1, rc);
  if (H.slot[k].open) {
    FZ_ASSERT(rc == WHISPER_EINVAL, "open of an open connection: %d", rc);
  } else {
    FZ_ASSERT(rc == WHISPER_OK, "open: %d (%s)", rc, whisper_server_last_error(H.srv));
    H.slot[k].open = 1;
    H.slot[k].last_rx = H.now;
  }
  drain();
}

/* A deferred RECV's output is still queued: whisper_server_disconnected() drops
 * the connection's part of it ("its queued output is dropped"), also when
 * the server had already dropped the connection itself (a close queued
 * after an Error): otherwise a later connection that reuses the id gets
 * the old Error and CLOSE. */
static void op_close(int k) {
  trace("  close %d%s\n", k + 1, H.deferred ? " (output queued)" : "");
  H.deferred = 0;
  whisper_server_disconnected(H.srv, (uint64_t)k + 1, H.now);
  H.slot[k].open = 0;
  H.slot[k].have_nonce = 0;
  H.slot[k].dev = -1;
  H.slot[k].held = 0;
  if (H.batch_open) { /* the deferred frames' batch: its output is not attributed */
    H.want_conn = 0;
    H.answered = 1;
    batch_finish();
  }
  drain();
}

static void op_tick(uint8_t t) {
  drain_deferred();
  H.now += t < 128 ? (uint64_t)t * 100 : (uint64_t)(t - 127) * 15000;
  trace("  tick at +%llu ms\n", (unsigned long long)(H.now - FZS_T0));
  batch_start();
  whisper_server_tick(H.srv, H.now);
  batch_finish();
  H.ticking = 1;
  drain();
  H.ticking = 0;
  uint64_t next = whisper_server_next_deadline(H.srv);
  FZ_ASSERT(next > H.now, "after tick(%llu), a deadline at %llu is still due",
            (unsigned long long)H.now, (unsigned long long)next);
}

/* One frame on slot k. Returns the answer's body (0: none). With `defer`,
 * the output stays queued and only the return code is checked. */
static int op_recv(int k, const uint8_t *p, size_t n, int defer) {
  drain_deferred();
  uint64_t conn = (uint64_t)k + 1;
  int was_open = H.slot[k].open;
  fzs_frame *f = fzs_unpack(p, n);
  int body = f ? (int)f->body_case : 0;
  int held_ok = body == WHISPER__SYNC__FRAME__BODY_REGISTER && f->register_->has_link_code;
  int approver = was_open ? H.slot[k].dev : -1;
  H.want_conn = conn;
  H.want_id = n > W->cfg.max_frame || f == NULL ? 0 : f->has_id ? f->id : 0;
  H.answered = 0;
  trace("  recv %llu: %zu bytes, %s id %llu%s\n", (unsigned long long)conn, n,
        f ? fzs_body_name(f->body_case) : "(not a frame)", (unsigned long long)H.want_id,
        defer ? " (deferred)" : "");

  if (was_open) H.slot[k].last_rx = H.now;
  fz_watch_begin(&W->fs);
  batch_start();
  int rc = whisper_server_receive(H.srv, conn, p, n, H.now);
  FZ_ASSERT(H.batch_open || !W->fs.outer->depth, "receive left a store transaction open");
  if (was_open)
    FZ_ASSERT(rc == WHISPER_OK, "receive returned %d (%s)", rc, whisper_server_last_error(H.srv));
  else
    FZ_ASSERT(rc == WHISPER_ENOTFOUND, "receive on a closed connection returned %d", rc);
  if (defer && was_open) {
    H.deferred = 1;
    fz_watch_end(&W->fs);
    fzs_frame_free(f);
    return 0;
  }
  batch_finish();
  drain();
  if (was_open) {
    FZ_ASSERT(H.answered || held_ok, "a frame (id %llu) got no answer",
              (unsigned long long)H.want_id);
    if (!H.answered && H.slot[k].open) {
      /* held: it must be answered once a device of the account approves */
      slot *sl = &H.slot[k];
      sl->held = 1;
      sl->held_id = H.want_id;
      memcpy(sl->held_code, f->register_->link_code.data, 16);
      snprintf(sl->held_account, sizeof sl->held_account, "%s",
               f->register_->account ? f->register_->account : "");
    }
    if (H.answered && H.answer_body == WHISPER__SYNC__FRAME__BODY_OK &&
        body == WHISPER__SYNC__FRAME__BODY_LINK_APPROVE && approver >= 0 &&
        f->link_approve->link_code.len == 16) {
      for (int j = 0; j < FZS_SLOTS; j++) {
        const slot *sl = &H.slot[j];
        FZ_ASSERT(!(sl->open && sl->held && strcmp(sl->held_account, W->dev[approver]->name) == 0 &&
                    memcmp(sl->held_code, f->link_approve->link_code.data, 16) == 0),
                  "the code of the Register held on connection %d (id %llu) was approved, and the "
                  "Register was not answered",
                  j + 1, (unsigned long long)sl->held_id);
      }
    }
    if (H.answered && H.answer_body == WHISPER__SYNC__FRAME__BODY_SENT &&
        body == WHISPER__SYNC__FRAME__BODY_SEND && approver >= 0 && f->send->client_id.len == 16) {
      /* idempotency: a known (device, client id) gets the recorded Sent and
       * queues nothing */
      size_t i = 0;
      while (i < H.n_sent && !(H.sent[i].dev == approver &&
                               memcmp(H.sent[i].cid, f->send->client_id.data, 16) == 0))
        i++;
      if (i < H.n_sent) {
        FZ_ASSERT(H.sent[i].seq == 0 || H.sent[i].seq == H.answer_seq,
                  "a repeated Send got server_seq %llu, first %llu",
                  (unsigned long long)H.answer_seq, (unsigned long long)H.sent[i].seq);
        FZ_ASSERT(W->fs.committed_writes == 0, "a repeated Send wrote to the store");
      } else if (H.n_sent < sizeof H.sent / sizeof H.sent[0]) {
        H.sent[H.n_sent].dev = approver;
        memcpy(H.sent[H.n_sent].cid, f->send->client_id.data, 16);
        H.sent[H.n_sent++].seq = H.answer_seq;
      }
    }
    if (H.answered && body == WHISPER__SYNC__FRAME__BODY_PROFILE_SET && approver >= 0) {
      /* taken: stored as sent, for the logged-in device's account; the version grew */
      Whisper__Server__Profile *sp = stored_profile(W->dev[approver]->name);
      const Whisper__Sync__ProfileSet *m = f->profile_set;
      if (H.answer_body == WHISPER__SYNC__FRAME__BODY_OK)
        FZ_ASSERT(sp && sp->version == m->version && sp->ciphertext.len == m->ciphertext.len &&
                      memcmp(sp->ciphertext.data, m->ciphertext.data, m->ciphertext.len) == 0 &&
                      W->fs.committed_writes == 1,
                  "a ProfileSet answered Ok is not what %s has stored", W->dev[approver]->name);
      if (H.answer_code == ERR_STATE)
        FZ_ASSERT(sp && m->version <= sp->version, "ERR_STATE for a version above the stored one");
      if (sp) whisper__server__profile__free_unpacked(sp, NULL);
    }
    if (H.answered && (H.answer_body == WHISPER__SYNC__FRAME__BODY_ERROR ||
                       H.answer_body == WHISPER__SYNC__FRAME__BODY_STALE)) {
      FZ_ASSERT(W->fs.committed_writes == 0,
                "a frame answered with %s (%u) committed %u transaction(s) with writes",
                fzs_body_name(H.answer_body), H.answer_code, W->fs.committed_writes);
      const fz_touch *t = fz_store_changed(&W->fs);
      FZ_ASSERT(t == NULL, "a frame answered with %s (%u) changed a record of kind %d",
                fzs_body_name(H.answer_body), H.answer_code, t ? t->kind : 0);
    }
  }
  fz_watch_end(&W->fs);
  fzs_frame_free(f);
  return H.answered ? H.answer_body : 0;
}

static void op_login(int k, uint8_t arg) {
  fz_dev *d = W->dev[arg % FZS_NDEV];
  uint64_t resume = arg >> 3;
  trace("  login %s.%u on %d, resume %llu\n", d->name, d->device_id, k + 1,
        (unsigned long long)resume);
  drain_deferred();
  if (!H.slot[k].open || !H.slot[k].have_nonce) return;
  uint8_t nonce[32];
  memcpy(nonce, H.slot[k].nonce, 32);
  whisper_buf *b = fzs_hello(++H.next_id, d->name, d->device_id);
  int body = op_recv(k, b->data, b->len, 0);
  whisper_buf_free(b);
  if (body != WHISPER__SYNC__FRAME__BODY_OK || !H.slot[k].open) return;
  b = fzs_auth(d, ++H.next_id, nonce, 32, resume);
  body = op_recv(k, b->data, b->len, 0);
  whisper_buf_free(b);
  if (body == WHISPER__SYNC__FRAME__BODY_OK && H.slot[k].open) H.slot[k].dev = (int)(arg % FZS_NDEV);
}

/* --- inputs ------------------------------------------------------------------------ */

static void setup_once(void) {
  if (W) return;
  W = fzs_server_world_new();
}

static void start(int batching) {
  fz_journal_begin(&W->fs);
  W->rng.counter = UINT64_C(1) << 40;
  for (int i = 0; i < FZS_NDEV; i++) W->dev[i]->rng.counter = UINT64_C(1) << 40;
  memset(&H, 0, sizeof H);
  H.batching = batching;
  for (int k = 0; k < FZS_SLOTS; k++) H.slot[k].dev = -1;
  for (int i = 0; i < FZS_MAILBOX; i++) {
    H.sent[i].dev = FZS_ALICE1;
    memcpy(H.sent[i].cid, W->sent_ids[i], 16);
  }
  H.n_sent = FZS_MAILBOX;
  H.now = FZS_T0;
  H.next_id = UINT64_C(1) << 62;
  int rc = whisper_server_new(&H.srv, W->fs.outer, &W->cfg);
  FZ_ASSERT(rc == WHISPER_OK, "server_new: %d", rc);
  whisper_server_rng_set(H.srv, fz_rng_fn, &W->rng);
  if (batching) whisper_server_record_cache_set(H.srv, 64); /* kept between batches, or dropped */
  op_open(0);
  op_login(0, FZS_ALICE1);
  op_open(1);
  op_login(1, FZS_BOB1);
  op_open(2);
  FZ_ASSERT(H.slot[0].open && H.slot[1].open, "the start's logins failed");
  check_books();
}

static void end(void) {
  drain_deferred();
  whisper_server_free(H.srv);
  H.srv = NULL;
  fz_journal_restore(&W->fs);
}

static void run(const uint8_t *data, size_t size, int batching) {
  start(batching);
  size_t i = 0;
  while (i < size) {
    uint8_t op = data[i++];
    int k = op & 3, kind = (op >> 2) & 7;
    if (kind <= 3) {
      size_t n = 0;
      if (i < size) n = (size_t)data[i++] << 8;
      if (i < size) n |= data[i++];
      if (n > size - i) n = size - i;
      op_recv(k, data + i, n, (op & FZS_DEFER) == FZS_DEFER);
      i += n;
    } else if (kind == FZS_OP_OPEN) {
      op_open(k);
    } else if (kind == FZS_OP_CLOSE) {
      op_close(k);
    } else if (kind == FZS_OP_TICK) {
      op_tick(i < size ? data[i++] : 0);
    } else {
      op_login(k, i < size ? data[i++] : 0);
    }
    if (!H.deferred) check_conns();
  }
  drain_deferred();
  check_books();
  end();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup_once();
  trace("without batches\n");
  run(data, size, 0);
  trace("with batches\n");
  run(data, size, 1);
  return 0;
}
