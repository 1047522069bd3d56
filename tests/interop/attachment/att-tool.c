/*
 * att-tool: libwhisper's attachment format (whisper/attachment.h) behind a
 * command line, for tests/interop/attachment/attachment.js, which checks
 * it against node:crypto and libsignal's incremental MAC. Only the public
 * API is used.
 *
 *   att-tool encrypt --key HEX --iv HEX --size N [--piece N] [--seed N] IN OUT
 *       encrypts the N bytes of file IN ("-": stdin) into the blob file OUT
 *       and prints {"rc", "digest", "plaintext_hash", "incremental_mac",
 *       "chunk_size", "blob_size", "padded_size"} (hex, numbers).
 *   att-tool decrypt --key HEX --size N --digest HEX [--plaintext-hash HEX]
 *                    [--incremental-mac HEX --chunk-size N] [--max N]
 *                    [--piece N] [--seed N] [--stop | --source] IN OUT
 *       decrypts the blob file IN into OUT (only what the decryptor
 *       releases; two passes over IN without an incremental MAC) and prints
 *       {"rc", "error", "update_rc", "released", "passes"}: rc is finish's
 *       result (or the first failing update's with --stop), update_rc the
 *       first nonzero update result (0: none). With --source the decryptor
 *       reads IN itself (whisper_attachment_decrypt_source(), pread of
 *       the piece sizes asked for): rc is its result, update_rc 0, passes 0.
 *   att-tool imac --key HEX --chunk-size N IN
 *       prints {"incremental_mac"}: whisper_incremental_mac of file IN
 *       under the key (any length) with that chunk size.
 *   att-tool sizes
 *       reads one decimal size per line on stdin and prints, per line,
 *       "n padded_size blob_size chunk_size(n)".
 *
 * Input is fed in pieces: --piece N bytes at a time, or (--piece 0, the
 * default) pieces of 1..200000 bytes drawn from an LCG seeded by --seed.
 * Exit status 0 when the command ran (whatever rc says), 2 on a usage or
 * I/O error.
 */
#define _XOPEN_SOURCE 700 /* pread */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "whisper/attachment.h"

#define MAX_PIECE 200000

static void die(const char *what) {
  fprintf(stderr, "att-tool: %s\n", what);
  exit(2);
}

static const char *code_name(int rc) {
  switch (rc) {
  case WHISPER_OK: return "ok";
  case WHISPER_ATTACHMENT_AGAIN: return "again";
  case WHISPER_EINVAL: return "einval";
  case WHISPER_ENOMEM: return "enomem";
  case WHISPER_EINVALIDMSG: return "einvalidmsg";
  case WHISPER_EINTERNAL: return "einternal";
  case WHISPER_EKEY: return "ekey";
  case WHISPER_ETRUNCATED: return "etruncated";
  case WHISPER_EINTEGRITY: return "eintegrity";
  case WHISPER_ESIZE: return "esize";
  case WHISPER_ETOOBIG: return "etoobig";
  default: return "other";
  }
}

/* --- arguments ------------------------------------------------------------------------ */

typedef struct args {
  const char *key, *iv, *digest, *plain_hash, *imac;
  uint64_t size, chunk, max, piece, seed;
  int has_size, stop, source;
  const char *in, *out;
} args;

static uint64_t num(const char *s) {
  char *end = NULL;
  if (s == NULL || *s < '0' || *s > '9') die("a number is expected");
  unsigned long long v = strtoull(s, &end, 10);
  if (*end) die("a number is expected");
  return (uint64_t)v;
}

static void parse_args(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  a->seed = 1;
  for (int i = 2; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(o, "--stop") == 0) {
      a->stop = 1;
      continue;
    }
    if (strcmp(o, "--source") == 0) {
      a->source = 1;
      continue;
    }
    if (strncmp(o, "--", 2) != 0) {
      if (a->in == NULL) a->in = o;
      else if (a->out == NULL) a->out = o;
      else die("too many files");
      continue;
    }
    if (v == NULL) die("an option without its value");
    i++;
    if (strcmp(o, "--key") == 0) a->key = v;
    else if (strcmp(o, "--iv") == 0) a->iv = v;
    else if (strcmp(o, "--digest") == 0) a->digest = v;
    else if (strcmp(o, "--plaintext-hash") == 0) a->plain_hash = v;
    else if (strcmp(o, "--incremental-mac") == 0) a->imac = v;
    else if (strcmp(o, "--size") == 0) a->size = num(v), a->has_size = 1;
    else if (strcmp(o, "--chunk-size") == 0) a->chunk = num(v);
    else if (strcmp(o, "--max") == 0) a->max = num(v);
    else if (strcmp(o, "--piece") == 0) a->piece = num(v);
    else if (strcmp(o, "--seed") == 0) a->seed = num(v);
    else die("an unknown option");
  }
}

/* Hex into a malloc'd buffer of exactly `want` bytes (0: any length). */
static uint8_t *unhex(const char *hex, size_t want, size_t *len) {
  size_t n = strlen(hex);
  if (n % 2 || (want && n / 2 != want)) die("hex of the wrong length");
  uint8_t *b = malloc(n / 2 + 1);
  if (b == NULL) die("out of memory");
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) die("not hex");
    b[i] = (uint8_t)v;
  }
  if (len) *len = n / 2;
  return b;
}

static void put_hex(const char *key, const uint8_t *p, size_t n, int comma) {
  printf("\"%s\":\"", key);
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
  printf("\"%s", comma ? "," : "");
}

/* The next piece's size. */
static size_t piece(args *a) {
  if (a->piece) return (size_t)a->piece;
  a->seed = a->seed * 6364136223846793005ULL + 1442695040888963407ULL;
  return 1 + (size_t)((a->seed >> 33) % MAX_PIECE);
}

static int sink_file(void *user, const uint8_t *data, size_t len) {
  return fwrite(data, 1, len, (FILE *)user) == len ? 0 : 99;
}

static FILE *open_or_die(const char *path, const char *mode) {
  if (strcmp(path, "-") == 0) return *mode == 'r' ? stdin : stdout;
  FILE *f = fopen(path, mode);
  if (f == NULL) die(path);
  return f;
}

/* whisper_attachment_decrypt_source()'s source: the file, at any offset. */
static int source_file(void *user, uint64_t offset, uint8_t *buf, size_t len, size_t *got) {
  int fd = *(int *)user;
  *got = 0;
  while (*got < len) {
    ssize_t k = pread(fd, buf + *got, len - *got, (off_t)(offset + *got));
    if (k < 0) return 98;
    if (k == 0) break;
    *got += (size_t)k;
  }
  return 0;
}

/* --- the commands ---------------------------------------------------------------------- */

static void need_files(const args *a) {
  if (a->in == NULL || a->out == NULL || !a->has_size) die("IN, OUT and --size are needed");
}

static int cmd_encrypt(args *a) {
  need_files(a);
  if (a->key == NULL || a->iv == NULL) die("--key and --iv are needed");
  uint8_t *key = unhex(a->key, WHISPER_ATTACHMENT_KEY_LEN, NULL);
  uint8_t *iv = unhex(a->iv, WHISPER_ATTACHMENT_IV_LEN, NULL);
  FILE *in = open_or_die(a->in, "rb"), *out = open_or_die(a->out, "wb");
  uint8_t *buf = malloc(MAX_PIECE > a->piece ? MAX_PIECE : (size_t)a->piece);
  if (buf == NULL) die("out of memory");
  whisper_attachment_encryptor *e = NULL;
  whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
  int rc = whisper_attachment_encrypt_new(&e, key, iv, a->size, sink_file, out);
  for (uint64_t left = a->size; rc == WHISPER_OK && left;) {
    size_t take = piece(a);
    if (take > left) take = (size_t)left;
    if (fread(buf, 1, take, in) != take) die("the input is shorter than --size");
    rc = whisper_attachment_encrypt_update(e, buf, take);
    left -= take;
  }
  if (rc == WHISPER_OK) rc = whisper_attachment_encrypt_finish(e, &r);
  whisper_attachment_encrypt_free(e);
  if (fflush(out) != 0 || (out != stdout && fclose(out) != 0)) die("cannot write the blob");
  if (in != stdin) fclose(in);
  printf("{\"rc\":%d,\"error\":\"%s\",", rc, code_name(rc));
  if (rc == WHISPER_OK) {
    put_hex("digest", r.digest, sizeof r.digest, 1);
    put_hex("plaintext_hash", r.plaintext_hash, sizeof r.plaintext_hash, 1);
    put_hex("incremental_mac", r.incremental_mac->data, r.incremental_mac->len, 1);
    printf("\"chunk_size\":%" PRIu32 ",\"blob_size\":%" PRIu64 ",", r.chunk_size, r.blob_size);
  }
  printf("\"padded_size\":%" PRIu64 "}\n", whisper_attachment_padded_size(a->size));
  whisper_attachment_result_clear(&r);
  free(buf);
  free(key);
  free(iv);
  return 0;
}

static int cmd_decrypt(args *a) {
  need_files(a);
  if (a->key == NULL || a->digest == NULL) die("--key and --digest are needed");
  whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;
  uint8_t *key = unhex(a->key, WHISPER_ATTACHMENT_KEY_LEN, NULL);
  uint8_t *digest = unhex(a->digest, WHISPER_ATTACHMENT_DIGEST_LEN, NULL);
  uint8_t *ph = a->plain_hash ? unhex(a->plain_hash, WHISPER_ATTACHMENT_DIGEST_LEN, NULL) : NULL;
  uint8_t *imac = NULL;
  size_t imac_len = 0;
  if (a->imac) imac = unhex(a->imac, 0, &imac_len);
  x.key = key;
  x.plaintext_size = a->size;
  x.digest = digest;
  x.plaintext_hash = ph;
  x.incremental_mac = imac;
  x.incremental_mac_len = imac_len;
  x.chunk_size = (uint32_t)a->chunk;
  x.max_size = a->max;
  FILE *out = open_or_die(a->out, "wb");
  uint8_t *buf = malloc(MAX_PIECE > a->piece ? MAX_PIECE : (size_t)a->piece);
  if (buf == NULL) die("out of memory");
  whisper_attachment_decryptor *d = NULL;
  int rc = whisper_attachment_decrypt_new(&d, &x, sink_file, out), urc = WHISPER_OK, passes = 0;
  if (rc == WHISPER_OK && a->source) {
    int fd = open(a->in, O_RDONLY);
    if (fd < 0) die(a->in);
    rc = whisper_attachment_decrypt_source(d, source_file, &fd);
    close(fd);
  }
  while (!a->source && (rc == WHISPER_OK || rc == WHISPER_ATTACHMENT_AGAIN)) {
    passes++;
    FILE *in = open_or_die(a->in, "rb");
    if (in == stdin && passes > 1) die("two passes need a file, not stdin");
    int stopped = 0;
    for (;;) {
      size_t want = piece(a), got = fread(buf, 1, want, in);
      if (got == 0) break;
      int r = whisper_attachment_decrypt_update(d, buf, got);
      if (r != WHISPER_OK && urc == WHISPER_OK) urc = r;
      if (r != WHISPER_OK && a->stop) {
        stopped = 1;
        break;
      }
    }
    if (in != stdin) fclose(in);
    if (stopped) {
      rc = urc;
      break;
    }
    rc = whisper_attachment_decrypt_finish(d);
    if (rc != WHISPER_ATTACHMENT_AGAIN) break;
  }
  uint64_t released = whisper_attachment_decrypt_released(d);
  whisper_attachment_decrypt_free(d);
  if (fflush(out) != 0 || (out != stdout && fclose(out) != 0)) die("cannot write the plaintext");
  printf("{\"rc\":%d,\"error\":\"%s\",\"update_rc\":%d,\"update_error\":\"%s\",\"released\":%" PRIu64
         ",\"passes\":%d}\n",
         rc, code_name(rc), urc, code_name(urc), released, passes);
  free(buf);
  free(key);
  free(digest);
  free(ph);
  free(imac);
  return 0;
}

static int cmd_imac(args *a) {
  if (a->key == NULL || a->in == NULL || a->chunk == 0 || a->chunk > UINT32_MAX)
    die("--key, --chunk-size and IN are needed");
  size_t key_len = 0, len = 0, cap = 1 << 16;
  uint8_t *key = unhex(a->key, 0, &key_len), *data = malloc(cap);
  FILE *in = open_or_die(a->in, "rb");
  for (size_t got; data && (got = fread(data + len, 1, cap - len, in)) > 0;) {
    len += got;
    if (len == cap) data = realloc(data, cap *= 2);
  }
  if (data == NULL) die("out of memory");
  if (in != stdin) fclose(in);
  whisper_buf *macs = NULL;
  int rc = whisper_incremental_mac(key, key_len, (uint32_t)a->chunk, data, len, &macs);
  printf("{\"rc\":%d,\"error\":\"%s\"", rc, code_name(rc));
  if (rc == WHISPER_OK) {
    printf(",");
    put_hex("incremental_mac", macs->data, macs->len, 0);
  }
  printf("}\n");
  whisper_buf_free(macs);
  free(data);
  free(key);
  return 0;
}

static int cmd_sizes(void) {
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    if (*line == 0) continue;
    uint64_t n = num(line), blob = whisper_attachment_blob_size(n);
    printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu32 "\n", n, whisper_attachment_padded_size(n),
           blob, whisper_attachment_chunk_size(n));
  }
  return fflush(stdout) == 0 ? 0 : 2;
}

int main(int argc, char **argv) {
  args a;
  if (argc >= 2 && strcmp(argv[1], "sizes") == 0) return cmd_sizes();
  if (argc < 2) die("usage: att-tool encrypt|decrypt|sizes ... (see att-tool.c)");
  parse_args(argc, argv, &a);
  if (strcmp(argv[1], "encrypt") == 0) return cmd_encrypt(&a);
  if (strcmp(argv[1], "decrypt") == 0) return cmd_decrypt(&a);
  if (strcmp(argv[1], "imac") == 0) return cmd_imac(&a);
  die("an unknown command");
  return 2;
}
