/*
 * Internal: the client engine (include/whisper/client.h), shared by the
 * files of src/sync/:
 *   client.c  the handle, the connection, timers, events, frame dispatch
 *   login.c   registration, linking, login, prekey replenishment
 *   outbox.c  sending: 1:1 and group messages, sender keys, stale devices
 *   inbox.c   mailbox entries: messages, receipts, group changes, acks
 *   ops.c     read receipts, typing, presence, group operations, link approval
 *   state.c   what the engine keeps in the store (WHISPER_REC_SYNC_STATE)
 *   txn.c     the engine's transactions (the library's nesting) and its records through a batch
 *   keys.c    reading public keys and registration ids from stored records
 *   retry.c   messages that cannot be decrypted: asked for, and sent, again
 *   anchor.c  the store's epoch and its anchor outside the file
 *   trust.c   what is authenticated end to end: signed device lists, signed
 *             group changes, the payload inside the encryption, link tokens
 *   groups.c  group administration: who may make which change (admins, info,
 *             settings, invite links, leaving, the member limit), the changes
 *             this device signs, joining by link, the state the app reads
 *   profile.c profiles: the profile key end to end, the encrypted profile
 *   block.c   blocking accounts (kept, synced to this account's devices and
 *             the server) and reporting conversations to the server
 *   media.c   attachments: encrypt, upload (the app's HTTP), send the
 *             pointer; download and verify; view once
 */
#ifndef WH_SYNC_INTERNAL_H
#define WH_SYNC_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "common/names.h"
#include "common/outq.h"
#include "common/protocol.h"
#include "internal.h"
#include "protocol/pb.h"
#include "sync.pb-c.h"
#include "e2e.pb-c.h"
#include "whisper/whisper.h"

/* The engine's records. Keys: "s" (ClientState), "d" || account
 * (DeviceList), "g" || group id (GroupState), "m" || client id (OutRef),
 * "p" (Pending). Values are client.proto messages. */
#define WHISPER_REC_SYNC_STATE 10

#define SY_STATE_FORMAT 1
#define SY_OUTBOX_PAGE 256     /* outbox messages loaded at a time */
#define SY_MAX_ROUNDS 4        /* stale-device rounds per message and connection */
#define SY_HELD_FRAMES 64      /* held entries kept in memory for whisper_client_retry() */
#define SY_TYPING_TTL 6000     /* a typing indicator lapses after this without news */
#define SY_RETRY_MS 1000       /* after ERR_INTERNAL */
#define SY_MAX_OPS 4096        /* pending receipts and group operations kept */
#define SY_MAX_HELD 1024       /* mailbox entries kept waiting in the store */
#define SY_MAX_LIST 64         /* devices in a signed list */
#define SY_LIST_WAIT_MS 2000   /* first wait for a contact's first signed list (doubles to a minute) */
#define SY_LINK_CODE_LEN WH_SYNC_ID_LEN /* the server's link codes (LinkCode, Register.link_code) */
#define SY_MAX_SEQ_JUMP 100256 /* a mailbox seq further than this past the last handled is absurd
                                * (a mailbox holds 100000 entries, 256 pushed unacked) */
#define SY_MAX_ABOVE 4096      /* entries handled above a missing one, at most */
#define SY_INDEX_BATCH 32      /* messages a tick indexes for search (wh_search_index_some) */
#define SY_INDEX_GAP_MS 1      /* and the time from one such tick to the next */
#define SY_INDEX_DELAY_MS 200  /* and from a message stored to the first (those of a busy
                                * conversation indexed a batch at a time; whisper_search()
                                * indexes what still waits first) */
#define SY_BATCH_MAX 1024      /* Deliver frames queued before they are handled (client.c) */
#define SY_BATCH_BYTES (4u << 20) /* or bytes of them */
#define SY_CATCH_BATCH 256     /* while the backlog arrives: entries a batch waits for, at most
                                * (half the server's push window, Ok.deliver_window) */
#define SY_CATCH_WAIT_MS 20    /* and at most this long after its first */
#define SY_CATCH_RECEIPT_IDS 256 /* while the backlog arrives, a sender's receipt waits for this
                                  * many messages, */
#define SY_CATCH_RECEIPT_MS 250  /* or this long after its first, or the backlog's end (one
                                  * Send per sender and batch was a burst over the server's
                                  * rate limit, and as many for the senders to take) */

/* The server's error codes (ERR_*) and the protocol version
 * (WH_SYNC_PROTOCOL) are common/protocol.h's, shared with the server core. */
_Static_assert(WH_GROUP_CONV_LEN == WHISPER_GROUP_CONVERSATION_LEN &&
                   WH_GROUP_ID_LEN == WHISPER_GROUP_ID_LEN && WH_GROUP_ID_LEN == WH_SYNC_ID_LEN,
               "group conversation names");
_Static_assert(WHISPER_CLIENT_ID_LEN == WH_SYNC_ID_LEN, "client ids");

/* What a request was, to read its answer. */
enum {
  RQ_REGISTER = 1, RQ_HELLO, RQ_AUTH, RQ_UPLOAD, RQ_LIST, RQ_FETCH, RQ_SEND, RQ_SKDM, RQ_ACK,
  RQ_OP, RQ_TYPING, RQ_PRESENCE_SET, RQ_SUBSCRIBE, RQ_LINK_REQUEST, RQ_LINK_APPROVE, RQ_PING,
  RQ_PUBLISH, RQ_OWN_BUNDLES, RQ_BLOCK, RQ_REPORT
};

