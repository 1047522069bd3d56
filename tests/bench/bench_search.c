/*
 * whisper-bench figure 15: full-text search (search.h) over a history of
 * N messages (100,000 by default) in a SQLite store on disk.
 *
 * The history is made of varied text: words drawn from a Zipf law over a
 * vocabulary of ~130 common English words, a few accented, Cyrillic,
 * Greek, Japanese words and emoji, and ~5,000 made-up words; 2..20 words
 * a message, the first capitalised, some punctuation; 200 conversations;
 * one message a minute. One word ("zanzibarite") is planted in every
 * 5,000th message. It is stored through the library's own history and
 * index code (wh_history_incoming_put(), which queues the message for the
 * index, as the client engine stores one), 1,000 messages per transaction,
 * with synchronous=NORMAL: that part is timed too (per message). Then the
 * index catches up, timed too: 100 steps of 32 messages (the newest), as
 * the client engine's ticks take them (wh_search_index_some()), then the
 * rest at once (whisper_search_prepare(), as an idle app or a search).
 *
 * Then the store is closed and opened again, and each query is timed
 * (whisper_search() for a page of 50 + whisper_page_free()) REPS times in
 * a row, the first one cold (just after the reopen): a rare word, a common
 * word, two words, a word that is nowhere, a common word in one
 * conversation, the second page of the common word, two common words, a
 * word written with accents searched without, and two words of 1 message
 * in 10 each that are never in the same message (planted in two halves of
 * the conversations: every posting of both is read, the worst case of the
 * intersection). Printed: the
 * median and the worst time in ms of each, against the bar of 50 ms, and
 * the size of the index: the bytes of its rows (keys + sealed values) per
 * message, and (not with --quick) the bytes it takes on disk per message
 * (the file after VACUUM, with and without the index's rows).
 */
#define _POSIX_C_SOURCE 200809L

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_search.h"
#include "internal.h"
#include "whisper/whisper.h"

#define BAR_MS 50.0
#define PAGE 50
#define PER_TXN 1000
#define CONVS 200
#define TAIL_WORDS 5000
#define RARE_EVERY 5000
#define T0 1700000000000ULL
#define TICK_MSGS 32 /* messages indexed by each of the client engine's ticks (SY_INDEX_BATCH) */
#define TICKS 100    /* such steps timed */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fail(const char *what, int rc, whisper_ctx *ctx) {
  fprintf(stderr, "whisper-bench: search: %s failed: %d (%s)%s%s\n", what, rc, whisper_strerror(rc),
          ctx ? ": " : "", ctx ? whisper_ctx_last_error(ctx) : "");
  exit(1);
}

/* --- the text ----------------------------------------------------------------------------- */

static const char *const COMMON[] = {
    "the", "you", "to", "and", "a", "I", "it", "is", "of", "that", "in", "we", "for", "on",
    "this", "my", "be", "have", "are", "with", "not", "just", "so", "but", "can", "do", "at",
    "me", "was", "will", "ok", "yes", "no", "what", "if", "get", "all", "your", "know", "like",
    "good", "now", "see", "how", "about", "time", "up", "there", "one", "out", "think", "going",
    "tomorrow", "today", "meeting", "lunch", "coffee", "thanks", "sorry", "later", "home",
    "work", "call", "send", "photo", "tonight", "weekend", "great", "love", "sure", "maybe",
    "night", "morning", "here", "where", "when", "why", "please", "need", "want", "come",
    "back", "still", "again", "already", "soon", "late", "early", "train", "car", "office",
    "dinner", "movie", "game", "party", "birthday", "happy", "cool", "nice", "fine", "right",
    "left", "Café", "naïve", "Straße", "über", "Müller", "Ελλάδα", "καλημέρα", "привет",
    "спасибо", "завтра", "東京", "ありがとう", "🎉", "👍", "😂", "❤️", "São", "Zürich",
    "fiancé", "résumé", "jalapeño", "smörgåsbord", "Ødegaard", "Łódź"};
enum { NCOMMON = sizeof COMMON / sizeof COMMON[0], VOCAB = NCOMMON + TAIL_WORDS };

typedef struct text_gen {
  uint64_t s;
  char tail[TAIL_WORDS][16];
  double cdf[VOCAB];
} text_gen;

