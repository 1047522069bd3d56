/*
 * whisper-chat: a terminal client for whisperd, on libwhisper's client
 * engine (whisper/client.h) and libwebsockets.
 *
 *   main.c      options, the store and identity, the loop, shutdown
 *   net.c       the WebSocket connection and stdin, on libwebsockets
 *   commands.c  the command lines (the same interactive and in --script)
 *   output.c    events and command results: human lines or JSON lines
 *   msgref.c    naming a message: #N of the last history listing, or an id prefix
 *   http.c      the engine's HTTP requests (the blob store), on lws' HTTP client
 *   media.c     attachments: send-file, view-once, download, open, their lines
 *   qr.c        QR codes for the terminal (libqrencode), and the scannable texts
 *   util.c      time, hex, the store key file
 *
 * One thread: libwebsockets' service loop calls back into net.c, which
 * feeds the engine; after each service round main.c's chat_pump() runs the
 * engine's timers, connects, hands the engine's frames to net.c and prints
 * its events.
 */
#ifndef WHISPER_CHAT_H
#define WHISPER_CHAT_H

#include <stddef.h>
#include <stdint.h>
#include <whisper/whisper.h>

#define CHAT_KEY_LEN 32

typedef struct chat_net chat_net;
typedef struct chat_http chat_http;
struct lws_context;

/** A changed identity key an EV_IDENTITY announced, for `trust`. */
typedef struct chat_key {
  char *name;
  uint32_t device;
  uint8_t key[WHISPER_PUBLIC_KEY_LEN];
  struct chat_key *next;
} chat_key;

/** A message as commands name it (msgref.c): its id and who sent it. The
 *  library's calls that name a message by (id, sender) take `own ? NULL :
 *  sender`. */
typedef struct msgref {
  uint8_t id[WHISPER_MESSAGE_ID_MAX];
  size_t id_len;
  int own;                /* sent by this account (by this device or another of it) */
  char sender[256];       /* the sender's account (this account's name when own) */
  uint32_t sender_device; /* 0 when own and not known */
  uint64_t sort_key;
} msgref;

/** The numbered messages of the last `history` of one conversation. */
typedef struct chat_listing {
  char *conversation;
  msgref *msgs; /* msgs[0] is #1, the oldest shown */
  size_t n;
  struct chat_listing *next;
} chat_listing;

/** A received message this run marked read (`read`), by sender and id. */
typedef struct chat_readmark {
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  char *sender;
} chat_readmark;

/** The connection as net.c sees it. */
enum { NET_IDLE = 0, NET_CONNECTING = 1, NET_OPEN = 2 };

typedef struct chat {
  /* options */
  const char *db_path;
  const char *key_path;
  const char *anchor_path; /* --anchor-file: the store's anchor, kept outside it */
  char *media_dir;    /* --media-dir, or the folder beside the store */
  char *downloads_dir; /* where `download` puts a file without a path */
  const char *account;
  uint32_t device;
  const char *server;
  const char *ca_file;
  int insecure;       /* wss: accept a self-signed certificate */
  int script;         /* JSON lines on stdout */
  int color;          /* ANSI colours in the human output */
  whisper_client_config_t cfg;

  /* the library */
  whisper_store *store;
  whisper_ctx *ctx;
  whisper_client *client;

  /* the connection and stdin */
  chat_net *net;
  chat_http *http;    /* the engine's HTTP requests in flight */

  /* what the app knows */
  chat_key *changed;  /* identity keys waiting for `trust` */
  char call_peer[256];  /* the last call this run signalled or was signalled ("" none) */
  uint8_t call_id[WHISPER_CALL_ID_LEN];
  chat_listing *listings; /* the last `history` listing of each conversation */
  chat_readmark *readmarks; /* by id, then sender, unless readmarks_unsorted */
  size_t n_readmarks, cap_readmarks;
  int readmarks_unsorted;
  uint64_t connect_not_before; /* an attempt that never opened: the next waits */
  int online;         /* logged in on the current connection */
  int caught_up;      /* the mailbox was drained since the login */
  int quit;           /* quit asked (command, end of input, signal) */
  int out_broken;     /* stdout is gone */
} chat;

