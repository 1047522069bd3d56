/*
 * whisper-engine-bench: what the client engine (client.h) costs per
 * message end to end, without sockets: N engines and the server core
 * (server.h) in one process on one thread, frames handed from one to the
 * other in memory, on a fake clock. The load of whisperd-load (a ring:
 * device i sends M messages of 100 B to device i+1, each DELIVERED end
 * to end), so its figures compare; but here the CPU time of the engines
 * and of the server core are measured apart (each call bracketed with
 * CLOCK_THREAD_CPUTIME_ID; the server's store is SQLite, NORMAL, as
 * whisperd's), and nothing else runs: a profile of it
 * (`perf record -g whisper-engine-bench`, `valgrind --tool=callgrind`) is
 * the engine's and the core's alone.
 *
 *   whisper-engine-bench [--clients N] [--messages M] [--window W]
 *                        [--sqlite DIR] [--catch-up] [--deliver-window N] [--quiet]
 *
 * --window W: each device keeps at most W of its messages sent and not yet
 * SENT (default 1: paced, as whisperd-load); 0: all M at once.
 * --sqlite DIR: the devices' stores are SQLite files in DIR
 * (synchronous=NORMAL), else memory stores. Exits 1 when a message is
 * lost, duplicated, out of its sender's order or without its SENT and
 * DELIVERED.
 */
#define _DEFAULT_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <whisper/server.h>
#include <whisper/whisper.h>

#include "bench_clock.h"

/* Under callgrind, `--collect-atstart=no` counts the receiver's engine
 * calls during the catch-up alone (CALLGRIND_TOGGLE_COLLECT around them). */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#endif
#endif
#ifndef CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_TOGGLE_COLLECT
#endif

#define BODY_LEN 100
#define T0 1700000000000ULL

static int g_n = 200, g_m = 20, g_window = 1, g_quiet;
static int g_catch, g_warm; /* --catch-up; its contacts' first messages */
static int g_deliver_window; /* --deliver-window N: the server core's (0: its default) */
static const char *g_sqlite;

typedef struct dev {
  char name[16];
  whisper_store *st;
  whisper_ctx *ctx;
  whisper_client *cl;
  uint64_t conn;
  int online, caught_up;
  int sent_calls, sent_ok, delivered, received;
  int next_k; /* the sender's message due next (they come in order) */
  int *next_ks; /* --catch-up, the receiver: per sender */
  int offline;
  double cpu;   /* engine CPU of this device */
  uint8_t (*ids)[16];
  unsigned char *got;
} dev;

static dev *g_dev;
static whisper_server *g_srv;
static whisper_store *g_sst;
static uint64_t g_now = T0, g_conn;
static double g_cpu_engine, g_cpu_server;
static long g_frames_up, g_frames_down;
static int g_failed;
static const dev *g_collect; /* the device whose engine calls callgrind counts (catch-up) */

static void die(const char *what, int rc) {
  fprintf(stderr, "whisper-engine-bench: %s: %s\n", what, whisper_strerror(rc));
  exit(1);
}

static int recipient(int i) { return g_catch ? g_n - 1 : (i + 1) % g_n; }

/* Engine CPU, per device and in all. */
#define ENGINE(d, call)                     \
  do {                                      \
    int c_ = (d) == g_collect;              \
    if (c_) CALLGRIND_TOGGLE_COLLECT;       \
    double t_ = thread_cpu_s();             \
    call;                                   \
    t_ = thread_cpu_s() - t_;               \
    if (c_) CALLGRIND_TOGGLE_COLLECT;       \
    g_cpu_engine += t_;                     \
    (d)->cpu += t_;                         \
  } while (0)

static void send_next(dev *d) {
  if (d->sent_calls >= g_m) return;
  uint8_t body[BODY_LEN];
  memset(body, 'a' + d->sent_calls % 26, sizeof body);
  memcpy(body, &d->sent_calls, sizeof d->sent_calls);
  int rc;
  ENGINE(d, rc = whisper_client_send(d->cl, g_dev[recipient((int)(d - g_dev))].name, body,
                                     sizeof body, g_now, d->ids[d->sent_calls]));
  if (rc != WHISPER_OK) die("whisper_client_send", rc);
  d->sent_calls++;
}

static int find_id(const dev *d, const uint8_t *id, size_t len) {
  if (id == NULL || len != 16) return -1;
  for (int k = 0; k < d->sent_calls; k++)
    if (memcmp(d->ids[k], id, 16) == 0) return k;
  return -1;
}

