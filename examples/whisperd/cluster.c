/*
 * whisperd's side of cluster mode (whisper_server_cluster()): the relays
 * between nodes go through PostgreSQL's LISTEN/NOTIFY on the channel
 * "whisper_relay" of the shared database.
 *
 * A thread owns a connection of its own: it LISTENs, sends the relays the
 * event loop queued (one NOTIFY statement for a batch of them), and hands
 * the relays it hears to the event loop through a queue, waking the loop
 * with the callback it was given (lws_cancel_service). The loop never
 * waits on PostgreSQL for a relay.
 *
 * Why NOTIFY and not Redis pub/sub: the nodes already share PostgreSQL;
 * a NOTIFY is delivered in the order it was sent, and one sent inside a
 * transaction only if the transaction commits. Relays are hints (the
 * store is the truth: a lost WAKE delays a message until the device's
 * next pump, a lost ONLINE is repaired by the next HELLO), so a second
 * moving part would buy latency we do not need at the cost of one more
 * service to run. When the connection to PostgreSQL drops, the thread
 * connects again with a back-off and asks the loop to resynchronise
 * (whisper_server_cluster_resync()): what was missed meanwhile is made up.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "whisperd.h"

#define CHANNEL "whisper_relay"
#define BATCH 64 /* relays per NOTIFY statement */

typedef wd_relay relay_item; /* whisperd.h: handed to the loop whole */

typedef struct relay_queue {
  relay_item *head, *tail;
  size_t count;
} relay_queue;

struct wd_cluster {
  char *conninfo;
  pthread_t thread;
  int started;
  int wake_fd; /* eventfd: relays to send, or stop */
  pthread_mutex_t mu;
  relay_queue out, in;
  int stopping;
  int resync; /* the connection was made again: the loop resynchronises */
  void (*notify)(void *arg);
  void *notify_arg;
  uint64_t sent, heard, dropped, reconnects;
};

static void q_push(relay_queue *q, relay_item *it) {
  it->next = NULL;
  if (q->tail)
    q->tail->next = it;
  else
    q->head = it;
  q->tail = it;
  q->count++;
}

static relay_item *q_pop(relay_queue *q) {
  relay_item *it = q->head;
  if (it == NULL) return NULL;
  q->head = it->next;
  if (q->head == NULL) q->tail = NULL;
  q->count--;
  return it;
}

static void q_free(relay_queue *q) {
  relay_item *it;
  while ((it = q_pop(q)) != NULL) free(it);
}

/* At most this many relays wait in either direction; past it they are
 * dropped (they are hints: see above) and counted. */
#define QUEUE_MAX 100000

/* --- the thread ------------------------------------------------------------ */

static PGconn *connect_listen(wd_cluster *cl) {
  PGconn *db = PQconnectdb(cl->conninfo);
  if (PQstatus(db) != CONNECTION_OK) {
    wd_warn("cluster: cannot connect to PostgreSQL: %s", PQerrorMessage(db));
    PQfinish(db);
    return NULL;
  }
  PGresult *r = PQexec(db, "LISTEN " CHANNEL);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    wd_warn("cluster: LISTEN failed: %s", PQerrorMessage(db));
    PQfinish(db);
    return NULL;
  }
  return db;
}

/* Sends up to BATCH queued relays in one statement. 0, or -1 when the
 * connection failed (the relays are put back in front). */