/* --- main.c ---------------------------------------------------------------- */

/** Prints the engine's pending events (as soon as a frame raised them: an
 *  event is raised after what it reports was committed to the store, so
 *  a process killed in between has it in history without having shown
 *  it). */
void chat_events(chat *c);

/** Runs the engine's timers, connects when it wants to, hands its frames
 *  to the connection and prints its events. */
void chat_pump(chat *c);

/** Remembers the new key of an EV_IDENTITY (replacing an older one for
 *  that device). */
void changed_key_put(chat *c, const char *name, uint32_t device, const uint8_t *key);

/** Takes the remembered key of (name, device) into `key`: 1, or 0 when
 *  there is none. */
int changed_key_take(chat *c, const char *name, uint32_t device,
                     uint8_t key[WHISPER_PUBLIC_KEY_LEN]);

/* --- net.c ----------------------------------------------------------------- */

/** Parses --server, makes the libwebsockets context and adopts stdin.
 *  Returns 0, or -1 after printing why. */
int net_init(chat *c);

/** Destroys the context (closing the connection; the engine hears
 *  whisper_client_disconnected) and frees everything of net.c. */
void net_free(chat *c);

/** One round of libwebsockets service: waits until a socket or stdin is
 *  ready or the wake-up set by net_wake_at() is due. */
void net_service(chat *c);

/** The service round returns by `at_ms` (wall clock, ms) at the latest. */
void net_wake_at(chat *c, uint64_t at_ms);

/** NET_IDLE, NET_CONNECTING or NET_OPEN. */
int net_state(const chat *c);

/** Opens a connection to --server. The engine hears connected() once it is
 *  open, or disconnected() if it fails. */
void net_connect(chat *c);

/** Queues a frame the engine handed out (net.c frees it). */
void net_send(chat *c, whisper_buf *frame);

/** Frames queued and not yet written. */
size_t net_pending(const chat *c);

/** Closes the connection (after nothing: queued frames are dropped). */
void net_close(chat *c);

/** Stops reading stdin (quitting). */
void net_stdin_stop(chat *c);

/** The libwebsockets context (NULL before net_init()), and where --server
 *  points: http.c connects there too. */
struct lws_context *net_context(const chat *c);
void net_endpoint(const chat *c, const char **host, int *port, const char **host_header, int *tls);

/* --- http.c ---------------------------------------------------------------- */

/** Makes http.c's state. Returns 0 or -1 (no memory). */
int http_init(chat *c);

/** Starts every HTTP request the engine has for the app. */
void http_pump(chat *c);

/** Requests started and not answered yet. */
size_t http_in_flight(const chat *c);

/** Quitting: nothing more is started or answered (net_free calls it
 *  before it destroys the context, then http_free()). */
void http_stop(chat *c);
void http_free(chat *c);

/* --- commands.c ------------------------------------------------------------ */

/** Runs one command line (without its newline). */
void cmd_line(chat *c, char *line);

/* --- output.c -------------------------------------------------------------- */

/** Prints an engine event. */
void out_event(chat *c, const whisper_client_event_t *ev);

/** The connection closed or could not be opened; `why` may be NULL. */
void out_disconnected(chat *c, const char *why);

/** A command failed: {"ev":"error","cmd":...,"message":...} or a human
 *  line. `rc` is a WHISPER_E* code or 0 for a usage error. */