static void events(dev *d, int sending) {
  whisper_client_event_t e;
  for (;;) {
    int got;
    ENGINE(d, got = whisper_client_take_event(d->cl, &e));
    if (got <= 0) break;
    switch (e.type) {
      case WHISPER_EV_ONLINE:
        d->online = 1;
        break;
      case WHISPER_EV_CAUGHT_UP:
        d->caught_up = 1;
        break;
      case WHISPER_EV_MESSAGE: {
        if (g_warm) break;
        int si = g_catch ? (e.from ? atoi(e.from + 1) : -1) : (int)(d - g_dev + g_n - 1) % g_n;
        if (si < 0 || si >= g_n) si = 0;
        const dev *s = &g_dev[si];
        int k = find_id(s, e.id, e.id_len), *due = g_catch ? &d->next_ks[si] : &d->next_k;
        unsigned char *seen = g_catch ? &d->got[(size_t)si * (size_t)g_m] : d->got;
        if (k < 0 || e.body_len != BODY_LEN || seen[k]++) {
          fprintf(stderr, "%s: a message unknown or twice\n", d->name);
          g_failed++;
        } else if (k != *due) {
          fprintf(stderr, "%s: message %d of its sender came when %d was due\n", d->name, k, *due);
          g_failed++;
        }
        *due = k + 1;
        d->received++;
        break;
      }
      case WHISPER_EV_STATUS: {
        int k = find_id(d, e.id, e.id_len);
        if (k < 0) break;
        if (e.status == WHISPER_STATUS_SENT) {
          d->sent_ok++;
          if (sending && g_window) send_next(d);
        } else if (e.status == WHISPER_STATUS_DELIVERED) {
          d->delivered++;
        }
        break;
      }
      case WHISPER_EV_ERROR:
        if (!g_quiet)
          fprintf(stderr, "%s: engine error %d/%d: %s\n", d->name, e.code, e.server_code,
                  e.message ? e.message : "");
        break;
      default:
        break;
    }
  }
}

/* Moves frames until nothing moves; returns 1 if anything moved. */
static int run_once(int sending) {
  int moved = 0;
  for (int i = 0; i < g_n; i++) {
    dev *d = &g_dev[i];
    if (!d->conn && !d->offline && whisper_client_want_connect(d->cl, g_now)) {
      d->conn = ++g_conn;
      double t = thread_cpu_s();
      int rc = whisper_server_connected(g_srv, d->conn, g_now);
      g_cpu_server += thread_cpu_s() - t;
      if (rc != WHISPER_OK) die("whisper_server_connected", rc);
      ENGINE(d, whisper_client_connected(d->cl, g_now));
      moved = 1;
    }
    events(d, sending);
    for (;;) {
      whisper_buf *b = NULL;
      int got;
      ENGINE(d, got = d->conn && whisper_client_take_frame(d->cl, &b));
      if (got <= 0) break;
      double t = thread_cpu_s();
      whisper_server_receive(g_srv, d->conn, b->data, b->len, g_now);
      g_cpu_server += thread_cpu_s() - t;
      whisper_buf_free(b);
      g_frames_up++;
      moved = 1;
    }
  }
  for (;;) {
    whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
    double t = thread_cpu_s();
    int got = whisper_server_take_output(g_srv, &o);
    g_cpu_server += thread_cpu_s() - t;
    if (got <= 0) break;
    moved = 1;
    if (o.action != WHISPER_SERVER_SEND) continue;
    dev *d = NULL;
    for (int i = 0; i < g_n && d == NULL; i++)
      if (g_dev[i].conn == o.conn) d = &g_dev[i];
    if (d == NULL) continue;
    g_frames_down++;
    int rc;
    ENGINE(d, rc = whisper_client_receive(d->cl, o.frame, o.frame_len, g_now));
    if (rc != WHISPER_OK) die("whisper_client_receive", rc);
  }
  return moved;
}

/* Runs until nothing moves, with timers: the clock moves 1 ms a round. */
static void run(int sending, int (*done)(void)) {
  for (long round = 0; round < 10000000; round++) {
    int moved = run_once(sending);
    g_now++;
    for (int i = 0; i < g_n; i++)
      ENGINE(&g_dev[i], if (whisper_client_next_deadline(g_dev[i].cl) <= g_now)
                          whisper_client_tick(g_dev[i].cl, g_now));
    double t = thread_cpu_s();
    if (whisper_server_next_deadline(g_srv) <= g_now) whisper_server_tick(g_srv, g_now);
    g_cpu_server += thread_cpu_s() - t;
    if (!moved && done()) return;
  }
  fprintf(stderr, "whisper-engine-bench: the network did not settle\n");
  exit(1);
}

static int all_online(void) {
  for (int i = 0; i < g_n; i++)
    if (!g_dev[i].online || !g_dev[i].caught_up) return 0;
  return 1;
}