/* profile.c's requests (numbered apart from the others), and media.c's. */
enum { RQ_PROFILE_SET = 100, RQ_PROFILE_GET };
enum { RQ_MEDIA_AUTH = 110 };
enum { RQ_SPK = 120 }; /* login.c: a rotated signed prekey's upload */
typedef struct sy_media sy_media;
typedef struct sy_http sy_http;

typedef struct sy_devref {
  char *account;
  uint32_t device;
} sy_devref;

typedef struct sy_req {
  uint64_t id;
  int kind;
  int timed;         /* answered within request_timeout_ms, or the connection is given up */
  uint64_t deadline; /* set by the first tick or receive after it was queued (0: not yet) */
  char account[WH_NAME_MAX + 1];
  uint64_t value;    /* RQ_ACK: up_to */
  int chained;       /* RQ_SEND, RQ_SKDM: the Send carried `after` (pipelined) */
  sy_devref *devs;   /* RQ_SKDM: the devices the distribution went to */
  size_t n_devs;
  struct sy_req *next;
} sy_req;

typedef struct sy_out {
  wh_out link; /* in c->out (common/outq.h) */
  whisper_buf *frame;
} sy_out;

typedef struct sy_event {
  whisper_client_event_t ev;
  char *conversation, *from, *message, *target_sender;
  uint8_t *id, *body, *target_id;
  size_t body_len;
  struct sy_event *next;
} sy_event;

/* An outgoing message (from the outbox) on its way to the server. */
typedef struct sy_job {
  int group;
  char conv[WH_NAME_MAX + 1];
  uint8_t group_id[WHISPER_GROUP_ID_LEN];
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  uint8_t *body;
  size_t body_len;
  uint8_t *content; /* a packed e2e.Content, or NULL */
  size_t content_len;
  int hidden;       /* an operation on a message (never shown): no SENT event */
  int rounds;
  uint32_t key_gen; /* group: the sender key generation a distribution carries */
  int receipt;      /* an end-to-end receipt (body: its Payload; id: its op's cid) */
  int kind;         /* JOB_* */
  uint8_t resend_of[WHISPER_CLIENT_ID_LEN]; /* JOB_RESEND: the message; body: its Payload */
  uint32_t device;  /* JOB_RESEND: the one device it goes to */
  uint64_t inflight; /* the request id of its Send while unanswered (0: none) */
  /* A 1:1 job's last Send, packed without `after`, and its recipients: when
   * the server refuses it without taking it (ERR_RATE, ERR_INTERNAL, or a
   * pipelined one after a refused one) the same ciphertexts go again, so
   * no message key is spent twice (each spent and never delivered would
   * be a skipped key kept by every recipient device). Made anew when the
   * device lists changed since (devs_gen), or the server said they are
   * stale. */
  whisper_buf *kept;
  sy_devref *kept_devs;
  size_t n_kept_devs;
  uint64_t kept_gen;
  struct sy_job *next;
} sy_job;

enum { JOB_MESSAGE = 0, JOB_RETRY = 1, JOB_RESEND = 2 };
typedef struct sy_rate sy_rate;

typedef struct sy_name {
  char *name;
  struct sy_name *next;
} sy_name;

#define SY_IN_JOB UINT64_MAX
/* A receipt waiting to go end to end, or a group operation waiting for the
 * server's Ok. */
enum { OP_RECEIPT = 1, OP_GROUP = 2 };
typedef struct sy_op {
  int kind;
  char *to;                /* receipt: the sender of the messages */
  int has_group;
  uint8_t group_id[WHISPER_GROUP_ID_LEN];
  uint32_t code;           /* receipt: status; group: GroupOp.op */
  uint8_t (*ids)[WHISPER_CLIENT_ID_LEN];
  size_t n_ids;
  char **members;
  size_t n_members;
  uint64_t inflight;       /* the request id while sent and unanswered (SY_IN_JOB: a receipt
                            * on its way as a job) */
  uint8_t cid[WHISPER_CLIENT_ID_LEN]; /* receipt: the client id of its Send */
  uint64_t made_at;        /* receipt: when its first id came (0: from the store) */
  whisper_buf *change;     /* group: the signed change it carries (CREATE: made once;
                            * others: made from the state held when sent) */
  struct sy_edit {         /* group: what an UPDATE, ADMIN, PEEK or JOIN changes (groups.c) */
    uint32_t what;         /* SY_EDIT_* (0: none, a plain ADD / REMOVE / CREATE) */
    uint32_t field;        /* info field or setting */
    int on;
    whisper_buf *value;    /* info: the new value (NULL: cleared) */
    int has_key;
    uint8_t key[WHISPER_PUBLIC_KEY_LEN]; /* link: the new invite key (none: revoked) */
    int has_secret;
    uint8_t secret[32];    /* join: the link's secret (wiped with the op) */
    uint32_t tries;        /* join: PEEKs sent */
  } edit;
} sy_op;

enum {
  SY_EDIT_NONE = 0, SY_EDIT_PROMOTE, SY_EDIT_DEMOTE, SY_EDIT_INFO, SY_EDIT_SETTING, SY_EDIT_LINK,
  SY_EDIT_JOIN
};

typedef struct sy_typing {
  char *conversation;
  char *from;              /* incoming: who types; outgoing: NULL */
  uint32_t from_device;
  uint64_t at;             /* outgoing: when last sent; incoming: when it lapses */
  int started;
  struct sy_typing *next;
} sy_typing;

typedef struct sy_held {
  uint64_t seq;
  whisper_buf *frame;      /* the packed Deliver */
  struct sy_held *next;
} sy_held;

/* A change of this account's signed device list, from the primary: a
 * link approval (code set) or a PublishDevices (a removal, the first list). */
