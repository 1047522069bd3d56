/*
 * fuzz_pointer: the decoder of an e2e.Content (src/proto/e2e.proto), as the
 * engine reads one carrying an AttachmentPointer (kind ATTACHMENT, field
 * `attachment`) or any other kind: sy_content_parse (src/sync/content.c) on
 * arbitrary bytes. The checks the parser makes of each kind are its own
 * (they change as the engine grows: they are not modelled here); what
 * holds whatever they are:
 *  - a Content it accepts packs, parses again, and packs to the same bytes
 *    (protobuf-c cannot write back an unknown field numbered 0, so an
 *    accepted Content must hold none, in any of its messages);
 *  - parsing the packed bytes gives the same kind;
 *  - a pointer with a 64-byte key and a 32-byte digest, taken as the
 *    decryptor's expectation (key, size, digest, plaintext hash when 32
 *    bytes, incremental MAC and chunk size), gives decrypt_new's documented
 *    code: ETOOBIG exactly for a size above WHISPER_ATTACHMENT_SIZE_MAX,
 *    EINVALIDMSG exactly for an incremental MAC with a chunk size out of
 *    16..2 MiB or a length not whole MACs, else OK; then the pointer's
 *    thumbnail bytes, fed as its blob (two passes without an incremental
 *    MAC), give one of finish's documented codes, and WHISPER_OK only
 *    with exactly `size` bytes out whose SHA-256 is the plaintext hash
 *    given (the seeds carry a real blob there).
 *
 * sy_content_parse once checked for a field numbered 0 only at the top
 * level, quote, target, call and settings: this target found it inside
 * `attachment` and `block` entries (the seeds *_unknown_field_0); it now
 * checks every message of the tree.
 * gen_corpus compiles this file with FZP_SEEDS_ONLY and calls
 * fzp_gen_seeds().
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sync/sync_internal.h"
#include "whisper/attachment.h"

/* Whether `m` or any message inside it holds an unknown field numbered 0;
 * `where` gets the message's name. */
static int has_tag0(const ProtobufCMessage *m, const char **where) {
  if (m == NULL) return 0;
  for (size_t i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0) {
      *where = m->descriptor->name;
      return 1;
    }
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *base = (const char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
      ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)base;
      for (size_t k = 0; k < n; k++)
        if (has_tag0(v[k], where)) return 1;
    } else if (has_tag0(*(ProtobufCMessage *const *)base, where)) {
      return 1;
    }
  }
  return 0;
}

static int sink_add(void *user, const uint8_t *data, size_t len) {
  whisper_buf *b = user;
  uint8_t *p = realloc(b->data, b->len + len);
  FZ_ASSERT(p != NULL, "out of memory");
  memcpy(p + b->len, data, len);
  b->data = p;
  b->len += len;
  return 0;
}