static int all_done(void) {
  for (int i = 0; i < g_n; i++)
    if (g_dev[i].received < g_m || g_dev[i].sent_ok < g_m || g_dev[i].delivered < g_m) return 0;
  return 1;
}

/* The timed part (a function of its own: `valgrind --tool=callgrind
 * --toggle-collect=messages_phase` profiles it alone). */
static uint64_t g_settle_at;
static int settled(void) { return g_now >= g_settle_at; }

__attribute__((noinline)) static void messages_phase(void) {
  for (int i = 0; i < g_n; i++) {
    int first = g_window ? g_window : g_m;
    for (int k = 0; k < first; k++) send_next(&g_dev[i]);
  }
  run(1, all_done);
  /* and 1 s of the clock after: what the engines do later about these
   * messages (their search indexing, 200 ms after) is theirs too */
  g_settle_at = g_now + 1000;
  run(1, settled);
}

/* --catch-up: devices 0..N-2 each send M to the last one while it is
 * offline (after one first message each, so that they are contacts), then
 * it logs in; its engine's CPU alone is the figure. */
static int backlog_sent(void) {
  for (int i = 0; i < g_n - 1; i++)
    if (g_dev[i].sent_ok < g_m) return 0;
  return 1;
}

static int backlog_in(void) { return g_dev[g_n - 1].received >= (g_n - 1) * g_m; }

static int quiet(void) { return 1; }

static void go_offline(dev *d) {
  d->offline = 1;
  if (!d->conn) return;
  whisper_server_disconnected(g_srv, d->conn, g_now);
  ENGINE(d, whisper_client_disconnected(d->cl, g_now));
  d->conn = 0;
}

__attribute__((noinline)) static void catch_up_phase(void) { run(0, backlog_in); }