typedef struct sy_approve {
  uint8_t code[64];
  size_t len;               /* 0: a PublishDevices */
  whisper_buf *list;        /* the signed list it carries */
  uint64_t inflight; /* the request id while sent */
  struct sy_approve *next;
} sy_approve;

/* The engine's records kept through a batch (txn.c). */
typedef struct sy_kv sy_kv;
#define SY_KV_BUCKETS 256

/* The device list of an account. */
typedef struct sy_dev {
  uint32_t id, regid;
  int refetch;
  int has_key;
  uint8_t key[WHISPER_PUBLIC_KEY_LEN]; /* from the signed list */
} sy_dev;
typedef struct sy_devlist {
  int known;
  int legacy;        /* stored before signed lists: the server's word, until a list comes */
  int authed;        /* the devices are a signed list's */
  uint64_t version;
  uint8_t account_key[WHISPER_PUBLIC_KEY_LEN];
  int trust;         /* WHISPER_TRUST_* */
  whisper_buf *signed_list;
  sy_dev *d;
  size_t n;
} sy_devlist;

typedef struct sy_group {
  int known;
  char **members;
  size_t n_members;
  sy_devref *have;
  size_t n_have;
  int left;
  uint32_t key_gen; /* rotations so far */
  int legacy;       /* stored before signed changes: the first signed change by a member is the base */
  char **admins;
  size_t n_admins;
  uint64_t version; /* of the last signed change (0: none) */
  uint8_t hash[32];
  /* the rest of that change's state (groups.c) */
  whisper_buf *name, *description, *picture; /* NULL: unset */
  int admins_edit_info, admins_send, approval;
  int has_invite;
  uint8_t invite_key[WHISPER_PUBLIC_KEY_LEN];
  char **requests;  /* accounts that asked to join (checked) */
  size_t n_requests;
  uint32_t changed; /* what the last change applied changed (WHISPER_GROUP_CHANGED_*) */
} sy_group;

struct whisper_client {
  whisper_ctx *ctx;
  whisper_client_config_t cfg;
  size_t event_size; /* the caller's whisper_client_event_t: by its config version */
  char account[WH_NAME_MAX + 1];
  uint32_t device_id;
  uint64_t now;

  /* txn.c: the engine's transaction is open (sy_txn_begin ... sy_txn_end);
   * in a batch (sy_txn_cache()), the engine's own records (kind
   * WHISPER_REC_SYNC_STATE, never scanned) as the transaction has them,
   * read once and written once, at its commit */
  int txn_open;
  int caching;
  sy_kv **kv;
  unsigned long search0; /* the context's search_puts at its begin */
  int searched;          /* a row for the search index was written (client.c: indexing due) */

  /* stored progress (mirror of the "s" record) */
  int registered;
  uint64_t last_seq;       /* every seq at or below it is handled */
  uint64_t *above;         /* handled seqs above last_seq (one is missing below them) */
  size_t n_above;
  uint64_t *held;
  size_t n_held;
  uint32_t upload_first, upload_count;

  /* the connection */
  int connected, logged_in, close_wanted;
  int caught_up;           /* the mailbox's backlog has arrived (QueueEmpty) on this connection */
  uint64_t index_at;       /* messages may wait for the search index: a tick then indexes
                            * some (0: none waits) */
  int link_mode;
  uint64_t next_connect_at;
  unsigned attempts;
  uint8_t nonce[64];
  size_t nonce_len;
  int have_nonce, hello_sent, auth_sent, register_sent, link_sent;
  int register_exists;     /* Register said ERR_EXISTS: the login tells whether it is ours */
  uint64_t last_rx;
  uint64_t next_id;
  sy_req *reqs;
  wh_outq out;             /* sy_out: frames for the app to send */
  uint64_t acked;          /* the last Ack up_to queued on this connection */
  uint64_t ack_retry_at;   /* an Ack was refused (ERR_RATE, ERR_INTERNAL): none goes before
                            * this; then the watermark again (0: none waits) */
  uint64_t receipts_at;    /* receipts held while catching up go then (0: none held) */
  Whisper__Sync__Frame **inq; /* Deliver frames received and not handled yet (client.c): handled
                            * together, in batches, when the app next takes events or frames,
                            * ticks, or another frame comes */
  size_t n_inq, cap_inq, inq_bytes;
  uint64_t inq_at;         /* when the first of them came */
  int in_batch;            /* inbox.c is handling a batch: the pending ops are stored once, at
                            * its end (ops_dirty) */
  int ops_dirty;
  int catching;            /* the backlog is arriving (login to QueueEmpty): progress events */
  uint64_t catch_done, catch_total; /* entries handled since the login, and the server's count */
  uint32_t catch_batch;    /* entries a batch of the backlog waits for (half the server's window) */
  int upload_inflight, ping_inflight;
  /* the signed prekey (login.c): when it is due for rotation (0: not
   * known or never), its upload on its way, the id the server hands out
   * (Ok.signed_prekey_id at login) */
  uint64_t spk_due_at;
  int spk_inflight, spk_server_known;
  uint32_t spk_server;

  /* events */
  sy_event *ev_head, *ev_tail, *ev_cur;