void out_cmd_error(chat *c, const char *cmd, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** A growing JSON object (or a human line) for one output line. */
typedef struct jbuf {
  char *p;
  size_t len, cap;
  int failed;
} jbuf;

void jb_init(jbuf *b);
void jb_free(jbuf *b);
/** Starts {"ev":"<ev>" . */
void jb_begin(jbuf *b, const char *ev);
/** A key (a comma first when needed), then the value functions below. */
void jb_key(jbuf *b, const char *key);
void jb_str(jbuf *b, const char *key, const char *s);          /* NULL: null */
void jb_bytes(jbuf *b, const char *key, const uint8_t *s, size_t n); /* as a string */
void jb_hex(jbuf *b, const char *key, const uint8_t *s, size_t n);
void jb_u64(jbuf *b, const char *key, uint64_t v);
void jb_int(jbuf *b, const char *key, long long v);
void jb_bool(jbuf *b, const char *key, int v);
/** Raw text ("{", "[", "}", "]") with a comma first when a value is
 *  started in an array or object. */
void jb_open(jbuf *b, const char *key, char bracket);
void jb_close(jbuf *b, char bracket);
/** Closes the object, prints it as one line and flushes. */
void jb_print(chat *c, jbuf *b);

/** Appends to a human line. */
void hb_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends bytes from the network, with control characters and invalid
 *  UTF-8 made harmless for a terminal. */
void hb_text(jbuf *b, const uint8_t *s, size_t n);
/** Prints a human line and flushes. */
void hb_print(chat *c, jbuf *b);

/** A time of day, "HH:MM:SS" (local), or "--:--:--" for 0. */
void clock_str(char out[16], uint64_t ms);

/* --- message content (output.c) --- */

#define TOMBSTONE_TEXT "🚫 this message was deleted"
#define UNSUPPORTED_TEXT "[unsupported message: update whisper-chat]"

/** A message of history in a JSON listing: its content fields ("kind",
 *  "edited", "deleted", "forwarded", "quote" for a reply, "reactions"). */
void jb_content(chat *c, jbuf *b, const whisper_message_t *m);

/** A message of history on a human line: its text, marked forwarded, or
 *  the tombstone of a deleted one, or UNSUPPORTED_TEXT; then "(edited)". */
void hb_content(chat *c, jbuf *b, const whisper_message_t *m);

/** The lines under it: the quote of a reply, and the reactions. */
void hb_content_below(chat *c, jbuf *b, const whisper_message_t *m);

/** A call signal's name ("offer", "answer", "ice", "hangup", "busy"), or
 *  NULL; and back (0: not one). */
const char *call_type_name(int type);
int call_type_parse(const char *s);

/** "pending", "sent", "delivered", "read". */
const char *status_name(int status);
/** The ticks of a status: "…", "✓", "✓✓", "✓✓" in blue (or "✓✓ read"). */
const char *status_ticks(const chat *c, int status);

/* --- msgref.c ------------------------------------------------------------- */

/** The shortest id prefix a command takes (hex digits). */
#define MSGREF_MIN_PREFIX 4

/**
 * Which message of `conversation` a command line's `word` names: `#N` or
 * `N` (the Nth message of the last `history` listing of that conversation,
 * #1 the oldest shown), or a prefix of its hex id (at least
 * MSGREF_MIN_PREFIX digits, either case) that only one message of the
 * conversation's history has. A word of 4 or more digits may be either: it
 * must then name one message only. Returns 0 with the message in *out, or
 * -1 with a sentence for the user in `err`.
 */
int msgref_resolve(chat *c, const char *conversation, const char *word, msgref *out, char *err,
                   size_t errlen);

/** Remembers a history page (newest first, as whisper_history_page()
 *  returns it) as the numbered listing of `conversation`, replacing the
 *  last one: the oldest message becomes #1. Returns 0 or -1 (no memory:
 *  the old listing is dropped too). */
int msgref_remember(chat *c, const char *conversation, const whisper_page *page);

/** Calls fn for every message of the conversation's history, newest first,
 *  until it returns nonzero. Returns WHISPER_OK or the history's error. */
int msgref_each(chat *c, const char *conversation, int (*fn)(void *arg, const msgref *m),
                void *arg);

/** Whether this run marked (sender, id) read; marks it. */
int readmark_has(chat *c, const char *sender, const uint8_t id[WHISPER_CLIENT_ID_LEN]);
int readmark_add(chat *c, const char *sender, const uint8_t id[WHISPER_CLIENT_ID_LEN]);

/** Frees the listings and the read marks. */
void msgref_free_all(chat *c);

/* --- block.c ------------------------------------------------------------- */

/** A command: its name, usage, a line about it, and what runs it. */
typedef struct chat_cmd {
  const char *name;
  const char *usage;
  const char *about;
  void (*run)(chat *c, char *args);
} chat_cmd;

/** block, unblock, blocked, report (help lists them after commands.c's). */
extern const chat_cmd chat_block_cmds[];
extern const size_t chat_block_n;

/** Runs `cmd` if it is one of chat_block_cmds: 1, else 0. */
int chat_block_cmd(chat *c, const char *cmd, char *args);

/** Prints WHISPER_EV_BLOCKED: 1, or 0 for another event. */
int chat_block_event(chat *c, const whisper_client_event_t *ev);

/* --- media.c ------------------------------------------------------------- */

/** send-file, view-once, download, open, media (help lists them after
 *  block.c's). */
extern const chat_cmd chat_media_cmds[];
extern const size_t chat_media_n;

/** Runs `cmd` if it is one of chat_media_cmds: 1, else 0. */
int chat_media_cmd(chat *c, const char *cmd, char *args);

/** Prints WHISPER_EV_MEDIA: 1, or 0 for another event. */
int chat_media_event(chat *c, const whisper_client_event_t *ev);

/** An attachment message of history: its JSON fields ("attachment": name,
 *  type, size, caption, state, ...), and its human text. */
void jb_attachment(chat *c, jbuf *b, const char *conversation, const uint8_t *id, size_t id_len,
                   const char *sender);
void hb_attachment(chat *c, jbuf *b, const char *conversation, const uint8_t *id, size_t id_len,
                   const char *sender, const uint8_t *caption, size_t caption_len);

/** The media and downloads folders beside the store (unless --media-dir
 *  named one), made if missing. Returns 0, or -1 after printing why. */
int media_dirs(chat *c);

/* --- qr.c ------------------------------------------------------------------ */

/* The texts that QR codes carry: a prefix, then the bytes in uppercase
 * hex (QR's compact alphanumeric mode). Commands take them with or without
 * the prefix, in either case. */
#define QR_SAFETY_PREFIX "WHISPER-SAFETY:"
#define QR_LINK_PREFIX "WHISPER-LINK:"

/** `prefix` and `n` bytes in uppercase hex, in a new string (NULL: no
 *  memory). */
char *qr_text(const char *prefix, const uint8_t *b, size_t n);

/** Parses a scanned text (with or without `prefix`) back to its bytes, up
 *  to `max`. Returns the length or -1. */
long qr_text_parse(const char *prefix, const char *s, uint8_t *out, size_t max);

/** Appends `text` as a QR code for the terminal to a human line: Unicode
 *  half blocks, two rows of modules per line, with a quiet zone. Returns 0
 *  or -1 (the text does not fit a QR code, or no memory). */
int qr_draw(const chat *c, jbuf *b, const char *text);

/* --- util.c ---------------------------------------------------------------- */

/** Milliseconds since the Unix epoch. */
uint64_t now_ms(void);

/** The hex digits of a message id that human lines show: the first 8. */
#define SHORT_ID_HEX 8

/** Lowercase hex of `n` bytes into `out` (2n + 1 bytes). */
void hex_encode(char *out, const uint8_t *b, size_t n);

/** Parses exactly `n` bytes of hex (either case). Returns 0 or -1. */
int hex_decode(uint8_t *out, size_t n, const char *s);

/** Parses hex of any even length up to `max` bytes; returns the length or
 *  -1. */
long hex_decode_var(uint8_t *out, size_t max, const char *s);

/** Reads the 32-byte store key from `path`, creating the file (mode 0600,
 *  random key) if it does not exist. Returns 0, or -1 after printing
 *  why. */
int key_file_load(const char *path, uint8_t key[CHAT_KEY_LEN]);

/** Fills `b` with `n` random bytes (/dev/urandom). Returns 0 or -1. */
int random_bytes(uint8_t *b, size_t n);

/** Overwrites memory that held a secret. */
void wipe(void *p, size_t n);

#endif
