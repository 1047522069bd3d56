/*
 * libwhisper: the client engine, sans-I/O.
 *
 * The client side of libwhisper's client/server protocol (sync.proto,
 * docs/sync-protocol.md), in the model of ngtcp2: the app owns the
 * connection (a WebSocket) and the clock. It tells the engine when the
 * connection opens and closes, feeds it every received frame with the
 * current time, sends the frames the engine hands out, reads the events
 * the engine raises, and calls whisper_client_tick() by
 * whisper_client_next_deadline().
 *
 * The engine works over a whisper_ctx with a store that has scan() (the
 * SQLite store): the identity, sessions, history, the outbox and the
 * engine's own progress (the mailbox position, device lists, groups) are
 * all there, so a restart loses nothing:
 *  - a message is in history and the outbox (PENDING) before the send
 *    call returns; it is sent when a connection is up, again after every
 *    reconnect until the server answers SENT (the same client id, so the
 *    server keeps it once); up to the config's send_window are sent before
 *    the server answers them, in order (a server that checks their order
 *    takes none past one it refuses, and the engine sends those again);
 *  - incoming messages are decrypted and stored in batches, one
 *    transaction each (a backlog: 128 entries for whisperd), and only then
 *    acknowledged to the server (one Ack) and raised as events; a
 *    redelivered entry is recognised and acknowledged without a second
 *    event;
 *  - history is ordered by the server's sequence;
 *  - an entry that has to wait (a device list to fetch first; a contact
 *    from before signed lists whose identity key changed,
 *    WHISPER_EV_IDENTITY) is kept in the store and acknowledged, so that
 *    it never blocks the mailbox; it is tried again when the list comes,
 *    on whisper_client_retry() and after each login; an entry that can
 *    never be decrypted (malformed, bad signature, no session or sender
 *    key) raises WHISPER_EV_ERROR and is acknowledged.
 *
 * The server is not trusted with who is in a conversation
 * (docs/security.md): an account's devices are those of a list signed by
 * its account key (its primary device's identity key, which safety
 * numbers cover), group membership changes only by changes signed by an
 * admin and chained to the one before, and every message carries its
 * conversation inside the encryption. What the server invents is refused
 * (WHISPER_EV_REFUSED) and changes nothing.
 * Messages from this account's other devices are kept as outgoing
 * messages (SENT), so that every device follows their status. Own devices
 * are not recipients: nobody reports DELIVERED for them.
 * Sessions are started on demand from bundles fetched from the server;
 * when the server says a device list is stale the engine updates it and
 * encrypts again.
 *
 * What changes about a contact's devices is also noted in the history
 * of the conversation with it: an incoming entry with sender_device 0 whose
 * body is "device-added N", "device-removed N" or "account-key-changed".
 *
 * Accounts and devices: an account name is 1..WHISPER_ACCOUNT_NAME_MAX
 * (64) bytes of [a-z0-9._-] and a device id is 1..WHISPER_DEVICE_ID_MAX
 * (2^31 - 1), here as in the server (server.h) and on the wire: every
 * function that takes an account name refuses another with WHISPER_EINVAL,
 * and whisper_client_new() refuses (WHISPER_ESTATE) a local identity whose
 * name or device id is outside them. (The session layer, session.h, takes
 * any name of 1..WHISPER_NAME_MAX bytes: an identity meant for the engine
 * must be made with an account name.)
 *
 * Conversations are named as in history.h: a 1:1 conversation by the
 * other account's name, a group by "#" followed by the group id in
 * lowercase hex (whisper_client_group_conversation()).
 *
 * An engine is used from one thread at a time.
 */
#ifndef WHISPER_CLIENT_H
#define WHISPER_CLIENT_H

#include "core.h"
#include "sender_key.h"
#include "history.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

/** The longest account name, in bytes (names are 1..64 of [a-z0-9._-]). */
#define WHISPER_ACCOUNT_NAME_MAX 64
/** The largest device id (ids are 1..2^31 - 1). */
#define WHISPER_DEVICE_ID_MAX 0x7FFFFFFFu

/** Checks an account name as the engine and the server take it (1..64
 *  bytes of [a-z0-9._-]), so that an app can refuse a bad one where the
 *  user types it. Returns WHISPER_OK, or WHISPER_EINVAL (NULL, empty, too
 *  long or another byte). */
WHISPER_API int whisper_account_name_check(const char *WHISPER_NULLABLE name);

#define WHISPER_CLIENT_ID_LEN 16       /* a message's client id */
#define WHISPER_GROUP_ID_LEN 16
#define WHISPER_GROUP_CONVERSATION_LEN (1 + 2 * WHISPER_GROUP_ID_LEN)

#define WHISPER_CLIENT_CONFIG_VERSION 7

/** Start from WHISPER_CLIENT_CONFIG_INIT; fields are only ever appended. */
typedef struct whisper_client_config_t {
  unsigned version;
  uint32_t prekey_batch;       /* one-time prekeys uploaded at a time */
  uint32_t prekey_low;         /* replenish when the server has fewer */
  uint64_t backoff_min_ms;     /* first reconnect delay */
  uint64_t backoff_max_ms;     /* cap of the exponential backoff (with jitter) */
  uint64_t ping_ms;            /* a Ping after this long without a frame */
  uint64_t request_timeout_ms; /* no answer by then: the connection is given up */
  uint64_t typing_min_ms;      /* typing notices to one conversation at most this often */
  int read_receipts;           /* 1: send READ receipts (whisper_client_mark_read) */
  int presence_visible;        /* 1: others may see online / last seen */
  /* --- version 2 --- */
  int hold_on_change;          /* 1: messages to an account whose key changed wait until
                                * whisper_client_account_trust() (0: they go, as WhatsApp does) */
  int delivery_receipts;       /* 1: send DELIVERED receipts (end to end) for messages stored */
  /* --- version 3 --- */
  uint64_t delete_window_ms;   /* how long after sending a message may be deleted for
                                * everyone (its sender's clock; default 48 hours); an edit's
                                * window is always WHISPER_EDIT_WINDOW_MS */
  /* --- version 4 --- */
  uint32_t max_group_members;  /* members per group (WHISPER_GROUP_MEMBERS_DEFAULT; at most
                                * WHISPER_GROUP_MEMBERS_MAX): the engine makes no change, and
                                * takes none, that grows a group past it */
  /* --- version 5 --- */
  /* a directory of the app's where the engine keeps encrypted blobs in
   * flight (copied; NULL: no media jobs) */
  const char *WHISPER_NULLABLE media_dir;
  uint64_t media_max_size;     /* the largest attachment sent or taken, in bytes of plaintext
                                * (default 100 MiB) */
  uint32_t media_piece;        /* bytes per upload or download request (default 1 MiB) */
  /* --- version 6 --- */
  uint64_t signed_prekey_rotate_ms; /* the signed prekey is replaced by a new one when it is older
                                * than this (at login, and on a timer while logged in) and
                                * uploaded (default 7 days; 0: never; else at least a minute) */
  uint64_t signed_prekey_grace_ms;  /* a replaced signed prekey is kept this long, for PreKey
                                * messages built from bundles fetched before (default 30 days) */
  /* --- version 7 --- */
  uint32_t send_window;        /* messages sent at once before the server answers them (default
                                * WHISPER_SEND_WINDOW_DEFAULT, at most WHISPER_SEND_WINDOW_MAX;
                                * 0 or 1: one at a time), in order: only with a server that
                                * takes them in that order (sync.proto Send.after), else one */
} whisper_client_config_t;

#define WHISPER_SEND_WINDOW_DEFAULT 32
#define WHISPER_SEND_WINDOW_MAX 256

#define WHISPER_GROUP_MEMBERS_DEFAULT 1024
#define WHISPER_GROUP_MEMBERS_MAX 10000

