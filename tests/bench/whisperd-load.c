/*
 * whisperd-load: a load benchmark of whisperd, the reference server of the
 * sync protocol, driven by real client engines over real WebSockets.
 *
 * It starts a whisperd (the one built beside it, or --whisperd PATH) on
 * 127.0.0.1 with a port it picks (--port 0) and a store in a new temporary
 * directory, and measures, in one process and one thread on one libuv
 * loop (libwebsockets' client connections on it, as a foreign loop):
 *
 *   1. set-up: N simulated devices (--clients, default 200), each a
 *      whisper_ctx on a memory store with its own identity and a
 *      whisper_client engine (prekey_batch 5). They register and log in
 *      in waves of max(25, N/100) connections (the warm-up), disconnect,
 *      and then all N connect and log in at once (at most 256 in their
 *      login at a time); with --hold S they are then held idle S seconds.
 *   2. messages: in a ring, device i sends M (--messages, default 20)
 *      messages of 100 B to device i+1 (mod N), 1:1 through whisperd.
 *      Paced by default: a device sends its next message when the engine
 *      reports the previous one SENT, so a message never waits in the
 *      sender's own outbox behind the others (--burst: all M at once).
 *      --rate R: an open loop instead, device i's message k due at
 *      (k*N + i) / R s and sent then, whatever came back.
 *      Throughput: N*M / (last delivery - first send call). Latency of
 *      each message: whisper_client_send() (with --rate: the time it was
 *      due) -> WHISPER_EV_MESSAGE at its recipient, on this process's
 *      CLOCK_MONOTONIC; with --rate also how late the calls were, and
 *      whether the tool kept to its schedule.
 *   3. memory: whisperd's VmRSS (/proc/PID/status) with 0 connections
 *      after the warm-up, and with the N devices logged in and idle; then,
 *      on a second, fresh whisperd, with 0 connections after a small
 *      warm-up and with K (--idle, default 1000) plain WebSocket
 *      connections that only completed the handshake and received the
 *      Challenge (no engine: raw sockets on epoll). The difference /
 *      count is the figure. How fast they open and close, and the CPU
 *      either side spends on it, are printed beside it.
 *
 * Every message is checked: its body (sender, index, run tag, filler), its
 * sender, conversation and client id, and that it arrives exactly once at
 * its recipient; every message must also be reported SENT once to its
 * sender and DELIVERED by its recipient's device. The program exits 1 when
 * a check fails (a message lost, duplicated, corrupted or misrouted, a
 * status missing), when whisperd dies or cannot be started, or when a
 * phase does not finish within --timeout seconds; otherwise 0, whatever
 * the figures (they are informational). 2: bad usage.
 *
 * With --pg, --nodes N or --compare-pg (figures 1 and 2 only): whisperd
 * runs over a private PostgreSQL this program starts (tests/tools/pg_cluster.sh,
 * synchronous_commit and fsync on) and stops, as N nodes (--node 1..N,
 * relays over LISTEN/NOTIFY) with the devices spread round-robin over them,
 * so that every message of the ring crosses nodes; each node's CPU per
 * message and PostgreSQL's (its postmaster and children) are reported.
 * --compare-pg runs SQLite one node, PostgreSQL one node (alone, then in
 * cluster mode) and 2..N nodes one after the other, and prints one table.
 * Exit 77 (skipped) when PostgreSQL's server is not installed.
 *
 * tests/bench/README.md describes the figures and how to read them.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <libwebsockets.h>
#include <uv.h>

#include <whisper/whisper.h>

#include "bench_clock.h"

#ifndef WHISPERD_LOAD_WHISPERD
#define WHISPERD_LOAD_WHISPERD "whisperd"
#endif
#ifndef WHISPERD_LOAD_PG_CLUSTER
#define WHISPERD_LOAD_PG_CLUSTER "tests/tools/pg_cluster.sh"
#endif

#define PROG "whisperd-load"
#define SUBPROTOCOL "whisper-sync-v1"
#define WS_PATH "/v1/ws"
#define HOST "127.0.0.1"
#define BODY_LEN 100
#define BODY_MAGIC "WLD1"
#define REG_WAVE 25         /* devices registering at once in the warm-up (or N/100) */
#define IDLE_WARMUP 16      /* plain connections opened and closed before the idle baseline */
#define IDLE_INFLIGHT 256   /* plain connections in their handshake at once */
#define LOGIN_INFLIGHT 256  /* devices connecting and logging in at once */
#define SETTLE_S 0.3        /* quiet time before an RSS reading */
#define PLAIN_BUF 512       /* a plain connection's answer: the 101 and the Challenge */
/* Source addresses of our connections, 127.0.0.1 .. 127.0.0.N_SRC (all
 * loopback): from one address Linux hands out the even ports of its
 * 28,232 ephemeral ones to connect() first, and past ~14,000 connections
 * each connect() searches through all of them (hundreds of us in the
 * kernel, growing). Spread over 16 addresses no connect() searches. */
#define N_SRC 16
#define MAX_RX (4u << 20)
#define MAX_ERRORS_SHOWN 10

/* --- options ----------------------------------------------------------------- */

static int g_clients = 200;
static int g_messages = 20;
static int g_idle = 1000;
static int g_quick;
static int g_burst;
static int g_hold; /* --hold S: the logged-in devices are held idle S seconds (their pings) */
static int g_no_receipts; /* --no-receipts: no DELIVERED receipts (their cost, by difference) */
static int g_window = 1;  /* --window W: messages a device has sent and not seen SENT yet */
static int g_catch;       /* --catch-up: the catch-up figure instead of the others */
static double g_rate;     /* --rate R: open loop, R messages per second in all (0: closed loop) */
#define LATE_BAR 0.010    /* sends later than their schedule by this at p99: not kept up */
static int g_keep;
static double g_timeout = 120;
static const char *g_whisperd = WHISPERD_LOAD_WHISPERD;
static const char *g_baseline;  /* --baseline PATH: the same runs against it first */
#define MAX_ARGS 32
static const char *g_args[MAX_ARGS + 1];      /* --whisperd-arg: to every whisperd started */
static const char *g_base_args[MAX_ARGS + 1]; /* those and --baseline-arg: to the baseline */
static int g_n_args, g_n_base_args;
/* --pg, --nodes, --compare-pg: whisperd over PostgreSQL, as several nodes */
#define MAX_NODES 8
#define SKIPPED 77 /* ctest's SKIP_RETURN_CODE: no PostgreSQL server installed */
static int g_pg;          /* --pg: the nodes over a private PostgreSQL */
static int g_nodes = 1;   /* --nodes N */
static int g_cluster1;    /* --cluster: one node in cluster mode (--node 1) too */
static int g_compare;     /* --compare-pg */
static int g_repeat = 1;  /* --repeat R: each configuration R times, interleaved */
static int g_multi;       /* one of the above: nodes_main() runs instead of main's path */
static const char *g_pg_script = WHISPERD_LOAD_PG_CLUSTER; /* --pg-cluster PATH */

/* --- clocks and small helpers ---------------------------------------------------- */

/* The engines' clock: milliseconds since the epoch, as whisper-chat gives it. */
static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double tv_s(const struct timeval *tv) {
  return (double)tv->tv_sec + (double)tv->tv_usec * 1e-6;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static double load_average(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
}

/* --- whisperd processes ---------------------------------------------------------- */

typedef struct server {
  const char *label;
  pid_t pid;
  int port;
  char hostport[64];
  int metrics_port; /* --metrics-listen 127.0.0.1:0: "whisperd: metrics on HOST:PORT" */
  int old_metrics;  /* a whisperd from before --metrics-listen: /metrics on its port */
  char metrics_hostport[64];
  char db[512];
  char log[512];
} server;

static char g_dir[256];       /* the temporary directory */
#define N_SLOTS (MAX_NODES + 1)
static server *g_servers[N_SLOTS]; /* running, to stop on exit */
static int g_failed;          /* checks failed */

/* Removes a directory and what it holds, `depth` levels down (whisperd's
 * blob directory, made beside its store). */
static void remove_tree(const char *dir, int depth) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[600];
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (unlink(path) != 0 && (errno == EISDIR || errno == EPERM) && depth > 0)
        remove_tree(path, depth - 1);
    }
    closedir(d);
  }
  rmdir(dir);
}

static void remove_dir(void) {
  if (!g_dir[0] || g_keep) return;
  remove_tree(g_dir, 2);
  g_dir[0] = 0;
}

static void print_log_tail(const server *s, int lines) {
  FILE *f = fopen(s->log, "r");
  if (!f) return;
  char **ring = calloc((size_t)lines, sizeof *ring);
  char buf[1024];
  int n = 0;
  while (ring && fgets(buf, sizeof buf, f)) {
    free(ring[n % lines]);
    ring[n % lines] = strdup(buf);
    n++;
  }
  fclose(f);
  if (!ring) return;
  if (n) fprintf(stderr, "%s: the last lines of %s's log (%s):\n", PROG, s->label, s->log);
  for (int i = n > lines ? n - lines : 0; i < n; i++)
    if (ring[i % lines]) fprintf(stderr, "  | %s", ring[i % lines]);
  for (int i = 0; i < lines; i++) free(ring[i]);
  free(ring);
}

static void kill_servers(void) {
  for (int i = 0; i < N_SLOTS; i++) {
    server *s = g_servers[i];
    if (s && s->pid > 0) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, NULL, 0);
      s->pid = 0;
    }
    g_servers[i] = NULL;
  }
}

static void pg_stop(void);

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  fprintf(stderr, "%s: FAIL: ", PROG);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  for (int i = 0; i < N_SLOTS; i++)
    if (g_servers[i]) print_log_tail(g_servers[i], 20);
  kill_servers();
  pg_stop();
  if (g_keep && g_dir[0]) fprintf(stderr, "%s: kept %s\n", PROG, g_dir);
  remove_dir();
  exit(1);
}

static void on_fatal_signal(int sig) {
  /* ctest's timeout, ^C: do not leave a whisperd behind (it also has
   * PR_SET_PDEATHSIG). */
  for (int i = 0; i < N_SLOTS; i++)
    if (g_servers[i] && g_servers[i]->pid > 0) kill(g_servers[i]->pid, SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* 1 if `path --help` names `flag` (an older whisperd as the baseline may
 * not have it). */
static int help_mentions(const char *path, const char *flag) {
  char cmd[1200], line[512];
  snprintf(cmd, sizeof cmd, "'%s' --help 2>&1", path);
  FILE *f = popen(cmd, "r");
  int found = 0;
  while (f && fgets(line, sizeof line, f))
    if (strstr(line, flag)) found = 1;
  if (f) pclose(f);
  return found;
}

/* Starts whisperd with `extra` flags (NULL-terminated) and waits for its
 * "whisperd: listening on HOST:PORT" line. */
static void server_start(server *s, int slot, const char *label, const char *dbname,
                         const char *path, const char *const *extra) {
  memset(s, 0, sizeof *s);
  s->label = label;
  snprintf(s->db, sizeof s->db, "%s/%s.db", g_dir, dbname);
  snprintf(s->log, sizeof s->log, "%s/%s.log", g_dir, dbname);
  const char *argv[80];
  int n = 0;
  argv[n++] = path;
  argv[n++] = "--host";
  argv[n++] = HOST;
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--db";
  argv[n++] = s->db;
  argv[n++] = "--log-level";
  argv[n++] = "warn";
  s->old_metrics = !help_mentions(path, "--metrics-listen"); /* a baseline from before it */
  if (!s->old_metrics) {
    argv[n++] = "--metrics-listen"; /* its own port, for GET /metrics */
    argv[n++] = HOST ":0";
    argv[n++] = "--max-prelogin-per-address"; /* every connection comes from 127.0.0.1 */
    argv[n++] = "0";
  }
  for (; extra && *extra && n < 78; extra++) argv[n++] = *extra;
  argv[n] = NULL;

  pid_t parent = getpid();
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) fatal("fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    /* whisperd starts with the soft descriptor limit most service managers
     * give (1024) and must raise it itself to hold more connections */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 1024) {
      rl.rlim_cur = 1024;
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || null < 0) _exit(127);
    dup2(null, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    signal(SIGPIPE, SIG_DFL);
    execv(path, (char *const *)argv);
    dprintf(2, "%s: cannot run %s: %s\n", PROG, path, strerror(errno));
    _exit(127);
  }
  s->pid = pid;
  g_servers[slot] = s;

  double until = mono_s() + 20;
  for (;;) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      s->pid = 0;
      fatal("%s (%s) exited before listening (status %d)", label, path,
            WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    FILE *f = fopen(s->log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      const char *m = strstr(line, "whisperd: metrics on "); /* printed before the listening line */
      if (m) {
        m += strlen("whisperd: metrics on ");
        const char *colon = strrchr(m, ':');
        if (colon) s->metrics_port = atoi(colon + 1);
        snprintf(s->metrics_hostport, sizeof s->metrics_hostport, "%.*s",
                 (int)strcspn(m, "\r\n"), m);
        continue;
      }
      const char *p = strstr(line, "whisperd: listening on ");
      if (!p) continue;
      p += strlen("whisperd: listening on ");
      const char *colon = strrchr(p, ':');
      if (colon) {
        s->port = atoi(colon + 1);
        snprintf(s->hostport, sizeof s->hostport, "%.*s", (int)strcspn(p, "\r\n"), p);
      }
      break;
    }
    if (f) fclose(f);
    if (s->port > 0 && s->metrics_port <= 0 && s->old_metrics) s->metrics_port = s->port;
    if (s->port > 0 && s->metrics_port <= 0) fatal("%s printed no metrics line", label);
    if (s->port > 0) return;
    if (mono_s() > until) fatal("%s did not print its listening line in 20 s", label);
    sleep_s(0.01);
  }
}

/* SIGTERM, then waits (SIGKILL after 10 s, or 70 s when connections are
 * open: whisperd #2's shutdown timeout is 60 s). Returns 0 if it stopped
 * cleanly (exit status 0). */
/* Set while connections are open at a shutdown: serves them (one short
 * pass of the loop) while whisperd is waited for; and whisperd's CPU time
 * as last seen before it exited (g_stop_pid's schedstat). */
static void (*g_stop_serve)(void);
static pid_t g_stop_pid;
static double g_stop_run, g_stop_wait;
static int proc_sched_s(pid_t pid, double *run, double *wait);

static int server_stop(server *s, int slot) {
  if (s->pid <= 0) return -1;
  kill(s->pid, SIGTERM);
  double limit = g_stop_serve ? 70 : 10;
  double until = mono_s() + limit;
  int st = 0, done = 0;
  while (!done) {
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) done = 1;
    else if (mono_s() > until) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, &st, 0);
      fprintf(stderr, "%s: %s did not stop within %.0f s of SIGTERM: killed\n", PROG, s->label,
              limit);
      s->pid = 0;
      g_servers[slot] = NULL;
      return -1;
    } else if (g_stop_serve) {
      double run, wait;
      if (g_stop_pid == s->pid && proc_sched_s(s->pid, &run, &wait) == 0)
        g_stop_run = run, g_stop_wait = wait;
      g_stop_serve();
    } else {
      sleep_s(0.01);
    }
  }
  s->pid = 0;
  g_servers[slot] = NULL;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  fprintf(stderr, "%s: %s ended with %s %d at shutdown\n", PROG, s->label,
          WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  print_log_tail(s, 20);
  return -1;
}

static void server_check_alive(server *s) {
  int st;
  if (s->pid > 0 && waitpid(s->pid, &st, WNOHANG) == s->pid) {
    s->pid = 0;
    if (WIFSIGNALED(st))
      fatal("%s died of signal %d (%s)", s->label, WTERMSIG(st), strsignal(WTERMSIG(st)));
    fatal("%s exited with status %d", s->label, WEXITSTATUS(st));
  }
}

/* The kernel's slab memory, all of it (/proc/meminfo Slab), in KiB; -1
 * if unknown. A socket's kernel side (the TCP socket, its file, its
 * epoll entry) is there, not in any process's RSS. */
static long slab_kib(void) {
  char line[256];
  long v = -1;
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "Slab:", 5) == 0) {
      v = strtol(line + 5, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* VmRSS in KiB, -1 if unknown. */
static long rss_kib(pid_t pid) {
  char path[64], line[256];
  long v = -1;
  snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) {
      v = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* User + system CPU seconds of a process. */
static double proc_cpu_s(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  /* after the comm: state (3) ... utime (14), stime (15) */
  unsigned long long ut = 0, st = 0;
  int field = 2;
  for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
    field++;
    if (field == 14) ut = strtoull(tok, NULL, 10);
    if (field == 15) {
      st = strtoull(tok, NULL, 10);
      break;
    }
  }
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* On-CPU and run-queue wait seconds of a thread (/proc/.../schedstat): the
 * wait is the time it was ready to run but other processes had the CPUs. */
static int sched_s(const char *path, double *run, double *wait) {
  unsigned long long r = 0, w = 0;
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int n = fscanf(f, "%llu %llu", &r, &w);
  fclose(f);
  if (n != 2) return -1;
  *run = (double)r * 1e-9;
  *wait = (double)w * 1e-9;
  return 0;
}

static int proc_sched_s(pid_t pid, double *run, double *wait) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/schedstat", (long)pid);
  return sched_s(path, run, wait);
}

/* The CPU whisperd and this process used over a phase, and how long
 * each was ready to run but waited for a CPU (other processes had them):
 * when they waited, the phase's rate says more about the machine than
 * about whisperd, and the CPU time per operation is the figure. */
typedef struct cpu_span {
  pid_t pid;
  double srv_run, srv_wait, own_run, own_wait;
} cpu_span;

static void cpu_read(pid_t pid, double v[4]) {
  if (proc_sched_s(pid, &v[0], &v[1]) != 0) v[0] = proc_cpu_s(pid), v[1] = 0;
  if (sched_s("/proc/thread-self/schedstat", &v[2], &v[3]) != 0) v[2] = cpu_s(), v[3] = 0;
}

static void span_begin(cpu_span *c, pid_t pid) {
  double v[4];
  c->pid = pid;
  cpu_read(pid, v);
  c->srv_run = v[0], c->srv_wait = v[1], c->own_run = v[2], c->own_wait = v[3];
}

static void span_end(cpu_span *c) {
  double v[4];
  cpu_read(c->pid, v);
  c->srv_run = v[0] - c->srv_run, c->srv_wait = v[1] - c->srv_wait;
  c->own_run = v[2] - c->own_run, c->own_wait = v[3] - c->own_wait;
}

/* "whisperd 1.20 s (61 us each, waited 0.40 s for a CPU); whisperd-load ..." */
static const char *fmt_span(char *buf, size_t cap, const cpu_span *c, long n) {
  double d = n > 0 ? (double)n : 1;
  snprintf(buf, cap,
           "CPU whisperd %.2f s (%.0f us each; waited %.2f s for a CPU), whisperd-load %.2f s "
           "(%.0f us each; waited %.2f s)",
           c->srv_run, c->srv_run / d * 1e6, c->srv_wait, c->own_run, c->own_run / d * 1e6,
           c->own_wait);
  return buf;
}

/* --- a private PostgreSQL (--pg) ----------------------------------------------------- */

/* tests/tools/pg_cluster.sh starts it (initdb in g_dir/pg, on loopback, as
 * the postgres user when root; PostgreSQL's defaults: fsync on,
 * synchronous_commit on) and stops it. A watchdog process stops it too if
 * this program dies any other way (a signal, ctest's timeout): it waits
 * for the end of a pipe only this process holds. */
static char g_pg_dir[300];      /* the cluster's directory; "" when none runs */
static char g_pg_conninfo[512]; /* libpq keywords, database whisper */
static char g_pg_about[1024];   /* its version and durability settings, as it says */
static PGconn *g_pg_conn;        /* ours, for its statistics */
#define MAX_PG_SET 16
static const char *g_pg_set[MAX_PG_SET]; /* --pg-set NAME=VALUE: ALTER SYSTEM SET, reloaded */
static int g_n_pg_set;
static pid_t g_pg_postmaster;
static int g_pg_watch = -1;     /* the write end of the watchdog's pipe */
static pid_t g_pg_watch_pid;

/* 1 if PostgreSQL's server is installed where pg_cluster.sh looks for it. */
static int pg_installed(void) {
  glob_t g;
  int found = 0;
  if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; i++)
      if (access(g.gl_pathv[i], X_OK) == 0) found = 1;
  globfree(&g);
  return found;
}

/* Runs `pg_cluster.sh CMD g_pg_dir [DB]`, its output appended to
 * g_dir/pg_cluster.log. Its exit status (-1: it could not run). */
static int pg_script(const char *cmd, const char *db) {
  char log[600];
  snprintf(log, sizeof log, "%s/pg_cluster.log", g_dir);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) fd = null;
    if (null >= 0) dup2(null, 0);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    signal(SIGPIPE, SIG_DFL);
    execl("/bin/bash", "bash", g_pg_script, cmd, g_pg_dir, db, (char *)NULL);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void pg_watchdog(void) {
  int p[2];
  if (pipe(p) != 0) fatal("pipe: %s", strerror(errno));
  fcntl(p[0], F_SETFD, FD_CLOEXEC); /* (whisperd must not hold it) */
  fcntl(p[1], F_SETFD, FD_CLOEXEC);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) fatal("fork: %s", strerror(errno));
  if (pid == 0) {
    /* its own process group (a ^C to ours does not end it first), deaf
     * to the signals that end us, holding nothing of ours but the pipe */
    setpgid(0, 0);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    for (int fd = 3; fd < 4096; fd++)
      if (fd != p[0]) close(fd);
    char c;
    ssize_t r;
    while ((r = read(p[0], &c, 1)) < 0 && errno == EINTR) {
    }
    if (r == 1) _exit(0); /* stopped by us already */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) dup2(null, 0), dup2(null, 1), dup2(null, 2);
    pid_t stop = fork();
    if (stop == 0) {
      execl("/bin/bash", "bash", g_pg_script, "stop", g_pg_dir, (char *)NULL);
      _exit(127);
    }
    if (stop > 0) waitpid(stop, NULL, 0);
    remove_dir(); /* (as we would have; not with --keep) */
    _exit(0);
  }
  close(p[0]);
  g_pg_watch = p[1];
  g_pg_watch_pid = pid;
}