  /* sending */
  sy_job *jobs;
  sy_job *cur_job;         /* the job whose list, bundle or sender key request is out */
  uint64_t devs_gen;       /* device lists saved (sy_devs_save) so far: a job's kept Send is
                            * sent again only while this has not moved */
  int in_pump;             /* sy_pump() is running; with its transaction open (pump_txn), */
  int pump_txn, pump_tried; /* the frames queued before it ended at pump_mark (NULL: none) */
  wh_out *pump_mark;
  uint32_t window;         /* Sends in flight allowed on this connection (the config's, if
                            * the server checks their order; else 1) */
  uint32_t n_inflight;     /* jobs whose Send is unanswered */
  int draining;            /* a Send in flight was refused: none goes until all are answered */
  uint64_t after_req;      /* the last Send queued, while unanswered (0: none) */
  uint8_t after_cid[WHISPER_CLIENT_ID_LEN]; /* and its client id (the next one's `after`) */
  sy_name *dropped;        /* client ids (hex) given up on this connection */
  int outbox_more;         /* the outbox held more than one page */
  uint64_t send_wait;      /* the request the head job waits for */
  uint64_t send_retry_at;  /* rate limited or the server failed: wait */
  sy_name *blocked;        /* conversations waiting for trust */
  sy_name *unlisted;       /* conversations waiting for their recipient's first signed list */
  uint64_t unlisted_at;    /* when those lists are asked for again */
  uint64_t unlisted_wait;  /* and the wait before that, doubling */
  sy_name *refreshed;      /* accounts whose devices were listed on this connection */

  sy_op *ops;
  size_t n_ops;
  sy_typing *typing_out, *typing_in;
  char **subs;
  size_t n_subs;
  sy_held *held_frames;
  sy_approve *approvals;
  sy_name *fetching;       /* accounts whose lists were asked for to handle held entries */
  int retry_due;           /* a list arrived: held entries are tried again */
  int receipts_due;        /* receipts were added: they go out as jobs */
  int own_listed;          /* this account's signed list is published (nothing is sent before) */
  sy_rate *rates;          /* retry requests and resends per peer device (retry.c) */
  uint8_t store_id[8];     /* anchor.c: this store's id, and its epoch */
  uint64_t epoch;
  uint32_t sent_since;

  /* profile.c */
  int profile_quiet;       /* profile.c is putting a notice in the outbox: no hook */
  int profile_due;         /* profile work waits for the end of this call (sy_profile_flush) */
  struct sy_blocks *blocks; /* block.c */

  /* media.c */
  char *media_dir;         /* the config's, copied */
  sy_media *media;         /* jobs not finished */
  sy_http *http_q, *http_cur; /* requests for the app, and the one it took last */
  uint64_t http_next;
  char media_token[512];   /* the blob store's upload token ("" none) */
  uint64_t media_token_expires;
  int media_token_asked;
};

/* --- client.c ------------------------------------------------------------------ */
/* Records the failure in the context's last error; returns `code`. */
#define sy_fail(c, code, ...) wh_fail((c)->ctx, (code), __VA_ARGS__)
/* Queues a frame (version set here). With `kind`, it is a request: an id is
 * given and remembered (*req_out, may be NULL). timeout: 1 for the usual
 * request timeout. Returns WHISPER_OK or WHISPER_ENOMEM. */
int sy_queue(whisper_client *c, Whisper__Sync__Frame *f, int kind, int timeout, sy_req **req_out);
/* Frees the frames queued after `mark` (the queue's tail some time before;
 * NULL: all): what a transaction that failed to commit made must not leave. */
void sy_out_truncate(whisper_client *c, wh_out *mark);
/* Raises an event; strings and bytes are copied. */
sy_event *sy_event_new(whisper_client *c, int type);
int sy_event_set(sy_event *e, const char *conversation, const char *from, const uint8_t *id,
                 size_t id_len, const uint8_t *body, size_t body_len);
void sy_event_push(whisper_client *c, sy_event *e);
void sy_event_free(sy_event *e);
void sy_error_event(whisper_client *c, int code, int server_code, const char *message);
/* EV_IDENTITY for (name, device); key (33 bytes) may be NULL. */
void sy_identity_event(whisper_client *c, const char *name, uint32_t device, const uint8_t *key);
/* The conversation of a group, and back: wh_group_conv, wh_group_conv_parse
 * (common/names.h); account names: wh_account_ok. */
int sy_name_has(const sy_name *l, const char *name);
int sy_name_add(sy_name **l, const char *name);
void sy_name_del(sy_name **l, const char *name);
void sy_names_free(sy_name **l);
char *sy_strdup(const char *s);

/* --- login.c ------------------------------------------------------------------- */
void sy_login_start(whisper_client *c);
void sy_login_on_challenge(whisper_client *c, const Whisper__Sync__Challenge *ch);
void sy_login_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f);
void sy_prekeys_check(whisper_client *c, const Whisper__Sync__Ok *ok);
/* Rotates the signed prekey when it is older than cfg.signed_prekey_rotate_ms
 * and uploads it when the server hands out another (logged in only). */
void sy_spk_check(whisper_client *c);
void sy_spk_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f);

/* --- ops.c, content.c ------------------------------------------------------------ */
/* An operation to apply to message (sender, id) of the conversation with
 * a message enqueued (sender NULL: this account's own). */
typedef struct sy_target {
  const char *sender;
  const uint8_t *id;
  size_t id_len;
  const wh_history_op *op;
} sy_target;
int sy_enqueue(whisper_client *c, const char *conv, const uint8_t *body, size_t len,
               const wh_entry_extra *x, const sy_target *t, uint64_t now_ms, uint8_t id_out[16]);
/* The same with the message's id given (`preset`, 16 bytes; NULL: a new one). */
int sy_enqueue_as(whisper_client *c, const char *conv, const uint8_t *body, size_t len,
                  const wh_entry_extra *x, const sy_target *t, uint64_t now_ms,
                  const uint8_t *preset, uint8_t id_out[16]);

/* --- media.c ------------------------------------------------------------------- */
int sy_media_load(whisper_client *c);
void sy_media_free(whisper_client *c);
void sy_media_tick(whisper_client *c, uint64_t now);
uint64_t sy_media_deadline(const whisper_client *c);
void sy_media_login(whisper_client *c);
void sy_media_disconnected(whisper_client *c);
void sy_media_token_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f);
/* An OPENED content from another device of this account (in the entry's
 * transaction): WHISPER_OK, WHISPER_EINVAL (malformed) or a store error. */
