/*
 * libwhisper: message history, delivery status, the outbox, and storing
 * what is decrypted in the same transaction as the session's new state.
 *
 * A conversation is named by a string the app chooses (a contact's name, a
 * group id). Messages carry an id the app chooses (the client message id,
 * unique per sender), and a sort key: the server's sequence (or timestamp)
 * once known, which orders history. In the store, conversations, ids and
 * bodies are sealed; only keyed tags and sort keys order the rows.
 *
 * Status of an outgoing message, per recipient device, only moves forward:
 * PENDING (in the outbox) -> SENT (the server took it) -> DELIVERED -> READ.
 *
 * These functions need a store with scan() (store interface version 2):
 * the memory and SQLite stores have it.
 */
#ifndef WHISPER_HISTORY_H
#define WHISPER_HISTORY_H

#include "core.h"
#include "sender_key.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

#define WHISPER_STATUS_PENDING 0
#define WHISPER_STATUS_SENT 1
#define WHISPER_STATUS_DELIVERED 2
#define WHISPER_STATUS_READ 3
/** The message could not be recovered for that device (it could not
 *  decrypt it and the sender could not send it again): never after
 *  DELIVERED. */
#define WHISPER_STATUS_FAILED 4
/** A view-once attachment was opened by that device's user (after READ). */
#define WHISPER_STATUS_OPENED 5

#define WHISPER_MESSAGE_ID_MAX 64

/* What a message is (whisper_message_t.kind). */
#define WHISPER_KIND_TEXT 0        /* a text, maybe a reply (quote_id) or a forward */
#define WHISPER_KIND_UNSUPPORTED 1 /* content of a newer version: kept, shown as unsupported */
#define WHISPER_KIND_ATTACHMENT 2  /* an attachment (whisper_client_media_get()); body: its caption */

/** Past this many forwards a message is "forwarded many times". */
#define WHISPER_FORWARDED_MANY 5

/** One reactor's reaction to a message (read back in a page). A versioned
 *  struct (docs/api.md) in library memory: `size` is the library's
 *  sizeof, the same in every element of a message's `reactions`, and the
 *  array is stepped by it, not by the caller's sizeof: take reaction i
 *  with WHISPER_MESSAGE_REACTION(message, i). Fields are only appended. */
typedef struct whisper_reaction_t {
  size_t size;               /* sizeof(whisper_reaction_t) of the library */
  const char *reactor;       /* the account that reacted */
  const char *emoji;         /* one emoji (UTF-8) */
  uint64_t at_ms;            /* the reactor's clock */
} whisper_reaction_t;

/** The first released (1.0) size of whisper_reaction_t. */
#define WHISPER_REACTION_SIZE_1_0 (offsetof(whisper_reaction_t, at_ms) + sizeof(uint64_t))

/** A message, as the caller describes one (all pointers borrowed) or as
 *  the library returns one from a page (pointers valid until the page is
 *  freed). A versioned struct (docs/api.md): a caller describing a
 *  message sets `size` (WHISPER_MESSAGE_INIT) and the library reads only
 *  the fields both have (a size below WHISPER_MESSAGE_SIZE_1_0:
 *  WHISPER_EINVAL); a message read back from a page has the library's
 *  `size`: check it before reading a field newer than your header's first
 *  version. Fields are only appended. */
typedef struct whisper_message_t {
  size_t size;               /* sizeof(whisper_message_t): the caller's (in) or the
                              * library's (out, in a page) */
  const char *conversation;  /* 1..255 bytes */
  const uint8_t *id;         /* 1..WHISPER_MESSAGE_ID_MAX bytes */
  size_t id_len;
  const char *WHISPER_NULLABLE sender; /* the sender's name; NULL for this device's own */
  uint32_t sender_device;
  uint64_t sort_key;         /* the server's sequence or timestamp */
  uint64_t timestamp_ms;     /* when it was written */
  const uint8_t *WHISPER_NULLABLE body; /* NULL when empty or deleted */
  size_t body_len;
  int status;                /* read back: WHISPER_STATUS_FAILED if it failed for any
                              * recipient device, else the lowest over them */
  /* read back only (a caller describing a message leaves them zero): */
  int kind;                  /* WHISPER_KIND_* */
  uint64_t edited_ms;        /* 0, or the sender's clock at its last edit */
  int deleted;               /* deleted for everyone: body, quote and reactions are gone */
  uint32_t forwarded;        /* times forwarded (0: not; WHISPER_FORWARDED_MANY and up:
                              * "forwarded many times") */
  const uint8_t *WHISPER_NULLABLE quote_id; /* a reply: the quoted message's id (NULL: not
                                             * a reply) */
  size_t quote_id_len;
  const char *WHISPER_NULLABLE quote_sender; /* its sender (NULL: this account) */
  const char *WHISPER_NULLABLE quote_excerpt; /* a short excerpt of it, as the replier saw it
                                               * (NULL: not a reply) */
  const whisper_reaction_t *WHISPER_NULLABLE reactions; /* one per reactor, oldest first
                                                         * (NULL when none); step by
                                                         * reactions[0].size
                                                         * (WHISPER_MESSAGE_REACTION()) */
  size_t n_reactions;
} whisper_message_t;