#define WHISPER_CLIENT_CONFIG_INIT \
  { WHISPER_CLIENT_CONFIG_VERSION, 100, 20, 500, 60000, 25000, 10000, 2000, 1, 1, 0, 1, \
    48ULL * 3600 * 1000, WHISPER_GROUP_MEMBERS_DEFAULT, NULL, 100ULL << 20, 1u << 20,   \
    7ULL * 24 * 3600 * 1000, 30ULL * 24 * 3600 * 1000, WHISPER_SEND_WINDOW_DEFAULT }

/** A message may be edited this long after it was sent (15 minutes). */
#define WHISPER_EDIT_WINDOW_MS (15ULL * 60 * 1000)

/** An engine. */
typedef struct whisper_client whisper_client;

/**
 * Makes an engine for the local identity of `ctx` (whisper_identity_generate
 * first: its name is the account, its device id the device). `ctx` is
 * borrowed and must outlive the engine; `cfg` NULL: the defaults
 * (WHISPER_CLIENT_CONFIG_INIT). Returns WHISPER_OK, WHISPER_EINVAL,
 * WHISPER_ESTATE (no local identity, or a store without scan()),
 * WHISPER_ENOMEM or a store error.
 */
WHISPER_API int whisper_client_new(whisper_client *WHISPER_NULLABLE *WHISPER_NONNULL out,
                                   whisper_ctx *ctx,
                                   const whisper_client_config_t *WHISPER_NULLABLE cfg);

/** Frees an engine (nothing stored is touched). Accepts NULL. */
WHISPER_API void whisper_client_free(whisper_client *WHISPER_NULLABLE c);

/* --- the connection ------------------------------------------------------ */

/** 1 when the app should open a connection now (there is none and the
 *  backoff has passed), else 0. */
WHISPER_API int whisper_client_want_connect(const whisper_client *c, uint64_t now_ms);

/** The connection is open. The engine then logs in (registering the device
 *  first if it never did) and resumes its mailbox. Returns WHISPER_OK or
 *  WHISPER_EINVAL (`c` NULL). */
WHISPER_API int whisper_client_connected(whisper_client *c, uint64_t now_ms);

/** The connection closed or failed. Frames not yet taken are dropped; what
 *  was not answered is sent again on the next connection. The next
 *  attempt waits for the backoff. */
WHISPER_API void whisper_client_disconnected(whisper_client *c, uint64_t now_ms);

/**
 * A frame arrived. Mailbox entries (Deliver frames) wait in the engine and
 * are handled together, in one store transaction per batch, when the app
 * next takes events or frames or calls whisper_client_tick() (by
 * whisper_client_next_deadline()), or when another frame comes; while the
 * login's backlog arrives, a batch waits for up to half the entries the
 * server pushes before it waits for an Ack (128 of whisperd's 256), or
 * 20 ms.
 * Returns WHISPER_OK (also when the engine reported a problem as an
 * event), WHISPER_EINVALIDMSG for bytes that are not a frame (nothing
 * changed; the app should close the connection), or a store error.
 */
WHISPER_API int whisper_client_receive(whisper_client *c, const uint8_t *frame, size_t len,
                                       uint64_t now_ms);

/** Takes the next frame to send: returns 1 and sets `*out` (the caller
 *  frees it), or 0 when there is none. */
WHISPER_API int whisper_client_take_frame(whisper_client *c,
                                          whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL out);

/** 1 when the engine wants the connection closed (the server broke the
 *  protocol, or stopped answering). */
WHISPER_API int whisper_client_want_disconnect(const whisper_client *c);

/** When whisper_client_tick() should next run (UINT64_MAX: nothing). */
WHISPER_API uint64_t whisper_client_next_deadline(const whisper_client *c);

/** Runs the timers due at `now_ms`: pings, request timeouts, typing.
 *  Once the mailbox's backlog has arrived (WHISPER_EV_CAUGHT_UP) it also
 *  indexes for search (search.h) the messages stored and not indexed yet,
 *  a few at a time (the first tick 200 ms after a message is stored, at
 *  most 32 a tick, the next due 1 ms later, until none waits). */
WHISPER_API void whisper_client_tick(whisper_client *c, uint64_t now_ms);

/* --- what the app does --------------------------------------------------- */

/**
 * Sends `body` to the account `to` (every device of it, and this
 * account's other devices). The message is in history and the outbox,
 * PENDING, when this returns, with its client id in `id_out`; it goes out
 * when a connection is up. Returns WHISPER_OK, WHISPER_EINVAL or a store
 * error.
 */
WHISPER_API int whisper_client_send(whisper_client *c, const char *to,
                                    const uint8_t *WHISPER_NULLABLE body, size_t body_len,
                                    uint64_t now_ms,
                                    uint8_t id_out[WHISPER_NONNULL WHISPER_CLIENT_ID_LEN]);

/** Sends `body` to a group (encrypted once with this device's sender key;
 *  the engine first distributes the sender key to member devices that do
 *  not have it). As whisper_client_send() otherwise. Returns WHISPER_OK,
 *  WHISPER_EINVAL, WHISPER_ESTATE (not a member of that group, or only
 *  admins send to it), WHISPER_ERANDOM or a store error. */
WHISPER_API int whisper_client_send_group(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    const uint8_t *WHISPER_NULLABLE body, size_t body_len, uint64_t now_ms,
    uint8_t id_out[WHISPER_NONNULL WHISPER_CLIENT_ID_LEN]);

/* --- message content: replies, forwards, reactions, edits, deletes, calls -------------------
 *
 * `conversation` is an account name (1:1) or a group's conversation name
 * (whisper_client_group_conversation()). A message is named by its id and
 * its sender (`sender` NULL: this account's own). Each call stores what it
 * does (in history, and the outbox) before it returns, as
 * whisper_client_send() does, and every device of both accounts applies
 * it. Who may do what is checked end to end by each receiver, with the
 * sender the session authenticated (never the server's word): only a
 * message's sender edits or deletes it; reactions come from the
 * conversation's members. Returns WHISPER_OK, WHISPER_EINVAL,
 * WHISPER_ENOTFOUND (no such message here), WHISPER_EDENIED (not this
 * account's message, too late, or deleted), WHISPER_ESTATE (not a member
 * of that group) or a store error. */

/** Sends `body` as a reply quoting message (quoted_id, quoted_sender) of
 *  the conversation (its first 100 bytes go along as the quote). */
WHISPER_API int whisper_client_reply(whisper_client *c, const char *conversation,
                                     const uint8_t *quoted_id, size_t quoted_id_len,
                                     const char *WHISPER_NULLABLE quoted_sender,
                                     const uint8_t *WHISPER_NULLABLE body, size_t body_len,
                                     uint64_t now_ms,
                                     uint8_t id_out[WHISPER_NONNULL WHISPER_CLIENT_ID_LEN]);

/** Forwards message (id, sender) of `from_conversation` to
 *  `to_conversation`: its text, or its attachment's pointer (nothing is
 *  uploaded again; a view-once attachment is not forwarded:
 *  WHISPER_EDENIED), marked forwarded with its count + 1. */
WHISPER_API int whisper_client_forward(whisper_client *c, const char *to_conversation,
                                       const char *from_conversation, const uint8_t *id,
                                       size_t id_len, const char *WHISPER_NULLABLE sender,
                                       uint64_t now_ms,
                                       uint8_t id_out[WHISPER_NONNULL WHISPER_CLIENT_ID_LEN]);

/** Reacts to message (id, sender) with one emoji (at most 64 bytes of
 *  UTF-8), replacing this account's reaction to it; "" removes it. */
WHISPER_API int whisper_client_react(whisper_client *c, const char *conversation, const uint8_t *id,
                                     size_t id_len, const char *WHISPER_NULLABLE sender,
                                     const char *emoji, uint64_t now_ms);

/** Replaces the text of this account's message `id`, within
 *  WHISPER_EDIT_WINDOW_MS of sending it; history keeps that it was edited. */
WHISPER_API int whisper_client_edit(whisper_client *c, const char *conversation, const uint8_t *id,
                                    size_t id_len, const uint8_t *WHISPER_NULLABLE body,
                                    size_t body_len, uint64_t now_ms);

/** Deletes this account's message `id` for everyone, within the
 *  configured delete window: its body is wiped on every device and a
 *  tombstone remains (whisper_message_t.deleted). */