int sy_media_opened_receive(whisper_client *c, const Whisper__E2e__Content *ct);
/* Remembers a blob this account uploaded (in the caller's transaction). */
int sy_media_seen_put(whisper_client *c, const Whisper__E2e__AttachmentPointer *p);
#define SY_CONTENT_VERSION 1
#define SY_TEXT_MAX 65536 /* a text's bytes */
/* 1 if an attachment pointer is one the engine can use: a blob id that a URL
 * path takes ([A-Za-z0-9_-], 1..128), a key, a digest, sizes and metadata
 * within client.h's limits (content.c). */
int sy_attachment_ok(const Whisper__E2e__AttachmentPointer *p);
/* A Content decoded and checked for its kind (NULL: malformed); a kind
 * this version does not know is returned as it came. */
Whisper__E2e__Content *sy_content_parse(const uint8_t *data, size_t len);
int sy_content_known(uint32_t kind);
/* `sender` as history keys it: NULL for this account's own (or NULL). */
const char *sy_local_sender(const whisper_client *c, const char *sender);

/* --- outbox.c ------------------------------------------------------------------ */
void sy_jobs_free(whisper_client *c);
int sy_jobs_load(whisper_client *c);
int sy_job_add(whisper_client *c, const char *conv, const uint8_t *id, const uint8_t *body, size_t len);
/* The same for a message with content (a packed e2e.Content; NULL: none);
 * `hidden`: an operation, not a message (no SENT event). */
int sy_job_add_content(whisper_client *c, const char *conv, const uint8_t *id, const uint8_t *body,
                       size_t len, const uint8_t *content, size_t content_len, int hidden);
/* A receipt op as a job: its Payload to `to`'s devices and this account's. */
int sy_receipt_job(whisper_client *c, const sy_op *o);
void sy_pump(whisper_client *c);
void sy_send_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f);
int sy_own_others(whisper_client *c, sy_devlist *own);
/* Queues ListDevices for `account` (its answer is taken as a signed list);
 * NULL when it could not be queued. */
sy_req *sy_list_request(whisper_client *c, const char *account);

/* --- inbox.c ------------------------------------------------------------------- */
int sy_deliver(whisper_client *c, const Whisper__Sync__Deliver *d, int from_memory);
/* Deliver frames received one after the other (q[i]->deliver), in batches
 * of one transaction each (entries that need one of their own alone); the
 * frames stay the caller's. */
void sy_deliver_many(whisper_client *c, Whisper__Sync__Frame *const *q, size_t n);
uint64_t sy_watermark(const whisper_client *c);
void sy_ack_flush(whisper_client *c);
void sy_retry_held(whisper_client *c);

/* --- ops.c --------------------------------------------------------------------- */
void sy_ops_flush(whisper_client *c);
/* Receipts (end to end): a batch per (to, status) not on its way yet. */
int sy_receipt_add(whisper_client *c, const char *to, int status,
                   const uint8_t (*ids)[WHISPER_CLIENT_ID_LEN], size_t n);
void sy_receipt_done(whisper_client *c, const uint8_t cid[WHISPER_CLIENT_ID_LEN]);
void sy_op_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f);
void sy_ops_free(whisper_client *c);
void sy_typing_in_notice(whisper_client *c, const Whisper__Sync__TypingNotice *t);
void sy_typing_tick(whisper_client *c);
uint64_t sy_typing_deadline(const whisper_client *c);
void sy_typing_free(whisper_client *c);
void sy_presence_flush(whisper_client *c);
/* --- settings.c --- */
/* PresenceSet{mutes}: the conversations muted now, to the server. */
void sy_mutes_flush(whisper_client *c);
/* A SETTINGS content from another device of this account: 1 taken, 0 older
 * than what is held, WHISPER_EINVAL malformed, or a store error. */
int sy_settings_receive(whisper_client *c, const Whisper__E2e__Settings *s);
void sy_approvals_flush(whisper_client *c);
void sy_approve_free(sy_approve *a);
/* The answer to a LinkApprove or PublishDevices: the list it carried
 * becomes this account's. */
void sy_publish_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f);
/* The primary's first list (after registering, or from before lists):
 * queued as a PublishDevices. */
int sy_publish_first(whisper_client *c, const Whisper__Sync__Bundles *own);

/* --- state.c ------------------------------------------------------------------- */
int sy_state_load(whisper_client *c);
/* Writes the "s" record with these values (inside a transaction). */
int sy_state_put(whisper_client *c, int registered, uint64_t last_seq, const uint64_t *above,
                 size_t n_above, const uint64_t *held, size_t n_held, uint32_t upload_first,
                 uint32_t upload_count);
/* The same with the engine's current values, in a transaction of its own. */
int sy_state_save(whisper_client *c);
int sy_devs_load(whisper_client *c, const char *account, sy_devlist *l);
int sy_devs_save(whisper_client *c, const char *account, const sy_devlist *l);
void sy_devs_free(sy_devlist *l);
sy_dev *sy_devs_find(sy_devlist *l, uint32_t id);
int sy_devs_add(sy_devlist *l, uint32_t id, uint32_t regid);
void sy_devs_del(sy_devlist *l, uint32_t id);
/* Applies this device's own signed change once the server took it (no
 * event: the server's ENTRY_GROUP echo raises it). */
int sy_group_own_change(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN],
                        const whisper_buf *change);