static int send_batch(wd_cluster *cl, PGconn *db) {
  relay_item *items[BATCH];
  size_t n = 0;
  pthread_mutex_lock(&cl->mu);
  while (n < BATCH && (items[n] = q_pop(&cl->out)) != NULL) n++;
  pthread_mutex_unlock(&cl->mu);
  /* PostgreSQL delivers identical payloads of one transaction once: such a
   * repeat (a burst of pipelined Sends waking the same device) is not sent
   * nor counted */
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < k && (items[j]->len != items[i]->len ||
                     memcmp(items[j]->data, items[i]->data, items[i]->len) != 0))
      j++;
    if (j < k) free(items[i]);
    else items[k++] = items[i];
  }
  n = k;
  if (n == 0) return 0;
  /* SELECT pg_notify($1, $2), pg_notify($1, $3), ... with hex payloads */
  char sql[BATCH * 32 + 16];
  size_t off = (size_t)snprintf(sql, sizeof sql, "SELECT ");
  const char *vals[BATCH + 1];
  char *hex[BATCH];
  vals[0] = CHANNEL;
  for (size_t i = 0; i < n; i++) {
    off += (size_t)snprintf(sql + off, sizeof sql - off, "%spg_notify($1, $%zu)", i ? ", " : "",
                            i + 2);
    hex[i] = malloc(items[i]->len * 2 + 1);
    if (hex[i]) sodium_bin2hex(hex[i], items[i]->len * 2 + 1, items[i]->data, items[i]->len);
    vals[i + 1] = hex[i] ? hex[i] : "";
  }
  PGresult *r = PQexecParams(db, sql, (int)n + 1, NULL, vals, NULL, NULL, 0);
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  PQclear(r);
  for (size_t i = 0; i < n; i++) free(hex[i]);
  if (!ok) {
    pthread_mutex_lock(&cl->mu); /* back in front, in order */
    for (size_t i = n; i-- > 0;) {
      items[i]->next = cl->out.head;
      cl->out.head = items[i];
      if (cl->out.tail == NULL) cl->out.tail = items[i];
      cl->out.count++;
    }
    pthread_mutex_unlock(&cl->mu);
    return -1;
  }
  for (size_t i = 0; i < n; i++) free(items[i]);
  pthread_mutex_lock(&cl->mu);
  cl->sent += n;
  pthread_mutex_unlock(&cl->mu);
  return 0;
}

/* Moves what was heard to the loop's queue. 0, or -1 on a lost connection. */
static int hear(wd_cluster *cl, PGconn *db) {
  if (!PQconsumeInput(db)) return -1;
  PGnotify *nt;
  int any = 0;
  while ((nt = PQnotifies(db)) != NULL) {
    size_t hl = strlen(nt->extra), len = 0;
    relay_item *it = malloc(sizeof *it + hl / 2 + 1);
    if (it && sodium_hex2bin(it->data, hl / 2 + 1, nt->extra, hl, NULL, &len, NULL) == 0) {
      it->len = len;
      pthread_mutex_lock(&cl->mu);
      if (cl->in.count < QUEUE_MAX) {
        q_push(&cl->in, it);
        cl->heard++;
        it = NULL;
        any = 1;
      } else {
        cl->dropped++;
      }
      pthread_mutex_unlock(&cl->mu);
    }
    free(it);
    PQfreemem(nt);
  }
  if (any && cl->notify) cl->notify(cl->notify_arg);
  return 0;
}

static int pending(wd_cluster *cl) {
  pthread_mutex_lock(&cl->mu);
  int n = cl->out.count > 0;
  pthread_mutex_unlock(&cl->mu);
  return n;
}