/* The pointer as the decryptor takes it, its thumbnail as the blob. */
static void try_pointer(const Whisper__E2e__AttachmentPointer *p) {
  if (p->key.len != WHISPER_ATTACHMENT_KEY_LEN || p->digest.len != WHISPER_ATTACHMENT_DIGEST_LEN) return;
  whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;
  x.key = p->key.data;
  x.plaintext_size = p->size;
  x.digest = p->digest.data;
  if (p->has_plaintext_hash && p->plaintext_hash.len == 32) x.plaintext_hash = p->plaintext_hash.data;
  if (p->incremental_mac.len) {
    x.incremental_mac = p->incremental_mac.data;
    x.incremental_mac_len = p->incremental_mac.len;
    x.chunk_size = p->chunk_size;
  }
  whisper_buf out = {NULL, 0};
  whisper_attachment_decryptor *d = NULL;
  int rc = whisper_attachment_decrypt_new(&d, &x, sink_add, &out);
  int want = p->size > WHISPER_ATTACHMENT_SIZE_MAX ? WHISPER_ETOOBIG
             : x.incremental_mac && (x.chunk_size < 16 || x.chunk_size > WHISPER_ATTACHMENT_CHUNK_MAX ||
                                     x.incremental_mac_len % 32)
                 ? WHISPER_EINVALIDMSG
                 : WHISPER_OK;
  FZ_ASSERT(rc == want, "decrypt_new of a pointer gave %d, not %d", rc, want);
  if (rc != WHISPER_OK) return;
  for (int pass = 0; pass < 2; pass++) {
    const uint8_t *b = p->thumbnail.data;
    size_t n = p->thumbnail.len;
    for (size_t at = 0; at < n;) { /* pieces of 1000 bytes */
      size_t take = n - at < 1000 ? n - at : 1000;
      int u = whisper_attachment_decrypt_update(d, b + at, take);
      FZ_ASSERT(fz_rc_in(u, 3, WHISPER_OK, WHISPER_EINTEGRITY, WHISPER_ESIZE), "update gave %d", u);
      at += take;
    }
    rc = whisper_attachment_decrypt_finish(d);
    if (rc != WHISPER_ATTACHMENT_AGAIN) break;
    FZ_ASSERT(x.incremental_mac == NULL && pass == 0, "AGAIN with an incremental MAC or twice");
  }
  FZ_ASSERT(fz_rc_in(rc, 5, WHISPER_OK, WHISPER_ETRUNCATED, WHISPER_EKEY, WHISPER_EINTEGRITY, WHISPER_ESIZE),
            "finish gave %d", rc);
  FZ_ASSERT(whisper_attachment_decrypt_released(d) == out.len, "released");
  if (rc == WHISPER_OK) {
    FZ_ASSERT(out.len == p->size, "%zu bytes out of a %llu-byte attachment", out.len,
              (unsigned long long)p->size);
    if (x.plaintext_hash) {
      uint8_t h[32];
      FZ_ASSERT(EVP_Digest(out.len ? out.data : (uint8_t *)"", out.len, h, NULL, EVP_sha256(), NULL) == 1 &&
                    memcmp(h, x.plaintext_hash, 32) == 0,
                "the output is not the plaintext hash's");
    }
  }
  whisper_attachment_decrypt_free(d);
  free(out.data);
}


static void run_input(const uint8_t *data, size_t size) {
  Whisper__E2e__Content *ct = sy_content_parse(data, size);
  if (fz_verbose()) fprintf(stderr, "  content (%zu bytes): %s\n", size, ct ? "taken" : "refused");
  if (ct == NULL) return;
  const char *where = NULL;
  FZ_ASSERT(!has_tag0(&ct->base, &where),
            "sy_content_parse took a Content with an unknown field numbered 0 (in %s), which "
            "protobuf-c cannot write back", where);
  size_t n1 = whisper__e2e__content__get_packed_size(ct);
  uint8_t *b1 = malloc(n1 ? n1 : 1);
  FZ_ASSERT(b1 != NULL, "out of memory");
  FZ_ASSERT(whisper__e2e__content__pack(ct, b1) == n1, "pack");
  Whisper__E2e__Content *ct2 = sy_content_parse(b1, n1);
  FZ_ASSERT(ct2 != NULL, "a Content taken (kind %u) does not parse once packed", ct->kind);
  FZ_ASSERT(ct2->kind == ct->kind && ct2->has_kind == ct->has_kind, "the kind changed");
  size_t n2 = whisper__e2e__content__get_packed_size(ct2);
  uint8_t *b2 = malloc(n2 ? n2 : 1);
  FZ_ASSERT(b2 != NULL, "out of memory");
  FZ_ASSERT(whisper__e2e__content__pack(ct2, b2) == n2, "pack");
  FZ_ASSERT(n1 == n2 && memcmp(b1, b2, n1) == 0, "a Content packed, parsed and packed again differs "
                                                 "(%zu, then %zu bytes)", n1, n2);
  if (ct->attachment) try_pointer(ct->attachment);
  whisper__e2e__content__free_unpacked(ct2, &wh_pb_alloc);
  whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  free(b1);
  free(b2);
}

/* --- seeds ---------------------------------------------------------------------------- */

void fzp_gen_seeds(fz_seeds *s);

static void seed(fz_seeds *s, const char *name, const Whisper__E2e__Content *ct) {
  whisper_buf *b = whisper_buf_new(NULL, whisper__e2e__content__get_packed_size(ct));
  FZ_ASSERT(b != NULL, "out of memory");
  whisper__e2e__content__pack(ct, b->data);
  run_input(b->data, b->len); /* each seed must pass the target's checks */
  fz_seeds_add(s, name, b, 1);
}

void fzp_gen_seeds(fz_seeds *s) {
  /* a real attachment: 700 bytes, its blob (as the thumbnail), digests,
   * incremental MAC at a chunk of 256 bytes */
  uint8_t key[64], iv[16], pt[700];
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 11 + 3);
  for (size_t i = 0; i < sizeof iv; i++) iv[i] = (uint8_t)(0x90 + i);
  for (size_t i = 0; i < sizeof pt; i++) pt[i] = (uint8_t)(i * 7 ^ i >> 3);
  whisper_buf blob = {NULL, 0};
  whisper_attachment_encryptor *e = NULL;
  whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
  FZ_ASSERT(whisper_attachment_encrypt_new(&e, key, iv, sizeof pt, sink_add, &blob) == WHISPER_OK &&
                whisper_attachment_encrypt_update(e, pt, sizeof pt) == WHISPER_OK &&
                whisper_attachment_encrypt_finish(e, &r) == WHISPER_OK,
            "encrypt");
  whisper_attachment_encrypt_free(e);
  whisper_buf *imac = NULL;
  FZ_ASSERT(whisper_incremental_mac(key + 32, 32, 256, blob.data, blob.len, &imac) == WHISPER_OK, "imac");

  Whisper__E2e__AttachmentPointer p = WHISPER__E2E__ATTACHMENT_POINTER__INIT;
  p.blob_id = "b1ob-Id_0123456789";
  p.has_key = p.has_size = p.has_digest = p.has_plaintext_hash = 1;
  p.key = (ProtobufCBinaryData){sizeof key, key};
  p.size = sizeof pt;
  p.digest = (ProtobufCBinaryData){32, r.digest};
  p.plaintext_hash = (ProtobufCBinaryData){32, r.plaintext_hash};
  p.has_incremental_mac = p.has_chunk_size = 1;
  p.incremental_mac = (ProtobufCBinaryData){imac->len, imac->data};
  p.chunk_size = 256;
  p.content_type = "image/jpeg";
  p.file_name = "photo.jpg";
  p.has_width = p.has_height = 1;
  p.width = 640;
  p.height = 480;
  p.caption = "a caption";
  p.has_thumbnail = 1;
  p.thumbnail = (ProtobufCBinaryData){blob.len, blob.data};
  p.has_uploaded_at_ms = 1;
  p.uploaded_at_ms = FZ_NOW;
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = ct.has_at_ms = 1;
  ct.version = 1;
  ct.kind = WHISPER__E2E__CONTENT__KIND__ATTACHMENT;
  ct.at_ms = FZ_NOW;
  ct.attachment = &p;
  seed(s, "attachment", &ct);
  /* libsignal's chunk size (one MAC: the blob is under 64 KiB) */
  whisper_buf *one = r.incremental_mac;
  p.incremental_mac = (ProtobufCBinaryData){one->len, one->data};
  p.chunk_size = r.chunk_size;
  seed(s, "attachment_libsignal_chunk", &ct);
  /* without an incremental MAC (two passes), a voice note */
  p.has_incremental_mac = p.has_chunk_size = 0;
  p.incremental_mac = (ProtobufCBinaryData){0, NULL};
  p.chunk_size = 0;
  p.has_flags = p.has_duration_ms = 1;
  p.flags = WHISPER_MEDIA_VOICE_NOTE;
  p.duration_ms = 4200;
  p.content_type = "audio/aac";
  seed(s, "attachment_voice_note", &ct);
  /* view once, forwarded, no plaintext hash, a wrong size */
  p.flags = WHISPER_MEDIA_VIEW_ONCE;
  p.has_plaintext_hash = 0;
  p.plaintext_hash = (ProtobufCBinaryData){0, NULL};
  p.size = sizeof pt - 1;
  ct.has_forwarded = 1;
  ct.forwarded = 1;
  seed(s, "attachment_view_once_forwarded", &ct);
  /* a pointer without its key or digest (not for the decryptor) */
  p.has_key = 0;
  p.key = (ProtobufCBinaryData){0, NULL};
  seed(s, "attachment_no_key", &ct);
  ct.has_forwarded = 0;
  /* OPENED: a view-once message opened on another device */
  static const uint8_t mid[16] = "message id 0001";
  Whisper__E2e__Target t = WHISPER__E2E__TARGET__INIT;
  t.has_id = 1;
  t.id = (ProtobufCBinaryData){sizeof mid, (uint8_t *)mid};
  t.sender = "bob";
  Whisper__E2e__Content op = WHISPER__E2E__CONTENT__INIT;
  op.has_version = op.has_kind = 1;
  op.version = 1;
  op.kind = WHISPER__E2E__CONTENT__KIND__OPENED;
  op.target = &t;
  op.text = "bob";
  seed(s, "opened", &op);
  /* a text, and a block list */
  Whisper__E2e__Content tx = WHISPER__E2E__CONTENT__INIT;
  tx.has_version = tx.has_kind = 1;
  tx.version = 1;
  tx.kind = WHISPER__E2E__CONTENT__KIND__TEXT;
  tx.text = "hello";
  seed(s, "text", &tx);
  Whisper__E2e__BlockEntry be = WHISPER__E2E__BLOCK_ENTRY__INIT, *bes[] = {&be};
  be.account = "mallory";
  be.has_blocked = be.has_changed_at = 1;
  be.blocked = 1;
  be.changed_at = FZ_NOW;
  Whisper__E2e__Block bl = WHISPER__E2E__BLOCK__INIT;
  bl.n_entries = 1;
  bl.entries = bes;
  Whisper__E2e__Content bc = WHISPER__E2E__CONTENT__INIT;
  bc.has_version = bc.has_kind = 1;
  bc.version = 1;
  bc.kind = WHISPER__E2E__CONTENT__KIND__BLOCK;
  bc.block = &bl;
  seed(s, "block", &bc);
  /* found by this target: an unknown field numbered 0 (written `80 00`, a
   * varint 0) in an AttachmentPointer (of an ATTACHMENT, or of a TEXT) or
   * in a BlockEntry, which sy_content_parse takes and protobuf-c packs as
   * `00`, which it cannot read back (refused since) */
  static const struct {
    const char *name;
    uint8_t b[16];
    size_t n;
  } tag0[] = {
      {"attachment_unknown_field_0", {0x08, 1, 0x10, 9, 0x6a, 7, 0x0a, 2, 'i', 'd', 0x80, 0, 0}, 13},
      {"text_attachment_unknown_field_0", {0x10, 1, 0x1a, 2, 'h', 'i', 0x6a, 7, 0x0a, 2, 'i', 'd', 0x80, 0, 0}, 15},
      {"block_unknown_field_0", {0x10, 8, 0x62, 8, 0x0a, 6, 0x0a, 1, 'm', 0x80, 0, 0}, 12},
  };
  for (size_t i = 0; i < sizeof tag0 / sizeof tag0[0]; i++) {
    whisper_buf *b0 = whisper_buf_new(tag0[i].b, tag0[i].n);
    run_input(b0->data, b0->len);
    fz_seeds_add(s, tag0[i].name, b0, 1);
  }
  whisper_buf_free(imac);
  whisper_attachment_result_clear(&r);
  free(blob.data);
}

#ifndef FZP_SEEDS_ONLY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  run_input(data, size);
  return 0;
}
#endif