WHISPER_API int whisper_client_delete(whisper_client *c, const char *conversation,
                                      const uint8_t *id, size_t id_len, uint64_t now_ms);

/* --- media: attachments ------------------------------------------------------
 *
 * A file is sent as an attachment (attachment.h): the engine encrypts it
 * under a fresh key into an encrypted blob in the config's media_dir,
 * uploads the blob to the server's blob store, and only then sends the
 * pointer (where the blob is, its key, sizes and digests, the app's
 * metadata and thumbnail) end to end as the message. Every step is a job
 * kept in the store: after a crash or a lost connection the upload goes on
 * from the last offset the server acknowledged, with the same key and IV;
 * a download goes on from the bytes already here, verifying as it goes.
 * WHISPER_EV_MEDIA reports progress. Nothing unencrypted is written by the
 * library except the file the app names for a download, and that one is
 * removed again if the download fails.
 *
 * The blob store speaks HTTP (tus 1.0 resumable uploads, downloads with
 * Range) on the server's port; the engine stays sans-I/O: it hands the app
 * HTTP requests (whisper_client_take_http()) and the app gives back the
 * answers (whisper_client_http_done()), as it does with frames. The upload
 * token they carry comes through the sync connection.
 *
 * The same file (by its plaintext's SHA-256) is uploaded once per account
 * while its blob lives: sending it again, or forwarding the message, sends
 * the pointer again. The library does not decode images: thumbnails are
 * the app's bytes.
 */

#define WHISPER_MEDIA_VOICE_NOTE 1      /* flags: a voice note */
#define WHISPER_MEDIA_VIEW_ONCE 2       /* flags: opened once, then wiped on every device */
#define WHISPER_MEDIA_TYPE_MAX 127      /* bytes of a content type */
#define WHISPER_MEDIA_NAME_MAX 255      /* bytes of a file name */
#define WHISPER_MEDIA_CAPTION_MAX 4096  /* bytes of a caption (UTF-8) */
#define WHISPER_MEDIA_THUMBNAIL_MAX 65536 /* bytes of an inline thumbnail */

/** What the app says of a file it sends; every field but `size` may be
 *  zero/NULL. A versioned struct (docs/api.md): the caller sets `size`
 *  (WHISPER_MEDIA_META_INIT); fields are only appended. */
typedef struct whisper_media_meta_t {
  size_t size;               /* sizeof(whisper_media_meta_t) as the caller was built */
  const char *WHISPER_NULLABLE content_type; /* a MIME type ("image/jpeg"); NULL:
                                              * application/octet-stream */
  const char *WHISPER_NULLABLE file_name; /* shown to the recipient; no directories */
  uint32_t width, height;    /* pixels (images, video) */
  uint32_t duration_ms;      /* audio, video */
  const char *WHISPER_NULLABLE caption; /* UTF-8 */
  const uint8_t *WHISPER_NULLABLE thumbnail; /* a small image the app made */
  size_t thumbnail_len;
  uint32_t flags;            /* WHISPER_MEDIA_VOICE_NOTE, WHISPER_MEDIA_VIEW_ONCE */
} whisper_media_meta_t;

/** The first released (1.0) size of whisper_media_meta_t. */
#define WHISPER_MEDIA_META_SIZE_1_0 (offsetof(whisper_media_meta_t, flags) + sizeof(uint32_t))
/** Initializer: `whisper_media_meta_t meta = WHISPER_MEDIA_META_INIT;` */
#define WHISPER_MEDIA_META_INIT {.size = sizeof(whisper_media_meta_t)}

/**
 * Sends the file at `path` to `conversation` (an account or a group's
 * conversation) as an attachment. The file is read, encrypted and
 * uploaded by the engine's ticks and the app's HTTP (above); the message,
 * with its id in `id_out`, is stored and sent when its blob is uploaded.
 * `meta` may be NULL (no metadata); only the fields both the library and
 * the caller's `meta` have are read. The file must stay where it is until
 * then. Returns WHISPER_OK, WHISPER_EINVAL (a bad argument, a field too
 * long, `meta->size` below WHISPER_MEDIA_META_SIZE_1_0, no media_dir),
 * WHISPER_ENOTFOUND (no such file), WHISPER_ETOOBIG (larger than
 * media_max_size), WHISPER_EBLOCKED, WHISPER_ESTATE (not a member of the
 * group) or a store error.
 */
WHISPER_API int whisper_client_send_file(whisper_client *c, const char *conversation,
                                         const char *path,
                                         const whisper_media_meta_t *WHISPER_NULLABLE meta,
                                         uint64_t now_ms,
                                         uint8_t id_out[WHISPER_NONNULL WHISPER_CLIENT_ID_LEN]);

/* A media job's state (whisper_media_t.state, WHISPER_EV_MEDIA's status). */
#define WHISPER_MEDIA_ENCRYPTING 1  /* outgoing: being encrypted */
#define WHISPER_MEDIA_UPLOADING 2   /* outgoing: being uploaded */
#define WHISPER_MEDIA_SENT 3        /* outgoing: uploaded; the message is sent */
#define WHISPER_MEDIA_REMOTE 4      /* incoming: on the server, not downloaded */
#define WHISPER_MEDIA_DOWNLOADING 5 /* incoming: being downloaded and verified */
#define WHISPER_MEDIA_DOWNLOADED 6  /* incoming: verified and written to `path` */
#define WHISPER_MEDIA_OPENED 7      /* view-once: opened; its key is gone on every device */
#define WHISPER_MEDIA_FAILED 8      /* the job failed: `error` says why; download again to retry */

#define WHISPER_MEDIA_STRUCT_VERSION 1

/** An attachment as this device holds it (whisper_client_media_get());
 *  fields are only ever appended. */
typedef struct whisper_media_t {
  unsigned version;
  char *content_type;       /* NUL-terminated; "" if none */
  char *file_name;          /* "" if none */
  char *caption;            /* "" if none */
  uint8_t *WHISPER_NULLABLE thumbnail; /* NULL if none */
  size_t thumbnail_len;
  uint64_t size;            /* the plaintext's bytes */
  uint32_t width, height, duration_ms, flags;
  int state;                /* WHISPER_MEDIA_* */
  uint64_t done, total;     /* the job's progress, in bytes */
  char *path;               /* the app's file: sent from, or downloaded to ("" if none) */
  int error;                /* WHISPER_MEDIA_FAILED: the WHISPER_E* code */
} whisper_media_t;

/** The attachment of message (id, sender) of `conversation` (`sender`
 *  NULL: this account's own), into `*out` (free it with
 *  whisper_media_free()). Returns WHISPER_OK, WHISPER_EINVAL,
 *  WHISPER_ENOTFOUND (no such message, or not an attachment) or a store
 *  error. */
WHISPER_API int whisper_client_media_get(whisper_client *c, const char *conversation,
                                         const uint8_t *id, size_t id_len,
                                         const char *WHISPER_NULLABLE sender,
                                         whisper_media_t *WHISPER_NULLABLE *WHISPER_NONNULL out);

/** Frees what whisper_client_media_get() returned. Accepts NULL. */
WHISPER_API void whisper_media_free(whisper_media_t *WHISPER_NULLABLE m);

/**
 * Downloads the attachment of message (id, sender) into the file `path`
 * the app names (created or replaced): a job, resumed after a restart or a
 * lost connection, that writes only verified plaintext and reports
 * WHISPER_EV_MEDIA (DOWNLOADING with progress, then DOWNLOADED or FAILED
 * with the error: WHISPER_EINTEGRITY, WHISPER_ETRUNCATED, WHISPER_EKEY,
 * WHISPER_ESIZE, WHISPER_ENOTFOUND for a blob the server no longer has).
 * On failure `path` is removed. While it runs, `path` holds the verified
 * prefix, so that a player can start. With `path` NULL the library writes
 * no file: the verified plaintext comes to the app in WHISPER_EV_MEDIA_DATA
 * events (after a restart, from the first byte again: done_bytes says
 * where each piece starts), and on failure the app discards what it got.
 * Returns WHISPER_OK, WHISPER_EINVAL,
 * WHISPER_ENOTFOUND (no such attachment), WHISPER_EDENIED (a view-once
 * attachment: whisper_client_view_once_open()), WHISPER_ETOOBIG (above
 * media_max_size) or a store error.
 */
