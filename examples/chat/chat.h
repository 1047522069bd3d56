/*
 * whisper-chat: a terminal client for whisperd, on libwhisper's client
 * engine (whisper/client.h) and libwebsockets.
 *
 *   main.c      options, the store and identity, the loop, shutdown
 *   net.c       the WebSocket connection and stdin, on libwebsockets
 *   commands.c  the command lines (the same interactive and in --script)
 *   output.c    events and command results: human lines or JSON lines
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

/** A changed identity key an EV_IDENTITY announced, for `trust`. */
typedef struct chat_key {
  char *name;
  uint32_t device;
  uint8_t key[WHISPER_PUBLIC_KEY_LEN];
  struct chat_key *next;
} chat_key;

/** The connection as net.c sees it. */
enum { NET_IDLE = 0, NET_CONNECTING = 1, NET_OPEN = 2 };

typedef struct chat {
  /* options */
  const char *db_path;
  const char *key_path;
  const char *anchor_path; /* --anchor-file: the store's anchor, kept outside it */
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

  /* what the app knows */
  chat_key *changed;  /* identity keys waiting for `trust` */
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

/** "pending", "sent", "delivered", "read". */
const char *status_name(int status);
/** The ticks of a status: "…", "✓", "✓✓", "✓✓" in blue (or "✓✓ read"). */
const char *status_ticks(const chat *c, int status);

/* --- util.c ---------------------------------------------------------------- */

/** Milliseconds since the Unix epoch. */
uint64_t now_ms(void);

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

/** Overwrites memory that held a secret. */
void wipe(void *p, size_t n);

#endif