static uint64_t rnd(text_gen *g) { /* xorshift64* */
  g->s ^= g->s >> 12;
  g->s ^= g->s << 25;
  g->s ^= g->s >> 27;
  return g->s * 2685821657736338717ULL;
}

static void gen_init(text_gen *g) {
  static const char *const syl[] = {"ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "den",
                                    "mar", "tel", "qu", "bri", "zo", "pha", "gen", "lin", "dor"};
  enum { NSYL = sizeof syl / sizeof syl[0] };
  g->s = 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < TAIL_WORDS; i++) { /* distinct made-up words of 2-4 syllables */
    int n = 2 + (int)(i % 3), k = i;
    g->tail[i][0] = 0;
    for (int j = 0; j < n; j++, k /= NSYL) strcat(g->tail[i], syl[(size_t)(k + j * 7) % NSYL]);
    char suffix[8];
    snprintf(suffix, sizeof suffix, "%c", 'a' + (i / (NSYL * NSYL * NSYL)) % 26);
    strcat(g->tail[i], suffix);
  }
  double sum = 0;
  for (int k = 0; k < VOCAB; k++) g->cdf[k] = (sum += 1.0 / (k + 1));
  for (int k = 0; k < VOCAB; k++) g->cdf[k] /= sum;
}

static const char *word(text_gen *g) {
  double u = (double)(rnd(g) >> 11) / 9007199254740992.0;
  int lo = 0, hi = VOCAB - 1;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (g->cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo < NCOMMON ? COMMON[lo] : g->tail[lo - NCOMMON];
}

/* Message i's text in out (at most n bytes), in conversation `conv`. */
static size_t message(text_gen *g, size_t i, size_t conv, char *out, size_t n) {
  static const char *const punct[] = {" ", " ", " ", " ", ", ", "! ", "? ", ". ", " - "};
  int words = 2 + (int)(rnd(g) % 19);
  size_t len = 0;
  for (int w = 0; w < words; w++) {
    const char *s = word(g);
    if (i % RARE_EVERY == 7 && w == words / 2) s = "zanzibarite";
    /* two words of 1 message in 10 each, never in the same conversation */
    if (i % 10 == 3 && w == 0) s = conv < CONVS / 2 ? "kiwi" : "mango";
    const char *p = w + 1 < words ? punct[rnd(g) % 9] : (rnd(g) % 3 ? "" : "!");
    int cap = w == 0 && s[0] >= 'a' && s[0] <= 'z';
    len += (size_t)snprintf(out + len, n - len, "%c%s%s", cap ? s[0] - 32 : s[0], s + 1, p);
    if (len >= n - 32) break;
  }
  return len;
}

/* --- the figure ---------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static whisper_store *open_store(const char *path, whisper_ctx **ctx) {
  static const uint8_t key[32] = "whisper-bench search store key..";
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  whisper_store *st = NULL;
  o.key = key;
  o.key_len = 32;
  o.synchronous = WHISPER_SYNC_NORMAL;
  int rc = whisper_store_sqlite_open(&st, path, &o, NULL);
  if (rc != WHISPER_OK) fail("whisper_store_sqlite_open", rc, NULL);
  if ((rc = whisper_ctx_new(ctx, st)) != WHISPER_OK) fail("whisper_ctx_new", rc, NULL);
  return st;
}

static double file_mb(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (double)sb.st_size : 0;
}

static void raw_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "whisper-bench: search: %s: %s\n", sql, err ? err : "?");
    exit(1);
  }
}

typedef struct qcase {
  const char *label, *query, *conv;
  int second_page;
} qcase;

void bench_search(const char *base, size_t n, int reps, int measure_disk) {
  char dir[1024], path[1100], tmp[1200];
  snprintf(dir, sizeof dir, "%s/whisper-bench-search-XXXXXX", base ? base : "/tmp");
  if (mkdtemp(dir) == NULL) {
    fprintf(stderr, "whisper-bench: search: mkdtemp(%s) failed\n", dir);
    exit(1);
  }
  snprintf(path, sizeof path, "%s/search.db", dir);
  text_gen *g = calloc(1, sizeof *g);
  if (g == NULL) fail("calloc", WHISPER_ENOMEM, NULL);
  gen_init(g);

  /* the history: stored and indexed, PER_TXN messages a transaction */
  whisper_ctx *ctx;
  whisper_store *st = open_store(path, &ctx);
  int rc = whisper_search_prepare(ctx); /* a new store: nothing older to index */
  if (rc != WHISPER_OK) fail("whisper_search_prepare", rc, ctx);
  char text[512], conv[16], sender[16];
  uint8_t id[16];
  size_t text_bytes = 0;
  double t0 = now_s();
  for (size_t i = 0; i < n;) {
    if ((rc = wh_begin(ctx)) != WHISPER_OK) fail("wh_begin", rc, ctx);
    for (size_t k = 0; k < PER_TXN && i < n; k++, i++) {
      size_t c = (size_t)(rnd(g) % CONVS);
      size_t len = message(g, i, c, text, sizeof text);
      text_bytes += len;
      snprintf(conv, sizeof conv, "c%03zu", c);
      snprintf(sender, sizeof sender, "u%s", conv + 1);
      memset(id, 0, sizeof id);
      memcpy(id, &i, sizeof i);
      whisper_message_t m = {.size = sizeof(whisper_message_t),
                             .conversation = conv, .id = id, .id_len = sizeof id,
                             .sort_key = i + 1, .timestamp_ms = T0 + 60000ULL * i};
      rc = wh_history_incoming_put(ctx, &m, sender, 1, (const uint8_t *)text, len);
      if (rc != WHISPER_OK) fail("wh_history_incoming_put", rc, ctx);
    }
    if ((rc = wh_finish(ctx, WHISPER_OK)) != WHISPER_OK) fail("commit", rc, ctx);
  }
  double t_build = now_s() - t0;
  /* the index catches up: first a few steps as the client engine's ticks
   * take them (TICK_MSGS messages each, its own transaction), then the
   * rest at once (whisper_search_prepare(), as an app idle or a search) */
  double tick_worst = 0, t_ticks = 0;
  size_t ticked = 0;
  for (int k = 0; k < TICKS; k++) {
    int more = 0;
    double a = now_s();
    if ((rc = wh_search_index_some(ctx, TICK_MSGS, &more)) != WHISPER_OK)
      fail("wh_search_index_some", rc, ctx);
    double dt = now_s() - a;
    t_ticks += dt;
    tick_worst = dt > tick_worst ? dt : tick_worst;
    ticked += TICK_MSGS;
    if (!more) break;
  }
  t0 = now_s();
  if ((rc = whisper_search_prepare(ctx)) != WHISPER_OK) fail("whisper_search_prepare", rc, ctx);
  double t_catch_up = now_s() - t0;
  size_t caught = n > ticked ? n - ticked : 0;
  whisper_ctx_free(ctx);
  whisper_store_free(st);

  /* the index's rows */
  sqlite3 *db;
  sqlite3_stmt *q;
  double rows = 0, row_bytes = 0, hist_bytes = 0;
  if (sqlite3_open(path, &db) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT kind, count(*), sum(length(key) + length(value)) FROM ordered"
                         " WHERE kind IN (64, 66) GROUP BY kind",
                         -1, &q, NULL) != SQLITE_OK)
    fail("sqlite3 (reading the index's size)", WHISPER_ESTORE, NULL);
  while (sqlite3_step(q) == SQLITE_ROW) {
    if (sqlite3_column_int(q, 0) == WHISPER_REC_SEARCH) {
      rows = sqlite3_column_double(q, 1);
      row_bytes = sqlite3_column_double(q, 2);
    } else {
      hist_bytes = sqlite3_column_double(q, 2);
    }
  }
  sqlite3_finalize(q);
  sqlite3_close(db);

  /* the queries, after a reopen */
  st = open_store(path, &ctx);
  const qcase cases[] = {
      {"rare word (1 in 5000)", "zanzibarite", NULL, 0},
      {"common word", "the", NULL, 0},
      {"two words", "meeting tomorrow", NULL, 0},
      {"no such word", "quokkaqueen", NULL, 0},
      {"common word, 1 conversation", "the", "c042", 0},
      {"common word, 2nd page", "the", NULL, 1},
      {"two common words", "you the", NULL, 0},
      {"accents folded", "CAFE", NULL, 0},
      {"2 words that never meet", "kiwi mango", NULL, 0},
  };
  enum { NCASES = sizeof cases / sizeof cases[0] };
  double *ms = calloc((size_t)reps, sizeof *ms), all_worst = 0;
  if (ms == NULL) fail("calloc", WHISPER_ENOMEM, NULL);
  printf("15. search: %zu messages (%.0f B of text each on average, %d conversations); "
         "a page of %d; %d runs each, the first cold (just after opening the store)\n",
         n, (double)text_bytes / (double)n, CONVS, PAGE, reps);
  printf("    %-30s %9s %9s %8s  %s\n", "query", "median ms", "worst ms", "found", "bar 50 ms");
  int over = 0;
  for (int c = 0; c < NCASES; c++) {
    size_t hits = 0;
    for (int r = 0; r < reps; r++) {
      whisper_page *p = NULL, *first = NULL;
      double a = now_s();
      if (cases[c].second_page) {
        rc = whisper_search(ctx, cases[c].query, cases[c].conv, NULL, PAGE, &first);
        size_t got = rc == WHISPER_OK ? whisper_page_count(first) : 0;
        const whisper_message_t *after = got ? whisper_page_get(first, got - 1) : NULL;
        a = now_s(); /* only the second page's search is timed */
        if (rc == WHISPER_OK) rc = whisper_search(ctx, cases[c].query, cases[c].conv, after, PAGE, &p);
      } else {
        rc = whisper_search(ctx, cases[c].query, cases[c].conv, NULL, PAGE, &p);
      }
      hits = whisper_page_count(p);
      whisper_page_free(p);
      ms[r] = (now_s() - a) * 1000;
      whisper_page_free(first);
      if (rc != WHISPER_OK) fail("whisper_search", rc, ctx);
    }
    double worst = 0;
    for (int r = 0; r < reps; r++) worst = ms[r] > worst ? ms[r] : worst;
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    double median = reps % 2 ? ms[reps / 2] : (ms[reps / 2 - 1] + ms[reps / 2]) / 2;
    if (worst > all_worst) all_worst = worst;
    over += worst > BAR_MS;
    printf("    %-30s %9.2f %9.2f %8zu  %s\n", cases[c].label, median, worst, hits,
           worst > BAR_MS ? "OVER" : "PASS");
  }
  free(ms);
  whisper_ctx_free(ctx);
  whisper_store_free(st);

  printf("    worst of all: %.2f ms (bar %.0f ms: %s)\n", all_worst, BAR_MS, over ? "OVER" : "PASS");
  printf("    storing (indexing deferred): %.1f us per message (%zu a transaction, NORMAL; %.1f s)\n",
         t_build / (double)n * 1e6, (size_t)PER_TXN, t_build);
  printf("    the index catching up, %zu messages (whisper_search_prepare): %.1f us per message"
         " (%.1f s)\n",
         caught, caught ? t_catch_up / (double)caught * 1e6 : 0, t_catch_up);
  printf("    and %zu messages before, %d a step (the client engine's ticks): %.1f us per message,"
         " %.1f ms a step at worst\n",
         ticked, TICK_MSGS, ticked ? t_ticks / (double)ticked * 1e6 : 0, tick_worst * 1e3);
  printf("    index: %.1f rows per message, %.0f B of rows (keys + sealed values) per message"
         " (history rows: %.0f B)\n",
         rows / (double)n, row_bytes / (double)n, hist_bytes / (double)n);
  if (measure_disk) { /* on disk: VACUUM with, then without, the index */
    if (sqlite3_open(path, &db) != SQLITE_OK) fail("sqlite3_open", WHISPER_ESTORE, NULL);
    raw_exec(db, "PRAGMA journal_mode = DELETE");
    raw_exec(db, "VACUUM");
    double with = file_mb(path);
    raw_exec(db, "DELETE FROM ordered WHERE kind = 66");
    raw_exec(db, "VACUUM");
    double without = file_mb(path);
    sqlite3_close(db);
    printf("    on disk (after VACUUM): %.1f MB with the index, %.1f MB without: "
           "%.0f B per message\n",
           with / 1e6, without / 1e6, (with - without) / (double)n);
  }
  free(g);
  whisper_store_sqlite_delete(path);
  snprintf(tmp, sizeof tmp, "%s-journal", path);
  unlink(tmp);
  rmdir(dir);
}