WHISPER_API int whisper_client_download(whisper_client *c, const char *conversation,
                                        const uint8_t *id, size_t id_len,
                                        const char *WHISPER_NULLABLE sender,
                                        const char *WHISPER_NULLABLE path, uint64_t now_ms);

/**
 * Opens a view-once attachment: downloads it into `path` as
 * whisper_client_download() does; once it is there (WHISPER_EV_MEDIA,
 * DOWNLOADED) its key and blob are wiped from this device and the
 * account's other devices (state WHISPER_MEDIA_OPENED), and the sender
 * gets an end-to-end receipt (WHISPER_STATUS_OPENED). The app shows the
 * file and deletes it. `path` NULL: the plaintext comes in
 * WHISPER_EV_MEDIA_DATA events, as with whisper_client_download().
 * Returns as whisper_client_download(), and WHISPER_EDENIED when the
 * attachment is not view-once or was opened.
 */
WHISPER_API int whisper_client_view_once_open(whisper_client *c, const char *conversation,
                                              const uint8_t *id, size_t id_len,
                                              const char *WHISPER_NULLABLE sender,
                                              const char *WHISPER_NULLABLE path, uint64_t now_ms);

/* --- the app's HTTP, for the blob store ------------------------------------------ */

/** An HTTP request for the app to make to the server's host (the one its
 *  sync connection goes to, over the same scheme: http or https). Valid
 *  until the next call on the engine. A versioned struct (docs/api.md):
 *  the caller sets `size` (WHISPER_HTTP_REQUEST_INIT); fields are only
 *  appended. */
typedef struct whisper_http_request_t {
  size_t size;               /* sizeof(whisper_http_request_t) as the caller was built */
  uint64_t handle;           /* give it back to whisper_client_http_done() */
  const char *method;        /* "POST", "HEAD", "PATCH", "GET", "DELETE", "OPTIONS" */
  const char *path;          /* "/v1/blobs..." */
  const char *headers;       /* "Name: value\r\n" lines to send (Content-Length aside) */
  const uint8_t *WHISPER_NULLABLE body; /* NULL when body_len is 0 */
  size_t body_len;
} whisper_http_request_t;

/** The first released (1.0) size of whisper_http_request_t. */
#define WHISPER_HTTP_REQUEST_SIZE_1_0 (offsetof(whisper_http_request_t, body_len) + sizeof(size_t))
/** Initializer: `whisper_http_request_t req = WHISPER_HTTP_REQUEST_INIT;` */
#define WHISPER_HTTP_REQUEST_INIT {.size = sizeof(whisper_http_request_t)}

/** Takes the next HTTP request to make: returns 1 and fills `*out` (the
 *  fields both the library and the caller's struct have; `size` kept,
 *  newer fields left alone), or 0 (none, or `c` or `out` NULL). Requests
 *  come only while the sync connection is logged in. `out->size` below
 *  WHISPER_HTTP_REQUEST_SIZE_1_0: WHISPER_EINVAL (with a sentence),
 *  nothing taken or written; loop while it returns 1 (`> 0`). */
WHISPER_API int whisper_client_take_http(whisper_client *c, whisper_http_request_t *out);

/**
 * The answer to request `handle`: its HTTP status (0: no answer, the
 * request failed), its headers as "Name: value\r\n" lines (the engine
 * reads Location and Upload-Offset; NULL if none) and its body. The
 * engine goes on with the job (or tries again after a backoff). Returns
 * WHISPER_OK, WHISPER_EINVAL (no such request) or a store error.
 */
WHISPER_API int whisper_client_http_done(whisper_client *c, uint64_t handle, int status,
                                         const char *WHISPER_NULLABLE headers,
                                         const uint8_t *WHISPER_NULLABLE body, size_t body_len,
                                         uint64_t now_ms);

/* --- per-conversation flags: mute, archive, pin ---------------------------------------------- */

#define WHISPER_MUTE_FOREVER UINT64_MAX

/** A conversation's flags, the same on every device of the account. A
 *  versioned struct (docs/api.md): the caller sets `size`
 *  (WHISPER_CONVERSATION_FLAGS_INIT), to read flags as well as to set
 *  them; fields are only appended. */
typedef struct whisper_conversation_flags_t {
  size_t size;             /* sizeof(whisper_conversation_flags_t) as the caller was built */
  uint64_t muted_until_ms; /* 0: not muted; else muted until then (WHISPER_MUTE_FOREVER:
                            * until unmuted); the server wakes no device for it meanwhile */
  int archived;
  int pinned;
} whisper_conversation_flags_t;

/** The first released (1.0) size of whisper_conversation_flags_t. */
#define WHISPER_CONVERSATION_FLAGS_SIZE_1_0 \
  (offsetof(whisper_conversation_flags_t, pinned) + sizeof(int))
/** Initializer: `whisper_conversation_flags_t fl = WHISPER_CONVERSATION_FLAGS_INIT;` */
#define WHISPER_CONVERSATION_FLAGS_INIT {.size = sizeof(whisper_conversation_flags_t)}

/** Reads the flags of `conversation` (all zero if none were set) into the
 *  fields both the library and the caller's `out` have (`size` kept,
 *  newer fields left alone). Returns WHISPER_OK, WHISPER_EINVAL (also:
 *  `out->size` below WHISPER_CONVERSATION_FLAGS_SIZE_1_0, nothing
 *  written) or a store error. */
WHISPER_API int whisper_client_conversation_flags_get(whisper_client *c, const char *conversation,
                                                  whisper_conversation_flags_t *out);

/** Sets the flags of `conversation` (only the fields both the library and
 *  the caller's `flags` have are read; `flags->size` below
 *  WHISPER_CONVERSATION_FLAGS_SIZE_1_0: WHISPER_EINVAL): kept in the store, sent (end to end)
 *  to this account's other devices, which raise WHISPER_EV_SETTINGS, and
 *  the mutes told to the server so that it sends no push for a muted
 *  conversation. The newest setting (by the setting device's clock) wins.
 *  At most 1000 conversations may be muted at once. Returns WHISPER_OK,
 *  WHISPER_EINVAL or a store error. */
WHISPER_API int whisper_client_conversation_flags_set(whisper_client *c, const char *conversation,
                                                      const whisper_conversation_flags_t *flags,
                                                      uint64_t now_ms);

/* --- profiles -------------------------------------------------------------
 *
 * A profile is a display name, an about text and a small picture. The
 * engine encrypts it (AES-256-GCM) under a key derived from the account's
 * random profile key and uploads only the ciphertext; the server cannot
 * read a profile, and cannot change or replace one unnoticed. The profile
 * key is made by device 1 and travels end to end: to this account's other
 * devices, and to the contacts this account wrote to and the groups it is
 * in (when the profile changes, and with the first message to a new
 * contact or group). A device that receives a contact's key fetches and
 * decrypts the profile and raises WHISPER_EV_PROFILE when it changed.
 * docs/sync-protocol.md ("Profiles") has the format and docs/security.md
 * what a server can and cannot do.
 */

#define WHISPER_PROFILE_NAME_MAX 64        /* bytes of UTF-8 (at least 1) */
#define WHISPER_PROFILE_ABOUT_MAX 140      /* bytes of UTF-8 */
#define WHISPER_PROFILE_PICTURE_MAX 65536  /* bytes: a small image, or a reference to one */
#define WHISPER_PROFILE_STRUCT_VERSION 1

/** A profile as this device holds it, filled by the library (free it with
 *  whisper_profile_free()); fields are only ever appended (check
 *  `version`). */