/** The first released (1.0) size of whisper_message_t. */
#define WHISPER_MESSAGE_SIZE_1_0 (offsetof(whisper_message_t, n_reactions) + sizeof(size_t))
/** Initializer: `whisper_message_t m = WHISPER_MESSAGE_INIT;` */
#define WHISPER_MESSAGE_INIT {.size = sizeof(whisper_message_t)}
/** Reaction `i` (< n_reactions) of a const whisper_message_t *, stepped by
 *  the library's element size. */
#define WHISPER_MESSAGE_REACTION(message, i)                                     \
  ((const whisper_reaction_t *)((const unsigned char *)(message)->reactions + \
                                (i) * (message)->reactions[0].size))
/** Reaction `i` of `message` (NULL when `i` >= n_reactions): the same as
 *  WHISPER_MESSAGE_REACTION(), as a function for bindings that cannot use a
 *  macro (Swift, JNI). Valid as long as the message is. */
WHISPER_API const whisper_reaction_t *WHISPER_NULLABLE whisper_message_reaction(
    const whisper_message_t *message, size_t i);

/**
 * Records an outgoing message (sender NULL) for the given recipient
 * devices, each PENDING, and puts it in the outbox, in one transaction.
 * `sort_key` orders it until the server's sequence is known. `m->size`
 * must be set (WHISPER_MESSAGE_INIT; below WHISPER_MESSAGE_SIZE_1_0:
 * WHISPER_EINVAL); only the fields both sides have are read. Returns
 * WHISPER_OK, WHISPER_EINVAL, WHISPER_EDUPLICATE (an outgoing message
 * with that id exists in the conversation), or a store error.
 */
WHISPER_API int whisper_history_add_outgoing(whisper_ctx *ctx, const whisper_message_t *m,
                                             const whisper_device_t *WHISPER_NULLABLE recipients,
                                             size_t n);

/**
 * Decrypts a 1:1 message from (name, device_id) and stores it in history as
 * `meta` describes (its conversation, id, sort key and time; the body is
 * the plaintext), together with the session's new state, in one
 * transaction. A message already stored in that conversation with the same
 * sort key and id (a redelivery: the server's sequence does not change) is
 * refused with WHISPER_EDUPLICATE before anything is decrypted, also after
 * a restart; a replayed ciphertext is refused by the session anyway.
 * Otherwise the codes of whisper_session_decrypt(); on any failure nothing
 * changes. `plaintext_out` may be NULL. `meta->size` must be set
 * (WHISPER_MESSAGE_INIT; below WHISPER_MESSAGE_SIZE_1_0: WHISPER_EINVAL).
 */
WHISPER_API int whisper_session_decrypt_store(
    whisper_ctx *ctx, const char *name, uint32_t device_id, int type, const uint8_t *body,
    size_t body_len, const whisper_message_t *meta,
    whisper_buf *WHISPER_NULLABLE *WHISPER_NULLABLE plaintext_out);

/**
 * The group counterpart of whisper_session_decrypt_store(): decrypts a
 * SenderKeyMessage from (sender, device_id) (see whisper_sender_key_decrypt())
 * and stores it in history as `meta` describes (its conversation, e.g.
 * the group's, id, sort key and time; the body is the plaintext), with the
 * sender key's new state, in one transaction. A message already stored in
 * that conversation with the same sort key and id is refused with
 * WHISPER_EDUPLICATE before anything is decrypted. Otherwise the codes of
 * whisper_sender_key_decrypt(); on any failure nothing changes. `plaintext_out`
 * may be NULL. `meta->size` must be set (WHISPER_MESSAGE_INIT; below
 * WHISPER_MESSAGE_SIZE_1_0: WHISPER_EINVAL).
 */
WHISPER_API int whisper_sender_key_decrypt_store(
    whisper_ctx *ctx, const char *sender, uint32_t device_id, const uint8_t *body, size_t body_len,
    const whisper_message_t *meta, whisper_buf *WHISPER_NULLABLE *WHISPER_NULLABLE plaintext_out);

/** One message of a batch for whisper_session_decrypt_batch(). A versioned
 *  struct (docs/api.md): start every element with WHISPER_INCOMING_INIT (or
 *  set `size` to sizeof(whisper_incoming_t) and `meta.size` to
 *  sizeof(whisper_message_t)); fields are only appended.
 *  It ends with its whisper_message_t, itself versioned: a later, bigger
 *  `meta` only makes the element bigger (the fields before it keep their
 *  places), and the library reads the part of `meta` it knows, by
 *  `meta.size`. A field added to whisper_incoming_t itself would go after
 *  `meta`, at offsetof(meta) + meta.size. */