/* Prints the end of pg_cluster.sh's output and of PostgreSQL's log. */
static void pg_print_logs(void) {
  server s;
  memset(&s, 0, sizeof s);
  s.label = "pg_cluster.sh";
  snprintf(s.log, sizeof s.log, "%s/pg_cluster.log", g_dir);
  print_log_tail(&s, 10);
  s.label = "PostgreSQL";
  snprintf(s.log, sizeof s.log, "%s/server.log", g_pg_dir);
  print_log_tail(&s, 10);
}

static void pg_start(void) {
  snprintf(g_pg_dir, sizeof g_pg_dir, "%s/pg", g_dir);
  pg_watchdog();
  double t0 = mono_s();
  int st = pg_script("start", "whisper");
  if (st != 0) {
    pg_print_logs();
    fatal("%s start %s: exit status %d", g_pg_script, g_pg_dir, st);
  }
  char path[600];
  snprintf(path, sizeof path, "%s/conninfo", g_pg_dir);
  FILE *f = fopen(path, "r");
  if (!f || !fgets(g_pg_conninfo, sizeof g_pg_conninfo, f)) fatal("no %s", path);
  fclose(f);
  g_pg_conninfo[strcspn(g_pg_conninfo, "\n")] = 0;
  snprintf(path, sizeof path, "%s/data/postmaster.pid", g_pg_dir);
  f = fopen(path, "r");
  long pm = 0;
  if (!f || fscanf(f, "%ld", &pm) != 1 || pm <= 0) fatal("no postmaster pid in %s", path);
  fclose(f);
  g_pg_postmaster = (pid_t)pm;
  PGconn *c = PQconnectdb(g_pg_conninfo);
  if (PQstatus(c) != CONNECTION_OK) fatal("PostgreSQL: %s", PQerrorMessage(c));
  /* --pg-set: ALTER SYSTEM SET for each, then a reload, read back below */
  for (int i = 0; i < g_n_pg_set; i++) {
    const char *eq = strchr(g_pg_set[i], '=');
    char name[64], sql[512];
    snprintf(name, sizeof name, "%.*s", (int)(eq - g_pg_set[i]), g_pg_set[i]);
    char *lit = PQescapeLiteral(c, eq + 1, strlen(eq + 1));
    if (!lit) fatal("PostgreSQL: %s", PQerrorMessage(c));
    snprintf(sql, sizeof sql, "ALTER SYSTEM SET %s = %s", name, lit);
    PQfreemem(lit);
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
      fatal("--pg-set %s: %s", g_pg_set[i], PQerrorMessage(c));
    PQclear(res);
  }
  if (g_n_pg_set) {
    PQclear(PQexec(c, "SELECT pg_reload_conf()"));
    PQfinish(c);
    sleep_s(0.3); /* (the postmaster and its children reload on SIGHUP) */
    c = PQconnectdb(g_pg_conninfo);
    if (PQstatus(c) != CONNECTION_OK) fatal("PostgreSQL: %s", PQerrorMessage(c));
  }
  /* what it runs with: the durability the figures are for */
  PGresult *res = PQexec(c, "SELECT current_setting('server_version'), "
                            "current_setting('synchronous_commit'), current_setting('fsync'), "
                            "current_setting('wal_sync_method'), "
                            "current_setting('shared_buffers'), "
                            "current_setting('deadlock_timeout')");
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
    fatal("PostgreSQL: %s", PQerrorMessage(c));
  int durable =
      strcmp(PQgetvalue(res, 0, 1), "on") == 0 && strcmp(PQgetvalue(res, 0, 2), "on") == 0;
  if (!durable && !g_n_pg_set)
    fatal("PostgreSQL runs with synchronous_commit=%s, fsync=%s: the figures are for on, on",
          PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
  int n = snprintf(g_pg_about, sizeof g_pg_about,
                   "PostgreSQL %s, synchronous_commit=%s, fsync=%s%s, wal_sync_method=%s, "
                   "shared_buffers=%s, deadlock_timeout=%s",
                   PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                   durable ? "" : " (NOT durable: not how whisperd may run)",
                   PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));
  PQclear(res);
  for (int i = 0; i < g_n_pg_set && n > 0 && (size_t)n < sizeof g_pg_about; i++) {
    const char *eq = strchr(g_pg_set[i], '=');
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT current_setting('%.*s')", (int)(eq - g_pg_set[i]),
             g_pg_set[i]);
    res = PQexec(c, sql);
    n += snprintf(g_pg_about + n, sizeof g_pg_about - (size_t)n, "%s --pg-set %.*s: %s",
                  i ? "," : ";", (int)(eq - g_pg_set[i]), g_pg_set[i],
                  PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?");
    PQclear(res);
  }
  g_pg_conn = c;
  printf("%s: a private cluster in %s (started in %.1f s), %s\n", g_pg_about, g_pg_dir,
         mono_s() - t0, g_pg_conninfo);
  fflush(stdout);
}

static void copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "r"), *b = a ? fopen(to, "w") : NULL;
  char buf[8192];
  size_t n;
  while (b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  if (b) fclose(b);
  if (a) fclose(a);
}

/* Stops it (and its directory goes); its log is kept with --keep. */
static void pg_stop(void) {
  if (g_pg_dir[0]) {
    if (g_keep) {
      char from[600], to[600];
      snprintf(from, sizeof from, "%s/server.log", g_pg_dir);
      snprintf(to, sizeof to, "%s/postgresql.log", g_dir);
      copy_file(from, to);
    }
    if (g_pg_conn) PQfinish(g_pg_conn);
    g_pg_conn = NULL;
    if (pg_script("stop", NULL) != 0)
      fprintf(stderr, "%s: warning: %s stop %s failed\n", PROG, g_pg_script, g_pg_dir);
    g_pg_dir[0] = 0;
    g_pg_postmaster = 0;
  }
  if (g_pg_watch >= 0) {
    /* (had the byte not gone, it would stop the stopped cluster: harmless) */
    ssize_t w = write(g_pg_watch, "x", 1);
    (void)w;
    close(g_pg_watch);
    g_pg_watch = -1;
    waitpid(g_pg_watch_pid, NULL, 0);
  }
}

/* PostgreSQL's own counters: transactions of the database, and its WAL
 * (pg_stat_wal: PostgreSQL 14 and later; -1 when unknown). */
typedef struct pg_stats {
  long long commits, rollbacks, deadlocks, fetched, inserted, updated, deleted;
  long long wal_records, wal_bytes, wal_writes, wal_syncs;
} pg_stats;

static void pg_stats_read(pg_stats *st) {
  memset(st, 0xff, sizeof *st); /* -1 */
  if (!g_pg_conn) return;
  PGresult *res = PQexec(g_pg_conn, "SELECT xact_commit, xact_rollback, deadlocks, tup_fetched, "
                                    "tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                                    "WHERE datname = current_database()");
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
    st->commits = atoll(PQgetvalue(res, 0, 0));
    st->rollbacks = atoll(PQgetvalue(res, 0, 1));
    st->deadlocks = atoll(PQgetvalue(res, 0, 2));
    st->fetched = atoll(PQgetvalue(res, 0, 3));
    st->inserted = atoll(PQgetvalue(res, 0, 4));
    st->updated = atoll(PQgetvalue(res, 0, 5));
    st->deleted = atoll(PQgetvalue(res, 0, 6));
  }
  PQclear(res);
  res = PQexec(g_pg_conn, "SELECT wal_records, wal_bytes, wal_write, wal_sync FROM pg_stat_wal");
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
    st->wal_records = atoll(PQgetvalue(res, 0, 0));
    st->wal_bytes = atoll(PQgetvalue(res, 0, 1));
    st->wal_writes = atoll(PQgetvalue(res, 0, 2));
    st->wal_syncs = atoll(PQgetvalue(res, 0, 3));
  }
  PQclear(res);
}

/* Drops a run's tables (`table` and those named `table`_...: the 2PC
 * decisions, whisperd's blob metadata), so that every run finds PostgreSQL
 * as the first did. */
static void pg_drop_tables(const char *table) {
  if (!g_pg_conn) return;
  const char *params[1] = {table};
  PGresult *res =
      PQexecParams(g_pg_conn,
                   "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND "
                   "(tablename = $1 OR tablename LIKE replace($1, '_', '\\_') || '\\_%')",
                   1, NULL, params, NULL, NULL, 0);
  for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++) {
    char sql[128];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", PQgetvalue(res, i, 0));
    PQclear(PQexec(g_pg_conn, sql));
  }
  PQclear(res);
}

/* The parent pid of a process and the CPU seconds of its reaped children
 * (cutime + cstime); -1 if it is gone. */
static int proc_parent(pid_t pid, pid_t *ppid, double *children_s) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'), *save = NULL;
  if (!p) return -1;
  /* after the comm: state (3), ppid (4) ... cutime (16), cstime (17) */
  unsigned long long cu = 0, cs = 0;
  int field = 2;
  for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    field++;
    if (field == 4) *ppid = (pid_t)strtol(tok, NULL, 10);
    if (field == 16) cu = strtoull(tok, NULL, 10);
    if (field == 17) {
      cs = strtoull(tok, NULL, 10);
      break;
    }
  }
  if (children_s) *children_s = (double)(cu + cs) / (double)sysconf(_SC_CLK_TCK);
  return 0;
}

/* PostgreSQL's CPU: the postmaster and its children (the backends of every
 * node's connections, the WAL writer, the checkpointer, autovacuum...), on
 * a CPU and waiting for one (schedstat), plus what the children that ended
 * used (the postmaster's cutime + cstime: their wait is not known). The
 * count of processes in *procs. */
static int pg_sched_s(double *run, double *wait, int *procs) {
  *run = *wait = 0;
  *procs = 0;
  pid_t pm = g_pg_postmaster, pp;
  double reaped;
  if (pm <= 0 || proc_parent(pm, &pp, &reaped) != 0) return -1;
  *run += reaped;
  DIR *d = opendir("/proc");
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
    if (pid != pm && (proc_parent(pid, &pp, NULL) != 0 || pp != pm)) continue;
    double r, w;
    if (proc_sched_s(pid, &r, &w) != 0) continue;
    *run += r;
    *wait += w;
    (*procs)++;
  }
  closedir(d);
  return 0;
}

/* On-CPU and wait seconds of all the threads of a process (whisperd's
 * relay thread in cluster mode besides its loop). */
static int proc_sched_all_s(pid_t pid, double *run, double *wait) {
  char path[320];
  snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
  DIR *d = opendir(path);
  if (!d) return -1;
  *run = *wait = 0;
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    double r, w;
    snprintf(path, sizeof path, "/proc/%ld/task/%s/schedstat", (long)pid, e->d_name);
    if (sched_s(path, &r, &w) != 0) continue;
    *run += r;
    *wait += w;
    n++;
  }
  closedir(d);
  return n ? 0 : -1;
}

/* --- GET /metrics ------------------------------------------------------------------ */

typedef struct metrics {
  long long connections, authenticated, frames_in, frames_out, refused, messages_sent,
      entries_delivered, mailbox_depth;
} metrics;

static long long metric_value(const char *text, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, name, nl) == 0 && p[nl] == ' ') return strtoll(p + nl + 1, NULL, 10);
  return -1;
}

/* A blocking HTTP/1.1 GET on loopback (whisperd is another process: our
 * own loop may wait meanwhile). 0, or -1 after printing why. */
static int metrics_get(const server *s, metrics *m) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)s->metrics_port);
  inet_pton(AF_INET, HOST, &sa.sin_addr);
  char req[256];
  int rl = snprintf(req, sizeof req,
                    "GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                    s->metrics_hostport);
  size_t cap = 16384, len = 0;
  char *buf = malloc(cap);
  int ok = -1;
  if (!buf || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      write(fd, req, (size_t)rl) != rl)
    goto out;
  double until = mono_s() + 10;
  for (;;) {
    struct pollfd pfd = {fd, POLLIN, 0};
    int left = (int)((until - mono_s()) * 1000);
    if (left <= 0 || poll(&pfd, 1, left) <= 0) goto out;
    if (len + 4096 + 1 > cap) {
      char *p = realloc(buf, cap *= 2);
      if (!p) goto out;
      buf = p;
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) goto out;
    len += (size_t)r;
    buf[len] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (body) {
      const char *cl = strstr(buf, "content-length:");
      if (!cl) cl = strstr(buf, "Content-Length:");
      if (cl && cl < body && (size_t)(body + 4 - buf) + (size_t)atol(cl + 15) <= len) break;
    }
    if (r == 0) break;
  }
  if (strncmp(buf, "HTTP/1.1 200", 12) != 0 && strncmp(buf, "HTTP/1.0 200", 12) != 0) goto out;
  m->connections = metric_value(buf, "whisperd_connections");
  m->authenticated = metric_value(buf, "whisperd_authenticated_connections");
  m->frames_in = metric_value(buf, "whisperd_frames_received_total");
  m->frames_out = metric_value(buf, "whisperd_frames_sent_total");
  m->refused = metric_value(buf, "whisperd_frames_refused_total");
  m->messages_sent = metric_value(buf, "whisperd_messages_sent_total");
  m->entries_delivered = metric_value(buf, "whisperd_entries_delivered_total");
  m->mailbox_depth = metric_value(buf, "whisperd_mailbox_depth");
  ok = m->connections >= 0 ? 0 : -1;
out:
  if (ok != 0) fprintf(stderr, "%s: GET http://%s/metrics failed\n", PROG, s->metrics_hostport);
  free(buf);
  close(fd);
  return ok;
}

/* --- connections ----------------------------------------------------------------- */

enum { L_IDLE = 0, L_CONNECTING = 1, L_OPEN = 2 };

typedef struct qent {
  struct qent *next;
  whisper_buf *frame;
} qent;

/* A device's WebSocket connection (an lws client; the first member of a
 * device). */
typedef struct wlink {
  int state;
  struct lws *wsi;
  int close_wanted;
  int expect_close; /* a close now is ours, not a failure */
  uint8_t *rx;
  size_t rx_len, rx_cap;
  int rx_binary, rx_overflow;
  qent *head, *tail;
  unsigned opened;   /* handshakes completed */
  unsigned failures; /* attempts that failed or closed when we did not ask */
  char why[160];
} wlink;

typedef struct msgrec {
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  double t_sched; /* when it was due: --rate's schedule, else t_send */
  double t_send, t_sent, t_recv;
  uint8_t sent, delivered, received; /* counts of SENT, DELIVERED, EV_MESSAGE */
  uint8_t issued;
} msgrec;

typedef struct device {
  wlink ln;
  int idx;
  char name[16];
  whisper_store *store;
  whisper_ctx *ctx;
  whisper_client *client;
  int allow_connect;
  int registered, online, caught_up;
  int ready;   /* registered, online and caught up (counted in g_n_ready) */
  int waiting; /* in g_waiting, for a login slot */
  int next_k;  /* the next message to send */
  int dirty;
  size_t heap_pos; /* 1 + its index in g_heap (0: not in it) */
  uint64_t heap_at; /* its engine's next deadline, as last seen */
} device;

static struct lws_context *g_lws;
static uv_loop_t g_uv;     /* the loop: lws on it (a foreign loop), and the plain connections */
static uv_timer_t g_wake;  /* wakes the loop to look at the conditions again */
static server *g_cur; /* the whisperd the connections go to */
/* With --nodes N: the nodes, device i's connection going to node i mod N
 * (g_n_node 0 or 1: g_cur alone). */
static server *g_node[MAX_NODES];
static int g_n_node;

static server *server_for(int idx) { return g_n_node > 1 ? g_node[idx % g_n_node] : g_cur; }
static device *g_dev;
static device **g_dirty;
static size_t g_n_dirty;
static uint8_t *g_tx;
static size_t g_tx_cap;
static whisper_client_config_t g_cfg;
static uint8_t g_run_tag[8];

/* the message phase */
static msgrec *g_msg;
static unsigned g_received, g_sent_n, g_delivered_n;
static unsigned g_dups, g_bad, g_status_dups, g_errors, g_identity;
static unsigned g_unexpected_closes;

/* the devices' connections: not idle, ready; devices waiting for a login
 * slot (at most LOGIN_INFLIGHT connecting or logging in at once), a FIFO */
static int g_n_links, g_n_ready;
static device **g_waiting;
static size_t g_wait_head, g_n_waiting;

/* the engines' deadlines: a binary min-heap of devices by heap_at */
static device **g_heap;
static size_t g_heap_n;

static void mark_dirty(device *d) {
  if (d->dirty) return;
  d->dirty = 1;
  g_dirty[g_n_dirty++] = d;
}

static void queue_clear(wlink *l) {
  while (l->head) {
    qent *q = l->head;
    l->head = q->next;
    whisper_buf_free(q->frame);
    free(q);
  }
  l->tail = NULL;
}

static void update_ready(device *d);
static void login_slots(void);

static void link_ended(wlink *l, const char *why) {
  if (l->state == L_IDLE) return;
  g_n_links--;
  int was_open = l->state == L_OPEN;
  if (l->wsi) lws_set_opaque_user_data(l->wsi, NULL);
  l->wsi = NULL;
  l->state = L_IDLE;
  l->close_wanted = 0;
  l->rx_len = 0;
  queue_clear(l);
  if (!l->expect_close) {
    l->failures++;
    g_unexpected_closes++;
    if (g_unexpected_closes <= MAX_ERRORS_SHOWN)
      fprintf(stderr, "%s: warning: a connection %s: %s\n", PROG,
              was_open ? "closed" : "failed",
              why && *why ? why : l->why[0] ? l->why : "the socket closed without a close frame");
  }
  l->why[0] = 0;
  device *d = (device *)l;
  whisper_client_disconnected(d->client, wall_ms());
  d->online = d->caught_up = 0;
  update_ready(d);
  mark_dirty(d);
  login_slots();
}

static const char *src_addr(size_t i) {
  static char names[N_SRC][16];
  char *n = names[i % N_SRC];
  if (!n[0]) snprintf(n, sizeof names[0], "127.0.0.%u", (unsigned)(1 + i % N_SRC));
  return n;
}