int sy_group_load(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN], sy_group *g);
int sy_group_save(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN], const sy_group *g);
void sy_group_free(sy_group *g);
int sy_group_is_member(const sy_group *g, const char *account);
int sy_group_has_key(const sy_group *g, const char *account, uint32_t device);
int sy_group_is_admin(const sy_group *g, const char *account);
/* Entries that wait ("h"): packed Delivers, at most SY_MAX_HELD. */
typedef struct sy_heldset {
  whisper_buf **e;
  size_t n;
} sy_heldset;
int sy_held_read(whisper_client *c, sy_heldset *h);
int sy_held_write(whisper_client *c, const sy_heldset *h); /* inside a transaction */
void sy_heldset_free(sy_heldset *h);
int sy_outref_put(whisper_client *c, const uint8_t id[WHISPER_CLIENT_ID_LEN], const char *conv,
                  uint64_t counter);
/* The number this device gave its message `id` (0: none, or from before numbers). */
uint64_t sy_outref_counter(whisper_client *c, const uint8_t id[WHISPER_CLIENT_ID_LEN]);
/* The next number of this device's messages in `conv` (stored as taken). */
int sy_counter_next(whisper_client *c, const char *conv, uint64_t *out);
/* What this device has seen of (sender, device)'s numbered messages in conv
 * (NULL and *rc OK: nothing yet). */
Whisper__Client__SeenCounter *sy_seen_load(whisper_client *c, const char *sender, uint32_t device,
                                           const char *conv, int *rc);
int sy_seen_save(whisper_client *c, const char *sender, uint32_t device, const char *conv,
                 const Whisper__Client__SeenCounter *m);
/* Forgets it: the next number seen from that device starts counting again. */
int sy_seen_del(whisper_client *c, const char *sender, uint32_t device, const char *conv);
int sy_outref_get(whisper_client *c, const uint8_t id[WHISPER_CLIENT_ID_LEN],
                  char conv[WH_NAME_MAX + 1]);
int sy_ops_load(whisper_client *c);
int sy_ops_save(whisper_client *c); /* inside a transaction */

/* --- txn.c --------------------------------------------------------------------- */
/* Begins the engine's transaction (none may be open: WHISPER_ESTATE, the
 * engine never joins an app's). Library calls inside join it without
 * savepoints: one that fails fails the transaction (sy_txn_alive() is then
 * 0, and later calls in it fail with WHISPER_ESTORE). */
/* wh_begin() for the engine's own short transactions (and its calls of
 * library functions that open their own): WHISPER_ESTATE while the app
 * holds a transaction on the store (whisper_store_begin()), which the
 * engine never joins. */
int sy_begin(whisper_client *c);
int sy_txn_begin(whisper_client *c);
int sy_txn_alive(const whisper_client *c);
/* The same, but a library call that fails undoes only its own writes (a
 * savepoint each): the send pump's, one commit for all it encrypts.
 * WHISPER_ESTATE when the store has no savepoints (store interface < 4)
 * or a transaction is open already: then the calls commit on their own. */
int sy_txn_begin_steps(whisper_client *c);
/* Commits (rc WHISPER_OK and still alive) or rolls back; returns the code.
 * After a begin that failed: nothing, returns rc. */
int sy_txn_end(whisper_client *c, int rc);
/* From now until sy_txn_end(): the engine's records are read from the
 * store once and written to it once, before the commit (a batch of
 * entries rewrites the same few). Returns WHISPER_OK or WHISPER_ENOMEM. */
int sy_txn_cache(whisper_client *c);
/* The engine's records (WHISPER_REC_SYNC_STATE): always through these
 * (they see the batch's cache). As wh_get, wh_put, wh_put_msg, wh_del. */
int sy_rec_get(whisper_client *c, const uint8_t *key, size_t key_len, whisper_buf **out);
int sy_rec_put(whisper_client *c, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n);
int sy_rec_put_msg(whisper_client *c, const uint8_t *key, size_t key_len,
                   const ProtobufCMessage *m);
int sy_rec_del(whisper_client *c, const uint8_t *key, size_t key_len);

/* --- trust.c ------------------------------------------------------------------- */
/* Checks a signed list of `account` and, if it may replace what `l` holds
 * (same account key and a version not below, or a new key the policy
 * takes), makes `l` its devices and sets the library's trust for each.
 * Events (devices added or removed, a changed account key) go to `evs`
 * (a sy_event list head, may be NULL: pushed at once). Returns WHISPER_OK,
 * WHISPER_EINVALIDMSG / WHISPER_EINVALIDSIG (a bad list), WHISPER_ESTALE
 * ... see trust.c; the sentence is in the context's last error. */
typedef struct sy_evq {
  sy_event *head, *tail;
} sy_evq;
void sy_evq_add(sy_evq *q, sy_event *e);
int sy_list_accept(whisper_client *c, const char *account, const uint8_t *bytes, size_t len,
                   sy_devlist *l, sy_evq *evs);
/* A notice in the conversation with `account` (history, device 0). */
int sy_notice(whisper_client *c, const char *account, const char *body);
/* 1 if (account's list) authorises `device` (with `key`, when not NULL). */
int sy_list_has(const sy_devlist *l, uint32_t device, const uint8_t *key);
/* A signed list of this account (the primary only): `devs` with their keys. */
int sy_list_sign(whisper_client *c, uint64_t version, const sy_dev *devs, size_t n,
                 whisper_buf **out);
/* A parsed group change (sy_change_parse checks its shape and group id;
 * sy_change_verify its signature against the author's list). */
typedef struct sy_change {
  Whisper__E2e__SignedGroupChange *s;
  Whisper__E2e__GroupChangeBody *b;
  uint8_t hash[32]; /* of the body */
} sy_change;
int sy_change_parse(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN], const uint8_t *bytes,
                    size_t len, sy_change *ch);