typedef struct whisper_incoming_t {
  size_t size; /* sizeof(whisper_incoming_t) as the caller was built: the same in every element */
  const char *name;
  uint32_t device_id;
  int type;
  const uint8_t *body;
  size_t body_len;
  int result;                /* out: WHISPER_OK or why this one failed */
  whisper_buf *WHISPER_NULLABLE plaintext; /* out: on success, for the caller to free */
  whisper_message_t meta;    /* last: see above */
} whisper_incoming_t;

/** The first released (1.0) size of whisper_incoming_t: the smallest the
 *  library accepts. */
#define WHISPER_INCOMING_SIZE_1_0 (offsetof(whisper_incoming_t, meta) + WHISPER_MESSAGE_SIZE_1_0)
/** Initializer: `whisper_incoming_t in = WHISPER_INCOMING_INIT;` */
#define WHISPER_INCOMING_INIT \
  {.size = sizeof(whisper_incoming_t), .meta = {.size = sizeof(whisper_message_t)}}

/**
 * whisper_session_decrypt_store() for `n` messages in one transaction (one
 * durable commit): each message gets its own result, and one that fails
 * changes nothing while the others are kept. The array is stepped by
 * msgs[0].size (a caller built with a later, bigger whisper_incoming_t
 * works; the library reads and writes only the fields it knows); every
 * element must carry the same `size`, at least WHISPER_INCOMING_SIZE_1_0,
 * and the same `meta.size`, at least WHISPER_MESSAGE_SIZE_1_0 and within
 * the element, else WHISPER_EINVAL and nothing is read past the first
 * element's size nor changed. Returns WHISPER_OK when the batch committed (see each
 * result), WHISPER_EINVAL, or a store error for the whole batch (then
 * nothing changed).
 */
WHISPER_API int whisper_session_decrypt_batch(whisper_ctx *ctx,
                                              whisper_incoming_t *WHISPER_NULLABLE msgs, size_t n);

/** The server took message `id` of `conversation`: status SENT for every
 *  recipient, out of the outbox, and sorted by `server_sort_key` from now
 *  on. Returns WHISPER_OK, WHISPER_ENOTFOUND or an error. Repeating it is
 *  harmless. */
WHISPER_API int whisper_history_sent(whisper_ctx *ctx, const char *conversation, const uint8_t *id,
                                     size_t id_len, uint64_t server_sort_key);

/** A recipient device reports DELIVERED or READ for an outgoing message.
 *  A status never moves backwards (an older report is ignored). Returns
 *  WHISPER_OK, WHISPER_ENOTFOUND (no such message or recipient) or an
 *  error. */
WHISPER_API int whisper_history_status_set(whisper_ctx *ctx, const char *conversation,
                                       const uint8_t *id, size_t id_len, const char *recipient,
                                       uint32_t device_id, int status);

/** The status one recipient device has for an outgoing message. Returns
 *  WHISPER_OK, WHISPER_EINVAL, WHISPER_ENOTFOUND (no such message or
 *  recipient) or a store error. */
WHISPER_API int whisper_history_status_get(whisper_ctx *ctx, const char *conversation,
                                           const uint8_t *id, size_t id_len,
                                           const char *recipient, uint32_t device_id,
                                           int *status);

/** A page of messages, owned by the library. */
typedef struct whisper_page whisper_page;

/**
 * Reads up to `limit` messages of a conversation, newest first, older than
 * the position (before_sort_key, before_id): pass the sort key and id of
 * the last message of the previous page to page on, or before_id NULL to
 * start from the newest. Returns WHISPER_OK, WHISPER_EINVAL or an error.
 */
WHISPER_API int whisper_history_page(whisper_ctx *ctx, const char *conversation,
                                     uint64_t before_sort_key,
                                     const uint8_t *WHISPER_NULLABLE before_id,
                                     size_t before_id_len, size_t limit,
                                     whisper_page *WHISPER_NULLABLE *WHISPER_NONNULL out);

/**
 * The outbox: up to `limit` outgoing messages the server has not taken
 * yet, oldest first (to send again after a reconnect). Returns WHISPER_OK,
 * WHISPER_EINVAL (also: a store without scan()) or a store error.
 */
WHISPER_API int whisper_outbox_page(whisper_ctx *ctx, size_t limit,
                                    whisper_page *WHISPER_NULLABLE *WHISPER_NONNULL out);

/** The number of messages in a page. */
WHISPER_API size_t whisper_page_count(const whisper_page *page);

/** Message `i` of a page (NULL when out of range); valid until the page is
 *  freed. */
WHISPER_API const whisper_message_t *WHISPER_NULLABLE whisper_page_get(const whisper_page *page,
                                                                       size_t i);

/** Frees a page (its bodies wiped). Accepts NULL. */
WHISPER_API void whisper_page_free(whisper_page *WHISPER_NULLABLE page);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif
