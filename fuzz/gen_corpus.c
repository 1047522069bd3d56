/*
 * Writes the seed corpora: gen_corpus OUT_DIR makes
 * OUT_DIR/<target>/<name> for each fuzz target from the same
 * deterministic scenarios the targets rebuild at start-up (fuzz_common.c,
 * fuzz_sender_key.c for the sender key targets, fuzz_sync.c for the server,
 * engine and frame targets),
 * so the seeds are real messages, bundles, records and frames valid
 * against each target's fixed state. Run it again whenever the library
 * changes how it draws randomness or what it writes (see README.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "fuzz_sender_key.h"
#include "fuzz_sync.h"

#define MAX_SEED 4096

/* fuzz_history_record.c (compiled into gen_corpus too): its scenario's
 * seeds. */
void fzh_gen_seeds(fz_seeds *s);
/* fuzz_e2e.c (compiled with FZE_SEEDS_ONLY): signed device lists, group
 * changes, payloads and a link token. */
void fze_gen_seeds(fz_seeds *s);
/* fuzz_attachment.c (FZA_SEEDS_ONLY): inputs over real blobs, one
 * alteration each; fuzz_pointer.c (FZP_SEEDS_ONLY): Contents carrying
 * attachment pointers. */
void fza_gen_seeds(fz_seeds *s);
void fzp_gen_seeds(fz_seeds *s);
/* fuzz_relay.c (FZR_SEEDS_ONLY): operation scripts of cluster relays. */
void fzr_gen_seeds(fz_seeds *s);

static void mkdir_p(const char *path) {
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    perror(path);
    exit(1);
  }
}

static int write_seeds(const char *out, const char *target, const fz_seeds *s) {
  char dir[1024], path[1200];
  snprintf(dir, sizeof dir, "%s/%s", out, target);
  mkdir_p(dir);
  for (size_t i = 0; i < s->n; i++) {
    const whisper_buf *b = s->items[i].bytes;
    if (b->len > MAX_SEED) {
      fprintf(stderr, "%s/%s is %zu bytes (limit %d)\n", target, s->items[i].name, b->len, MAX_SEED);
      return 1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, s->items[i].name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
      perror(path);
      return 1;
    }
  }
  printf("%-22s %zu seeds\n", target, s->n);
  return 0;
}

int main(int argc, char **argv) {
  fz_seeds s = {0};
  whisper_buf *msgs[FZ_RECORD_MSGS];
  int bad = 0;
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  mkdir_p(argv[1]);

  fz_dev_free(fz_scenario_signal(&s));
  bad |= write_seeds(argv[1], "fuzz_signal_message", &s);
  fz_seeds_free(&s);

  fz_dev_free(fz_scenario_prekey(&s));
  bad |= write_seeds(argv[1], "fuzz_prekey_message", &s);
  fz_seeds_free(&s);

  fz_dev_free(fz_scenario_bundle(&s));
  bad |= write_seeds(argv[1], "fuzz_bundle", &s);
  fz_seeds_free(&s);

  fz_dev_free(fz_scenario_record(&s, msgs));
  bad |= write_seeds(argv[1], "fuzz_session_record", &s);
  fz_seeds_free(&s);
  for (int i = 0; i < FZ_RECORD_MSGS; i++) whisper_buf_free(msgs[i]);

  /* the group targets share one scenario (fuzz_sender_key.c) */
  fz_seeds skdm = {0}, skm = {0}, skrec = {0};
  fzg_world_free(fzg_scenario(&skdm, &skm, &skrec));
  bad |= write_seeds(argv[1], "fuzz_skdm", &skdm);
  bad |= write_seeds(argv[1], "fuzz_sender_key_message", &skm);
  bad |= write_seeds(argv[1], "fuzz_sender_key_record", &skrec);
  fz_seeds_free(&skdm);
  fz_seeds_free(&skm);
  fz_seeds_free(&skrec);

  fzh_gen_seeds(&s);
  bad |= write_seeds(argv[1], "fuzz_history_record", &s);
  fz_seeds_free(&s);

  /* the sync protocol targets (fuzz_sync.c): operation scripts for the
   * server, frame scripts for the engine, single frames */
  fzs_gen_server_seeds(&s);
  bad |= write_seeds(argv[1], "fuzz_server", &s);
  fz_seeds_free(&s);
  fzs_gen_client_seeds(&s);
  bad |= write_seeds(argv[1], "fuzz_client", &s);
  fz_seeds_free(&s);
  fzs_gen_frame_seeds(&s);
  bad |= write_seeds(argv[1], "fuzz_sync_frame", &s);
  fz_seeds_free(&s);

  /* the engine's end-to-end decoders (fuzz_e2e.c) */
  fze_gen_seeds(&s);
  bad |= write_seeds(argv[1], "fuzz_e2e", &s);
  fz_seeds_free(&s);

  /* attachments: the streaming decryptor, and the pointers in Contents */
  fza_gen_seeds(&s);
  bad |= write_seeds(argv[1], "fuzz_attachment", &s);
  fz_seeds_free(&s);
  fzp_gen_seeds(&s);
  bad |= write_seeds(argv[1], "fuzz_pointer", &s);
  fz_seeds_free(&s);

  /* cluster mode's relays (fuzz_relay.c) */
  fzr_gen_seeds(&s);
  bad |= write_seeds(argv[1], "fuzz_relay", &s);
  fz_seeds_free(&s);
  return bad;
}