typedef struct whisper_profile_t {
  unsigned version;          /* WHISPER_PROFILE_STRUCT_VERSION of the library that made it */
  int known;                 /* 1: a profile is held; 0: none yet (the strings are "") */
  char *name;                /* NUL-terminated UTF-8 */
  char *about;               /* NUL-terminated UTF-8, maybe "" */
  uint8_t *WHISPER_NULLABLE picture; /* NULL when there is none */
  size_t picture_len;
  uint64_t profile_version;  /* grows with every change (0: none) */
} whisper_profile_t;

/**
 * Sets this account's profile: `name` (1..WHISPER_PROFILE_NAME_MAX bytes
 * of UTF-8), `about` (0..WHISPER_PROFILE_ABOUT_MAX, "" for none), and
 * `picture` (0..WHISPER_PROFILE_PICTURE_MAX bytes; NULL with 0 for none).
 * On device 1 the first call makes the account's profile key; another
 * device must have received it first. The profile is kept in the store
 * with a new version, uploaded encrypted when a connection is up, and the
 * key with the version goes (as hidden outbox entries) to this account's
 * other devices and to every contact and group it goes to. Returns
 * WHISPER_OK, WHISPER_EINVAL (a field out of bounds or not UTF-8: nothing
 * changes), WHISPER_ESTATE (not device 1, and the key has not come yet) or
 * a store error.
 */
WHISPER_API int whisper_client_profile_set(whisper_client *c, const char *name, const char *about,
                                           const uint8_t *WHISPER_NULLABLE picture,
                                           size_t picture_len, uint64_t now_ms);

/**
 * The profile of `account` (NULL: this account's) as the store holds it,
 * into `*out` (free it with whisper_profile_free()); `known` is 0 when
 * none has come yet. Reads the store only. Returns WHISPER_OK,
 * WHISPER_EINVAL or a store error.
 */
WHISPER_API int whisper_client_profile_get(
    whisper_client *c, const char *WHISPER_NULLABLE account,
    whisper_profile_t *WHISPER_NULLABLE *WHISPER_NONNULL out);

/** Wipes and frees a profile. Accepts NULL. */
WHISPER_API void whisper_profile_free(whisper_profile_t *WHISPER_NULLABLE p);

/**
 * Fetches the profile of `account` (NULL: this account's) again, now if a
 * connection is up, else after the next login; WHISPER_EV_PROFILE follows
 * if it changed. Returns WHISPER_OK, WHISPER_EINVAL, WHISPER_ESTATE (no
 * profile key of that account has reached this device) or a store error.
 */
WHISPER_API int whisper_client_profile_refresh(whisper_client *c,
                                               const char *WHISPER_NULLABLE account);

/**
 * On device 1: replaces the profile key with a new one (as Signal does
 * after blocking someone), re-encrypts the profile under it with a new
 * version and sends the new key to this account's other devices and its
 * contacts and groups, but not to `withhold` (an account, or NULL): it
 * keeps only the old key, which no longer opens the profile, until this
 * account writes to it again. A group with `withhold` in it gets the key
 * member by member. Returns WHISPER_OK, WHISPER_EINVAL, WHISPER_ESTATE
 * (not device 1, or no profile set yet) or a store error.
 */
WHISPER_API int whisper_client_profile_rotate_key(whisper_client *c,
                                                  const char *WHISPER_NULLABLE withhold,
                                                  uint64_t now_ms);

#define WHISPER_CALL_OFFER 1
#define WHISPER_CALL_ANSWER 2
#define WHISPER_CALL_ICE 3
#define WHISPER_CALL_HANGUP 4
#define WHISPER_CALL_BUSY 5
#define WHISPER_CALL_ID_LEN 16
#define WHISPER_CALL_DATA_MAX 65536

/** Call signalling to account `to` (end to end; no media): `type` is a
 *  WHISPER_CALL_*, `data` the SDP or ICE candidate the app's media stack
 *  made (at most WHISPER_CALL_DATA_MAX bytes). The peer gets
 *  WHISPER_EV_CALL. Not kept in history. */
WHISPER_API int whisper_client_call(whisper_client *c, const char *to, int type,
                                    const uint8_t call_id[WHISPER_NONNULL WHISPER_CALL_ID_LEN],
                                    const uint8_t *WHISPER_NULLABLE data, size_t data_len,
                                    uint64_t now_ms);

/** Marks messages of a conversation, from `sender`, as read: READ
 *  receipts go to the sender (batched; none if read receipts are off).
 *  Returns WHISPER_OK, WHISPER_EINVAL or a store error. */
WHISPER_API int whisper_client_mark_read(
    whisper_client *c, const char *conversation, const char *sender,
    const uint8_t (*WHISPER_NULLABLE ids)[WHISPER_CLIENT_ID_LEN], size_t n, uint64_t now_ms);

/** Typing started (1) or stopped (0) in a conversation; throttled (nothing
 *  goes out while logged out, or to a blocked account). Returns WHISPER_OK,
 *  WHISPER_EINVAL or WHISPER_ENOMEM. */
WHISPER_API int whisper_client_typing(whisper_client *c, const char *conversation, int started,
                                      uint64_t now_ms);

/** Asks for presence of these accounts (online / last seen events).
 *  Returns WHISPER_OK, WHISPER_EINVAL (more than 1024, or not an account
 *  name) or WHISPER_ENOMEM. */
WHISPER_API int whisper_client_subscribe(
    whisper_client *c, const char *const WHISPER_NONNULL *WHISPER_NULLABLE accounts, size_t n);

/** Creates a group with this account and `members`; its id is written to
 *  `group_id_out`. Returns WHISPER_OK, WHISPER_EINVAL (bad names, too many
 *  members), WHISPER_ERANDOM or a store error. */
WHISPER_API int whisper_client_group_create(
    whisper_client *c, const char *const WHISPER_NONNULL *WHISPER_NULLABLE members, size_t n,
    uint64_t now_ms, uint8_t group_id_out[WHISPER_NONNULL WHISPER_GROUP_ID_LEN]);

/** Adds members (admins only; the other members refuse a change no admin
 *  signed). Returns WHISPER_OK, WHISPER_EINVAL, WHISPER_ESTATE (more than
 *  the configured maximum of members) or a store error. */
WHISPER_API int whisper_client_group_add(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    const char *const WHISPER_NONNULL *WHISPER_NONNULL members, size_t n, uint64_t now_ms);

/** Removes members (admins), or leaves (remove this account). The members
 *  who stay rotate their sender keys when they hear of it. Returns
 *  WHISPER_OK, WHISPER_EINVAL or a store error. */
WHISPER_API int whisper_client_group_remove(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    const char *const WHISPER_NONNULL *WHISPER_NONNULL members, size_t n, uint64_t now_ms);

/** The conversation name of a group: "#" and 32 lowercase hex digits,
 *  NUL-terminated. */
WHISPER_API void whisper_client_group_conversation(
    const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    char out[WHISPER_NONNULL WHISPER_GROUP_CONVERSATION_LEN + 1]);

/* --- group administration -------------------------------------------------
 *
 * Every change of a group is signed by the device that makes it and
 * chained to the one before (e2e.SignedGroupChange, docs/security.md);
 * every member checks that its author was entitled to make it and refuses
 * it otherwise (WHISPER_EV_REFUSED), whatever the server says:
 *  - admins change anything. The creator is the first admin. A group
 *    keeps at least one admin: an admin cannot demote the last one, and
 *    when the last admin leaves, the first remaining member (in the
 *    order of the member list) becomes admin;
 *  - a member who is not an admin may leave, and may edit the info
 *    (name, description, picture) unless "only admins edit info" is on;
 *  - someone who is not a member may join by the group's invite link,
 *    unless approval is required: then an admin adds them.
 * The functions below queue the change: it is signed from the state
 * held when it is sent (one change per group at a time) and applied when
 * the server takes it; WHISPER_EV_GROUP then says what changed (its
 * status: WHISPER_GROUP_CHANGED_* bits). A change the group's rules no
 * longer allow by then is dropped with WHISPER_EV_ERROR. Each returns
 * WHISPER_OK, WHISPER_EINVAL (a bad argument), WHISPER_ESTATE (this
 * account is not a member, or the change is not allowed to it now: the
 * sentence says which), or a store error.
 */

