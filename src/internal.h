/* Internal: the context, errors and store access shared by all of src/. */
#ifndef WH_INTERNAL_H
#define WH_INTERNAL_H

#include <stdarg.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/txn.h"
#include "crypto/crypto.h"
#include "whisper/whisper.h"

#define WH_NAME_MAX 255
#define WH_ADDR_MAX (WH_NAME_MAX + 1 + 4)

struct whisper_store {
  whisper_store_ops ops;
  void *user;
  /* Transactions (common/txn.c): the levels open (0: none; 1: the store's
   * transaction; more: calls joined to it), and per level (bit level-1)
   * whether it holds a savepoint and whether the levels begun inside it
   * join without one. failed: a level without a savepoint failed, so the
   * enclosing levels up to one with a savepoint must roll back. */
  unsigned depth;
  int failed;
  uint64_t sp, plain;
  /* Of those, the outermost ones the app opened (whisper_store_begin()):
   * the client engine's transactions refuse to start inside them. */
  unsigned app_levels;
  /* The public calls' sentence about their last failure (NULL: none). */
  const char *txn_error;
  char last_error[256]; /* set by the library's own stores; cleared before each call */
  /* Optional, for the library's own stores (memory.c): get without a copy.
   * *val points into the store's own copy, valid until the next call on
   * the store. */
  int (*view)(void *user, int kind, const uint8_t *key, size_t key_len, const uint8_t **val,
              size_t *val_len);
};

/* An address key: name || 0x00 || device id (4 bytes big-endian). */
typedef struct wh_addr {
  uint8_t key[WH_ADDR_MAX + 16];
  size_t len;
} wh_addr;
/* The identities found trusted inside a batch (the last WH_IDENTITY_MEMO
 * addresses: a batch of the backlog interleaves many senders). */
#define WH_IDENTITY_MEMO 32
typedef struct wh_identity_memo {
  int valid;
  wh_addr addr;
  uint8_t key[WH_PUB_LEN];
} wh_identity_memo;

struct whisper_ctx {
  whisper_store *store;
  /* Writes made through this context (wh_put, wh_add, wh_del), and those
   * of them to the search index (WHISPER_REC_SEARCH puts): the engine
   * compares them before and after a step. */
  unsigned long writes, search_puts;
  wh_rng rng;
  char last_error[WH_ERROR_LEN];
  /* The local identity, cached after the first load. */
  int have_identity;
  wh_keypair identity;
  uint32_t registration_id;
  uint32_t device_id;
  char name[WH_NAME_MAX + 1];
  /* Session records kept decoded during a batch (protocol/session.c). */
  struct wh_record_cache *record_cache;
  /* The last session records this context wrote or read, decoded, with
   * the stored bytes they stand for (protocol/session.c). */
  struct wh_session_memo *session_memo;
  /* The trust rows last read per address, with the key they expect
   * (protocol/identity.c). */
  struct wh_trust_memo *trust_memo;
  /* What wh_get_view() last handed out, when the store copied it. */
  struct whisper_buf *view_buf;
  wh_identity_memo identity_memo[WH_IDENTITY_MEMO]; /* valid only while record_cache is set */
  unsigned identity_memo_next;                        /* the slot the next one takes */
  /* The history salt, cached once read from the store, and the tag of the
   * last conversation tagged with it (a batch from one sender hashes the
   * name once). */
  int have_history_salt;
  uint8_t history_salt[16];
  int have_conv_tag;
  char conv_tag_name[WH_NAME_MAX + 1];
  uint8_t conv_tag[16];
};