int sy_change_verify(whisper_client *c, const sy_change *ch, const sy_devlist *author);
void sy_change_free(sy_change *ch);
/* Link tokens (whisper_client_link_approve()). */
int sy_token_make(whisper_client *c, const uint8_t *code, size_t len, whisper_buf **out);
typedef struct sy_token {
  char account[WH_NAME_MAX + 1];
  uint32_t device;
  const uint8_t *key, *code; /* into the token */
  size_t code_len;
} sy_token;
int sy_token_parse(const uint8_t *t, size_t len, sy_token *out);
/* A signed change of group `gid` from state `g` (its version and hash) to
 * state `n` (members, admins, info, settings, invite key). With
 * `invite_priv`, a join: signed with the link's key too. */
int sy_change_make(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN], const sy_group *g,
                   const sy_group *n, const uint8_t *invite_priv, whisper_buf **out);
/* The payload around message `id` (its body, or its packed content),
 * written at `sent_at`; `resend` marks one sent again on a retry request.
 * And back. */
typedef struct sy_body {
  const uint8_t *id; /* the client id, bound inside */
  const uint8_t *body;
  size_t len;
  const uint8_t *content; /* a packed e2e.Content (NULL: a text body) */
  size_t content_len;
} sy_body;
int sy_payload_make(const char *to, const uint8_t *gid, const sy_body *b, uint64_t counter,
                    uint64_t sent_at, int resend, whisper_buf **out);
int sy_payload_receipt(whisper_client *c, const char *to, int status,
                       const uint8_t (*ids)[WHISPER_CLIENT_ID_LEN], size_t n, whisper_buf **out);
Whisper__E2e__Payload *sy_payload_parse(const uint8_t *pt, size_t len);
/* SHA-256. */
void sy_sha256(uint8_t out[32], const uint8_t *data, size_t len);

/* --- retry.c ------------------------------------------------------------------- */
/* An entry that could not be decrypted: its placeholder, and its sender
 * asked for it again (within limits). Inside the entry's transaction. */
int sy_retry_ask(whisper_client *c, const Whisper__Sync__Deliver *d, const char *conv, sy_evq *evs);
/* A retry request (CONTENT_RETRY) from (d->sender, d->sender_device), a
 * device its list names: the message again, or FAILED. */
int sy_retry_answer(whisper_client *c, const Whisper__Sync__Deliver *d, sy_evq *evs);
/* After a login: waiting messages asked for again. */
void sy_retry_again(whisper_client *c);
/* How many messages from (sender, device) in conv wait to be sent again. */
size_t sy_waiting_count(whisper_client *c, const char *sender, uint32_t device, const char *conv);
Whisper__Client__Waiting *sy_waiting_get(whisper_client *c, const uint8_t *id, int *rc);
/* The message came: its placeholder and record go (inside the transaction). */
int sy_waiting_done(whisper_client *c, const uint8_t *id, const Whisper__Client__Waiting *w);
/* libsignal's PlaintextContent holding a DecryptionErrorMessage with these
 * fields (ratchet_key: WHISPER_PUBLIC_KEY_LEN bytes, or NULL for none);
 * NULL when out of memory. The one builder of retry requests. */
whisper_buf *sy_decryption_error_make(const uint8_t *ratchet_key, uint64_t timestamp, uint32_t device_id);
/* The same for a message of `type` (WHISPER_MSG_*) and `body` that could not
 * be decrypted: its ratchet key is taken from it where it has one. */
whisper_buf *sy_decryption_error_for(int type, const uint8_t *body, size_t len, uint64_t timestamp,
                                     uint32_t device_id);
struct Whisper__Wire__DecryptionErrorMessage;
/* The DecryptionErrorMessage inside a PlaintextContent (NULL: not one). */
struct Whisper__Wire__DecryptionErrorMessage *sy_decryption_error_parse(const uint8_t *p, size_t n);
void sy_rates_free(whisper_client *c);
/* Whether `account` takes part in `conv` (its peer, or a member of the group). */
int sy_may_receive(whisper_client *c, const char *conv, const char *account);
/* A resend of message `id` of `conv` (its body from history, sent at
 * `sent_at`) to (to, device) alone, under a fresh session. */
int sy_resend_job(whisper_client *c, const char *conv, const char *to, uint32_t device,
                  const sy_body *b, uint64_t sent_at);

/* --- groups.c ------------------------------------------------------------------ */
#define SY_MAX_REQUESTS 256 /* join requests kept per group */
/* Whether a parsed change's body is well formed beyond names and version
 * (info sizes and UTF-8, the invite key and signature): 1 yes. */
int sy_group_body_ok(const Whisper__E2e__SignedGroupChange *s, const Whisper__E2e__GroupChangeBody *b);
/* Whether change `ch` may follow state `g` as this device holds it (the
 * author's own signature is checked apart, sy_change_verify): NULL yes,
 * else why not. */
int sy_group_change_why(whisper_client *c, const sy_group *g, const sy_change *ch, const char **why);
/* Takes the change's state into `g` (the caller sets version and hash);
 * returns the WHISPER_GROUP_CHANGED_* bits of what changed, or a negative
 * error. */
int sy_group_take(whisper_client *c, sy_group *g, const Whisper__E2e__GroupChangeBody *b);
/* 1 if change body `b` leaves out a member of `g` (0 no, or an error). */
int sy_group_removes(const sy_group *g, const Whisper__E2e__GroupChangeBody *b);
/* Whether `sender` may send a message to the group: NULL yes, else why not. */
const char *sy_group_sender_why(const sy_group *g, const char *sender);
/* The signed change group op `o` makes of the state held now (into
 * o->change), or an error (its sentence set). */