#define WHISPER_GROUP_NAME_MAX 128         /* bytes of UTF-8 */
#define WHISPER_GROUP_DESCRIPTION_MAX 2048 /* bytes of UTF-8 */
#define WHISPER_GROUP_PICTURE_MAX 1024     /* bytes: the app's reference to the picture */

/* Info fields. */
#define WHISPER_GROUP_NAME 1
#define WHISPER_GROUP_DESCRIPTION 2
#define WHISPER_GROUP_PICTURE 3

/* Settings (all off in a new group). */
#define WHISPER_GROUP_ADMINS_EDIT_INFO 1 /* only admins edit the info (off: every member may) */
#define WHISPER_GROUP_ADMINS_SEND 2      /* only admins send messages to the group */
#define WHISPER_GROUP_APPROVAL 3         /* a join by invite link waits for an admin */

/* WHISPER_EV_GROUP's status: what changed (bits), or a join request. */
#define WHISPER_GROUP_CHANGED_MEMBERS 1
#define WHISPER_GROUP_CHANGED_ADMINS 2
#define WHISPER_GROUP_CHANGED_INFO 4
#define WHISPER_GROUP_CHANGED_SETTINGS 8
#define WHISPER_GROUP_CHANGED_LINK 16  /* the invite link was made, replaced or revoked */
#define WHISPER_GROUP_JOIN_REQUEST 32  /* (to admins) `from` asks to join by the invite link:
                                        * whisper_client_group_add() approves */
#define WHISPER_GROUP_JOIN_REQUESTED 64 /* this account's join waits for an admin's approval */

/** Promotes `member` to admin (`admin` 1) or demotes an admin (`admin` 0).
 *  Admins only; the last admin cannot be demoted. Returns WHISPER_OK,
 *  WHISPER_EINVAL, WHISPER_ESTATE (this account not an admin, `member` not
 *  a member or not an admin, the last admin) or a store error. */
WHISPER_API int whisper_client_group_admin_set(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    const char *member, int admin, uint64_t now_ms);

/** Sets an info field (WHISPER_GROUP_NAME, _DESCRIPTION: UTF-8 without NUL;
 *  _PICTURE: any bytes) to `value` (`len` 0 clears it), at most
 *  WHISPER_GROUP_NAME_MAX, _DESCRIPTION_MAX, _PICTURE_MAX bytes. Any member,
 *  unless only admins edit the info. Returns WHISPER_OK, WHISPER_EINVAL
 *  (field, size, encoding), WHISPER_ESTATE (not a member, or not an admin
 *  where only admins edit) or a store error. */
WHISPER_API int whisper_client_group_info_set(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN], int field,
    const uint8_t *WHISPER_NULLABLE value, size_t len, uint64_t now_ms);

/** Turns a setting (WHISPER_GROUP_ADMINS_EDIT_INFO, _ADMINS_SEND, _APPROVAL)
 *  on (1) or off (0). Admins only. Returns WHISPER_OK, WHISPER_EINVAL,
 *  WHISPER_ESTATE (not an admin of that group) or a store error. */
WHISPER_API int whisper_client_group_setting_set(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN], int setting,
    int on, uint64_t now_ms);

/* "whisper-group:" and base64url (no padding) of version 1, the group id
 * and a 32-byte secret. */
#define WHISPER_GROUP_LINK_LEN 80

/**
 * Makes a new invite link for the group (admins only) and writes it to
 * `link_out` (NUL-terminated): whoever has it may join (or ask to, with
 * WHISPER_GROUP_APPROVAL on). The group's signed state carries only a
 * public key derived from the link's secret; a joiner proves the link by
 * signing with that key, so the server, which never sees the secret,
 * cannot join anyone with it. A new link replaces the group's previous
 * one. The link works once the change is taken (WHISPER_EV_GROUP with
 * WHISPER_GROUP_CHANGED_LINK); the engine keeps no copy of it: show it,
 * and make a new one to show it again. Wipe it when done with it.
 * Returns WHISPER_OK, WHISPER_EINVAL, WHISPER_ESTATE (not an admin of that
 * group), WHISPER_ERANDOM or a store error.
 */
WHISPER_API int whisper_client_group_link_generate(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    uint64_t now_ms, char link_out[WHISPER_NONNULL WHISPER_GROUP_LINK_LEN + 1]);

/** Revokes the group's invite link (admins only): it no longer lets
 *  anyone join, and joins signed with it are refused by every member.
 *  Returns WHISPER_OK, WHISPER_EINVAL, WHISPER_ESTATE (not an admin of
 *  that group) or a store error. */
WHISPER_API int whisper_client_group_link_revoke(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    uint64_t now_ms);

/**
 * Joins a group by its invite link; the group's id is written to
 * `group_id_out`. When a connection is up, the engine reads the group's
 * current signed state from the server (with a proof of the link, not
 * the link), checks that it carries the link's key and is signed by a
 * device of its author, then signs a change that adds this account and
 * nothing else. WHISPER_EV_GROUP follows when it is taken (status
 * WHISPER_GROUP_CHANGED_MEMBERS), or with WHISPER_GROUP_JOIN_REQUESTED when
 * an admin must approve it (the admins' add then makes this account a
 * member); WHISPER_EV_ERROR when the link is revoked, the group is full,
 * or the state cannot be trusted. The engine keeps the link's secret
 * until the join is answered, then wipes it. Returns WHISPER_OK,
 * WHISPER_EINVAL (not a link), WHISPER_ESTATE (already a member, or a
 * join of that group on its way) or a store error.
 */
WHISPER_API int whisper_client_group_join(
    whisper_client *c, const char *link, uint64_t now_ms,
    uint8_t group_id_out[WHISPER_NONNULL WHISPER_GROUP_ID_LEN]);

/** Leaves the group (as whisper_client_group_remove() of this account).
 *  The last admin's leaving makes the first remaining member admin.
 *  Returns as whisper_client_group_remove(). */
WHISPER_API int whisper_client_group_leave(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    uint64_t now_ms);

#define WHISPER_GROUP_STATE_VERSION 1

/** A group as this device holds it (its last signed change), filled by
 *  the library: fields are only ever appended (check `version`). */
typedef struct whisper_group_state_t {
  unsigned version;           /* WHISPER_GROUP_STATE_VERSION of the library that made it */
  char *WHISPER_NONNULL *WHISPER_NULLABLE members; /* account names (NULL when none) */
  size_t n_members;
  char *WHISPER_NONNULL *WHISPER_NULLABLE admins;
  size_t n_admins;
  char *WHISPER_NONNULL *WHISPER_NULLABLE requests; /* accounts that asked to join (kept
                                                      * for admins) */
  size_t n_requests;
  char *name;                 /* NUL-terminated UTF-8 ("" when unset) */
  char *description;
  uint8_t *WHISPER_NULLABLE picture; /* NULL when unset */
  size_t picture_len;
  int admins_edit_info;       /* the settings, 0 or 1 */
  int admins_send;
  int approval_required;
  int has_link;               /* an invite link is active */
  int member;                 /* this account is a member */
  int admin;                  /* this account is an admin */
  uint64_t change_version;    /* the version of the change it is from (0: none signed yet) */
} whisper_group_state_t;

/** The group's state as this device holds it, into `*out` (free it with
 *  whisper_group_state_free()). Returns WHISPER_OK, WHISPER_EINVAL,
 *  WHISPER_ENOTFOUND (a group this device never heard of) or a store
 *  error. */
WHISPER_API int whisper_client_group_state(
    whisper_client *c, const uint8_t group_id[WHISPER_NONNULL WHISPER_GROUP_ID_LEN],
    whisper_group_state_t *WHISPER_NULLABLE *WHISPER_NONNULL out);

/** Frees a group state. Accepts NULL. */
WHISPER_API void whisper_group_state_free(whisper_group_state_t *WHISPER_NULLABLE s);