static void *run(void *arg) {
  wd_cluster *cl = arg;
  PGconn *db = NULL;
  unsigned backoff_ms = 100;
  for (;;) {
    pthread_mutex_lock(&cl->mu);
    int stop = cl->stopping;
    pthread_mutex_unlock(&cl->mu);
    if (stop) break;
    if (db == NULL) {
      db = connect_listen(cl);
      if (db == NULL) {
        struct timespec ts = {backoff_ms / 1000, (long)(backoff_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
        continue;
      }
      backoff_ms = 100;
      pthread_mutex_lock(&cl->mu);
      cl->resync = 1;
      cl->reconnects++;
      pthread_mutex_unlock(&cl->mu);
      if (cl->notify) cl->notify(cl->notify_arg);
    }
    while (pending(cl) && send_batch(cl, db) == 0) {
    }
    if (PQstatus(db) != CONNECTION_OK || hear(cl, db) != 0) {
      wd_warn("cluster: the connection to PostgreSQL dropped; connecting again");
      PQfinish(db);
      db = NULL;
      continue;
    }
    struct pollfd p[2] = {{PQsocket(db), POLLIN, 0}, {cl->wake_fd, POLLIN, 0}};
    int rc = poll(p, 2, 1000);
    if (rc < 0 && errno != EINTR) break;
    if (p[1].revents & POLLIN) {
      uint64_t v;
      if (read(cl->wake_fd, &v, sizeof v) < 0) { /* nothing: the queue says what to do */
      }
    }
  }
  if (db) PQfinish(db);
  return NULL;
}

/* --- the loop's side ------------------------------------------------------- */

int wd_cluster_start(wd_cluster **out, const char *conninfo, void (*notify)(void *arg),
                     void *arg) {
  wd_cluster *cl = calloc(1, sizeof *cl);
  if (cl == NULL) return -1;
  cl->conninfo = strdup(conninfo);
  cl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  cl->notify = notify;
  cl->notify_arg = arg;
  pthread_mutex_init(&cl->mu, NULL);
  if (cl->conninfo == NULL || cl->wake_fd < 0 || pthread_create(&cl->thread, NULL, run, cl) != 0) {
    wd_error("cluster: cannot start the relay thread");
    wd_cluster_free(cl);
    return -1;
  }
  cl->started = 1;
  *out = cl;
  return 0;
}

void wd_cluster_send(wd_cluster *cl, const uint8_t *relay, size_t len) {
  relay_item *it = malloc(sizeof *it + len);
  if (it == NULL) return;
  it->len = len;
  memcpy(it->data, relay, len);
  pthread_mutex_lock(&cl->mu);
  if (cl->out.count < QUEUE_MAX) {
    q_push(&cl->out, it);
    it = NULL;
  } else {
    cl->dropped++;
  }
  pthread_mutex_unlock(&cl->mu);
  free(it);
  uint64_t one = 1;
  if (write(cl->wake_fd, &one, sizeof one) < 0) { /* the eventfd is full: it is awake */
  }
}

int wd_cluster_take(wd_cluster *cl, wd_relay **relay, int *resync) {
  pthread_mutex_lock(&cl->mu);
  *resync = cl->resync;
  cl->resync = 0;
  *relay = q_pop(&cl->in);
  pthread_mutex_unlock(&cl->mu);
  return *relay != NULL || *resync;
}

void wd_cluster_stats(wd_cluster *cl, uint64_t *sent, uint64_t *heard, uint64_t *dropped,
                      uint64_t *reconnects) {
  pthread_mutex_lock(&cl->mu);
  *sent = cl->sent;
  *heard = cl->heard;
  *dropped = cl->dropped;
  *reconnects = cl->reconnects;
  pthread_mutex_unlock(&cl->mu);
}

/* Sends what is queued (a BYE at shutdown), for at most `flush_ms`. */
void wd_cluster_flush(wd_cluster *cl, uint64_t flush_ms) {
  for (uint64_t waited = 0; waited < flush_ms; waited += 10) {
    pthread_mutex_lock(&cl->mu);
    size_t left = cl->out.count;
    pthread_mutex_unlock(&cl->mu);
    if (left == 0) return;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

void wd_cluster_free(wd_cluster *cl) {
  if (cl == NULL) return;
  if (cl->started) {
    pthread_mutex_lock(&cl->mu);
    cl->stopping = 1;
    pthread_mutex_unlock(&cl->mu);
    uint64_t one = 1;
    if (write(cl->wake_fd, &one, sizeof one) < 0) {
    }
    pthread_join(cl->thread, NULL);
  }
  if (cl->wake_fd >= 0) close(cl->wake_fd);
  q_free(&cl->out);
  q_free(&cl->in);
  pthread_mutex_destroy(&cl->mu);
  free(cl->conninfo);
  free(cl);
}