static void link_connect(wlink *l) {
  struct lws_client_connect_info ci;
  const server *to = server_for(((device *)l)->idx);
  memset(&ci, 0, sizeof ci);
  ci.iface = src_addr((size_t)((device *)l)->idx);
  ci.context = g_lws;
  ci.address = HOST;
  ci.port = to->port;
  ci.path = WS_PATH;
  ci.host = to->hostport;
  ci.origin = to->hostport;
  ci.protocol = SUBPROTOCOL;
  ci.local_protocol_name = SUBPROTOCOL;
  ci.opaque_user_data = l;
  g_n_links++;
  l->state = L_CONNECTING;
  l->close_wanted = 0;
  l->expect_close = 0;
  l->rx_len = 0;
  l->why[0] = 0;
  l->wsi = NULL;
  struct lws *wsi = lws_client_connect_via_info(&ci);
  /* A failure may have been called back already (state IDLE then). */
  if (l->state == L_CONNECTING) {
    if (wsi) l->wsi = wsi;
    else link_ended(l, "cannot connect");
  }
}

static void link_close(wlink *l) {
  l->expect_close = 1;
  if (l->state == L_OPEN && l->wsi) {
    l->close_wanted = 1;
    lws_callback_on_writable(l->wsi);
  } else if (l->state == L_CONNECTING && l->wsi) {
    lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }
}

static void link_send(wlink *l, whisper_buf *frame) {
  qent *q = malloc(sizeof *q);
  if (!q) fatal("out of memory");
  q->next = NULL;
  q->frame = frame;
  if (l->tail) l->tail->next = q;
  else l->head = q;
  l->tail = q;
  lws_callback_on_writable(l->wsi);
}

/* --- checking a Challenge without an engine ------------------------------------------- */

static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end) return -1;
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* Walks one protobuf message; for fields of wire type 2 numbered `want`,
 * calls back with their bytes. Returns the value of varint field 1 (-1 if
 * absent) or -2 when the bytes do not parse. */
typedef void (*pb_fn)(void *arg, const uint8_t *b, size_t n);
static long long pb_walk(const uint8_t *b, size_t n, unsigned want, pb_fn fn, void *arg) {
  const uint8_t *p = b, *end = b + n;
  long long f1 = -1;
  while (p < end) {
    uint64_t key, v;
    if (pb_varint(&p, end, &key)) return -2;
    unsigned field = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
    switch (wt) {
      case 0:
        if (pb_varint(&p, end, &v)) return -2;
        if (field == 1) f1 = (long long)v;
        break;
      case 1:
        if (end - p < 8) return -2;
        p += 8;
        break;
      case 5:
        if (end - p < 4) return -2;
        p += 4;
        break;
      case 2:
        if (pb_varint(&p, end, &v) || v > (uint64_t)(end - p)) return -2;
        if (field == want && fn) fn(arg, p, (size_t)v);
        p += v;
        break;
      default:
        return -2;
    }
  }
  return f1;
}

static void nonce_cb(void *arg, const uint8_t *b, size_t n) {
  (void)b;
  if (n == 32) *(int *)arg = 1;
}
static void challenge_cb(void *arg, const uint8_t *b, size_t n) {
  int *ok = arg;
  if (pb_walk(b, n, 1, nonce_cb, ok) == -2) *ok = 0;
}

/* A Frame{version = 1, challenge = 40 {nonce = 1: 32 bytes}} (sync.proto). */
static int is_challenge(const uint8_t *b, size_t n) {
  int ok = 0;
  long long version = pb_walk(b, n, 40, challenge_cb, &ok);
  return version == 1 && ok;
}

/* --- the libwebsockets callback ------------------------------------------------------------ */

static int rx_append(wlink *l, const void *in, size_t len) {
  if (l->rx_overflow) return 0;
  if (l->rx_len + len > MAX_RX) {
    l->rx_overflow = 1;
    return 0;
  }
  if (l->rx_len + len > l->rx_cap) {
    size_t cap = l->rx_cap ? l->rx_cap : 4096;
    while (cap < l->rx_len + len) cap *= 2;
    uint8_t *p = realloc(l->rx, cap);
    if (!p) return -1;
    l->rx = p;
    l->rx_cap = cap;
  }
  memcpy(l->rx + l->rx_len, in, len);
  l->rx_len += len;
  return 0;
}

static int on_receive(wlink *l, struct lws *wsi, const void *in, size_t len) {
  if (lws_is_first_fragment(wsi)) {
    l->rx_len = 0;
    l->rx_overflow = 0;
    l->rx_binary = lws_frame_is_binary(wsi);
  }
  if (rx_append(l, in, len) != 0) fatal("out of memory");
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
  size_t flen = l->rx_len;
  l->rx_len = 0;
  if (l->rx_overflow) {
    snprintf(l->why, sizeof l->why, "a frame over %u bytes from whisperd", MAX_RX);
    return -1;
  }
  if (!l->rx_binary) {
    snprintf(l->why, sizeof l->why, "a text message from whisperd");
    return -1;
  }
  device *d = (device *)l;
  int rc = whisper_client_receive(d->client, l->rx, flen, wall_ms());
  mark_dirty(d);
  if (rc == WHISPER_EINVALIDMSG) {
    snprintf(l->why, sizeof l->why, "%s: whisperd sent something that is not a frame", d->name);
    return -1;
  }
  if (rc != WHISPER_OK) {
    snprintf(l->why, sizeof l->why, "%s: whisper_client_receive: %s (%s)", d->name,
             whisper_strerror(rc), whisper_ctx_last_error(d->ctx));
    return -1;
  }
  return 0;
}