/**
 * On the primary device (device 1, which holds the account key): approves
 * a new device. `token` is what the new device shows (WHISPER_EV_LINK_CODE,
 * e.g. as a QR code): the server's link code bound to the new device's id
 * and identity key. The engine signs a new device list with that key in
 * it; the server cannot swap the key, because the token reaches the
 * primary out of band. Show whisper_client_link_digits() of the token on
 * both devices before approving. A new device (an identity whose device
 * id is not 1, never registered) asks the server for a code on its first
 * connection, raises WHISPER_EV_LINK_CODE with the token, and registers as
 * soon as the primary approves it. Returns WHISPER_OK, WHISPER_EINVAL (a
 * malformed token, or one of another account), WHISPER_ESTATE (not the
 * primary, or this account's list is not published yet) or an error.
 */
WHISPER_API int whisper_client_link_approve(whisper_client *c, const uint8_t *token, size_t len);

#define WHISPER_LINK_DIGITS 8
/** The short code of a link token: 8 decimal digits derived from the
 *  account, the new device's id and its identity key, NUL-terminated. Both devices show it; the
 *  user approves only if they match. Returns WHISPER_OK or WHISPER_EINVAL. */
WHISPER_API int whisper_client_link_digits(const uint8_t *token, size_t len,
                                           char out[WHISPER_NONNULL WHISPER_LINK_DIGITS + 1]);

/** On the primary device: removes one of this account's other devices. A
 *  new signed list without it goes to the server, which drops the device
 *  (its keys, mailbox and connection); peers stop encrypting to it and
 *  refuse what it sends once they see the list. Returns WHISPER_OK,
 *  WHISPER_EINVAL (not a device of this account, or this device),
 *  WHISPER_ESTATE (not the primary) or an error. */
WHISPER_API int whisper_client_device_remove(whisper_client *c, uint32_t device_id);

#define WHISPER_TRUST_UNKNOWN 0    /* no signed device list seen yet */
#define WHISPER_TRUST_UNVERIFIED 1 /* the account key, trusted on first use */
#define WHISPER_TRUST_VERIFIED 2   /* the app marked the key verified (safety numbers compared) */
#define WHISPER_TRUST_CHANGED 3    /* the account key changed since the app's last decision */

/**
 * What the engine knows of an account: `trust` (WHISPER_TRUST_*), and its
 * account key (the key that signs its device lists; 33 bytes, the one
 * safety numbers cover) in `key` when not NULL and known. Returns
 * WHISPER_OK, WHISPER_EINVAL or a store error.
 */
WHISPER_API int whisper_client_account_info(whisper_client *c, const char *account, int *trust,
                                            uint8_t key[WHISPER_NULLABLE WHISPER_PUBLIC_KEY_LEN]);

/**
 * The app's decision on an account key: `verified` 1 after the user
 * compared safety numbers, 0 to accept a changed key without verifying it
 * (the state becomes UNVERIFIED). `key` must be the key the engine holds
 * (whisper_client_account_info()), so a decision never applies to a key
 * the user did not see. A VERIFIED account whose key changes is not
 * followed until the app decides again: its new lists are refused, with
 * WHISPER_EV_IDENTITY. Returns WHISPER_OK, WHISPER_EINVAL, WHISPER_ESTATE
 * (a different key is held now) or a store error.
 */
WHISPER_API int whisper_client_account_trust(
    whisper_client *c, const char *account,
    const uint8_t key[WHISPER_NONNULL WHISPER_PUBLIC_KEY_LEN], int verified);

#define WHISPER_ANCHOR_LEN 16

/**
 * The store's anchor: its id and epoch (16 bytes). The epoch grows at
 * every login and every 64 messages sent, each time with
 * WHISPER_EV_ANCHOR; the app keeps the newest outside the store (the
 * platform keystore) and passes it to whisper_client_anchor_check() right
 * after whisper_client_new(). Returns WHISPER_OK or WHISPER_EINVAL.
 */
WHISPER_API int whisper_client_anchor(whisper_client *c,
                                      uint8_t out[WHISPER_NONNULL WHISPER_ANCHOR_LEN]);

/**
 * Checks the store against the anchor the app kept. A store older than
 * its anchor was restored from a copy: its sessions may be behind keys
 * already used, so none of them encrypts again (each device gets a fresh
 * session first, whisper_sessions_distrust()), `*restored` is set to 1 and
 * WHISPER_EV_ROLLBACK is raised; a new anchor follows (WHISPER_EV_ANCHOR).
 * Call it before anything is sent. Without an anchor, a whole-file restore
 * cannot be caught (docs/security.md); a restored session row alone is
 * caught anyway. Returns WHISPER_OK, WHISPER_EINVAL (not an anchor, or
 * another store's) or a store error.
 */
WHISPER_API int whisper_client_anchor_check(whisper_client *c, const uint8_t *anchor, size_t len,
                                            int *restored);

/** After the app trusted a changed identity (whisper_identity_trust()):
 *  tries again what waited for it, the messages to that conversation and
 *  the mailbox entries that raised WHISPER_EV_IDENTITY (those not kept in
 *  memory come again on the next login anyway). Returns WHISPER_OK or
 *  WHISPER_EINVAL (`c` NULL). */
WHISPER_API int whisper_client_retry(whisper_client *c, uint64_t now_ms);

/* --- blocking and reporting --------------------------------------------------
 *
 * A blocked account gets nothing from this account, and what it sends is
 * dropped (docs/sync-protocol.md, "Block and report"). The block list is
 * kept in the store, reaches this account's other devices end to end
 * (WHISPER_EV_BLOCKED there), and goes to the server, which stops
 * delivering the blocked account's messages; the engine does not rely on
 * that: it drops them itself. What it drops: messages, receipts and calls
 * the blocked account sends through the 1:1 session, and its typing and
 * presence (no event; acknowledged to the server). Groups are shared: its
 * group messages still show, but it gets no receipt for them. What it
 * does not send: messages, replies, reactions, edits, deletes or calls in
 * the conversation with it (WHISPER_EBLOCKED), typing there, receipts (also
 * for its group messages); what was waiting for it waits until it is
 * unblocked. Unblocking lets later messages in; those dropped meanwhile
 * stay dropped (no gap is shown for them). */

#define WHISPER_BLOCK_MAX 1024 /* accounts blocked at once */

/** Blocks `account` (not this one). Blocking a blocked account changes
 *  nothing. Returns WHISPER_OK, WHISPER_EINVAL (not another account's name,
 *  or WHISPER_BLOCK_MAX accounts are blocked already) or a store error. */
WHISPER_API int whisper_client_block(whisper_client *c, const char *account, uint64_t now_ms);

/** Unblocks `account`: its later messages are taken again. Unblocking an
 *  account that is not blocked changes nothing. Returns WHISPER_OK,
 *  WHISPER_EINVAL or a store error. */
WHISPER_API int whisper_client_unblock(whisper_client *c, const char *account, uint64_t now_ms);

/** Sets `*blocked` to 1 if this account blocked `account`, else 0. Returns
 *  WHISPER_OK or WHISPER_EINVAL. */
WHISPER_API int whisper_client_is_blocked(whisper_client *c, const char *account, int *blocked);

/** The blocked accounts, in name order: each name followed by a NUL byte,
 *  in one buffer (the caller frees it), and how many in `*count`. Returns
 *  WHISPER_OK, WHISPER_EINVAL or WHISPER_ENOMEM. */
WHISPER_API int whisper_client_blocked_list(whisper_client *c,
                                            whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL out,
                                            size_t *count);

#define WHISPER_REPORT_DEFAULT 5   /* messages a report holds when the caller says 0 */
#define WHISPER_REPORT_MAX 50      /* at most */
#define WHISPER_REPORT_TEXT_MAX 2048 /* bytes of each message's text (longer: cut, marked) */