int sy_group_op_change(whisper_client *c, sy_op *o);
/* The server answered a PEEK or JOIN op (ops[i]): handled, and the op
 * dropped or kept for its next step. */
void sy_group_join_answer(whisper_client *c, size_t i, const Whisper__Sync__Frame *f);
/* A PEEK's invite_proof for op `o`, into `sig`. */
int sy_group_peek_proof(whisper_client *c, const sy_op *o, uint8_t sig[WHISPER_SIGNATURE_LEN]);
/* A join request (Deliver.join_request) for a group whose state `g` this
 * device holds: NULL to record it, else why it is refused; *ignore set
 * when it is simply not for this device (not an admin, a member already). */
const char *sy_group_request_why(whisper_client *c, const sy_group *g, const sy_change *ch,
                                 int *ignore);
/* Adds `account` to g's join requests. */
int sy_group_request_add(sy_group *g, const char *account);
void sy_edit_clear(struct sy_edit *e);

/* --- ops.c (for groups.c) ------------------------------------------------------- */
void sy_op_drop(whisper_client *c, size_t i);
int sy_ops_store(whisper_client *c); /* in a transaction of its own */

/* --- profile.c ----------------------------------------------------------------- */
#define SY_PROFILE_BLOB_MAX 66560 /* a stored profile's ciphertext, at most */
/* 1 if these are a profile's fields (name 1..64, about 0..140 bytes of
 * UTF-8 without NUL; a picture of at most 65536 bytes). */
int sy_profile_fields_ok(const uint8_t *name, size_t name_len, const uint8_t *about, size_t about_len,
                         const uint8_t *picture, size_t picture_len);
/* A profile encrypted under profile key `pk` for (account, version): what
 * the server stores. And back: WHISPER_OK, WHISPER_EFORGED (it does not
 * authenticate under that key, account and version), WHISPER_EINVALIDMSG
 * (not a profile of this format), WHISPER_ENOMEM. */
int sy_profile_seal(const wh_rng *rng, const uint8_t pk[32], const char *account, uint64_t version,
                    const uint8_t *name, size_t name_len, const uint8_t *about, size_t about_len,
                    const uint8_t *picture, size_t picture_len, whisper_buf **out);
int sy_profile_open(const uint8_t pk[32], const char *account, uint64_t version, const uint8_t *blob,
                    size_t len, Whisper__E2e__ProfileBody **out);
/* A PROFILE_KEY content from (sender, another of its devices when own) in
 * conv (group: a group message), inside the entry's transaction: 1 taken,
 * 0 nothing new, WHISPER_EFORGED refused (the sentence set: another
 * account's key, a request from a contact), WHISPER_EINVALIDMSG
 * malformed, or a store error. Fetches and answers follow the commit
 * (c->profile_due). */
int sy_profile_key_receive(whisper_client *c, const char *sender, const char *conv, int group, int own,
                           const Whisper__E2e__Content *ct);
/* After a message to conv was put in the outbox (sy_enqueue): conv is
 * listed, and gets the key first if it has not got this one. */
void sy_profile_sent_to(whisper_client *c, const char *conv, uint64_t now_ms);
/* A group this device holds (sy_group_save, in its transaction): listed. */
int sy_profile_group_noted(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN]);
/* After a login and after calls that set c->profile_due: uploads, asks
 * for or answers with the key, tells contacts, fetches profiles. */
void sy_profile_flush(whisper_client *c);
void sy_profile_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f);

/* --- anchor.c ------------------------------------------------------------------ */
void sy_rollback_event(whisper_client *c, const char *account, uint32_t device);
/* A new epoch (stored in a transaction of its own; WHISPER_EV_ANCHOR). */
int sy_epoch_next(whisper_client *c);
/* One more message sent: a new epoch every SY_ANCHOR_EVERY. */
void sy_epoch_count(whisper_client *c);

/* --- block.c ------------------------------------------------------------------ */
int sy_block_load(whisper_client *c);   /* whisper_client_new */
void sy_block_free(whisper_client *c);
/* 1 if this account blocked `account`. */
int sy_block_has(whisper_client *c, const char *account);
/* Whether a mailbox entry is dropped unread: a message or receipt that a
 * blocked account sent through the 1:1 session (not a sender key, a retry
 * request or a group message: groups are shared). */
int sy_block_drops(whisper_client *c, const Whisper__Sync__Deliver *d);
/* After a login: the block list to the server, to this account's other
 * devices if a change has not been put in the outbox for them (a crash
 * came between), and the pending reports. */
void sy_block_login(whisper_client *c);
/* Sends what waits (after a rate limit). */
void sy_block_flush(whisper_client *c);
void sy_block_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f);
/* A Content BLOCK from another device of this account, to it (inbox.c's
 * on_content has checked that): merged into the list, EV_BLOCKED for each
 * account whose state changed; a malformed one raises EV_ERROR. Inside the
 * entry's transaction. Returns WHISPER_OK or a store error. */
int sy_block_receive(whisper_client *c, const Whisper__E2e__Block *blk, sy_evq *evs);
/* A device joined this account: the block list goes to the devices again. */
void sy_block_resync(whisper_client *c);

/* --- keys.c -------------------------------------------------------------------- */
/* The public key of one-time prekey `id` as stored. */
int sy_prekey_public(whisper_ctx *ctx, uint32_t id, uint8_t pub[WHISPER_PUBLIC_KEY_LEN]);
/* The registration id the current session with (name, device) knows (0
 * when unknown or no session). */
uint32_t sy_session_regid(whisper_ctx *ctx, const char *name, uint32_t device);

#endif