static int on_writeable(wlink *l, struct lws *wsi) {
  if (l->close_wanted) {
    static const char bye[] = "bye";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)bye, sizeof bye - 1);
    return -1;
  }
  qent *q = l->head;
  if (!q) return 0;
  l->head = q->next;
  if (!l->head) l->tail = NULL;
  size_t len = q->frame->len;
  if (LWS_PRE + len > g_tx_cap) {
    size_t cap = g_tx_cap ? g_tx_cap : 8192;
    while (cap < LWS_PRE + len) cap *= 2;
    uint8_t *p = realloc(g_tx, cap);
    if (!p) fatal("out of memory");
    g_tx = p;
    g_tx_cap = cap;
  }
  if (len) memcpy(g_tx + LWS_PRE, q->frame->data, len);
  whisper_buf_free(q->frame);
  free(q);
  int w = lws_write(wsi, g_tx + LWS_PRE, len, LWS_WRITE_BINARY);
  if (w < (int)len) {
    snprintf(l->why, sizeof l->why, "a write failed");
    return -1;
  }
  if (l->head) lws_callback_on_writable(wsi);
  return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len) {
  (void)user;
  wlink *l = lws_get_opaque_user_data(wsi);
  if (!l) return 0; /* an attempt we are done with */
  switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      l->wsi = wsi;
      l->state = L_OPEN;
      l->rx_len = 0;
      l->opened++;
      whisper_client_connected(((device *)l)->client, wall_ms());
      mark_dirty((device *)l);
      break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      char why[160];
      snprintf(why, sizeof why, "cannot connect: %.*s", in ? (int)(len < 120 ? len : 120) : 7,
               in ? (const char *)in : "unknown");
      link_ended(l, why);
      break;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
      if (l->state != L_OPEN) break;
      return on_receive(l, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
      if (l->state != L_OPEN) break;
      return on_writeable(l, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
      unsigned code = len >= 2 ? (unsigned)((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1]
                               : 0;
      snprintf(l->why, sizeof l->why, "closed by whisperd (%u%s%.*s)", code, len > 2 ? ": " : "",
               len > 2 ? (int)(len - 2 < 100 ? len - 2 : 100) : 0,
               len > 2 ? (const char *)in + 2 : "");
      break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
      link_ended(l, NULL);
      break;
    default:
      break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {.name = SUBPROTOCOL, .callback = ws_callback, .rx_buffer_size = 0},
    {.name = NULL, .callback = NULL},
};

static void lws_emit(int level, const char *line) {
  (void)level;
  fprintf(stderr, "%s: lws: %s", PROG, line);
}

static void wake_cb(uv_timer_t *t) { (void)t; }

/* No lws validity timer (a PING after 300 s idle) per connection: lws 4.1
 * keeps its timers in one sorted list, and a timer per connection makes
 * every new one walk all of them. The engines ping whisperd themselves. */
static const lws_retry_bo_t no_validity_timer = {.secs_since_valid_ping = 0,
                                                  .secs_since_valid_hangup = 0};

/* --- messages ------------------------------------------------------------------------ */

static int recipient_of(int s) { return (s + 1) % g_clients; }
static int sender_of(int r) { return (r + g_clients - 1) % g_clients; }

static void make_body(uint8_t body[BODY_LEN], int s, int k) {
  memcpy(body, BODY_MAGIC, 4);
  body[4] = (uint8_t)(s >> 24), body[5] = (uint8_t)(s >> 16);
  body[6] = (uint8_t)(s >> 8), body[7] = (uint8_t)s;
  body[8] = (uint8_t)(k >> 24), body[9] = (uint8_t)(k >> 16);
  body[10] = (uint8_t)(k >> 8), body[11] = (uint8_t)k;
  memcpy(body + 12, g_run_tag, 8);
  for (int i = 20; i < BODY_LEN; i++) body[i] = (uint8_t)(s * 31 + k * 7 + i * 13);
}

static void problem(unsigned *counter, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(unsigned *counter, const char *fmt, ...) {
  (*counter)++;
  g_failed++;
  if (g_failed > MAX_ERRORS_SHOWN) return;
  va_list ap;
  fprintf(stderr, "%s: FAIL: ", PROG);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static void send_one(device *d) {
  int s = d->idx, k = d->next_k;
  if (k >= g_messages) return;
  msgrec *m = &g_msg[(size_t)s * (size_t)g_messages + (size_t)k];
  uint8_t body[BODY_LEN];
  make_body(body, s, k);
  m->t_send = mono_s();
  if (!g_rate) m->t_sched = m->t_send;
  int rc = whisper_client_send(d->client, g_dev[recipient_of(s)].name, body, BODY_LEN, wall_ms(),
                               m->id);
  if (rc != WHISPER_OK)
    fatal("%s: whisper_client_send: %s (%s)", d->name, whisper_strerror(rc),
          whisper_ctx_last_error(d->ctx));
  m->issued = 1;
  d->next_k++;
  mark_dirty(d);
}

/* --rate: the open loop's schedule. Message j of the run (j = k * N + i:
 * device i's message k) is due at g_sched_t0 + j / R, so each device sends
 * every N / R seconds, the devices staggered by 1 / R, whatever came back. */
static int g_sched_on;      /* the messages are on their schedule */
static double g_sched_t0;   /* when message 0 is due */
static size_t g_sched_next; /* the next message due */
/* the longest the loop spent, while on the schedule, in one uv_run() and
 * in one round of the engines' pumps: where a late send waited */
static double g_sched_uv_max, g_sched_pump_max;

/* When the next message is due (a large value: none). */
static double sched_next_at(void) {
  if (!g_sched_on || g_sched_next >= (size_t)g_clients * (size_t)g_messages) return 1e300;
  return g_sched_t0 + (double)g_sched_next / g_rate;
}

/* Sends every message whose time has come, in the order of the schedule. */
static void sched_send_due(void) {
  if (!g_sched_on) return;
  double now = mono_s(), at;
  while ((at = sched_next_at()) <= now) {
    device *d = &g_dev[g_sched_next % (size_t)g_clients];
    int k = (int)(g_sched_next / (size_t)g_clients);
    if (d->next_k != k) fatal("%s: message %d due, %d next (the schedule)", d->name, k, d->next_k);
    g_msg[(size_t)d->idx * (size_t)g_messages + (size_t)k].t_sched = at;
    send_one(d);
    g_sched_next++;
  }
}

/* The message of sender `s` with client id `id`, or NULL. */
static msgrec *find_sent(int s, const uint8_t *id, size_t id_len) {
  if (!id || id_len != WHISPER_CLIENT_ID_LEN) return NULL;
  msgrec *base = &g_msg[(size_t)s * (size_t)g_messages];
  for (int k = 0; k < g_messages; k++)
    if (base[k].issued && memcmp(base[k].id, id, WHISPER_CLIENT_ID_LEN) == 0) return &base[k];
  return NULL;
}

static void on_message(device *r, const whisper_client_event_t *ev) {
  double t = mono_s();
  int s = sender_of(r->idx);
  const uint8_t *b = ev->body;
  if (!b || ev->body_len != BODY_LEN || memcmp(b, BODY_MAGIC, 4) != 0) {
    problem(&g_bad, "%s received a message that is not one of ours (%zu bytes)", r->name,
            ev->body_len);
    return;
  }
  int bs = (int)((uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7]);
  int bk = (int)((uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11]);
  uint8_t want[BODY_LEN];
  if (bs != s || bk < 0 || bk >= g_messages) {
    problem(&g_bad, "%s received message %d of device %d: misrouted (its sender is %s)", r->name,
            bk, bs, g_dev[s].name);
    return;
  }
  make_body(want, bs, bk);
  msgrec *m = &g_msg[(size_t)s * (size_t)g_messages + (size_t)bk];
  if (memcmp(want, b, BODY_LEN) != 0) {
    problem(&g_bad, "%s received message %d of %s with a corrupted body", r->name, bk,
            g_dev[s].name);
    return;
  }
  if (!ev->from || strcmp(ev->from, g_dev[s].name) != 0 || ev->from_device != 1 ||
      !ev->conversation || strcmp(ev->conversation, g_dev[s].name) != 0) {
    problem(&g_bad, "%s received message %d of %s as from %s.%u in conversation %s", r->name, bk,
            g_dev[s].name, ev->from ? ev->from : "?", (unsigned)ev->from_device,
            ev->conversation ? ev->conversation : "?");
    return;
  }
  if (!m->issued || !ev->id || ev->id_len != WHISPER_CLIENT_ID_LEN ||
      memcmp(ev->id, m->id, WHISPER_CLIENT_ID_LEN) != 0) {
    problem(&g_bad, "%s received message %d of %s with another client id than it was sent with",
            r->name, bk, g_dev[s].name);
    return;
  }
  if (m->received++) {
    problem(&g_dups, "%s received message %d of %s again (%u times)", r->name, bk, g_dev[s].name,
            (unsigned)m->received);
    return;
  }
  m->t_recv = t;
  g_received++;
}

/* --catch-up: devices 0..N-2 send to the last one, offline meanwhile. */
static unsigned g_catch_events;          /* WHISPER_EV_CATCHING_UP at the receiver */
static uint64_t g_catch_done, g_catch_total;
static int g_catch_back;                 /* a progress event went backwards */
static double g_catch_t_login;

static int g_catch_warm; /* the contacts' first messages: counted, not checked */
static unsigned g_warm_got;

static void on_catch_message(device *r, const whisper_client_event_t *ev) {
  const uint8_t *b = ev->body;
  if (g_catch_warm) {
    g_warm_got++;
    return;
  }
  int s = -1, k = -1;
  if (b && ev->body_len == BODY_LEN && memcmp(b, BODY_MAGIC, 4) == 0) {
    s = (int)((uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7]);
    k = (int)((uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11]);
  }
  uint8_t want[BODY_LEN];
  if (s < 0 || s >= g_clients - 1 || k < 0 || k >= g_messages ||
      (make_body(want, s, k), memcmp(want, b, BODY_LEN) != 0) || !ev->from ||
      strcmp(ev->from, g_dev[s].name) != 0) {
    problem(&g_bad, "%s received a message that is not one of ours, or misrouted", r->name);
    return;
  }
  msgrec *m = &g_msg[(size_t)s * (size_t)g_messages + (size_t)k];
  if (!ev->id || ev->id_len != WHISPER_CLIENT_ID_LEN || memcmp(ev->id, m->id, WHISPER_CLIENT_ID_LEN) != 0) {
    problem(&g_bad, "message %d of %s came with another client id", k, g_dev[s].name);
    return;
  }
  if (m->received++) {
    problem(&g_dups, "message %d of %s came again", k, g_dev[s].name);
    return;
  }
  /* each sender's in its order: the one before it came already */
  if (k > 0 && !g_msg[(size_t)s * (size_t)g_messages + (size_t)k - 1].received)
    problem(&g_bad, "message %d of %s came before %d", k, g_dev[s].name, k - 1);
  m->t_recv = mono_s();
  g_received++;
}

static void on_status(device *d, const whisper_client_event_t *ev) {
  msgrec *m = find_sent(d->idx, ev->id, ev->id_len);
  if (!m) {
    problem(&g_bad, "%s got a status (%d) for a message it did not send", d->name, ev->status);
    return;
  }
  if (ev->status == WHISPER_STATUS_SENT) {
    if (m->sent++) {
      g_status_dups++;
      return;
    }
    m->t_sent = mono_s();
    g_sent_n++;
    if (!g_burst && !g_rate) send_one(d); /* paced: the next one now */
  } else if (ev->status == WHISPER_STATUS_DELIVERED) {
    int r = recipient_of(d->idx);
    if (!ev->from || strcmp(ev->from, g_dev[r].name) != 0 || ev->from_device != 1) {
      problem(&g_bad, "%s: a DELIVERED status from %s.%u, not from %s.1", d->name,
              ev->from ? ev->from : "?", (unsigned)ev->from_device, g_dev[r].name);
      return;
    }
    if (m->delivered++) {
      g_status_dups++;
      return;
    }
    g_delivered_n++;
  }
}

/* --- devices ------------------------------------------------------------------------ */

static void device_engine(device *d) {
  int rc = whisper_client_new(&d->client, d->ctx, &g_cfg);
  if (rc != WHISPER_OK)
    fatal("%s: whisper_client_new: %s (%s)", d->name, whisper_strerror(rc),
          whisper_ctx_last_error(d->ctx));
}

static void device_new(device *d, int idx) {
  memset(d, 0, sizeof *d);
  d->idx = idx;
  snprintf(d->name, sizeof d->name, "u%05d", idx);
  int rc = whisper_store_memory_new(&d->store);
  if (rc == WHISPER_OK) rc = whisper_ctx_new(&d->ctx, d->store);
  if (rc != WHISPER_OK) fatal("%s: a memory store and context: %s", d->name, whisper_strerror(rc));
  rc = whisper_identity_generate(d->ctx, d->name, 1, 0, wall_ms());
  if (rc != WHISPER_OK)
    fatal("%s: whisper_identity_generate: %s (%s)", d->name, whisper_strerror(rc),
          whisper_ctx_last_error(d->ctx));
  device_engine(d);
}

static void device_free(device *d) {
  queue_clear(&d->ln);
  free(d->ln.rx);
  whisper_client_free(d->client);
  whisper_ctx_free(d->ctx);
  whisper_store_free(d->store);
}

/* --- the engines' deadlines: a heap of devices ---------------------------------------- */

static void heap_place(device *d, size_t i) {
  g_heap[i] = d;
  d->heap_pos = i + 1;
}

static void heap_up(size_t i) {
  device *d = g_heap[i];
  while (i > 0 && g_heap[(i - 1) / 2]->heap_at > d->heap_at) {
    heap_place(g_heap[(i - 1) / 2], i);
    i = (i - 1) / 2;
  }
  heap_place(d, i);
}

static void heap_down(size_t i) {
  device *d = g_heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= g_heap_n) break;
    if (c + 1 < g_heap_n && g_heap[c + 1]->heap_at < g_heap[c]->heap_at) c++;
    if (d->heap_at <= g_heap[c]->heap_at) break;
    heap_place(g_heap[c], i);
    i = c;
  }
  heap_place(d, i);
}

/* Puts the device in the heap at `at` (UINT64_MAX: takes it out). The
 * heap has room for every device. */
static void heap_set(device *d, uint64_t at) {
  if (at == UINT64_MAX) {
    if (!d->heap_pos) return;
    size_t i = d->heap_pos - 1;
    d->heap_pos = 0;
    device *last = g_heap[--g_heap_n];
    if (i == g_heap_n) return;
    heap_place(last, i);
    heap_up(i);
    heap_down(last->heap_pos - 1);
    return;
  }
  if (!d->heap_pos) {
    d->heap_at = at;
    heap_place(d, g_heap_n++);
    heap_up(g_heap_n - 1);
    return;
  }
  uint64_t was = d->heap_at;
  d->heap_at = at;
  if (at < was) heap_up(d->heap_pos - 1);
  else if (at > was) heap_down(d->heap_pos - 1);
}

/* --- a run's arrays ---------------------------------------------------------------- */

/* The arrays of a run of n devices (their records, the dirty list, the
 * login FIFO, the deadline heap, the message records), zeroed, and the
 * counters of the message phase reset. */
static void run_alloc(int n) {
  g_dev = calloc((size_t)n, sizeof *g_dev);
  g_dirty = calloc((size_t)n, sizeof *g_dirty);
  g_waiting = calloc((size_t)n, sizeof *g_waiting);
  g_heap = calloc((size_t)n, sizeof *g_heap);
  g_msg = calloc((size_t)n * (size_t)g_messages + 1, sizeof *g_msg);
  if (!g_dev || !g_dirty || !g_waiting || !g_heap || !g_msg) fatal("out of memory");
  g_n_dirty = 0;
  g_heap_n = 0;
  g_wait_head = g_n_waiting = 0;
  g_received = g_sent_n = g_delivered_n = 0;
  g_dups = g_bad = g_status_dups = g_errors = g_identity = 0;
}

/* The n devices freed, and the arrays of run_alloc(n). */
static void run_free(int n) {
  for (int i = 0; i < n; i++) device_free(&g_dev[i]);
  free(g_dev);
  free(g_dirty);
  free(g_waiting);
  free(g_heap);
  free(g_msg);
  g_dev = NULL;
  g_dirty = NULL;
  g_waiting = NULL;
  g_heap = NULL;
  g_msg = NULL;
}

/* --- devices: logging in ------------------------------------------------------------ */

static void update_ready(device *d) {
  int ready = d->registered && d->online && d->caught_up;
  if (ready == d->ready) return;
  d->ready = ready;
  g_n_ready += ready ? 1 : -1;
  if (ready) login_slots();
}

/* Devices connecting or logging in (not ready yet) hold a login slot. */
static int login_slot_free(void) { return g_n_links - g_n_ready < LOGIN_INFLIGHT; }

/* Wakes devices waiting for a login slot, as many as there are slots. */
static void login_slots(void) {
  int free_slots = LOGIN_INFLIGHT - (g_n_links - g_n_ready);
  while (g_n_waiting && free_slots-- > 0) {
    device *d = g_waiting[g_wait_head];
    g_wait_head = (g_wait_head + 1) % (size_t)g_clients;
    g_n_waiting--;
    d->waiting = 0;
    mark_dirty(d);
  }
}

static void device_pump(device *d) {
  uint64_t now = wall_ms();
  if (whisper_client_next_deadline(d->client) <= now) whisper_client_tick(d->client, now);
  if (d->allow_connect && d->ln.state == L_IDLE && whisper_client_want_connect(d->client, now)) {
    if (login_slot_free()) {
      link_connect(&d->ln);
    } else if (!d->waiting) {
      d->waiting = 1;
      g_waiting[(g_wait_head + g_n_waiting++) % (size_t)g_clients] = d;
    }
  }
  whisper_client_event_t ev;
  while (whisper_client_take_event(d->client, &ev) == 1) {
    switch (ev.type) {
      case WHISPER_EV_REGISTERED:
        d->registered = 1;
        break;
      case WHISPER_EV_ONLINE:
        d->online = 1;
        break;
      case WHISPER_EV_CAUGHT_UP:
        d->caught_up = 1;
        break;
      case WHISPER_EV_MESSAGE:
        if (g_catch) on_catch_message(d, &ev);
        else on_message(d, &ev);
        break;
      case WHISPER_EV_STATUS:
        if (!g_catch) on_status(d, &ev);
        else if (ev.status == WHISPER_STATUS_SENT) g_sent_n++;
        else if (ev.status == WHISPER_STATUS_DELIVERED) g_delivered_n++;
        break;
      case WHISPER_EV_CATCHING_UP:
        g_catch_events++;
        if (ev.done_bytes < g_catch_done) g_catch_back = 1;
        g_catch_done = ev.done_bytes;
        g_catch_total = ev.total_bytes;
        break;
      case WHISPER_EV_IDENTITY:
        g_identity++;
        if (g_identity <= MAX_ERRORS_SHOWN)
          fprintf(stderr, "%s: warning: %s: an identity change of %s.%u (unexpected)\n", PROG,
                  d->name, ev.from ? ev.from : "?", (unsigned)ev.from_device);
        break;
      case WHISPER_EV_ERROR:
        g_errors++;
        if (g_errors <= MAX_ERRORS_SHOWN)
          fprintf(stderr, "%s: warning: %s: engine error event: %s, server code %d: %s\n", PROG,
                  d->name, whisper_strerror(ev.code), ev.server_code,
                  ev.message ? ev.message : "");
        break;
      default:
        break;
    }
  }
  if (d->ln.state == L_OPEN) {
    whisper_buf *frame;
    while (d->ln.state == L_OPEN && whisper_client_take_frame(d->client, &frame) == 1)
      link_send(&d->ln, frame);
    if (whisper_client_want_disconnect(d->client)) {
      snprintf(d->ln.why, sizeof d->ln.why, "%s: the engine gave the connection up", d->name);
      if (d->ln.wsi) {
        d->ln.close_wanted = 1;
        lws_callback_on_writable(d->ln.wsi);
      }
    }
  }
  update_ready(d);
  /* its deadline, in the heap (an engine that is connecting hears from its
   * connection's callbacks; one waiting for a slot from login_slots()) */
  uint64_t dl = UINT64_MAX;
  if (d->ln.state == L_OPEN || (d->ln.state == L_IDLE && d->allow_connect && !d->waiting))
    dl = whisper_client_next_deadline(d->client);
  heap_set(d, dl);
}

/* --- the loop ---------------------------------------------------------------------------- */

typedef int (*cond_fn)(void *arg);

static double g_last_alive;
static int g_msg_started; /* the messages are on their way */

/* After a timeout: which messages or statuses are missing. */
static void report_missing(void) {
  size_t total = (size_t)g_clients * (size_t)g_messages;
  unsigned nr = 0, ns = 0, nd = 0, shown = 0;
  for (size_t i = 0; i < total; i++) {
    msgrec *m = &g_msg[i];
    int s = (int)(i / (size_t)g_messages), k = (int)(i % (size_t)g_messages);
    nr += !m->received;
    ns += !m->sent;
    nd += !m->delivered && !g_no_receipts;
    if ((!m->received || !m->sent || (!m->delivered && !g_no_receipts)) && shown++ < MAX_ERRORS_SHOWN)
      fprintf(stderr, "%s:   message %d of %s to %s: %s, %s, %s\n", PROG, k, g_dev[s].name,
              g_dev[recipient_of(s)].name, !m->issued ? "not sent yet (paced)"
                                           : m->received ? "received" : "NOT RECEIVED",
              m->sent ? "SENT" : "no SENT", m->delivered ? "DELIVERED" : "no DELIVERED");
  }
  fprintf(stderr, "%s: of %zu messages: %u not received, %u without SENT, %u without DELIVERED\n",
          PROG, total, nr, ns, nd);
}

static void plain_start_more(void);

/* Serves connections and engines until cond() holds; fails the run when
 * `secs` pass first. */
static void run_until(cond_fn cond, void *arg, double secs, const char *what) {
  double until = mono_s() + secs;
  for (;;) {
    /* the engines whose deadline came (an engine's deadline moves only
     * when it is called, and every call is followed by a pump) */
    sched_send_due();
    uint64_t now = wall_ms();
    while (g_heap_n && g_heap[0]->heap_at <= now) {
      device *d = g_heap[0];
      heap_set(d, UINT64_MAX);
      mark_dirty(d);
    }
    double t_pump = g_sched_on ? mono_s() : 0;
    while (g_n_dirty) {
      device *d = g_dirty[--g_n_dirty];
      d->dirty = 0;
      device_pump(d);
    }
    double t = mono_s();
    if (g_sched_on && t - t_pump > g_sched_pump_max) g_sched_pump_max = t - t_pump;
    plain_start_more();
    if (cond(arg)) return;
    if (t - g_last_alive >= 0.1) {
      g_last_alive = t;
      if (g_n_node > 1)
        for (int k = 0; k < g_n_node; k++) server_check_alive(g_node[k]);
      else if (g_cur)
        server_check_alive(g_cur);
    }
    if (t > until) {
      if (g_msg_started) report_missing();
      fatal("%s: not done after %.0f s (--timeout)", what, secs);
    }
    if (g_n_dirty) continue;
    /* wait for the connections, at most 5 ms (the conditions are looked at
     * again) or until the next engine deadline */
    uint64_t wait = 5;
    now = wall_ms();
    if (g_heap_n && g_heap[0]->heap_at < now + wait)
      wait = g_heap[0]->heap_at > now ? g_heap[0]->heap_at - now : 0;
    /* --rate: the next send on time. libuv's timers count whole ms and
     * fire up to ~1 ms late, so the last 1.5 ms are polled without
     * waiting (this spins: the tool's CPU per message counts it) */
    double due = sched_next_at() - mono_s();
    if (due < 1.5e-3) wait = 0;
    else if ((double)wait > due * 1e3 - 0.5) wait = (uint64_t)(due * 1e3 - 0.5);
    if (wait == 0) { /* an engine is due: what is ready, without waiting */
      uv_run(&g_uv, UV_RUN_NOWAIT);
      continue;
    }
    /* The timer counts from the loop's clock, which libuv updates only as
     * it runs: from a stale one the wake-up was due already, ran before
     * libuv polled, and the poll then waited for the next timer (lws's,
     * up to ~30 s) unless I/O came: the loop stalled when all was quiet. */
    uv_update_time(&g_uv);
    uv_timer_start(&g_wake, wake_cb, wait, 0);
    double t_uv = g_sched_on ? mono_s() : 0;
    uv_run(&g_uv, UV_RUN_ONCE);
    if (g_sched_on && mono_s() - t_uv > g_sched_uv_max) g_sched_uv_max = mono_s() - t_uv;
  }
}

static int cond_time(void *arg) { return mono_s() >= *(double *)arg; }

/* Serves for `secs` (the connections keep going meanwhile). */
static void serve_for(double secs) {
  double until = mono_s() + secs;
  run_until(cond_time, &until, secs + 60, "serving");
}

typedef struct range {
  int from, to;
} range;

/* (only the devices of the range are allowed to connect: counters do) */
static int cond_ready(void *arg) {
  range *r = arg;
  return g_n_ready == r->to - r->from;
}

static int cond_closed(void *arg) {
  (void)arg;
  return g_n_links == 0;
}

typedef struct server_wait {
  long long connections, authenticated; /* -1: any */
  double next;
  metrics m;
} server_wait;

/* GET /metrics of g_cur, or of every node (their counters summed). */
static int metrics_nodes(metrics *m) {
  if (g_n_node <= 1) return metrics_get(g_cur, m);
  memset(m, 0, sizeof *m);
  for (int k = 0; k < g_n_node; k++) {
    metrics one;
    if (metrics_get(g_node[k], &one) != 0) return -1;
    m->connections += one.connections;
    m->authenticated += one.authenticated;
    m->frames_in += one.frames_in;
    m->frames_out += one.frames_out;
    m->refused += one.refused;
    m->messages_sent += one.messages_sent;
    m->entries_delivered += one.entries_delivered;
    m->mailbox_depth += one.mailbox_depth;
  }
  return 0;
}

/* VmRSS of g_cur, or of every node (summed). */
static long rss_nodes(void) {
  if (g_n_node <= 1) return rss_kib(g_cur->pid);
  long sum = 0;
  for (int k = 0; k < g_n_node; k++) {
    long v = rss_kib(g_node[k]->pid);
    if (v < 0) return -1;
    sum += v;
  }
  return sum;
}

static int cond_server(void *arg) {
  server_wait *w = arg;
  double t = mono_s();
  if (t < w->next) return 0;
  w->next = t + 0.05;
  if (metrics_nodes(&w->m) != 0) fatal("%s: /metrics did not answer", g_cur->label);
  return (w->connections < 0 || w->m.connections == w->connections) &&
         (w->authenticated < 0 || w->m.authenticated == w->authenticated);
}

/* Waits until whisperd's own count of connections is `conns` (and of
 * logged-in ones `auth`, unless -1), then lets it settle and returns its
 * VmRSS. */
static long settle_rss(long long conns, long long auth, const char *what, metrics *m_out) {
  server_wait w = {conns, auth, 0, {0}};
  run_until(cond_server, &w, g_timeout, what);
  serve_for(SETTLE_S);
  long rss = rss_nodes();
  if (m_out) *m_out = w.m;
  return rss;
}

static int cond_all_received(void *arg) {
  (void)arg;
  return g_received + g_bad + g_dups >= (unsigned)g_clients * (unsigned)g_messages;
}

static int cond_statuses(void *arg) {
  (void)arg;
  unsigned total = (unsigned)g_clients * (unsigned)g_messages;
  return g_sent_n >= total && (g_no_receipts || g_delivered_n >= total);
}

/* --- plain connections: raw sockets on epoll ----------------------------------------- */

/* The cheapest WebSocket client there is, so that opening many of them
 * measures whisperd and not this program: a non-blocking socket, one
 * upgrade request made once for all (RFC 6455's sample key: whisperd does
 * not care which key, and the answer is then known), the 101 and the
 * Challenge parsed in a small buffer that is freed once they are in, and
 * then nothing but the descriptor. All of them sit in one epoll
 * descriptor, which the libuv loop watches (g_plain_poll). */

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

enum { P_IDLE = 0, P_CONNECTING, P_HANDSHAKE, P_OPEN, P_CLOSING };

typedef struct plain {
  int fd;
  uint8_t state;
  uint8_t challenged;
  uint8_t failures;
  uint8_t closing_asked; /* the close is ours */
  uint16_t got;          /* bytes in buf */
  char *buf;             /* PLAIN_BUF bytes while the answer comes in */
} plain;

static plain *g_plain;
static int g_n_plain;
static int g_plain_started, g_plain_target; /* connect [.., target) */
static int g_plain_inflight;                /* connecting or in the handshake */
static int g_plain_challenged, g_plain_open, g_plain_bad;
static int g_epoll = -1;
static uv_poll_t g_plain_poll;
static char g_upgrade[512];
static size_t g_upgrade_len;
static double g_plain_last; /* when the last Challenge came */
static int g_plain_goaway;  /* 1001 close frames from whisperd shutting down */
static int g_plain_shutdown; /* whisperd is shutting down: its close frames are expected */

static void plain_release(plain *p) {
  free(p->buf);
  p->buf = NULL;
  p->got = 0;
  if (p->fd >= 0) close(p->fd); /* (also takes it out of the epoll set) */
  p->fd = -1;
  if (p->state == P_CONNECTING || p->state == P_HANDSHAKE) g_plain_inflight--;
  if (p->state != P_IDLE) g_plain_open--;
  p->state = P_IDLE;
}

static void plain_connect(int i);

/* Failed or closed by whisperd. Before its Challenge it is tried again
 * (twice); after, it is counted as lost. */
static void plain_failed(int i, const char *why) {
  plain *p = &g_plain[i];
  int before = !p->challenged;
  plain_release(p);
  g_unexpected_closes++;
  if (g_unexpected_closes <= MAX_ERRORS_SHOWN)
    fprintf(stderr, "%s: warning: a plain connection %s: %s\n", PROG,
            before ? "failed before its Challenge" : "closed", why);
  if (!before) return;
  if (++p->failures > 2) fatal("a plain connection failed 3 times before its Challenge");
  plain_connect(i);
}

static void plain_connect(int i) {
  plain *p = &g_plain[i];
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)g_cur->port);
  inet_pton(AF_INET, HOST, &sa.sin_addr);
  p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0) fatal("socket: %s", strerror(errno));
  /* from one of N_SRC loopback addresses, the port picked by connect() */
  struct sockaddr_in src;
  memset(&src, 0, sizeof src);
  src.sin_family = AF_INET;
  inet_pton(AF_INET, src_addr((size_t)i), &src.sin_addr);
  int one = 1;
  setsockopt(p->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  if (bind(p->fd, (struct sockaddr *)&src, sizeof src) != 0)
    fatal("bind %s: %s", src_addr((size_t)i), strerror(errno));
  p->state = P_CONNECTING;
  p->closing_asked = 0;
  g_plain_inflight++;
  g_plain_open++;
  if (connect(p->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
    char why[96];
    snprintf(why, sizeof why, "connect: %s", strerror(errno));
    plain_failed(i, why);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
  if (epoll_ctl(g_epoll, EPOLL_CTL_ADD, p->fd, &ev) != 0) fatal("epoll_ctl: %s", strerror(errno));
}

/* The 101 (with the accept value of our key) and the Challenge frame, once
 * both are in: 1 done, 0 more to come, -1 not what whisperd says. */
static int plain_answer(plain *p) {
  p->buf[p->got] = 0;
  char *end = strstr(p->buf, "\r\n\r\n");
  if (!end) return p->got >= PLAIN_BUF - 1 ? -1 : 0;
  if (strncmp(p->buf, "HTTP/1.1 101", 12) != 0) return -1;
  const char *acc = p->buf;
  static const char name[] = "\r\nsec-websocket-accept:";
  while ((acc = strchr(acc + 1, '\r')) != NULL && acc < end &&
         strncasecmp(acc, name, sizeof name - 1) != 0) {
  }
  if (!acc || acc >= end) return -1;
  acc += sizeof name - 1;
  while (*acc == ' ') acc++;
  if (strncmp(acc, WS_ACCEPT "\r\n", strlen(WS_ACCEPT) + 2) != 0) return -1;
  const uint8_t *f = (const uint8_t *)end + 4, *lim = (const uint8_t *)p->buf + p->got;
  if (lim - f < 2) return 0;
  if (f[0] != 0x82 || (f[1] & 0x80) || (f[1] & 0x7f) >= 126) return -1; /* a small binary frame */
  size_t n = f[1] & 0x7f;
  if ((size_t)(lim - f) < 2 + n) return 0;
  if ((size_t)(lim - f) > 2 + n) return -1; /* nothing else comes before we speak */
  if (!is_challenge(f + 2, n)) g_plain_bad++;
  return 1;
}

static void plain_event(int i, uint32_t events) {
  plain *p = &g_plain[i];
  if (p->state == P_IDLE) return; /* released by an earlier event of this batch */
  if (p->state == P_CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
    if (err) {
      plain_failed(i, strerror(err));
      return;
    }
    if (write(p->fd, g_upgrade, g_upgrade_len) != (ssize_t)g_upgrade_len) {
      plain_failed(i, "the upgrade request did not go out at once");
      return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(g_epoll, EPOLL_CTL_MOD, p->fd, &ev);
    p->state = P_HANDSHAKE;
    return;
  }
  if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
  if (p->state == P_HANDSHAKE) {
    if (!p->buf && !(p->buf = malloc(PLAIN_BUF))) fatal("out of memory");
    ssize_t r = read(p->fd, p->buf + p->got, PLAIN_BUF - 1 - p->got);
    if (r <= 0) {
      if (r < 0 && errno == EAGAIN) return;
      plain_failed(i, r == 0 ? "closed by whisperd" : strerror(errno));
      return;
    }
    p->got = (uint16_t)(p->got + r);
    int a = plain_answer(p);
    if (a == 0) return;
    if (a < 0) {
      plain_failed(i, "whisperd's answer is not a 101 and a frame");
      return;
    }
    free(p->buf);
    p->buf = NULL;
    p->got = 0;
    p->state = P_OPEN;
    p->challenged = 1;
    g_plain_inflight--;
    g_plain_challenged++;
    g_plain_last = mono_s();
    return;
  }
  /* open or closing: whisperd's close frame, then the end of the stream */
  uint8_t sink[256];
  ssize_t r;
  while ((r = read(p->fd, sink, sizeof sink)) > 0) {
    if (p->state != P_OPEN) continue;
    /* whisperd sends nothing to an idle connection but, when it shuts
     * down, a close frame with 1001 (answered with ours) */
    if (!g_plain_shutdown || r < 4 || sink[0] != 0x88 || sink[2] != 0x03 || sink[3] != 0xe9) {
      plain_failed(i, "whisperd sent something to an idle connection");
      return;
    }
    static const uint8_t bye[] = {0x88, 0x82, 0x11, 0x22, 0x33, 0x44, 0x03 ^ 0x11, 0xe9 ^ 0x22};
    g_plain_goaway++;
    p->closing_asked = 1;
    p->state = P_CLOSING;
    if (write(p->fd, bye, sizeof bye) != (ssize_t)sizeof bye) {
      plain_release(p);
      return;
    }
  }
  if (r < 0 && errno == EAGAIN) return;
  if (p->closing_asked) {
    plain_release(p);
    return;
  }
  plain_failed(i, r == 0 ? "closed by whisperd" : strerror(errno));
}

/* A masked close frame, 1000. */
static void plain_close_one(int i) {
  plain *p = &g_plain[i];
  if (p->state == P_IDLE) return;
  p->closing_asked = 1;
  if (p->state != P_OPEN) { /* not open yet: just go */
    plain_release(p);
    return;
  }
  static const uint8_t bye[] = {0x88, 0x82, 0x11, 0x22, 0x33, 0x44, 0x03 ^ 0x11, 0xe8 ^ 0x22};
  p->state = P_CLOSING;
  if (write(p->fd, bye, sizeof bye) != (ssize_t)sizeof bye) plain_release(p);
}

static void plain_poll_cb(uv_poll_t *h, int status, int events) {
  (void)h;
  (void)status;
  (void)events;
  struct epoll_event ev[256];
  int n;
  do {
    n = epoll_wait(g_epoll, ev, 256, 0);
    for (int k = 0; k < n; k++) plain_event((int)ev[k].data.u32, ev[k].events);
  } while (n == 256);
}

static void plain_start_more(void) {
  while (g_plain_started < g_plain_target && g_plain_inflight < IDLE_INFLIGHT)
    plain_connect(g_plain_started++);
}

static int cond_plain_ready(void *arg) {
  int n = *(int *)arg;
  return g_plain_started >= n && g_plain_inflight == 0;
}

static int cond_plain_closed(void *arg) {
  return g_plain_open == *(int *)arg;
}

/* Opens plain connections [from, to) and waits for each one's Challenge. */
static void plain_open(int from, int to) {
  g_plain_started = from;
  g_plain_target = to;
  run_until(cond_plain_ready, &to, g_timeout, "plain connections receiving their Challenge");
  for (int i = from; i < to; i++)
    if (!g_plain[i].challenged) fatal("plain connection %d has no Challenge", i);
}

/* Closes [from, to) and waits until whisperd has closed them too. */
static void plain_close(int from, int to) {
  int left = g_plain_open;
  for (int i = from; i < to; i++) left -= g_plain[i].state != P_IDLE;
  for (int i = from; i < to; i++) plain_close_one(i);
  run_until(cond_plain_closed, &left, g_timeout, "closing the plain connections");
}

static void plain_setup(int n) {
  g_n_plain = n;
  g_plain = calloc((size_t)n, sizeof *g_plain);
  if (!g_plain) fatal("out of memory");
  for (int i = 0; i < n; i++) g_plain[i].fd = -1;
  g_epoll = epoll_create1(EPOLL_CLOEXEC);
  if (g_epoll < 0) fatal("epoll_create1: %s", strerror(errno));
  if (uv_poll_init(&g_uv, &g_plain_poll, g_epoll) != 0 ||
      uv_poll_start(&g_plain_poll, UV_READABLE, plain_poll_cb) != 0)
    fatal("cannot watch the epoll descriptor");
  int len = snprintf(g_upgrade, sizeof g_upgrade,
                     "GET " WS_PATH " HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " SUBPROTOCOL
                     "\r\n\r\n",
                     g_cur->hostport);
  g_upgrade_len = (size_t)len;
}

/* One short pass of the loop (for server_stop). */
static void plain_stop_serve(void) {
  uv_update_time(&g_uv); /* (see run_until) */
  uv_timer_start(&g_wake, wake_cb, 2, 0);
  uv_run(&g_uv, UV_RUN_ONCE);
}

static void plain_teardown(void) {
  for (int i = 0; i < g_n_plain; i++) {
    g_plain[i].closing_asked = 1;
    plain_release(&g_plain[i]);
  }
  if (g_epoll >= 0) {
    uv_poll_stop(&g_plain_poll);
    uv_close((uv_handle_t *)&g_plain_poll, NULL);
    close(g_epoll);
    g_epoll = -1;
  }
  free(g_plain);
  g_plain = NULL;
  g_n_plain = 0;
}

/* --- figures ------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
  if (i < 1) i = 1;
  if (i > n) i = n;
  return v[i - 1];
}

static void print_machine(void) {
  char line[256], model_name[256] = "unknown";
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f) {
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "model name", 10) == 0) {
        char *c = strchr(line, ':');
        if (c) {
          snprintf(model_name, sizeof model_name, "%s", c + 2);
          model_name[strcspn(model_name, "\n")] = 0;
        }
        break;
      }
    }
    fclose(f);
  }
  printf("machine: %s, %ld CPUs online; load average %.2f; libwebsockets %s; libwhisper %u\n",
         model_name, sysconf(_SC_NPROCESSORS_ONLN), load_average(), lws_get_library_version(),
         whisper_version());
#ifndef __OPTIMIZE__
  printf(
      "WARNING: built without optimisation: the figures mean little "
      "(configure with -DCMAKE_BUILD_TYPE=Release)\n");
#endif
}

static void row(const char *name, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row(const char *name, const char *value, const char *fmt, ...) {
  printf("  %-46s %14s  ", name, value);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
}

static const char *fmt_ms(char *buf, size_t cap, double s) {
  snprintf(buf, cap, "%.2f ms", s * 1e3);
  return buf;
}

static const char *fmt_kib_per(char *buf, size_t cap, long a, long b, int n) {
  if (a < 0 || b < 0 || n <= 0) snprintf(buf, cap, "?");
  else snprintf(buf, cap, "%.1f KiB", (double)(b - a) / n);
  return buf;
}

/* --- the catch-up figure ---------------------------------------------------------------- */

static int cond_warm(void *arg) {
  (void)arg;
  return g_warm_got >= (unsigned)(g_clients - 1) && g_sent_n >= (unsigned)(g_clients - 1);
}

/* (cond_closed counts every connection: the senders stay online) */
static int cond_link_idle(void *arg) { return ((device *)arg)->ln.state == L_IDLE; }

static int cond_catch_sent(void *arg) {
  (void)arg;
  return g_sent_n >= (unsigned)(g_clients - 1) * (unsigned)g_messages;
}

static int cond_senders_idle(void *arg) {
  (void)arg;
  uint64_t now = wall_ms();
  for (int i = 0; i < g_clients - 1; i++)
    if (whisper_client_next_deadline(g_dev[i].client) < now + 1000) return 0;
  return 1;
}

static int cond_catch_received(void *arg) {
  (void)arg;
  return g_received + g_bad + g_dups >= (unsigned)(g_clients - 1) * (unsigned)g_messages;
}

static int cond_catch_delivered(void *arg) {
  (void)arg;
  return g_no_receipts || g_delivered_n >= (unsigned)(g_clients - 1) * (unsigned)g_messages;
}

/* (A function of its own: `valgrind --tool=callgrind --toggle-collect=catch_up_wait`
 * or `perf record -g` then `perf report --parent catch_up_wait -x` profile
 * figure 5 alone.) */
__attribute__((noinline)) static void catch_up_wait(void) {
  run_until(cond_catch_received, NULL, g_timeout, "the catch-up");
  __asm__ __volatile__("" ::: "memory"); /* (no tail call: a frame of its own for perf) */
}

/* Devices 0..N-2 (memory stores) send M messages each to device N-1, whose
 * store is SQLite (synchronous=FULL, the default) in the temporary
 * directory, while it is offline; then it logs in. The figure: from the
 * connection it opens to its last WHISPER_EV_MESSAGE (raised once the
 * batch holding the message is committed: durably stored), checked exactly
 * once and in each sender's order. */
static int catch_up_main(void) {
  int n = g_clients, rcv = n - 1;
  size_t total = (size_t)rcv * (size_t)g_messages;
  run_alloc(n);
  for (int i = 0; i < rcv; i++) device_new(&g_dev[i], i);
  /* the receiver: an app's store */
  device *r = &g_dev[rcv];
  memset(r, 0, sizeof *r);
  r->idx = rcv;
  snprintf(r->name, sizeof r->name, "u%05d", rcv);
  char path[600];
  snprintf(path, sizeof path, "%s/receiver.db", g_dir);
  static const uint8_t key[32] = "whisperd-load receiver store key";
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = key;
  o.key_len = 32;
  o.synchronous = WHISPER_SYNC_FULL;
  int rc = whisper_store_sqlite_open(&r->store, path, &o, NULL);
  if (rc == WHISPER_OK) rc = whisper_ctx_new(&r->ctx, r->store);
  if (rc == WHISPER_OK) rc = whisper_identity_generate(r->ctx, r->name, 1, 0, wall_ms());
  if (rc != WHISPER_OK) fatal("the receiver's SQLite store: %s", whisper_strerror(rc));
  device_engine(r);

  static server s1;
  server_start(&s1, 0, "whisperd", "whisperd", g_whisperd, g_args);
  g_cur = &s1;
  printf("whisperd: %s, pid %ld, ws://%s" WS_PATH ", store %s\n", g_whisperd, (long)s1.pid,
         s1.hostport, s1.db);
  fflush(stdout);

  /* every device registers and logs in; each sender writes to the receiver once (contacts) */
  range all = {0, n};
  for (int i = 0; i < n; i++) {
    g_dev[i].allow_connect = 1;
    mark_dirty(&g_dev[i]);
  }
  run_until(cond_ready, &all, g_timeout, "registration and login");
  g_catch_warm = 1;
  for (int i = 0; i < rcv; i++) {
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    rc = whisper_client_send(g_dev[i].client, r->name, (const uint8_t *)"hello", 5, wall_ms(), id);
    if (rc != WHISPER_OK) fatal("whisper_client_send: %s", whisper_strerror(rc));
    mark_dirty(&g_dev[i]);
  }
  run_until(cond_warm, NULL, g_timeout, "the contacts' first messages");
  serve_for(0.3); /* (their receipts) */
  g_catch_warm = 0;
  r->allow_connect = 0;
  link_close(&r->ln);
  run_until(cond_link_idle, r, g_timeout, "the receiver going offline");

  /* the backlog */
  g_sent_n = g_delivered_n = 0;
  double t0 = mono_s();
  for (int i = 0; i < rcv; i++) {
    device *d = &g_dev[i];
    for (int k = 0; k < g_messages; k++) {
      msgrec *m = &g_msg[(size_t)i * (size_t)g_messages + (size_t)k];
      uint8_t body[BODY_LEN];
      make_body(body, i, k);
      m->t_send = mono_s();
      rc = whisper_client_send(d->client, r->name, body, BODY_LEN, wall_ms(), m->id);
      if (rc != WHISPER_OK) fatal("whisper_client_send: %s", whisper_strerror(rc));
      m->issued = 1;
    }
    mark_dirty(d);
  }
  run_until(cond_catch_sent, NULL, g_timeout, "the senders' messages");
  double t_backlog = mono_s() - t0;
  /* the senders done with what follows (indexing their messages for search) */
  run_until(cond_senders_idle, NULL, g_timeout, "the senders' engines going idle");
  serve_for(0.3);

  /* the receiver logs in */
  metrics m_before;
  if (metrics_get(&s1, &m_before) != 0) fatal("/metrics did not answer");
  double srv_cpu0 = proc_cpu_s(s1.pid), cpu0 = cpu_s();
  double srv_run0 = 0, srv_wait0 = 0, own_run0 = 0, own_wait0 = 0;
  int have_sched = proc_sched_s(s1.pid, &srv_run0, &srv_wait0) == 0 &&
                   sched_s("/proc/thread-self/schedstat", &own_run0, &own_wait0) == 0;
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  double t_login = mono_s();
  g_catch_t_login = t_login;
  r->allow_connect = 1;
  mark_dirty(r);
  catch_up_wait();
  double t_last = t_login;
  for (size_t i = 0; i < total; i++)
    if (g_msg[i].received && g_msg[i].t_recv > t_last) t_last = g_msg[i].t_recv;
  double srv_cpu = proc_cpu_s(s1.pid) - srv_cpu0, own_cpu = cpu_s() - cpu0;
  getrusage(RUSAGE_SELF, &ru1);
  double own_user = tv_s(&ru1.ru_utime) - tv_s(&ru0.ru_utime);
  double own_sys = tv_s(&ru1.ru_stime) - tv_s(&ru0.ru_stime);
  double span = t_last - t_login;
  double srv_run, srv_wait = 0, own_run, own_wait = 0;
  if (have_sched && proc_sched_s(s1.pid, &srv_run, &srv_wait) == 0 &&
      sched_s("/proc/thread-self/schedstat", &own_run, &own_wait) == 0) {
    srv_wait -= srv_wait0;
    own_wait -= own_wait0;
  } else {
    have_sched = 0;
  }
  run_until(cond_catch_delivered, NULL, g_timeout, "the DELIVERED receipts");
  double t_receipts = mono_s() - t_login;
  metrics m_after;
  if (metrics_get(&s1, &m_after) != 0) fatal("/metrics did not answer");
  unsigned lost = 0;
  for (size_t i = 0; i < total; i++)
    if (!g_msg[i].received)
      problem(&lost, "message %d of %s never came", (int)(i % (size_t)g_messages),
              g_dev[i / (size_t)g_messages].name);
  if (g_catch_back) problem(&g_bad, "a progress event went backwards");
  if (g_catch_events == 0) problem(&g_bad, "no progress event (WHISPER_EV_CATCHING_UP)");
  for (size_t i = 0; i < total; i++)
    if (g_msg[i].received && g_msg[i].t_recv < t_login) {
      problem(&g_bad, "message %d of %s came before the receiver logged in (it was not offline)",
              (int)(i % (size_t)g_messages), g_dev[i / (size_t)g_messages].name);
      break;
    }
  for (int i = 0; i < n; i++) {
    g_dev[i].allow_connect = 0;
    link_close(&g_dev[i].ln);
  }
  run_until(cond_closed, &all, g_timeout, "closing the connections");
  if (server_stop(&s1, 0) != 0) problem(&g_bad, "whisperd did not stop cleanly");
  g_cur = NULL;

  char v[64];
  printf("\nCatch-up (%d senders, %d messages each, to one device that was offline; its store\n"
         "SQLite, synchronous=FULL; the backlog was sent in %.2f s):\n",
         rcv, g_messages, t_backlog);
  printf("  %-46s %14s  %s\n", "figure", "value", "detail");
  snprintf(v, sizeof v, "%.3f s", span);
  row("5. catch-up: login -> last message stored", v,
      "%u messages, %.0f msg/s; each raised once its batch committed", g_received,
      span > 0 ? g_received / span : 0);
  row("   progress events (WHISPER_EV_CATCHING_UP)", "", "%u, the last %llu of %llu", g_catch_events,
      (unsigned long long)g_catch_done, (unsigned long long)g_catch_total);
  row("   DELIVERED at the senders", "", "%u, all %.3f s after the login (informational)",
      g_delivered_n, t_receipts);
  row("   CPU during 5: whisperd", "",
      "%.2f s (%.0f us per message); whisperd-load %.2f s (%.0f us per message: the receiver, "
      "and the senders taking its receipts)", srv_cpu, g_received ? srv_cpu / g_received * 1e6 : 0,
      own_cpu, g_received ? own_cpu / g_received * 1e6 : 0);
  row("   whisperd-load's CPU: user, system", "",
      "%.2f s, %.2f s (the system's: sockets, the store's writes and fsyncs)", own_user, own_sys);
  if (have_sched)
    row("   waiting for a CPU during 5: whisperd", "", "%.2f s (%.0f%%); whisperd-load %.2f s (%.0f%%)%s",
        srv_wait, span > 0 ? srv_wait / span * 100 : 0, own_wait, span > 0 ? own_wait / span * 100 : 0,
        span > 0 && (srv_wait > 0.1 * span || own_wait > 0.1 * span)
            ? ": other processes had the CPUs, 5 is slow" : "");
  printf("\nChecks:\n  %u of %zu messages stored exactly once, each sender's in order (lost %u,\n"
         "  duplicated %u, wrong %u); engine errors %u; whisperd: %lld entries acknowledged,\n"
         "  %lld frames in, %lld out during 5\n",
         g_received, total, lost, g_dups, g_bad, g_errors,
         m_after.entries_delivered - m_before.entries_delivered,
         m_after.frames_in - m_before.frames_in, m_after.frames_out - m_before.frames_out);
  printf("\n%s: load average %.2f; %s\n", PROG, load_average(),
         g_failed ? "FAILED" : "all checks passed");
  /* as at the end of main(): lws on the libuv loop, then the loop */
  lws_context_destroy(g_lws);
  for (int i = 0; i < 1000 && g_lws && uv_loop_alive(&g_uv); i++) uv_run(&g_uv, UV_RUN_NOWAIT);
  if (g_lws) lws_context_destroy(g_lws);
  uv_close((uv_handle_t *)&g_wake, NULL);
  for (int i = 0; i < 1000 && uv_loop_alive(&g_uv); i++) uv_run(&g_uv, UV_RUN_NOWAIT);
  uv_loop_close(&g_uv);
  run_free(n);
  free(g_tx);
  if (g_keep) printf("%s: kept %s\n", PROG, g_dir);
  remove_dir();
  return g_failed ? 1 : 0;
}

/* --- one whisperd under the devices' load ------------------------------------------- */

/* What one run of the devices against one whisperd measured. */
typedef struct result {
  const char *label, *path;
  long rss_fresh, rss0, rss_n, rss_after;
  double t_ident, t_register, t_login, t_status;
  double span, srv_cpu, own_cpu, srv_wait, own_wait;
  int have_sched, stopped;
  unsigned received, lost, dups, bad, sent_n, delivered_n, status_dups, errors, identity;
  unsigned closes_warmup, closes_msg;
  size_t total, n_lat, n_first, n_rest, n_sent;
  double p50, p99, max, first_p50, first_max, rest_p50, rest_p99, rest_max, sent_p50, sent_p99;
  /* --rate: how late the send calls were (actual - scheduled), the rate
   * they went out at (first to last call), and the latency from the call */
  double late_p50, late_p99, late_max, send_rate, call_p50, call_p99;
  double uv_max, pump_max; /* the loop's longest uv_run() and round of pumps */
  metrics m_before, m_after, m_idle;
  int wave;                          /* devices registering at a time in the warm-up */
  cpu_span login_span, hold_span;    /* whisperd logging them all in; holding them idle */
  metrics m_hold0, m_hold1;          /* before and after --hold */
  /* --pg, --nodes: during the messages, each node's CPU and wait (all its
   * threads), PostgreSQL's, and the load average before and after */
  int n_nodes, pg, pg_procs;
  double node_cpu[MAX_NODES], node_wait[MAX_NODES], pg_cpu, pg_wait, load0, load1;
  pg_stats pgs; /* PostgreSQL's counters, 1 s before the messages to 1 s after their statuses */
} result;

/* Where the devices' whisperd runs (run_devices; NULL: one whisperd on
 * SQLite, as without --pg). */
typedef struct topo {
  const char *name; /* "PostgreSQL, 2 nodes" */
  int pg;           /* over the private PostgreSQL */
  int nodes;        /* whisperd processes, devices round-robin over them */
  int cluster;      /* cluster mode (--node K on each; always with more than one) */
  char table[48];   /* its own table in PostgreSQL (--pg-table): a fresh store per run */
} topo;

/* Starts node k of `t` (--pg, --pg-table, --node k+1 before `extra`). */
static void node_start(server *s, int k, const topo *t, const char *label, const char *dbname,
                       const char *path, const char *const *extra) {
  static char labels[MAX_NODES][96], dbs[MAX_NODES][96], numbers[MAX_NODES][12];
  const char *argv[MAX_ARGS + 16];
  int n = 0;
  if (t->pg) {
    argv[n++] = "--pg";
    argv[n++] = g_pg_conninfo;
    argv[n++] = "--pg-table";
    argv[n++] = t->table;
  }
  if (t->cluster) {
    snprintf(numbers[k], sizeof numbers[k], "%d", k + 1);
    argv[n++] = "--node";
    argv[n++] = numbers[k];
  }
  for (; extra && *extra && n < MAX_ARGS + 15; extra++) argv[n++] = *extra;
  argv[n] = NULL;
  if (t->nodes > 1) {
    snprintf(labels[k], sizeof labels[k], "%s node %d", label, k + 1);
    snprintf(dbs[k], sizeof dbs[k], "%s-node%d", dbname, k + 1);
  } else {
    snprintf(labels[k], sizeof labels[k], "%s", label);
    snprintf(dbs[k], sizeof dbs[k], "%s", dbname);
  }
  server_start(s, k, labels[k], dbs[k], path, argv);
}

/* CPU seconds of the nodes (or g_cur), summed. */
static double nodes_cpu_s(void) {
  if (g_n_node <= 1) return proc_cpu_s(g_cur->pid);
  double sum = 0;
  for (int k = 0; k < g_n_node; k++) sum += proc_cpu_s(g_node[k]->pid);
  return sum;
}

/* On-CPU and wait seconds of the nodes (or g_cur), summed: the main
 * thread's without the new flags, as before them; all threads' with. */
static int nodes_sched_s(double *run, double *wait) {
  if (g_n_node <= 1 && !g_multi) return proc_sched_s(g_cur->pid, run, wait);
  *run = *wait = 0;
  for (int k = 0; k < (g_n_node > 1 ? g_n_node : 1); k++) {
    double r, w;
    if (proc_sched_all_s(g_n_node > 1 ? g_node[k]->pid : g_cur->pid, &r, &w) != 0) return -1;
    *run += r;
    *wait += w;
  }
  return 0;
}

/* Each node's (all threads) and PostgreSQL's CPU and wait, now. */
static void topo_read(const topo *t, double run[MAX_NODES], double wait[MAX_NODES],
                      double *pg_run, double *pg_wait, int *pg_procs) {
  for (int k = 0; k < t->nodes; k++)
    if (proc_sched_all_s(g_node[k]->pid, &run[k], &wait[k]) != 0) run[k] = wait[k] = 0;
  *pg_run = *pg_wait = 0;
  *pg_procs = 0;
  if (t->pg && pg_sched_s(pg_run, pg_wait, pg_procs) != 0) *pg_run = *pg_wait = 0;
}

/* Fresh devices (identities, engines, message records) for a run. */
static void devices_make(result *r) {
  double t0 = mono_s();
  run_alloc(g_clients);
  for (int i = 0; i < g_clients; i++) device_new(&g_dev[i], i);
  r->t_ident = mono_s() - t0;
}

static void devices_free(void) { run_free(g_clients); }

/* Figure 1's span (a function of its own, for profilers: `valgrind
 * --tool=callgrind --toggle-collect=messages_wait`, or `perf record -g`
 * and the samples under it). */
__attribute__((noinline)) static void messages_wait(void) {
  run_until(cond_all_received, NULL, g_timeout, "delivering the messages");
  __asm__ __volatile__("" ::: "memory"); /* (no tail call) */
}

/* Starts `path` (with the --whisperd-arg flags and `extra`), and runs the
 * devices against it: the warm-up, the login of all, the messages and
 * their checks, the closing; then stops it. */
static void run_devices(const char *path, const char *label, const char *dbname,
                        const char *const *extra, const topo *t, result *r) {
  memset(r, 0, sizeof *r);
  r->label = label;
  r->path = path;
  r->n_nodes = t ? t->nodes : 1;
  r->pg = t && t->pg;
  devices_make(r);
  unsigned bad0 = g_bad;
  static server srv[MAX_NODES];
  server *s1 = &srv[0];
  if (!t) {
    server_start(s1, 0, label, dbname, path, extra);
    g_cur = s1;
    printf("%s: %s, pid %ld, ws://%s" WS_PATH ", store %s\n", label, path, (long)s1->pid,
           s1->hostport, s1->db);
  } else {
    for (int k = 0; k < t->nodes; k++) {
      node_start(&srv[k], k, t, label, dbname, path, extra);
      g_node[k] = &srv[k];
      printf("%s: pid %ld, ws://%s" WS_PATH ", store %s%s%s\n", srv[k].label, (long)srv[k].pid,
             srv[k].hostport, t->pg ? "PostgreSQL, table " : srv[k].db, t->pg ? t->table : "",
             t->cluster ? ", cluster mode" : "");
    }
    g_n_node = t->nodes;
    g_cur = s1;
  }
  fflush(stdout);
  r->rss_fresh = rss_nodes();

  /* Warm-up: every device registers and logs in, `wave` at a time, and
   * disconnects: the accounts, prekeys and SQLite's cache are in place,
   * and whisperd never held more than `wave` connections before the
   * baseline (at most 1% of N: malloc reuses what they freed). */
  double t0 = mono_s();
  int wave = g_clients / 100 > REG_WAVE ? g_clients / 100 : REG_WAVE;
  r->wave = wave;
  for (int from = 0; from < g_clients; from += wave) {
    range rg = {from, from + wave < g_clients ? from + wave : g_clients};
    for (int i = rg.from; i < rg.to; i++) {
      g_dev[i].allow_connect = 1;
      mark_dirty(&g_dev[i]);
    }
    run_until(cond_ready, &rg, g_timeout, "registration and first login (a wave)");
    for (int i = rg.from; i < rg.to; i++) {
      g_dev[i].allow_connect = 0;
      link_close(&g_dev[i].ln);
    }
    run_until(cond_closed, &rg, g_timeout, "closing a wave");
  }
  r->t_register = mono_s() - t0;
  for (int i = 0; i < g_clients; i++) {
    if (g_dev[i].ln.failures)
      fprintf(stderr, "%s: warning: %s needed %u attempts to register\n", PROG, g_dev[i].name,
              g_dev[i].ln.failures + 1);
    /* New engines (over the same stores): no reconnect backoff left. */
    whisper_client_free(g_dev[i].client);
    g_dev[i].client = NULL;
    device_engine(&g_dev[i]);
  }
  r->closes_warmup = g_unexpected_closes;
  r->rss0 = settle_rss(0, 0, "whisperd's connections closing after the warm-up", NULL);

  /* All N log in at once (at most LOGIN_INFLIGHT at a time) and stay idle. */
  t0 = mono_s();
  span_begin(&r->login_span, s1->pid);
  range all = {0, g_clients};
  for (int i = 0; i < g_clients; i++) {
    g_dev[i].allow_connect = 1;
    mark_dirty(&g_dev[i]);
  }
  run_until(cond_ready, &all, g_timeout, "all devices logging in");
  r->t_login = mono_s() - t0;
  span_end(&r->login_span);
  r->rss_n = settle_rss(g_clients, g_clients, "whisperd counting the logged-in connections",
                        &r->m_idle);
  /* held idle: what N idle devices cost whisperd per second (their pings) */
  if (g_hold > 0) {
    if (metrics_nodes(&r->m_hold0) != 0) fatal("/metrics did not answer");
    span_begin(&r->hold_span, s1->pid);
    serve_for(g_hold);
    span_end(&r->hold_span);
    if (metrics_nodes(&r->m_hold1) != 0) fatal("/metrics did not answer");
    if (r->m_hold1.authenticated != g_clients)
      problem(&g_bad, "%lld of %d devices still logged in after %d s idle (%s)",
              r->m_hold1.authenticated, g_clients, g_hold, label);
  }

  /* --- messages --- */
  if (metrics_nodes(&r->m_before) != 0) fatal("/metrics did not answer");
  unsigned closes_before = g_unexpected_closes;
  double node_run0[MAX_NODES], node_wait0[MAX_NODES], pg_run0 = 0, pg_wait0 = 0;
  pg_stats pgs0;
  if (t && t->pg) { /* (its backends report their counters within 1 s of going idle) */
    serve_for(1.1);
    pg_stats_read(&pgs0);
  }
  if (t) {
    r->load0 = load_average();
    topo_read(t, node_run0, node_wait0, &pg_run0, &pg_wait0, &r->pg_procs);
  }
  double srv_cpu0 = nodes_cpu_s(), cpu0 = cpu_s();
  double srv_run0 = 0, srv_wait0 = 0, own_run0 = 0, own_wait0 = 0;
  r->have_sched = nodes_sched_s(&srv_run0, &srv_wait0) == 0 &&
                  sched_s("/proc/thread-self/schedstat", &own_run0, &own_wait0) == 0;
  double t_first = mono_s();
  g_msg_started = 1;
  if (g_rate) { /* open loop: run_until sends them on their schedule */
    g_sched_t0 = t_first;
    g_sched_next = 0;
    g_sched_uv_max = g_sched_pump_max = 0;
    g_sched_on = 1;
  }
  for (int i = 0; i < g_clients && !g_rate; i++) {
    if (g_burst)
      while (g_dev[i].next_k < g_messages) send_one(&g_dev[i]);
    else
      while (g_dev[i].next_k < g_window && g_dev[i].next_k < g_messages) send_one(&g_dev[i]);
  }
  messages_wait();
  g_sched_on = 0;
  r->uv_max = g_sched_uv_max;
  r->pump_max = g_sched_pump_max;
  double t_last = t_first;
  size_t total = (size_t)g_clients * (size_t)g_messages;
  r->total = total;
  for (size_t i = 0; i < total; i++)
    if (g_msg[i].received && g_msg[i].t_recv > t_last) t_last = g_msg[i].t_recv;
  r->srv_cpu = nodes_cpu_s() - srv_cpu0;
  r->own_cpu = cpu_s() - cpu0;
  if (t) {
    double run[MAX_NODES], wait[MAX_NODES], pg_run, pg_wait;
    topo_read(t, run, wait, &pg_run, &pg_wait, &r->pg_procs);
    for (int k = 0; k < t->nodes; k++) {
      r->node_cpu[k] = run[k] - node_run0[k];
      r->node_wait[k] = wait[k] - node_wait0[k];
    }
    r->pg_cpu = pg_run - pg_run0;
    r->pg_wait = pg_wait - pg_wait0;
    r->load1 = load_average();
  }
  double srv_run, own_run;
  if (r->have_sched && nodes_sched_s(&srv_run, &r->srv_wait) == 0 &&
      sched_s("/proc/thread-self/schedstat", &own_run, &r->own_wait) == 0) {
    r->srv_wait -= srv_wait0;
    r->own_wait -= own_wait0;
  } else {
    r->have_sched = 0;
  }
  r->span = t_last - t_first;
  /* Statuses: every message SENT once to its sender, DELIVERED by its
   * recipient; then a short quiet time in which nothing may arrive twice. */
  double t_status0 = mono_s();
  run_until(cond_statuses, NULL, g_timeout, "SENT and DELIVERED statuses");
  r->t_status = mono_s() - t_status0;
  serve_for(0.25);
  r->closes_msg = g_unexpected_closes - closes_before;
  if (metrics_nodes(&r->m_after) != 0) fatal("/metrics did not answer");
  if (t && t->pg) {
    serve_for(1.1);
    pg_stats_read(&r->pgs);
    long long *a = &r->pgs.commits, *b = &pgs0.commits;
    for (size_t i = 0; i < sizeof r->pgs / sizeof r->pgs.commits; i++)
      a[i] = a[i] >= 0 && b[i] >= 0 ? a[i] - b[i] : -1;
  }

  g_msg_started = 0;
  /* exactly once */
  for (size_t i = 0; i < total; i++) {
    msgrec *m = &g_msg[i];
    int s = (int)(i / (size_t)g_messages), k = (int)(i % (size_t)g_messages);
    if (m->received == 0)
      problem(&r->lost, "message %d of %s to %s was never delivered (%s)", k, g_dev[s].name,
              g_dev[recipient_of(s)].name, label);
  }

  /* latencies */
  /* (from the scheduled time: the same as the call's but with --rate,
   * where a tool that falls behind cannot hide its own delay) */
  double *lat = malloc(total * sizeof *lat), *lat_first = malloc((size_t)g_clients * sizeof *lat),
         *lat_rest = malloc(total * sizeof *lat), *lat_sent = malloc(total * sizeof *lat),
         *late = malloc(total * sizeof *lat), *lat_call = malloc(total * sizeof *lat);
  if (!lat || !lat_first || !lat_rest || !lat_sent || !late || !lat_call) fatal("out of memory");
  size_t n_lat = 0, n_first = 0, n_rest = 0, n_sent = 0, n_late = 0;
  double call0 = 1e300, call1 = 0;
  for (size_t i = 0; i < total; i++) {
    msgrec *m = &g_msg[i];
    if (m->received) {
      double l = m->t_recv - m->t_sched;
      lat_call[n_lat] = m->t_recv - m->t_send;
      lat[n_lat++] = l;
      if (i % (size_t)g_messages == 0) lat_first[n_first++] = l;
      else lat_rest[n_rest++] = l;
    }
    if (m->sent) lat_sent[n_sent++] = m->t_sent - m->t_send;
    if (m->issued) {
      late[n_late++] = m->t_send - m->t_sched;
      if (m->t_send < call0) call0 = m->t_send;
      if (m->t_send > call1) call1 = m->t_send;
    }
  }
  qsort(late, n_late, sizeof *lat, cmp_double);
  qsort(lat_call, n_lat, sizeof *lat, cmp_double);
  r->late_p50 = pct(late, n_late, 50);
  r->late_p99 = pct(late, n_late, 99);
  r->late_max = n_late ? late[n_late - 1] : 0;
  r->send_rate = call1 > call0 ? (double)(n_late - 1) / (call1 - call0) : 0;
  r->call_p50 = pct(lat_call, n_lat, 50);
  r->call_p99 = pct(lat_call, n_lat, 99);
  free(late);
  free(lat_call);
  qsort(lat, n_lat, sizeof *lat, cmp_double);
  qsort(lat_first, n_first, sizeof *lat, cmp_double);
  qsort(lat_rest, n_rest, sizeof *lat, cmp_double);
  qsort(lat_sent, n_sent, sizeof *lat, cmp_double);
  r->n_lat = n_lat;
  r->n_first = n_first;
  r->n_rest = n_rest;
  r->n_sent = n_sent;
  r->p50 = pct(lat, n_lat, 50);
  r->p99 = pct(lat, n_lat, 99);
  r->max = n_lat ? lat[n_lat - 1] : 0;
  r->first_p50 = pct(lat_first, n_first, 50);
  r->first_max = n_first ? lat_first[n_first - 1] : 0;
  r->rest_p50 = pct(lat_rest, n_rest, 50);
  r->rest_p99 = pct(lat_rest, n_rest, 99);
  r->rest_max = n_rest ? lat_rest[n_rest - 1] : 0;
  r->sent_p50 = pct(lat_sent, n_sent, 50);
  r->sent_p99 = pct(lat_sent, n_sent, 99);
  free(lat);
  free(lat_first);
  free(lat_rest);
  free(lat_sent);
  r->received = g_received;
  r->dups = g_dups;
  r->bad = g_bad - bad0;
  r->sent_n = g_sent_n;
  r->delivered_n = g_delivered_n;
  r->status_dups = g_status_dups;
  r->errors = g_errors;
  r->identity = g_identity;

  /* whisperd with its connections closed (malloc keeps what it had) */
  for (int i = 0; i < g_clients; i++) {
    g_dev[i].allow_connect = 0;
    link_close(&g_dev[i].ln);
  }
  run_until(cond_closed, &all, g_timeout, "closing the devices' connections");
  r->rss_after = settle_rss(0, 0, "whisperd's connections closing", NULL);
  r->stopped = 1;
  for (int k = (t ? t->nodes : 1) - 1; k >= 0; k--)
    if (server_stop(&srv[k], k) != 0) r->stopped = 0;
  g_cur = NULL;
  g_n_node = 0;
  if (!r->stopped) problem(&g_bad, "%s did not stop cleanly", label);
  devices_free();
}

/* How the messages are sent, for the reports. */
static const char *mode_name(char *buf, size_t cap) {
  if (g_rate)
    snprintf(buf, cap, "open loop, %.0f msg/s asked (each device every %.1f ms, on a schedule)",
             g_rate, g_clients / g_rate * 1e3);
  else
    snprintf(buf, cap, "closed loop, %s",
             g_burst        ? "burst (all at once)"
             : g_window > 1 ? "windowed (up to --window unanswered by the server per device)"
                            : "paced (the next one once the previous is SENT)");
  return buf;
}

/* A figure of the two runs: this whisperd's value, the baseline's beside
 * it (with --baseline), then the detail. */
static result *g_base; /* the baseline's result, or NULL */

static void row2(const char *name, const char *value, const char *base, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void row2(const char *name, const char *value, const char *base, const char *fmt, ...) {
  if (g_base)
    printf("  %-40s %14s %14s  ", name, value, base ? base : "");
  else
    printf("  %-46s %14s  ", name, value);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
}

static const char *fmt_rate(char *buf, size_t cap, const result *r) {
  snprintf(buf, cap, "%.0f msg/s", r->span > 0 ? (double)r->received / r->span : 0);
  return buf;
}

static const char *fmt_us(char *buf, size_t cap, double cpu, unsigned n) {
  snprintf(buf, cap, "%.0f us", n ? cpu / n * 1e6 : 0);
  return buf;
}

/* The mode, and with --rate how late the sends were and whether the tool
 * kept to its schedule (the latency is not valid when it did not). */
static void print_mode_rows(const result *r) {
  char v[64], w[64], x[64], m[160];
  row2("   mode", g_rate ? "open loop" : "closed loop", NULL, "%s", mode_name(m, sizeof m));
  if (!g_rate) return;
  row2("   sends late (call - schedule) p50", fmt_ms(v, sizeof v, r->late_p50), NULL,
       "p99 %s, max %s; the calls went out at %.0f msg/s of %.0f asked",
       fmt_ms(w, sizeof w, r->late_p99), fmt_ms(x, sizeof x, r->late_max), r->send_rate, g_rate);
  if (r->late_p99 > LATE_BAR)
    row2("   the tool could not keep up", "NOT VALID", NULL,
         "its sends fell behind their schedule (p99 %s > %.0f ms): the latency above is the "
         "tool's own backlog, not whisperd's", fmt_ms(w, sizeof w, r->late_p99), LATE_BAR * 1e3);
  else
    row2("   the tool kept up", "yes", NULL, "sends late by at most %s at p99 (the bar: %.0f ms)",
         fmt_ms(w, sizeof w, r->late_p99), LATE_BAR * 1e3);
  double step = r->uv_max > r->pump_max ? r->uv_max : r->pump_max;
  row2("   the loop's longest step", fmt_ms(v, sizeof v, step), NULL,
       "one uv_run() (sockets) %s, one round of the engines' pumps %s: a send waits for it",
       fmt_ms(w, sizeof w, r->uv_max), fmt_ms(x, sizeof x, r->pump_max));
  row2("   latency from the send call p50", fmt_ms(v, sizeof v, r->call_p50), NULL,
       "p99 %s (informational: hides the sends' lateness)", fmt_ms(w, sizeof w, r->call_p99));
}

static void print_checks(const result *r) {
  printf("  %s: %u of %zu messages delivered exactly once to their recipient (lost %u, duplicated\n"
         "  %u, wrong %u); SENT %u, DELIVERED %u (all within %.2f s of the last delivery; %u\n"
         "  status(es) repeated); engine errors %u, identity events %u; connections lost: %u in\n"
         "  the warm-up, %u during the messages\n",
         r->label, r->received, r->total, r->lost, r->dups, r->bad, r->sent_n, r->delivered_n,
         r->t_status, r->status_dups, r->errors, r->identity, r->closes_warmup, r->closes_msg);
  printf("  %s during the messages: %lld Send accepted, %lld entries acknowledged, %lld frames\n"
         "  refused (Error), %lld frames in, %lld out; mailbox depth %lld after; %lld logged in when\n"
         "  idle; VmRSS %ld KiB after the devices closed\n",
         r->label, r->m_after.messages_sent - r->m_before.messages_sent,
         r->m_after.entries_delivered - r->m_before.entries_delivered,
         r->m_after.refused - r->m_before.refused, r->m_after.frames_in - r->m_before.frames_in,
         r->m_after.frames_out - r->m_before.frames_out, r->m_after.mailbox_depth,
         r->m_idle.authenticated, r->rss_after);
}

/* --- --pg, --nodes, --compare-pg ------------------------------------------------------ */

/* The figures of one run under a topology: 1 and 2, and the CPU per
 * message of each node, of PostgreSQL and of this program. */
static void print_topo_run(const topo *t, const result *r) {
  char v[64], w[64], x[64];
  double d = r->received ? (double)r->received : 1, span = r->span > 0 ? r->span : 1;
  printf("\nResults: %s (load average %.2f before the messages, %.2f after):\n", t->name,
         r->load0, r->load1);
  printf("  %-46s %14s  %s\n", "figure", "value", "detail");
  row("1. messages per second, end to end", fmt_rate(v, sizeof v, r),
      "%u messages in %.3f s, first send call -> last delivery", r->received, r->span);
  row("2. delivery latency p50", fmt_ms(v, sizeof v, r->p50),
      g_rate ? "scheduled send time -> WHISPER_EV_MESSAGE at the recipient"
             : "whisper_client_send() -> WHISPER_EV_MESSAGE at the recipient");
  row("   p99", fmt_ms(v, sizeof v, r->p99), "max %s", fmt_ms(w, sizeof w, r->max));
  row("   first message of each device p50", fmt_ms(v, sizeof v, r->first_p50),
      "max %s; with the session set-up (ListDevices, FetchBundles)",
      fmt_ms(w, sizeof w, r->first_max));
  if (r->n_rest)
    row("   the others p50", fmt_ms(v, sizeof v, r->rest_p50), "p99 %s, max %s",
        fmt_ms(w, sizeof w, r->rest_p99), fmt_ms(x, sizeof x, r->rest_max));
  row("   send -> SENT p50 (server committed)", fmt_ms(v, sizeof v, r->sent_p50), "p99 %s",
      fmt_ms(w, sizeof w, r->sent_p99));
  print_mode_rows(r);
  double nodes_cpu = 0, nodes_wait = 0;
  for (int k = 0; k < r->n_nodes; k++) nodes_cpu += r->node_cpu[k], nodes_wait += r->node_wait[k];
  snprintf(v, sizeof v, "%.0f us", nodes_cpu / d * 1e6);
  row(r->n_nodes > 1 ? "   whisperd CPU per message, all nodes" : "   whisperd CPU per message", v,
      "%.2f s during 1 (%.0f%% of one CPU); waited %.2f s for a CPU", nodes_cpu,
      nodes_cpu / span * 100, nodes_wait);
  for (int k = 0; r->n_nodes > 1 && k < r->n_nodes; k++) {
    char name[32];
    snprintf(name, sizeof name, "     node %d", k + 1);
    snprintf(v, sizeof v, "%.0f us", r->node_cpu[k] / d * 1e6);
    row(name, v, "%.2f s (%.0f%% of one CPU); waited %.2f s", r->node_cpu[k],
        r->node_cpu[k] / span * 100, r->node_wait[k]);
  }
  if (r->pg) {
    snprintf(v, sizeof v, "%.0f us", r->pg_cpu / d * 1e6);
    row("   PostgreSQL CPU per message", v,
        "%.2f s during 1 (%.0f%% of one CPU), %d processes; waited %.2f s for a CPU", r->pg_cpu,
        r->pg_cpu / span * 100, r->pg_procs, r->pg_wait);
  }
  if (r->pg && r->pgs.commits >= 0) {
    snprintf(v, sizeof v, "%.2f", (double)r->pgs.commits / d);
    row("   PostgreSQL commits per message", v,
        "%lld commits, %lld rollbacks, %lld deadlocks (from 1 s before the first send to 1 s "
        "after the last status)", r->pgs.commits, r->pgs.rollbacks, r->pgs.deadlocks);
  }
  if (r->pg && r->pgs.fetched >= 0) {
    snprintf(v, sizeof v, "%.1f", (double)(r->pgs.fetched + r->pgs.inserted + r->pgs.updated +
                                           r->pgs.deleted) / d);
    row("   PostgreSQL rows per message", v,
        "%.1f fetched, %.1f inserted, %.1f updated, %.1f deleted", (double)r->pgs.fetched / d,
        (double)r->pgs.inserted / d, (double)r->pgs.updated / d, (double)r->pgs.deleted / d);
  }
  if (r->pg && r->pgs.wal_syncs >= 0) {
    snprintf(v, sizeof v, "%.2f", (double)r->pgs.wal_syncs / d);
    row("   PostgreSQL WAL flushes per message", v,
        "%lld fsyncs of the WAL (%lld writes), %.1f KiB and %.1f records of WAL per message",
        r->pgs.wal_syncs, r->pgs.wal_writes, (double)r->pgs.wal_bytes / d / 1024,
        (double)r->pgs.wal_records / d);
  }
  snprintf(v, sizeof v, "%.0f us", r->own_cpu / d * 1e6);
  row("   whisperd-load CPU per message", v,
      "%.2f s during 1 (%.0f%% of one CPU): the engines; waited %.2f s", r->own_cpu,
      r->own_cpu / span * 100, r->own_wait);
  double busy = nodes_cpu + r->pg_cpu + r->own_cpu;
  row("   CPU of these per message", fmt_us(v, sizeof v, busy, r->received),
      "%.0f%% of the machine's %ld CPUs during 1",
      busy / span / (double)sysconf(_SC_NPROCESSORS_ONLN) * 100, sysconf(_SC_NPROCESSORS_ONLN));
  print_checks(r);
}

/* The runs of --pg / --nodes / --compare-pg, and their table. */
static void nodes_main(void) {
  static topo list[3 + MAX_NODES];
  int n = 0;
  if (g_compare) {
    list[n++] = (topo){"SQLite, 1 node", 0, 1, 0, ""};
    list[n++] = (topo){"PostgreSQL, 1 node", 1, 1, 0, ""};
    list[n++] = (topo){"PostgreSQL, 1 node, cluster mode", 1, 1, 1, ""};
    for (int k = 2; k <= g_nodes; k++) list[n++] = (topo){NULL, 1, k, 1, ""};
  } else {
    list[n++] = (topo){NULL, g_pg, g_nodes, g_nodes > 1 || g_cluster1, ""};
  }
  static char names[3 + MAX_NODES][64];
  for (int i = 0; i < n; i++)
    if (!list[i].name) {
      if (list[i].pg)
        snprintf(names[i], sizeof names[i], "PostgreSQL, %d node%s%s", list[i].nodes,
                 list[i].nodes > 1 ? "s" : "",
                 list[i].nodes == 1 && list[i].cluster ? ", cluster mode" : "");
      else
        snprintf(names[i], sizeof names[i], "SQLite, 1 node");
      list[i].name = names[i];
    }
  if (g_pg || g_compare) pg_start();
  printf("devices round-robin over the nodes: device i on node i mod N, so that with N > 1 every\n"
         "message of the ring crosses nodes (relayed by LISTEN/NOTIFY); %d configuration%s, %d "
         "time%s each, interleaved\n\n", n, n > 1 ? "s" : "", g_repeat, g_repeat > 1 ? "s" : "");
  fflush(stdout);
  result *res = calloc((size_t)(n * g_repeat), sizeof *res);
  if (!res) fatal("out of memory");
  for (int rep = 0; rep < g_repeat; rep++)
    for (int i = 0; i < n; i++) {
      topo *t = &list[i];
      result *r = &res[rep * n + i];
      char label[32], db[64];
      snprintf(label, sizeof label, "%s%d%s", t->pg ? "pg" : "sqlite", t->nodes,
               t->nodes == 1 && t->cluster ? "c" : "");
      snprintf(db, sizeof db, "%s-r%d", label, rep + 1);
      snprintf(t->table, sizeof t->table, "wl_%s_r%d", label, rep + 1);
      static char labels[3 + MAX_NODES][32]; /* (results keep the pointer) */
      snprintf(labels[i], sizeof labels[i], "%s", label);
      printf("--- %s (run %d of %d) ---\n", t->name, rep + 1, g_repeat);
      unsigned closes0 = g_unexpected_closes;
      run_devices(g_whisperd, labels[i], db, g_args, t, r);
      r->closes_warmup -= closes0; /* (the count is the program's) */
      if (t->pg) pg_drop_tables(t->table);
      print_topo_run(t, r);
      printf("\n");
    }
  pg_stop();

  /* Two tables: the figures and the CPU they cost; then what PostgreSQL did
   * and who waited for a CPU (the machine's other load shows there). */
  char mode[160];
  printf("Summary (%d devices, %d messages of %d B each, %s; CPU: microseconds per message "
         "during 1,\nwhisperd's summed over the nodes, each node's in brackets):\n",
         g_clients, g_messages, BODY_LEN, mode_name(mode, sizeof mode));
  printf("  %-34s %7s %8s %8s %20s %6s %6s %6s\n", "configuration", "msg/s", "p50 ms", "p99 ms",
         "whisperd", "PG", "load", "all");
  for (int i = 0; i < n; i++)
    for (int rep = 0; rep < g_repeat; rep++) {
      const result *r = &res[rep * n + i];
      double d = r->received ? (double)r->received : 1, sum = 0;
      char per[64] = "", wh[80], pgc[16] = "-";
      int off = 0;
      for (int k = 0; k < r->n_nodes; k++) {
        sum += r->node_cpu[k];
        if (r->n_nodes > 1 && off < (int)sizeof per)
          off += snprintf(per + off, sizeof per - (size_t)off, "%s%.0f", k ? "+" : " (",
                          r->node_cpu[k] / d * 1e6);
      }
      if (r->n_nodes > 1 && off < (int)sizeof per)
        snprintf(per + off, sizeof per - (size_t)off, ")");
      snprintf(wh, sizeof wh, "%.0f%s", sum / d * 1e6, per);
      if (r->pg) snprintf(pgc, sizeof pgc, "%.0f", r->pg_cpu / d * 1e6);
      printf("  %-34s %7.0f %8.1f %8.1f %20s %6s %6.0f %6.0f\n", list[i].name,
             r->span > 0 ? r->received / r->span : 0, r->p50 * 1e3, r->p99 * 1e3, wh, pgc,
             r->own_cpu / d * 1e6, (sum + r->pg_cpu + r->own_cpu) / d * 1e6);
    }
  printf("\n  %-34s %8s %9s %9s %9s %16s %10s\n", "configuration", "commits", "deadlocks",
         "refused", "conns", "CPU wait s", "load avg");
  printf("  %-34s %8s %9s %9s %9s %16s %10s\n", "", "per msg", "", "frames", "lost",
         "nodes/PG/load", "before-after");
  for (int i = 0; i < n; i++)
    for (int rep = 0; rep < g_repeat; rep++) {
      const result *r = &res[rep * n + i];
      double d = r->received ? (double)r->received : 1, wsum = 0;
      for (int k = 0; k < r->n_nodes; k++) wsum += r->node_wait[k];
      char commits[24] = "-", dl[24] = "-", wcol[64], pgw[24] = "-";
      if (r->pg && r->pgs.commits >= 0)
        snprintf(commits, sizeof commits, "%.2f", r->pgs.commits / d);
      if (r->pg && r->pgs.deadlocks >= 0) snprintf(dl, sizeof dl, "%lld", r->pgs.deadlocks);
      if (r->pg) snprintf(pgw, sizeof pgw, "%.1f", r->pg_wait);
      snprintf(wcol, sizeof wcol, "%.1f/%s/%.1f", wsum, pgw, r->own_wait);
      printf("  %-34s %8s %9s %9lld %9u %16s %4.2f-%4.2f\n", list[i].name, commits, dl,
             r->m_after.refused - r->m_before.refused, r->closes_msg, wcol, r->load0, r->load1);
    }
  if (g_pg || g_compare) printf("  (%s)\n", g_pg_about);
  free(res);
}

/* --- main ---------------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: whisperd-load [--quick] [--clients N] [--messages M] [--idle K] [--hold S]\n"
          "                     [--burst] [--window W] [--rate R] [--no-receipts]\n"
          "                     [--whisperd PATH]\n"
          "                     [--whisperd-arg ARG]... [--baseline PATH] [--baseline-arg ARG]...\n"
          "                     [--timeout S] [--keep] [--catch-up]\n"
          "                     [--pg] [--nodes N] [--cluster] [--compare-pg] [--repeat R]\n"
          "                     [--pg-cluster PATH] [--pg-set NAME=VALUE]...\n"
          "  --clients N     simulated devices, each with its engine and connection (default 200)\n"
          "  --messages M    messages of 100 B each device sends, in a ring (default 20; 0: no\n"
          "                  messages, figures 1 and 2 skipped)\n"
          "  --idle K        plain WebSocket connections for the idle-memory figure (default\n"
          "                  1000; 0: skip it)\n"
          "  --hold S        hold the N logged-in devices idle S seconds before the messages and\n"
          "                  report the CPU whisperd spends on them (their pings; default 0)\n"
          "  --quick         N=20, M=5, K=100, --timeout 25 (the ctest smoke run)\n"
          "  --burst         each device sends its M messages at once (default: the next one\n"
          "                  when the previous is SENT)\n"
          "  --window W      each device keeps up to W messages not yet SENT (default 1)\n"
          "  --rate R        open loop: R messages per second in all, device i's message k due\n"
          "                  at (k*N + i) / R s, whatever came back; latency from that time,\n"
          "                  and how late the sends were (default: the closed loop above)\n"
          "  --catch-up      the catch-up figure alone: N-1 devices (default 10) send M messages\n"
          "                  each (default 1000) to the last one while it is offline; it logs in\n"
          "                  with a SQLite store (synchronous=FULL): time to the last message\n"
          "  --no-receipts   the engines send no DELIVERED receipts (end to end since the\n"
          "                  signed-receipts change): what they cost, by difference\n"
          "  --whisperd PATH the whisperd to start (default: the one built with this program)\n"
          "  --whisperd-arg ARG  a flag for every whisperd started (repeat it for each word:\n"
          "                  --whisperd-arg --synchronous --whisperd-arg full)\n"
          "  --baseline PATH another whisperd (e.g. a build of an older commit): the devices\n"
          "                  run first against it, the same way, and its figures are printed\n"
          "                  beside whisperd's (the idle figure 4 is whisperd's only)\n"
          "  --baseline-arg ARG  a flag for the baseline only (after the --whisperd-arg ones)\n"
          "  --timeout S     how long each phase may take before the run fails (default 120)\n"
          "  --keep          keep the temporary directory (databases, whisperd logs)\n"
          "  --pg            whisperd over a private PostgreSQL started for the run\n"
          "                  (pg_cluster.sh; synchronous_commit=on, fsync=on) and stopped after\n"
          "                  it: figures 1 and 2, with each node's and PostgreSQL's CPU per\n"
          "                  message (no figures 3 and 4). Exit 77 without PostgreSQL\n"
          "  --nodes N       N whisperd (1..%d) over that PostgreSQL (--pg), cluster mode (--node\n"
          "                  1..N), device i on node i mod N: every message crosses nodes\n"
          "  --cluster       with --pg --nodes 1: the one node in cluster mode too (--node 1)\n"
          "  --compare-pg    one run each of: SQLite one node, PostgreSQL one node, the same in\n"
          "                  cluster mode, PostgreSQL 2..N nodes (--nodes, default 3); one table\n"
          "  --repeat R      with --pg or --compare-pg: every configuration R times, interleaved\n"
          "  --pg-cluster PATH  tests/tools/pg_cluster.sh (default: the source tree's)\n"
          "  --pg-set NAME=VALUE  a PostgreSQL setting for the run (ALTER SYSTEM SET, reloaded;\n"
          "                  repeatable), e.g. deadlock_timeout=50ms: printed with the figures\n",
          MAX_NODES);
}

static int finish(double t_start, double cpu_start);

static int parse_int(const char *s, int min, int max, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *s == 0 || *end || v < min || v > max) return -1;
  *out = (int)v;
  return 0;
}

int main(int argc, char **argv) {
  int set_clients = 0, set_messages = 0, set_idle = 0, set_timeout = 0, set_hold = 0;
  int set_nodes = 0, set_repeat = 0;
  /* the switches: options without a value */
  static const struct {
    const char *name;
    int *on;
  } switches[] = {{"--quick", &g_quick},     {"--burst", &g_burst}, {"--no-receipts", &g_no_receipts},
                  {"--catch-up", &g_catch},  {"--keep", &g_keep},   {"--pg", &g_pg},
                  {"--cluster", &g_cluster1}, {"--compare-pg", &g_compare}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int *target = NULL, min = 0, max = 0, *flag = NULL, matched = 0;
    for (size_t k = 0; k < sizeof switches / sizeof switches[0] && !matched; k++)
      if (strcmp(a, switches[k].name) == 0) *switches[k].on = matched = 1;
    if (matched) {
      continue;
    } else if (strcmp(a, "--window") == 0) {
      if (i + 1 >= argc || parse_int(argv[++i], 1, 100000, &g_window) != 0) {
        fprintf(stderr, "%s: --window takes 1..100000\n", PROG);
        return 2;
      }
      continue;
    } else if (strcmp(a, "--rate") == 0) {
      char *end;
      errno = 0;
      g_rate = i + 1 < argc ? strtod(argv[++i], &end) : 0;
      if (g_rate < 1 || g_rate > 1e6 || errno || *end) {
        fprintf(stderr, "%s: --rate takes 1..1000000 messages per second\n", PROG);
        return 2;
      }
      continue;
    } else if (strcmp(a, "--pg-cluster") == 0 && i + 1 < argc) {
      g_pg_script = argv[++i];
      continue;
    } else if (strcmp(a, "--pg-set") == 0 && i + 1 < argc) {
      const char *v = argv[++i], *eq = strchr(v, '=');
      size_t nl = eq ? (size_t)(eq - v) : 0;
      if (!eq || nl == 0 || nl > 60 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_.") != nl ||
          strlen(eq + 1) > 200 || g_n_pg_set == MAX_PG_SET) {
        fprintf(stderr, "%s: --pg-set takes NAME=VALUE (a PostgreSQL setting; at most %d)\n", PROG,
                MAX_PG_SET);
        return 2;
      }
      g_pg_set[g_n_pg_set++] = v;
      continue;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--whisperd") == 0 && i + 1 < argc) {
      g_whisperd = argv[++i];
      continue;
    } else if (strcmp(a, "--baseline") == 0 && i + 1 < argc) {
      g_baseline = argv[++i];
      continue;
    } else if ((strcmp(a, "--whisperd-arg") == 0 || strcmp(a, "--baseline-arg") == 0) &&
               i + 1 < argc) {
      int both = a[2] == 'w';
      if ((both && g_n_args == MAX_ARGS) || g_n_base_args == MAX_ARGS) {
        fprintf(stderr, "%s: at most %d whisperd arguments\n", PROG, MAX_ARGS);
        return 2;
      }
      if (both) g_args[g_n_args++] = argv[i + 1];
      g_base_args[g_n_base_args++] = argv[++i];
      continue;
    } else if (strcmp(a, "--clients") == 0) {
      target = &g_clients, min = 2, max = 100000, flag = &set_clients;
    } else if (strcmp(a, "--messages") == 0) {
      target = &g_messages, min = 0, max = 1000000, flag = &set_messages;
    } else if (strcmp(a, "--idle") == 0) {
      target = &g_idle, min = 0, max = 1000000, flag = &set_idle;
    } else if (strcmp(a, "--hold") == 0) {
      target = &g_hold, min = 0, max = 86400, flag = &set_hold;
    } else if (strcmp(a, "--nodes") == 0) {
      target = &g_nodes, min = 1, max = MAX_NODES, flag = &set_nodes;
    } else if (strcmp(a, "--repeat") == 0) {
      target = &g_repeat, min = 1, max = 100, flag = &set_repeat;
    } else if (strcmp(a, "--timeout") == 0) {
      int t;
      if (i + 1 >= argc || parse_int(argv[++i], 1, 86400, &t) != 0) {
        fprintf(stderr, "%s: --timeout takes 1..86400 seconds\n", PROG);
        return 2;
      }
      g_timeout = t;
      set_timeout = 1;
      continue;
    }
    if (!target || i + 1 >= argc || parse_int(argv[i + 1], min, max, target) != 0) {
      if (target) fprintf(stderr, "%s: %s takes %d..%d\n", PROG, a, min, max);
      usage(stderr);
      return 2;
    }
    *flag = 1;
    i++;
  }
  if (g_catch) {
    if (!set_clients) g_clients = 11;
    if (!set_messages) g_messages = g_quick ? 200 : 1000;
  } else if (g_quick) {
    if (!set_clients) g_clients = 20;
    if (!set_messages) g_messages = 5;
    if (!set_idle) g_idle = 100;
    if (!set_timeout) g_timeout = 25;
  }
  if ((double)g_clients * g_messages > 50e6) {
    fprintf(stderr, "%s: --clients x --messages is too large\n", PROG);
    return 2;
  }
  if (g_rate && (g_burst || g_window > 1 || g_catch)) {
    fprintf(stderr, "%s: --rate does not go with %s\n", PROG,
            g_burst ? "--burst" : g_window > 1 ? "--window" : "--catch-up");
    return 2;
  }
  if (g_compare && !set_nodes) g_nodes = 3;
  g_multi = g_pg || g_compare;
  if (!g_multi && (g_nodes > 1 || g_cluster1 || set_repeat || g_n_pg_set)) {
    fprintf(stderr, "%s: %s goes with --pg or --compare-pg (the nodes share a PostgreSQL)\n", PROG,
            g_nodes > 1    ? "--nodes N"
            : g_cluster1   ? "--cluster"
            : set_repeat   ? "--repeat"
                           : "--pg-set");
    return 2;
  }
  if (g_multi && (g_baseline || g_catch || g_messages == 0)) {
    fprintf(stderr, "%s: --pg and --compare-pg do not go with %s\n", PROG,
            g_baseline ? "--baseline" : g_catch ? "--catch-up" : "--messages 0");
    return 2;
  }
  if (g_multi) {
    g_idle = 0; /* figure 4 is one whisperd's, on SQLite: run without --pg for it */
    if (!pg_installed()) {
      printf("%s: SKIP: PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb;"
             " Debian: postgresql)\n", PROG);
      return SKIPPED;
    }
    if (access(g_pg_script, R_OK) != 0) {
      fprintf(stderr, "%s: cannot read %s (--pg-cluster PATH)\n", PROG, g_pg_script);
      return 2;
    }
  }

  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_fatal_signal);
  signal(SIGTERM, on_fatal_signal);
  signal(SIGHUP, on_fatal_signal);

  /* Descriptors: ours (every connection) and whisperd's (it inherits the
   * limit): raise the soft limit to what the run needs, if the hard limit
   * allows. */
  struct rlimit rl;
  rlim_t need = (rlim_t)(g_clients > g_idle ? g_clients : g_idle) + IDLE_WARMUP + 256;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need) {
      int fit = (int)rl.rlim_cur - IDLE_WARMUP - 256;
      if (fit < 2) fit = 2;
      fprintf(stderr, "%s: the descriptor limit is %llu: ", PROG, (unsigned long long)rl.rlim_cur);
      if (g_clients > fit) {
        fprintf(stderr, "--clients %d does not fit\n", g_clients);
        return 2;
      }
      if (g_idle > fit) g_idle = fit;
      fprintf(stderr, "--idle lowered to %d\n", g_idle);
    }
  }

  if (access(g_whisperd, X_OK) != 0) {
    fprintf(stderr, "%s: cannot run whisperd at %s (--whisperd PATH)\n", PROG, g_whisperd);
    return 2;
  }
  if (g_baseline && access(g_baseline, X_OK) != 0) {
    fprintf(stderr, "%s: cannot run the baseline whisperd at %s (--baseline PATH)\n", PROG,
            g_baseline);
    return 2;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(g_dir, sizeof g_dir, "%s/whisperd-load-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(g_dir)) {
    fprintf(stderr, "%s: mkdtemp %s: %s\n", PROG, g_dir, strerror(errno));
    g_dir[0] = 0;
    return 1;
  }

  double t_start = mono_s(), cpu_start = cpu_s();
  char mode[160];
  print_machine();
  if (g_catch)
    printf("catch-up: %d devices, %d messages each to one more, offline (%d in all, %d B)\n",
           g_clients - 1, g_messages, (g_clients - 1) * g_messages, BODY_LEN);
  else printf("clients %d, messages %d each (%d in all, %d B, 1:1 in a ring: device i -> i+1),\n"
         "%s; idle plain connections %d%s\n",
         g_clients, g_messages, g_clients * g_messages, BODY_LEN, mode_name(mode, sizeof mode),
         g_idle, g_quick ? " (--quick)" : "");
  if (g_n_args) {
    printf("whisperd flags:");
    for (int i = 0; i < g_n_args; i++) printf(" %s", g_args[i]);
    printf("\n");
  }
  if (g_baseline) {
    printf("baseline: %s, flags:", g_baseline);
    for (int i = 0; i < g_n_base_args; i++) printf(" %s", g_base_args[i]);
    printf("%s (its devices run first, against it alone)\n", g_n_base_args ? "" : " none");
  }
  printf("\n");
  fflush(stdout);

  /* One libuv loop (epoll) for everything: lws's client connections on it
   * as a foreign loop, the plain connections' epoll descriptor, and the
   * wake-up timer. */
  if (uv_loop_init(&g_uv) != 0 || uv_timer_init(&g_uv, &g_wake) != 0)
    fatal("cannot make the libuv loop");
  lws_set_log_level(LLL_ERR, lws_emit);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  void *loops[1] = {&g_uv};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.gid = -1;
  info.uid = -1;
  info.options = LWS_SERVER_OPTION_LIBUV;
  info.foreign_loops = loops;
  info.retry_and_idle_policy = &no_validity_timer;
  info.pcontext = &g_lws; /* NULL once lws has freed it */
  g_lws = lws_create_context(&info);
  if (!g_lws)
    fatal("cannot make the libwebsockets context on libuv (Debian: libwebsockets-evlib-uv)");

  whisper_client_config_t cfg = WHISPER_CLIENT_CONFIG_INIT;
  cfg.prekey_batch = 5;
  cfg.prekey_low = 2; /* below the batch: one upload at registration, no refills */
  cfg.backoff_min_ms = 100;
  cfg.backoff_max_ms = 2000;
  cfg.read_receipts = 0;
  cfg.delivery_receipts = !g_no_receipts;
  g_cfg = cfg;
  int rfd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (rfd < 0 || read(rfd, g_run_tag, sizeof g_run_tag) != (ssize_t)sizeof g_run_tag)
    fatal("/dev/urandom");
  close(rfd);
  if (g_catch) return catch_up_main();
  if (g_multi) {
    nodes_main();
    return finish(t_start, cpu_start);
  }

  /* --- the devices against the baseline, then against whisperd --- */
  static result base, cur;
  if (g_baseline) {
    run_devices(g_baseline, "baseline", "baseline", g_base_args, NULL, &base);
    g_base = &base;
    printf("\n");
  }
  unsigned closes0 = g_unexpected_closes;
  run_devices(g_whisperd, "whisperd", "whisperd", g_args, NULL, &cur);
  cur.closes_warmup -= closes0;

  /* --- whisperd #2: plain idle connections --- */
  long rss_p0 = -1, rss_pk = -1, slab_p0 = -1, slab_pk = -1;
  unsigned closes_plain0 = g_unexpected_closes;
  double t_plain = 0, t_plain_close = 0, t_shutdown = 0, shut_run = 0, shut_wait = 0, t0;
  int n_closed = 0, n_shut = 0;
  cpu_span open_span = {0}, close_span = {0};
  static server s2;
  if (g_idle > 0) {
    /* (a long shutdown timeout: the check is that every connection open
     * at the shutdown gets its close frame; how long it takes is printed) */
    const char *extra[64];
    int n = 0;
    static const char *const idle_flags[] = {"--auth-timeout-ms", "3600000", "--heartbeat-ms",
                                             "3600000", "--shutdown-timeout-ms", "60000"};
    for (int i = 0; i < 6; i++) extra[n++] = idle_flags[i];
    for (int i = 0; g_args[i] && n < 63; i++) extra[n++] = g_args[i];
    extra[n] = NULL;
    server_start(&s2, 1, "whisperd (idle)", "whisperd-idle", g_whisperd, extra);
    g_cur = &s2;
    plain_setup(IDLE_WARMUP + g_idle);
    plain_open(0, IDLE_WARMUP);
    plain_close(0, IDLE_WARMUP);
    rss_p0 = settle_rss(0, -1, "whisperd (idle) closing the warm-up connections", NULL);
    slab_p0 = slab_kib();
    /* opening: from the first connect to the last Challenge in */
    t0 = mono_s();
    span_begin(&open_span, s2.pid);
    plain_open(IDLE_WARMUP, g_n_plain);
    t_plain = g_plain_last - t0;
    span_end(&open_span);
    rss_pk = settle_rss(g_idle, 0, "whisperd (idle) counting the plain connections", NULL);
    slab_pk = slab_kib();
    /* closing the first half: from our first close frame until whisperd
     * has closed them all */
    n_closed = g_idle / 2;
    t0 = mono_s();
    span_begin(&close_span, s2.pid);
    plain_close(IDLE_WARMUP, IDLE_WARMUP + n_closed);
    t_plain_close = mono_s() - t0;
    span_end(&close_span);
    /* the other half open at a shutdown (SIGTERM): each is sent 1001,
     * answers with its own close frame, and whisperd exits */
    n_shut = g_idle - n_closed;
    g_plain_shutdown = 1;
    g_stop_serve = plain_stop_serve;
    t0 = mono_s();
    double run0, wait0;
    if (proc_sched_s(s2.pid, &run0, &wait0) != 0) run0 = wait0 = 0;
    g_stop_run = run0, g_stop_wait = wait0;
    g_stop_pid = s2.pid;
    int stop2 = server_stop(&s2, 1);
    t_shutdown = mono_s() - t0;
    shut_run = g_stop_run - run0;
    shut_wait = g_stop_wait - wait0;
    g_stop_serve = NULL;
    g_cur = NULL;
    if (stop2 != 0) problem(&g_bad, "whisperd (idle) did not stop cleanly");
    if (g_plain_goaway != n_shut)
      problem(&g_bad, "%d of the %d connections open at the shutdown got whisperd's 1001",
              g_plain_goaway, n_shut);
    plain_teardown();
    if (g_plain_bad) problem(&g_bad, "%d first frame(s) were not a Challenge", g_plain_bad);
  }

  /* --- the table --- */
  const result *r = &cur, *b = g_base;
  char v[64], w[64], x[256], bv[64];
  printf("\nSet-up (whisperd VmRSS %ld KiB when started):\n", r->rss_fresh);
  row("identities + engines (in process, untimed)", "", "%d in %.2f s", g_clients, r->t_ident);
  snprintf(v, sizeof v, "%.1f /s", g_clients / r->t_register);
  row("register + first login (warm-up)", v, "%d devices in %.2f s, %d at a time", g_clients,
      r->t_register, r->wave);
  snprintf(v, sizeof v, "%.1f /s", g_clients / r->t_login);
  row("login, all at once", v, "%d devices in %.2f s (to ONLINE + CAUGHT_UP), %d at a time",
      g_clients, r->t_login, g_clients < LOGIN_INFLIGHT ? g_clients : LOGIN_INFLIGHT);
  row("   logging in", "", "%s", fmt_span(x, sizeof x, &r->login_span, g_clients));

  printf("\nResults%s:\n", b ? " (the baseline's beside: the same workload, in this run)" : "");
  if (b)
    printf("  %-40s %14s %14s  %s\n", "figure", "whisperd", "baseline", "detail");
  else
    printf("  %-46s %14s  %s\n", "figure", "value", "detail");
  if (g_messages == 0) {
    row2("1. messages per second, end to end", "skipped", NULL, "--messages 0");
    row2("2. delivery latency", "skipped", NULL, "--messages 0");
  } else {
    row2("1. messages per second, end to end", fmt_rate(v, sizeof v, r),
         b ? fmt_rate(bv, sizeof bv, b) : NULL,
         "%u messages in %.3f s, first send call -> last delivery", r->received, r->span);
    row2("2. delivery latency p50", fmt_ms(v, sizeof v, r->p50),
         b ? fmt_ms(bv, sizeof bv, b->p50) : NULL,
         g_rate ? "scheduled send time -> WHISPER_EV_MESSAGE at the recipient"
                : "whisper_client_send() -> WHISPER_EV_MESSAGE at the recipient");
    row2("   p99", fmt_ms(v, sizeof v, r->p99), b ? fmt_ms(bv, sizeof bv, b->p99) : NULL, "%s", "");
    row2("   max", fmt_ms(v, sizeof v, r->max), b ? fmt_ms(bv, sizeof bv, b->max) : NULL, "%s", "");
    row2("   first message of each device p50", fmt_ms(v, sizeof v, r->first_p50),
         b ? fmt_ms(bv, sizeof bv, b->first_p50) : NULL,
         "max %s; with the session set-up (ListDevices, FetchBundles)",
         fmt_ms(w, sizeof w, r->first_max));
    if (r->n_rest)
      row2("   the others p50", fmt_ms(v, sizeof v, r->rest_p50),
           b ? fmt_ms(bv, sizeof bv, b->rest_p50) : NULL, "p99 %s, max %s",
           fmt_ms(w, sizeof w, r->rest_p99), fmt_ms(x, sizeof x, r->rest_max));
    row2("   send -> SENT p50 (server committed)", fmt_ms(v, sizeof v, r->sent_p50),
         b ? fmt_ms(bv, sizeof bv, b->sent_p50) : NULL, "p99 %s (informational)",
         fmt_ms(w, sizeof w, r->sent_p99));
    if (b) printf("  (the baseline's:)\n"), print_mode_rows(b), printf("  (whisperd's:)\n");
    print_mode_rows(r);
    row2("   whisperd CPU per message", fmt_us(v, sizeof v, r->srv_cpu, r->received),
         b ? fmt_us(bv, sizeof bv, b->srv_cpu, b->received) : NULL,
         "%.2f s during 1 (%.0f%% of one CPU)", r->srv_cpu,
         r->span > 0 ? r->srv_cpu / r->span * 100 : 0);
    row2("   whisperd-load CPU per message", fmt_us(v, sizeof v, r->own_cpu, r->received),
         b ? fmt_us(bv, sizeof bv, b->own_cpu, b->received) : NULL,
         "%.2f s during 1 (%.0f%% of one CPU): the engines and their connections", r->own_cpu,
         r->span > 0 ? r->own_cpu / r->span * 100 : 0);
    if (r->have_sched)
      row2("   waiting for a CPU during 1: whisperd", "", "",
           "%.2f s (%.0f%%); whisperd-load %.2f s (%.0f%%)%s", r->srv_wait,
           r->span > 0 ? r->srv_wait / r->span * 100 : 0, r->own_wait,
           r->span > 0 ? r->own_wait / r->span * 100 : 0,
           r->span > 0 && (r->srv_wait > 0.1 * r->span || r->own_wait > 0.1 * r->span)
               ? ": other processes had the CPUs, 1 and 2 are low" : "");
    if (b && b->have_sched)
      row2("   (baseline: waiting for a CPU)", "", "", "%.2f s (%.0f%%); whisperd-load %.2f s (%.0f%%)",
           b->srv_wait, b->span > 0 ? b->srv_wait / b->span * 100 : 0, b->own_wait,
           b->span > 0 ? b->own_wait / b->span * 100 : 0);
  }
  row2("3. whisperd RSS per logged-in idle connection",
       fmt_kib_per(v, sizeof v, r->rss0, r->rss_n, g_clients),
       b ? fmt_kib_per(bv, sizeof bv, b->rss0, b->rss_n, g_clients) : NULL,
       "VmRSS %ld KiB with 0 (after the warm-up), %ld KiB with %d", r->rss0, r->rss_n, g_clients);
  if (g_hold > 0) {
    long long fin = r->m_hold1.frames_in - r->m_hold0.frames_in;
    snprintf(v, sizeof v, "%.1f%% CPU", r->hold_span.srv_run / g_hold * 100);
    row2("   held idle", v, NULL,
         "%d s: whisperd %.2f s on a CPU, %lld frames in (%.0f /s, the engines' pings), %.1f us "
         "per frame, %.2f us per device per second",
         g_hold, r->hold_span.srv_run, fin, (double)fin / g_hold,
         fin > 0 ? r->hold_span.srv_run / (double)fin * 1e6 : 0,
         r->hold_span.srv_run / g_hold / g_clients * 1e6);
  }
  if (g_idle > 0) {
    row2("4. whisperd RSS per plain idle WebSocket", fmt_kib_per(v, sizeof v, rss_p0, rss_pk, g_idle),
         NULL, "VmRSS %ld KiB with 0, %ld KiB with %d (Challenge only; opened in %.2f s)", rss_p0,
         rss_pk, g_idle, t_plain);
    if (slab_p0 >= 0 && slab_pk >= 0) /* both ends of each connection are on this machine */
      row2("   the kernel's side", fmt_kib_per(v, sizeof v, slab_p0, slab_pk, 2 * g_idle), NULL,
           "per socket: /proc/meminfo Slab %+ld KiB with the %d connections, both ends here "
           "(2 sockets each), not in RSS; the whole machine's, so other jobs move it",
           slab_pk - slab_p0, g_idle);
    snprintf(v, sizeof v, "%.0f /s", t_plain > 0 ? g_idle / t_plain : 0);
    row2("   opening them", v, NULL,
         "%d in %.2f s, first connect -> last Challenge, %d in the handshake at a time", g_idle,
         t_plain, IDLE_INFLIGHT);
    row2("", "", NULL, "%s", fmt_span(x, sizeof x, &open_span, g_idle));
    snprintf(v, sizeof v, "%.0f /s", t_plain_close > 0 ? n_closed / t_plain_close : 0);
    row2("   closing half of them", v, NULL,
         "%d in %.2f s, our close frames -> whisperd closed them all", n_closed, t_plain_close);
    row2("", "", NULL, "%s", fmt_span(x, sizeof x, &close_span, n_closed));
    snprintf(v, sizeof v, "%.2f s", t_shutdown);
    row2("   shutdown with the other half open", v, NULL,
         "SIGTERM -> whisperd exited 0; %d of %d got its close frame (1001) and answered; "
         "whisperd %.2f s on a CPU (waited %.2f s for one)", g_plain_goaway, n_shut, shut_run,
         shut_wait);
  } else
    row2("4. whisperd RSS per plain idle WebSocket", "skipped", NULL, "--idle 0");

  printf("\nChecks:\n");
  if (b) print_checks(b);
  print_checks(r);
  printf("  plain connections lost: %u\n", g_unexpected_closes - closes_plain0);
  return finish(t_start, cpu_start);
}

/* The last line, and everything torn down. The exit status. */
static int finish(double t_start, double cpu_start) {
  double wall = mono_s() - t_start;
  printf("\n%s: %.1f s in all; this process's CPU time %.1f s; load average %.2f; %s\n", PROG, wall,
         cpu_s() - cpu_start, load_average(), g_failed ? "FAILED" : "all checks passed");

  /* lws on a foreign libuv loop: its handles close as the loop runs, then
   * a second lws_context_destroy() frees it (g_lws is NULL once gone) */
  lws_context_destroy(g_lws);
  for (int i = 0; i < 1000 && g_lws && uv_loop_alive(&g_uv); i++) uv_run(&g_uv, UV_RUN_NOWAIT);
  if (g_lws) lws_context_destroy(g_lws);
  uv_close((uv_handle_t *)&g_wake, NULL);
  for (int i = 0; i < 1000 && uv_loop_alive(&g_uv); i++) uv_run(&g_uv, UV_RUN_NOWAIT);
  uv_loop_close(&g_uv);
  free(g_tx);
  pg_stop();
  if (g_keep) printf("%s: kept %s\n", PROG, g_dir);
  remove_dir();
  return g_failed ? 1 : 0;
}