/* Records the failure sentence and returns `code`. */
int wh_fail(whisper_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clears the last error; returns WHISPER_OK. */
int wh_ok(whisper_ctx *ctx);
/* A buffer of len bytes NOT zeroed (whisper_buf_new zeroes it): for one the
 * caller fills at once, a megabyte message, where zeroing costs as much as
 * a pass of the cipher. */
struct whisper_buf *wh_buf_alloc(size_t len);

/* A caller's versioned struct (docs/api.md, "How structs grow"): WHISPER_OK
 * if its `size` is at least the first released layout's, else
 * WHISPER_EINVAL with the sentence naming the argument (`arg`), the struct
 * and its initializer. WH_SIZE_CHECK(ctx, "out", out->size,
 * whisper_identity_info_t, WHISPER_IDENTITY_INFO) names them from the type. */
int wh_size_check(whisper_ctx *ctx, const char *arg, size_t size, size_t min, const char *type,
                  const char *init);
#define WH_SIZE_CHECK(ctx, arg, size, T, NAME) \
  wh_size_check(ctx, arg, size, NAME##_SIZE_1_0, #T, #NAME "_INIT")

/* Builds the address key; fails (WHISPER_EINVAL, with the sentence) on a
 * bad name. */
int wh_addr_make(whisper_ctx *ctx, wh_addr *a, const char *name, uint32_t device_id);

/* The store's own text about its last failure ("" if none): ops.last_error
 * (version 5) for a caller's store, else the library's stores' own. */
const char *wh_store_error(const whisper_store *s);
/* Store access: each sets the context's sentence on failure, the store's
 * own text appended (WHISPER_ENOTFOUND from get is silent). */
/* Transactions nest (common/txn.h): a begin inside an open transaction
 * joins it, with a savepoint when the store has them, so that a failed
 * call's rollback undoes its own writes alone. wh_begin_flags() takes
 * WH_TXN_* flags. Record calls fail at once (WHISPER_ESTORE) while the
 * transaction has failed. */
int wh_begin(whisper_ctx *ctx);
int wh_begin_flags(whisper_ctx *ctx, unsigned flags);
int wh_commit(whisper_ctx *ctx);
void wh_rollback(whisper_ctx *ctx);
/* Commits when rc is WHISPER_OK, else rolls back; returns the final code. */
int wh_finish(whisper_ctx *ctx, int rc);
/* wh_finish(), then on failure frees and clears *out; on success clears
 * the last error. Returns the final code. */
int wh_finish_out(whisper_ctx *ctx, int rc, whisper_buf **out);
int wh_get(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len, whisper_buf **out);
/* wh_get() without a copy to free: *val is valid until the next store call
 * through ctx (it may point into the store's own memory: read it, never
 * keep it). */
int wh_get_view(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
                const uint8_t **val, size_t *val_len);
/* 1 if s (n bytes) is well-formed UTF-8 (protocol/fold.c). */
int wh_utf8_valid(const uint8_t *s, size_t n);
int wh_put(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len, const uint8_t *val,
           size_t val_len);
/* Inserts only if the key is free: WHISPER_EDUPLICATE (silent, nothing
 * written) if it is taken. Uses the store's add, else a read then a put;
 * wh_store_add() is the same on a store, without the context's sentence. */
int wh_store_add(whisper_store *s, int kind, const uint8_t *key, size_t key_len,
                 const uint8_t *val, size_t val_len);
int wh_add(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len, const uint8_t *val,
           size_t val_len);
int wh_del(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len);

/* The local identity (loaded from the store once). WHISPER_ESTATE if none. */
int wh_local_identity(whisper_ctx *ctx);

/* Identity trust (protocol/identity.c). */
int wh_identity_is_trusted(whisper_ctx *ctx, const wh_addr *a, const uint8_t key[WH_PUB_LEN],
                           int *trusted);
int wh_identity_save(whisper_ctx *ctx, const wh_addr *a, const uint8_t key[WH_PUB_LEN]);
/* Both at once (one lookup): WHISPER_EUNTRUSTED if the key is not the one
 * expected, else it is remembered (trust on first use). */
int wh_identity_check_save(whisper_ctx *ctx, const wh_addr *a, const uint8_t key[WH_PUB_LEN]);

/* Wipe and free the session memo and the trust memo (whisper_ctx_free). */
void wh_session_memo_free(whisper_ctx *ctx);
void wh_trust_memo_free(whisper_ctx *ctx);

/* The batch record cache: begin, then end(write=1) before the commit, or
 * end(write=0) to drop it. */
int wh_record_cache_begin(whisper_ctx *ctx);
int wh_record_cache_end(whisper_ctx *ctx, int write);

/* Adjusts the count of unused one-time prekeys (protocol/identity.c). */
int wh_prekey_count_add(whisper_ctx *ctx, int32_t delta);

/* 1:1 decryption inside the caller's transaction (protocol/session.c). */
int wh_session_decrypt_check(whisper_ctx *ctx, wh_addr *a, const char *name, uint32_t device_id,
                             int type, const uint8_t *body, size_t body_len, whisper_buf **pt_out);
int wh_session_decrypt_in_txn(whisper_ctx *ctx, const wh_addr *a, int type, const uint8_t *body,
                              size_t body_len, whisper_buf **pt_out);
/* The same, with `then(ctx, arg, plaintext)` run after the decryption and
 * before the session's new state is kept: if it fails, the state is not
 * kept (inside a batch, the kept record stays as it was) and its code is
 * returned. */
typedef int (*wh_decrypt_then_fn)(whisper_ctx *ctx, void *arg, const whisper_buf *pt);
int wh_session_decrypt_then(whisper_ctx *ctx, const wh_addr *a, int type, const uint8_t *body,
                            size_t body_len, whisper_buf **pt_out, wh_decrypt_then_fn then,
                            void *arg);

/* The store's session generation (protocol/session.c): sending chains and
 * own sender keys made before it do not encrypt (whisper_sessions_distrust()). */
int wh_session_gen(whisper_ctx *ctx, uint64_t *gen);

/* History pieces for decrypt-and-store outside history.c (protocol/history.c).
 * incoming_check and incoming_put run inside the caller's transaction:
 * check refuses a message already stored (WHISPER_EDUPLICATE), put stores
 * an incoming one. */
struct whisper_message_t;
struct whisper_buf;
struct whisper_device_t;
int wh_history_incoming_check(whisper_ctx *ctx, const struct whisper_message_t *meta);
/* A caller's versioned whisper_message_t `in` (named `what` in the
 * sentence) into the library's `out`: its size checked (WHISPER_EINVAL),
 * the fields both have copied. */
int wh_message_in(whisper_ctx *ctx, const struct whisper_message_t *in, const char *what,
                  struct whisper_message_t *out);
int wh_history_incoming_put(whisper_ctx *ctx, const struct whisper_message_t *meta,
                            const char *sender, uint32_t device_id, const uint8_t *pt,
                            size_t pt_len);
/* The body and time of this device's outgoing message (conv, id): no
 * transaction of its own (a read). */
int wh_history_outgoing_get(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                            struct whisper_buf **body, uint64_t *timestamp_ms);
/* The same with its packed content (*content NULL if it has none). */
int wh_history_outgoing_get_ex(whisper_ctx *ctx, const char *conv, const uint8_t *id,
                               size_t id_len, struct whisper_buf **body,
                               struct whisper_buf **content, uint64_t *timestamp_ms);
/* Removes the incoming entry (conv, id) stored at sort_key (none: OK), in
 * the caller's transaction. */
int wh_history_incoming_del(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                            uint64_t sort_key);
/* Message content beyond a text body, as the client engine stores it. */
#define WH_EXCERPT_MAX 100  /* a reply's quoted excerpt, bytes */
#define WH_EMOJI_MAX 64     /* a reaction, bytes */
#define WH_REACTORS_MAX 1024
#define WH_PENDING_MAX 64   /* operations kept per message that has not come yet */
typedef struct wh_entry_extra {
  int kind;                         /* WHISPER_KIND_* */
  const uint8_t *content;           /* the packed e2e.Content (NULL: none) */
  size_t content_len;
  const uint8_t *quote_id;          /* a reply (NULL: not) */
  size_t quote_id_len;
  const char *quote_sender;         /* NULL: this account */
  const char *quote_excerpt;
  uint32_t forwarded;
  int hidden;                       /* an operation on another message: never shown */
} wh_entry_extra;
/* whisper_history_add_outgoing() and wh_history_incoming_put() with
 * content (x may be NULL). Each then applies the operations that came
 * for the message before it. */
int wh_history_outgoing_put(whisper_ctx *ctx, const struct whisper_message_t *m,
                            const struct whisper_device_t *recipients, size_t n,
                            const wh_entry_extra *x);
int wh_history_incoming_put_ex(whisper_ctx *ctx, const struct whisper_message_t *meta,
                               const char *sender, uint32_t device_id, const uint8_t *pt,
                               size_t pt_len, const wh_entry_extra *x);
/* An edit, delete for everyone or reaction. */
/* WH_OP_OPENED: a view-once attachment was opened: its content (the key)
 * and caption are wiped, the entry stays. */
enum { WH_OP_EDIT = 1, WH_OP_DELETE = 2, WH_OP_REACT = 3, WH_OP_OPENED = 4 };
typedef struct wh_history_op {
  int kind;             /* WH_OP_* */
  const char *author;   /* the reactor (reactions) */
  uint64_t at;          /* the author's clock: the newest edit or reaction wins */
  const uint8_t *text;  /* the new text (edit), the emoji (reaction; empty: removed) */
  size_t text_len;
  uint64_t window;      /* ms after the message was written it may still act (0: no limit) */
} wh_history_op;
/* Applies op to message (conv, sender, id), sender NULL for this account's
 * own, in the caller's transaction: the target is found by its sender and
 * id, so an edit or delete passed with its author as `sender` reaches only
 * the author's messages. A message not stored yet keeps op until it comes
 * (*pending = 1). WHISPER_EDENIED: too late, deleted, not a text. */
int wh_history_apply(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                     size_t id_len, const wh_history_op *op, int *pending);
/* A message of history as content needs it (wh_history_lookup). */
typedef struct wh_found {
  struct whisper_buf *body;
  struct whisper_buf *content; /* the packed e2e.Content kept with it (NULL: none) */
  int kind, deleted, hidden;
  uint32_t forwarded;
} wh_found;
/* Message (conv, sender, id), sender NULL for this account's own, found as
 * wh_history_apply() finds its target: WHISPER_ENOTFOUND if not stored. */
int wh_history_lookup(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                      size_t id_len, wh_found *out);
void wh_found_free(wh_found *f);
/* Where wh_history_apply keeps operations for a message not stored yet
 * (a WHISPER_REC_MESSAGE_INDEX key, 16 bytes): for the fuzz target. */
int wh_history_pending_key(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                           size_t id_len, uint8_t out[16]);
/* The packed content of outbox page message i (NULL, 0 if none), and
 * whether it is a hidden entry (an operation). */
struct whisper_page;
void wh_page_content(const struct whisper_page *p, size_t i, const uint8_t **content, size_t *len,
                     int *hidden);

/* The recipient devices of an outgoing message (its own transaction): adds
 * the devices it does not list yet (PENDING, or SENT once the server took
 * it), and with `exact` drops the ones not in `devs`. WHISPER_ENOTFOUND if
 * there is no such outgoing message. (The client engine learns the device
 * lists only when it sends.) */
int wh_history_recipients(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                          const struct whisper_device_t *devs, size_t n, int exact);

/* History for search.c (protocol/history.c): the secret salt of the
 * history tags (made on first use); the tags of a conversation and of a
 * message in it (id NULL: the conversation's alone); an empty page and
 * appending a stored history entry to it (WHISPER_ECORRUPT, with the
 * sentence, if it does not decode or is out of its limits). */
struct whisper_page;
int wh_history_salt(whisper_ctx *ctx, uint8_t salt[16]);
int wh_history_tags(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                    uint8_t conv_tag[16], uint8_t msg_tag[16]);
struct whisper_page *wh_page_new(void);
int wh_page_add(whisper_ctx *ctx, struct whisper_page *p, const uint8_t *entry, size_t len);

/* The search index (protocol/search.c), in the caller's transaction.
 * add queues the message `m` in history (its conversation, id, sort key
 * and timestamp_ms: where history keeps it now and its time) to be
 * indexed: one waiting row; its words are read from history (the entry's
 * body, as it is then) when the index catches up. `text` is the message's
 * text (today its body): a message without any is not queued. remove
 * takes the postings of `text` out (those that are there: a message not
 * indexed yet has none) and the message's waiting row (it reads the
 * conversation, id and timestamp_ms), for a message whose text changes
 * (remove the old, add the new) or that is deleted. A posting left behind
 * is harmless: a search reads each hit's entry and skips it unless the
 * entry is there, has that time and holds the words. forget removes the
 * words of the entry stored under history key `hkey` (40 bytes), if there
 * is one, and its waiting row, before it is deleted. */
int wh_search_add(whisper_ctx *ctx, const struct whisper_message_t *m, const uint8_t *text,
                  size_t len);
/* add for history, which has the message's key at hand (40 bytes: where
 * it keeps it now) and its time; the caller checks that there is text. */
int wh_search_queue(whisper_ctx *ctx, const uint8_t hkey[40], uint64_t timestamp_ms);
int wh_search_remove(whisper_ctx *ctx, const struct whisper_message_t *m, const uint8_t *text,
                     size_t len);
int wh_search_forget(whisper_ctx *ctx, const uint8_t hkey[40]);
/* A history that starts now (its salt just made, in the caller's
 * transaction): marks the search index complete, as nothing older waits. */
int wh_search_fresh(whisper_ctx *ctx);
/* Indexes up to `max` waiting messages (the newest first) in a transaction
 * of its own, if older history is indexed already (else nothing: that is
 * whisper_search_prepare()'s); *more is set when some still wait. For the
 * client engine's idle ticks. Returns WHISPER_OK or an error of
 * whisper_search_prepare() (then nothing changed). */
int wh_search_index_some(whisper_ctx *ctx, size_t max, int *more);

#endif