static void catch_up(void) {
  dev *r = &g_dev[g_n - 1];
  g_warm = 1;
  for (int i = 0; i < g_n - 1; i++) {
    uint8_t id[16];
    ENGINE(&g_dev[i], whisper_client_send(g_dev[i].cl, r->name, (const uint8_t *)"hello", 5, g_now, id));
  }
  run(0, quiet);
  g_warm = 0;
  go_offline(r);
  for (int i = 0; i < g_n - 1; i++)
    while (g_dev[i].sent_calls < g_m) send_next(&g_dev[i]);
  run(0, backlog_sent);
  r->offline = 0;
  r->cpu = g_cpu_engine = g_cpu_server = 0;
  double t0 = mono_s();
  g_collect = r;
  catch_up_phase();
  g_collect = NULL;
  double wall = mono_s() - t0;
  long total = (long)(g_n - 1) * g_m;
  printf("catch-up: %d senders, %d messages each (%ld) to one device, its store SQLite (FULL)\n",
         g_n - 1, g_m, total);
  printf("  the receiver's engine CPU %8.1f us per message (%.3f s), wall %.3f s (login to last)\n",
         r->cpu * 1e6 / (double)total, r->cpu, wall);
  printf("  the senders' engines      %8.1f us per message (its receipts)\n",
         (g_cpu_engine - r->cpu) * 1e6 / (double)total);
  printf("  server core CPU           %8.1f us per message\n", g_cpu_server * 1e6 / (double)total);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc) g_n = atoi(argv[++i]);
    else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc) g_m = atoi(argv[++i]);
    else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) g_window = atoi(argv[++i]);
    else if (strcmp(argv[i], "--sqlite") == 0 && i + 1 < argc) g_sqlite = argv[++i];
    else if (strcmp(argv[i], "--quiet") == 0) g_quiet = 1;
    else if (strcmp(argv[i], "--catch-up") == 0) g_catch = 1;
    else if (strcmp(argv[i], "--deliver-window") == 0 && i + 1 < argc) g_deliver_window = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: whisper-engine-bench [--clients N] [--messages M] [--window W] "
                      "[--sqlite DIR] [--catch-up] [--deliver-window N] [--quiet]\n");
      return 2;
    }
  }
  if (g_catch) {
    int set_n = 0, set_m = 0;
    for (int i = 1; i < argc; i++) set_n |= !strcmp(argv[i], "--clients"), set_m |= !strcmp(argv[i], "--messages");
    if (!set_n) g_n = 11;
    if (!set_m) g_m = 1000;
  }
  if (g_n < 2 || g_m < 1 || g_window < 0) return 2;
  whisper_server_config_t scfg = WHISPER_SERVER_CONFIG_INIT;
  scfg.rate_per_sec = 1000000; /* the fake clock moves slowly */
  scfg.rate_burst = 1000000;
  if (g_deliver_window) scfg.deliver_window = (uint32_t)g_deliver_window;
  /* the server's store as whisperd's: SQLite (NORMAL), in a new directory */
  char tmpl[] = "/tmp/whisper-engine-bench-XXXXXX", spath[600];
  if (mkdtemp(tmpl) == NULL) die("mkdtemp", WHISPER_ESTORE);
  snprintf(spath, sizeof spath, "%s/server.db", tmpl);
  whisper_sqlite_options_t so = WHISPER_SQLITE_OPTIONS_INIT;
  static const uint8_t skey[32] = "engine bench server key ........";
  so.key = skey;
  so.key_len = 32;
  so.synchronous = WHISPER_SYNC_NORMAL;
  int rc = whisper_store_sqlite_open(&g_sst, spath, &so, NULL);
  if (rc == WHISPER_OK) rc = whisper_server_new(&g_srv, g_sst, &scfg);
  if (rc != WHISPER_OK) die("the server", rc);
  g_dev = calloc((size_t)g_n, sizeof *g_dev);
  whisper_client_config_t cfg = WHISPER_CLIENT_CONFIG_INIT;
  cfg.prekey_batch = 5;
  cfg.prekey_low = 2;
  cfg.read_receipts = 0;
  for (int i = 0; i < g_n; i++) {
    dev *d = &g_dev[i];
    snprintf(d->name, sizeof d->name, "u%05d", i);
    int receiver = g_catch && i == g_n - 1;
    if (g_sqlite || receiver) {
      char path[512];
      snprintf(path, sizeof path, "%s/%s.db", g_sqlite ? g_sqlite : tmpl, d->name);
      whisper_store_sqlite_delete(path);
      whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
      static const uint8_t key[32] = "engine bench store key .........";
      o.key = key;
      o.key_len = 32;
      o.synchronous = receiver ? WHISPER_SYNC_FULL : WHISPER_SYNC_NORMAL;
      rc = whisper_store_sqlite_open(&d->st, path, &o, NULL);
    } else {
      rc = whisper_store_memory_new(&d->st);
    }
    if (rc == WHISPER_OK) rc = whisper_ctx_new(&d->ctx, d->st);
    if (rc == WHISPER_OK) rc = whisper_identity_generate(d->ctx, d->name, 1, 0, g_now);
    if (rc == WHISPER_OK) rc = whisper_client_new(&d->cl, d->ctx, &cfg);
    if (rc != WHISPER_OK) die("a device", rc);
    d->ids = calloc((size_t)g_m, 16);
    d->got = calloc((size_t)g_m * (size_t)(receiver ? g_n : 1), 1);
    d->next_ks = calloc((size_t)g_n, sizeof *d->next_ks);
  }
  run(0, all_online);
  int lost = 0;
  if (g_catch) {
    catch_up();
    goto done;
  }
  g_cpu_engine = g_cpu_server = 0;
  g_frames_up = g_frames_down = 0;
  double t0 = mono_s(), c0 = thread_cpu_s();
  messages_phase();
  double wall = mono_s() - t0, cpu = thread_cpu_s() - c0;
  long total = (long)g_n * g_m;
  for (int i = 0; i < g_n; i++)
    for (int k = 0; k < g_m; k++) lost += g_dev[recipient(i)].got[k] != 1;
  printf("engines %d, messages %d each (%ld), window %d, %s stores\n", g_n, g_m, total, g_window,
         g_sqlite ? "SQLite (NORMAL)" : "memory");
  printf("  engine CPU      %8.1f us per message (all engines: send, encrypt, decrypt, receipts, acks)\n",
         g_cpu_engine * 1e6 / (double)total);
  printf("  server core CPU %8.1f us per message\n", g_cpu_server * 1e6 / (double)total);
  printf("  in all          %8.1f us per message (CPU %.2f s, wall %.2f s)\n",
         cpu * 1e6 / (double)total, cpu, wall);
  printf("  frames          %8.2f up, %.2f down per message\n", (double)g_frames_up / (double)total,
         (double)g_frames_down / (double)total);
done:
  for (int i = 0; i < g_n; i++) {
    whisper_client_free(g_dev[i].cl);
    whisper_ctx_free(g_dev[i].ctx);
    whisper_store_free(g_dev[i].st);
    if (g_catch && i == g_n - 1 && !g_sqlite) {
      char path[600];
      snprintf(path, sizeof path, "%s/%s.db", tmpl, g_dev[i].name);
      whisper_store_sqlite_delete(path);
    }
    free(g_dev[i].ids);
    free(g_dev[i].got);
    free(g_dev[i].next_ks);
  }
  free(g_dev);
  whisper_server_free(g_srv);
  whisper_store_free(g_sst);
  whisper_store_sqlite_delete(spath);
  rmdir(tmpl);
  if (lost || g_failed) {
    printf("FAIL: %d messages lost or doubled, %d problems\n", lost, g_failed);
    return 1;
  }
  return 0;
}