/**
 * Reports a conversation (an account, or a group's conversation) to the
 * server's moderators: its last `n` messages (0: WHISPER_REPORT_DEFAULT; at
 * most WHISPER_REPORT_MAX), as this device has them in history (sender,
 * time, text; placeholders and notices are left out), in plaintext. The
 * call is the user's consent to reveal them, as in WhatsApp; the plaintext
 * goes to the server's report store only. With `block` (an account only)
 * the account is blocked in the same step. The report is kept in the
 * store until the server takes it (sent at once when a connection is up,
 * else after the next login). Returns WHISPER_OK, WHISPER_EINVAL (not a
 * conversation, this account, n too large, `block` for a group),
 * WHISPER_ESTATE (16 reports are waiting for the server already) or a
 * store error; on failure nothing is kept or blocked.
 */
WHISPER_API int whisper_client_report(whisper_client *c, const char *conversation, size_t n,
                                      int block, uint64_t now_ms);

/* --- events -------------------------------------------------------------- */

typedef enum whisper_client_event_type {
  WHISPER_EV_REGISTERED = 1,  /* the device is registered */
  WHISPER_EV_ONLINE = 2,      /* logged in; the mailbox is being resumed */
  WHISPER_EV_CAUGHT_UP = 3,   /* everything waiting in the mailbox has arrived */
  WHISPER_EV_MESSAGE = 4,     /* a message was stored in history (conversation, from, id, body) */
  WHISPER_EV_STATUS = 5,      /* an outgoing message's status for one device (id, from = recipient, status);
                               * SENT comes once per message, with from_device 0 */
  WHISPER_EV_TYPING = 6,      /* from, conversation, started */
  WHISPER_EV_PRESENCE = 7,    /* from (the account), online, last_seen_ms */
  WHISPER_EV_IDENTITY = 8,    /* from's account key changed (from_device 1; body: the new key): see
                               * whisper_client_account_info(); or, for a contact from before signed
                               * lists, from/from_device's identity key changed and its messages wait
                               * until the app trusts it (whisper_identity_trust(), then
                               * whisper_client_retry()) */
  WHISPER_EV_GROUP = 9,       /* conversation (a group) changed: status says what (the
                               * WHISPER_GROUP_CHANGED_* bits; from: the author), or a join request
                               * (WHISPER_GROUP_JOIN_REQUEST, from: who asks) or this account's own
                               * waiting for approval (WHISPER_GROUP_JOIN_REQUESTED); read it with
                               * whisper_client_group_state() */
  WHISPER_EV_ERROR = 10,      /* code (WHISPER_E*), server_code (sync.proto ERR_*), message */
  WHISPER_EV_LINK_CODE = 11,  /* body: the link token to show for whisper_client_link_approve() */
  WHISPER_EV_DEVICES = 12,    /* from's device list changed: from_device added (status 1) or removed
                               * (status 2); status 0: from's devices are not authorised by an
                               * account key yet (a contact from before signed lists) */
  WHISPER_EV_REFUSED = 13,    /* the engine refused what the server delivered (code, message;
                               * conversation, from, from_device and id as far as known): a device
                               * or member nobody entitled added, a message moved to another
                               * conversation, an older device list or group change, a group
                               * change or message the group's admins and settings do not allow */
  WHISPER_EV_RETRY = 15,      /* a message is being recovered: status WHISPER_RETRY_ASKED (this device
                               * could not decrypt message id from from/from_device and asked for it
                               * again; a placeholder "message-waiting" holds its place), _RESENT
                               * (from/from_device asked for this device's message id: sent again)
                               * or _FAILED (it cannot be sent again: its status for that device is
                               * WHISPER_STATUS_FAILED) */
  WHISPER_EV_ROLLBACK = 16,   /* a restored copy was caught before it reused a key: the store
                               * (whisper_client_anchor_check(); from NULL) or the session with
                               * from/from_device; fresh sessions are made as needed */
  WHISPER_EV_ANCHOR = 17,     /* body: the store's new anchor (WHISPER_ANCHOR_LEN bytes): keep it
                               * outside the file (the platform keystore) for
                               * whisper_client_anchor_check() */
  WHISPER_EV_EDITED = 18,     /* message (target_id, target_sender) of conversation was edited by
                               * from: body, its new text (history has it) */
  WHISPER_EV_DELETED = 19,    /* message (target_id, target_sender) was deleted for everyone by
                               * from: its body is gone from history */
  WHISPER_EV_REACTION = 20,   /* from reacted to message (target_id, target_sender): body, the
                               * emoji (empty: the reaction was removed) */
  WHISPER_EV_CALL = 21,       /* call signalling from from/from_device: status, WHISPER_CALL_*;
                               * id, the call id; body, the SDP or candidate */
  WHISPER_EV_SETTINGS = 22,   /* another device of this account changed conversation's flags
                               * (whisper_client_conversation_flags_get()) */
  WHISPER_EV_PROFILE = 23,    /* from's profile changed (from: this account's own when another
                               * device set it): whisper_client_profile_get() */
  WHISPER_EV_BLOCKED = 24,    /* another device of this account blocked (status 1) or unblocked
                               * (status 0) account `from` (conversation too) */
  WHISPER_EV_MEDIA = 25,      /* an attachment's job moved: message id of conversation (from: its
                               * sender, NULL for this account's own), status WHISPER_MEDIA_*,
                               * done_bytes of total_bytes; code with WHISPER_MEDIA_FAILED */
  WHISPER_EV_MEDIA_DATA = 26, /* verified plaintext of an attachment downloaded without a path
                               * (message id of conversation, from): body, starting at plaintext
                               * offset done_bytes of total_bytes */
  WHISPER_EV_CATCHING_UP = 27, /* the mailbox's backlog is arriving (after a login, until
                               * WHISPER_EV_CAUGHT_UP): done_bytes entries of total_bytes are
                               * handled and stored. total_bytes is the server's count at the
                               * login (never below done_bytes); a server may misstate it, which
                               * only moves a progress bar: CAUGHT_UP says when it is over */
  WHISPER_EV_GAP = 14         /* messages from from/from_device in conversation are missing: status
                               * says how many; each has a placeholder in history (an incoming
                               * entry whose body is "message-missing"), which the message takes
                               * the place of if it comes later */
} whisper_client_event_type;

#define WHISPER_RETRY_ASKED 1
#define WHISPER_RETRY_RESENT 2
#define WHISPER_RETRY_FAILED 3

/** An event; its pointers are valid until the next call on the engine, and
 *  NULL where the event type gives no such field. A versioned struct
 *  (docs/api.md) tied to the client config: whisper_client_take_event()
 *  writes only the fields of the config version the engine was made with
 *  (version 1-2: up to `message`; 3-4: up to `forwarded`; 5 and later: all),
 *  so fields are only appended, each with a new config version. */
typedef struct whisper_client_event_t {
  int type;
  const char *WHISPER_NULLABLE conversation;
  const char *WHISPER_NULLABLE from;
  uint32_t from_device;
  const uint8_t *WHISPER_NULLABLE id; /* client id */
  size_t id_len;
  const uint8_t *WHISPER_NULLABLE body;
  size_t body_len;
  int status;            /* WHISPER_STATUS_* */
  int started;           /* typing */
  int online;            /* presence */
  uint64_t last_seen_ms;
  uint64_t server_seq;
  uint64_t server_ts;
  int code;              /* WHISPER_EV_ERROR */
  int server_code;
  const char *WHISPER_NULLABLE message;
  /* version 3 (content): */
  int kind;              /* WHISPER_EV_MESSAGE: WHISPER_KIND_* (1: unsupported content) */
  /* EDITED, DELETED, REACTION: the message; MESSAGE: a reply's quoted message */
  const uint8_t *WHISPER_NULLABLE target_id;
  size_t target_id_len;
  const char *WHISPER_NULLABLE target_sender; /* its sender (NULL: this account) */
  uint32_t forwarded;    /* WHISPER_EV_MESSAGE: times forwarded */
  /* version 5 (media): */
  uint64_t done_bytes;   /* WHISPER_EV_MEDIA: progress (bytes); WHISPER_EV_CATCHING_UP (entries) */
  uint64_t total_bytes;
} whisper_client_event_t;

/** Takes the next event: returns 1 and fills `out` (the fields of the
 *  engine's config version; the rest is left alone), or 0. */
WHISPER_API int whisper_client_take_event(whisper_client *c, whisper_client_event_t *out);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif
