/*
 * whisper-demo: two devices on one machine, Alice and Bob, set up a Signal
 * session and talk, printing what happens on the wire. Everything uses the
 * public API only, as an app would.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <whisper/whisper.h>

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef struct device {
  const char *name;
  uint32_t id;
  whisper_store *store;
  whisper_ctx *ctx;
} device;

static int check(const device *d, int rc, const char *what) {
  if (rc != WHISPER_OK) {
    fprintf(stderr, "%s: %s failed: %s (%s)\n", d->name, what, whisper_strerror(rc),
            whisper_ctx_last_error(d->ctx));
    return 1;
  }
  return 0;
}

static void hex_prefix(char *out, const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

/* Encrypts `text` from `from` to `to` and returns the wire message. */
static whisper_buf *send_msg(device *from, device *to, const char *text, int *type) {
  whisper_buf *m = NULL;
  int rc = whisper_session_encrypt(from->ctx, to->name, to->id, (const uint8_t *)text,
                                   strlen(text), now_ms(), type, &m);
  if (check(from, rc, "encrypt")) return NULL;
  char head[17];
  hex_prefix(head, m->data, 8);
  printf("  %-5s -> %-5s  %-22s %4zu bytes  %s...  \"%s\"\n", from->name, to->name,
         *type == WHISPER_MSG_PREKEY ? "PreKeySignalMessage" : "SignalMessage", m->len, head, text);
  return m;
}

static int recv_msg(device *to, device *from, int type, const whisper_buf *m) {
  whisper_buf *pt = NULL;
  int rc = whisper_session_decrypt(to->ctx, from->name, from->id, type, m->data, m->len, &pt);
  if (rc != WHISPER_OK) {
    printf("  %-5s refuses it: %s (%s)\n", to->name, whisper_strerror(rc),
           whisper_ctx_last_error(to->ctx));
    return rc;
  }
  printf("  %-5s reads  \"%.*s\"\n", to->name, (int)pt->len, (const char *)pt->data);
  whisper_buf_free(pt);
  return WHISPER_OK;
}

static int device_open(device *d, const char *name, uint32_t id) {
  d->name = name;
  d->id = id;
  if (whisper_store_memory_new(&d->store) != WHISPER_OK) return 1;
  if (whisper_ctx_new(&d->ctx, d->store) != WHISPER_OK) return 1;
  if (check(d, whisper_identity_generate(d->ctx, name, id, 0, now_ms()), "identity")) return 1;
  uint8_t pub[WHISPER_PUBLIC_KEY_LEN];
  uint32_t reg;
  whisper_identity_get(d->ctx, pub, &reg, NULL, NULL);
  char hex[67];
  hex_prefix(hex, pub, sizeof pub);
  printf("%s.%u: identity %.16s... registration id %u\n", name, id, hex, reg);
  return 0;
}

int main(void) {
  device alice, bob;
  int type, rc = 1;
  whisper_buf *m = NULL, *held[3] = {0};
  int held_type[3];
  printf("libwhisper %u: a Signal session between two local devices\n\n", whisper_version());
  if (device_open(&alice, "alice", 1) || device_open(&bob, "bob", 1)) return 1;

  printf("\n1. Bob publishes a prekey bundle; Alice fetches it and runs X3DH.\n");
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *wire_bundle = NULL;
  if (check(&bob, whisper_bundle_generate(bob.ctx, 1, &bundle), "bundle")) goto out;
  if (check(&bob, whisper_bundle_encode(&bundle, &wire_bundle), "bundle encode")) goto out;
  printf("  bundle: %zu bytes, signed prekey %u, one-time prekey %u\n", wire_bundle->len,
         bundle.signed_prekey_id, bundle.prekey_id);
  whisper_prekey_bundle_t fetched = WHISPER_PREKEY_BUNDLE_INIT;
  rc = whisper_bundle_decode(wire_bundle->data, wire_bundle->len, &fetched);
  whisper_buf_free(wire_bundle);
  if (check(&alice, rc, "bundle decode")) goto out;
  if (check(&alice, whisper_session_start(alice.ctx, "bob", 1, &fetched, now_ms()), "X3DH"))
    goto out;
  printf("  Alice verified the signed prekey and started a session.\n");

  printf("\n2. Alice writes before Bob has answered: PreKey messages.\n");
  if ((m = send_msg(&alice, &bob, "Hi Bob! This is Alice.", &type)) == NULL) goto out;
  if (recv_msg(&bob, &alice, type, m)) goto out;
  printf("\n3. Bob answers; from now on both send plain SignalMessages, and every change\n"
         "   of direction turns the Diffie-Hellman ratchet.\n");
  whisper_buf_free(m);
  if ((m = send_msg(&bob, &alice, "Hello Alice, got it.", &type)) == NULL) goto out;
  if (recv_msg(&alice, &bob, type, m)) goto out;
  whisper_buf_free(m);

  printf("\n4. Alice sends three messages; the network delivers them out of order.\n");
  const char *texts[3] = {"first", "second", "third"};
  for (int i = 0; i < 3; i++)
    if ((held[i] = send_msg(&alice, &bob, texts[i], &held_type[i])) == NULL) goto out;
  int order[3] = {2, 0, 1};
  for (int i = 0; i < 3; i++)
    if (recv_msg(&bob, &alice, held_type[order[i]], held[order[i]])) goto out;

  printf("\n5. A replayed message and a tampered one are refused, and change nothing.\n");
  if (recv_msg(&bob, &alice, held_type[0], held[0]) != WHISPER_EDUPLICATE) goto out;
  if ((m = send_msg(&alice, &bob, "this one gets tampered with", &type)) == NULL) goto out;
  m->data[m->len - 1] ^= 0x01;
  if (recv_msg(&bob, &alice, type, m) != WHISPER_EINVALIDMSG) goto out;
  m->data[m->len - 1] ^= 0x01;
  printf("  the untouched original still decrypts:\n");
  if (recv_msg(&bob, &alice, type, m)) goto out;
  whisper_buf_free(m);
  m = NULL;
  printf("\nDone: every message arrived once, in spite of reordering, replay and tampering.\n");
  rc = 0;
out:
  whisper_buf_free(m);
  for (int i = 0; i < 3; i++) whisper_buf_free(held[i]);
  whisper_ctx_free(alice.ctx);
  whisper_ctx_free(bob.ctx);
  whisper_store_free(alice.store);
  whisper_store_free(bob.store);
  return rc;
}
