/*
 * fuzz_e2e: the engine's decoders of what it authenticates end to end
 * (src/sync/trust.c, src/proto/e2e.proto), called as the engine calls them
 * on alice.1's engine (a whisper_client over a watching memory store, a
 * fixed RNG and clock).
 *
 * The first input byte picks the decoder (& 7) and a
 * variant (>> 3); the rest is the input:
 *   0 LIST    an e2e.SignedDeviceList for the account variant % 5 names,
 *             taken as outbox.c's on_devices takes one: inside the engine's
 *             transaction (sy_txn_begin), the held list loaded
 *             (sy_devs_load), sy_list_accept, the result saved, the
 *             transaction committed. What alice's store holds for each:
 *               "bob"    a list of version 5 (bob.1, bob.2), UNVERIFIED;
 *               "carol"  a list of version 2 (carol.1), VERIFIED by the app;
 *               "dave"   devices 1 and 2 from before signed lists (legacy);
 *               "erin"   nothing (first sight);
 *               "alice"  her own list of version 3 (alice.1, alice.2).
 *   1 CHANGE  an e2e.SignedGroupChange for alice's group (variant odd:
 *             another group id): sy_change_parse, then sy_change_verify
 *             against the stored list of its author (as inbox.c on_group),
 *             then who may make it (groups.c sy_group_change_why), taking
 *             it (sy_group_take) and reading it as a join request
 *             (sy_group_request_why), against the state alice holds of
 *             the group, by (variant >> 1) & 3:
 *               0, 3  H0: version 1 (the hash of seed change_v1's body),
 *                     members bob, alice; admin bob; no info, settings
 *                     off, no link;
 *               1     H1: the same version and hash; members bob, alice,
 *                     carol; admins bob, alice; name "Club", only admins
 *                     edit info, only admins send, an invite link (the
 *                     world's link key), no approval;
 *               2     nothing held (a group never seen).
 *   2 PAYLOAD an e2e.Payload (a decrypted message): sy_payload_parse.
 *   3 TOKEN   a link token: sy_token_parse and whisper_client_link_digits.
 *   4 RETRY   a retry request (retry.c): the bytes as libsignal's
 *             PlaintextContent (sy_decryption_error_parse), then as the body
 *             of a type-8 CONTENT_RETRY entry from bob.1 (an e2e.RetryRequest)
 *             answered by sy_retry_answer inside the engine's transaction
 *             (sy_txn_begin / sy_txn_end, as inbox.c on_message), 1 +
 *             (variant & 3) times in a row (the 4th answer for a message
 *             meets the per-message resend limit). Alice's store holds her
 *             outgoing messages (whisper_client_send before the input):
 *             to bob an hour ago (resent), to bob 8 days ago (too old:
 *             FAILED), to carol (bob never got it), to group G3 (alice,
 *             bob; bob.1 and bob.2 hold her sender key), alice.2's message
 *             to bob kept as an own copy (no number: not this device's), and
 *             a reference to a message no longer in history.
 *
 * Asserts (abort on violation):
 *  LIST: the code is OK, EFORGED or EUNTRUSTED, and is exactly the one an
 *    independent model gives (the list parsed and checked here, the
 *    signature verified here with whisper_verify over
 *    "whisper-devices-v1" || body by the key of device 1; then: nothing
 *    held, or the same account key with a version above the held one, or
 *    the same version with the same devices, or a new account key when
 *    the held one is not VERIFIED (EUNTRUSTED if it is));
 *    a refused list changes neither the devlist nor any stored byte;
 *    an accepted list verifies, its device 1 holds the account key the
 *    devlist then holds, its version is the devlist's and never below the
 *    held one for the same account key; the devlist holds exactly the
 *    list's devices and keys; a device whose key changed keeps no
 *    registration id and is marked for a new session; the library trusts
 *    each listed key (whisper_identity_info), except the engine's own
 *    device; the trust state is UNVERIFIED on first sight, CHANGED after a
 *    new account key, else kept; the saved list loads back the same;
 *    EV_IDENTITY is raised exactly for a new account key (accepted or
 *    refused as EUNTRUSTED), EV_DEVICES once per device added or removed
 *    when a list was held; and, for the engine's own account on device 1
 *    (the primary, whose identity key is the account key), an accepted
 *    list names device 1 with that key.
 *    No transaction is left open, the context is back on its store.
 *  CHANGE: OK or EFORGED; success implies the group id passed, version >= 1
 *    with a 32-byte prev exactly when above 1, a valid author and device,
 *    valid and distinct member and admin names, admins a subset of members,
 *    a name and description of valid UTF-8 without NUL within their
 *    limits, a picture within its limit, an invite key of 33 bytes and an
 *    invite signature of 64 when present, and the hash the SHA-256 of the
 *    body; failure leaves the sy_change empty. sy_change_verify is OK
 *    exactly when the author's held signed list names the author device
 *    with a key under which the signature over "whisper-group-v1" || body
 *    verifies (checked here).
 *    sy_group_change_why is OK; a change it lets through is, by a model
 *    here: a starting state (nothing held: the creation by its creator, or
 *    alice added by an admin the change names; within the member limit),
 *    or the step after the held one (version + 1, prev its hash) that
 *    leaves an admin when it has members, does not grow past the limit,
 *    and, by an author who is not a held admin, keeps the settings, the
 *    link and the admins (or a subset, leaving), and is either the
 *    author's leave (the held members without it, the info kept), an
 *    info edit (the same members; the info kept where only admins edit
 *    it), or a join by a non-member (the held members and it, the info
 *    kept, the held state has a link and no approval, and the invite
 *    signature verifies under the held link key, checked here).
 *    sy_group_take leaves exactly the body's members, admins, info,
 *    settings and link in the state, and returns the bits of what
 *    differs from the held state. sy_group_request_why lets a request
 *    through only for a held state where alice is an admin and the author
 *    not a member, when the change adds its author and its invite
 *    signature verifies under the held link key.
 *  PAYLOAD: success implies a body and exactly one of `to` (a valid account
 *    name) and `group_id` (16 bytes); sy_payload_make of what it read
 *    parses back to the same conversation and body.
 *  TOKEN: sy_token_parse and whisper_client_link_digits agree (OK /
 *    EINVAL); success implies version 1, device 2..2^31-1 (big-endian at
 *    byte 1), a valid public key at byte 5, a valid account name of the
 *    length byte 38, a code of 1..64 bytes after it; the digits are 8
 *    decimal digits, those of SHA-256("whisper-link-v1" || len || account
 *    || device || key) (computed here with libsodium).
 *  PAYLOAD also: the number gap_check reads (counter when set) reads back
 *    the same from the payload the engine makes, and the resend mark
 *    sy_resend_job adds to it reads back with the same number, body and
 *    conversation (the mark is read only as true when set).
 *  CONTENT (5): an e2e.Content (inside a Payload): sy_content_parse
 *    accepts it exactly when protobuf-c unpacks it and the model here
 *    says its kind's fields are whole (a text: UTF-8 of at most
 *    SY_TEXT_MAX bytes, a quote with a 1..64-byte id, an account-name
 *    sender and an excerpt of at most 100 bytes of UTF-8; a reaction, edit
 *    or delete: a target with a 1..64-byte id and an account-name sender,
 *    a reaction's emoji at most 64 bytes of UTF-8, an edit's text as a
 *    text's; a call: a 16-byte id, a type 1..5, at most 64 KiB of data;
 *    any other kind: accepted as it is, kept for a newer version), and
 *    holds no unknown field numbered 0 (protobuf-c cannot write one); what it
 *    accepts packs and parses back to the same kind and text.
 *  PROFILE_KEY (6): the bytes as an e2e.Content of kind PROFILE_KEY taken
 *    (sy_profile_key_receive, inside the engine's transaction) from bob.1
 *    (variant & 3 = 0), from bob in alice's group G3 (1), from alice.2 to
 *    alice (2) or as alice.2's copy of a notice to bob (3): see
 *    do_profile_key for the model. Alice has a profile (her key, version 1)
 *    and bob's key (version 1).
 *  PROFILE (7): the bytes as bob's stored profile at version variant + 1:
 *    sy_profile_open against a model (the format, libsodium's AES-256-GCM
 *    when the CPU has it, the padding, the fields), then the Profile answer
 *    to a fetch of bob's (sy_profile_answer): kept with EV_PROFILE exactly
 *    when it opens, else EV_REFUSED and no stored byte changed.
 *  RETRY: sy_decryption_error_parse succeeds exactly when the bytes are
 *    0xC0 || a Content holding a DecryptionErrorMessage that unpacks ||
 *    0x80 || zero bytes only (checked here with protobuf-c's own
 *    allocator), then with the same fields; what it returns, packed and
 *    wrapped the same way, parses back to the same fields. sy_retry_answer
 *    returns OK, leaves no transaction open and raises exactly one event:
 *    EV_REFUSED with WHISPER_EFORGED and the model's sentence (a request
 *    that does not unpack, a message id that is not 16 bytes, no
 *    DecryptionErrorMessage;
 *    a message this device did not send; one whose conversation bob is not
 *    part of; one no longer in history) after which no
 *    stored byte changed, no transaction committed a write and no job was
 *    queued; or EV_RETRY for the message (its conversation, id, device 1)
 *    with RESENT (at most 3 times per message and input) and exactly one
 *    new JOB_RESEND to bob.1 whose Payload parses, is marked resend, keeps
 *    the message's body, conversation, time and number; bob.1 is marked
 *    for a new session, and for a group message loses its sender-key mark
 *    (bob.2 keeps his); or EV_RETRY FAILED (too old, or asked too often),
 *    no job, the message's status for bob.1 FAILED. Which one is exactly
 *    what a model of the request (parsed here) says. A request whose
 *    DecryptionErrorMessage names another device than alice's 1 (the
 *    message's sender device, which is to answer) is skipped: no event,
 *    nothing changed.
 *    Queued jobs and rate counters are dropped after each input.
 *
 * Everything an input writes is put back (fz_journal), events are freed.
 * gen_corpus compiles this file with FZE_SEEDS_ONLY and calls
 * fze_gen_seeds() for the seeds.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sync/sync_internal.h"
#include "wire.pb-c.h"

enum { K_LIST, K_CHANGE, K_PAYLOAD, K_TOKEN, K_RETRY, K_CONTENT, K_PROFILE_KEY, K_PROFILE };
#define N_ACCOUNTS 5
static const char *const ACCOUNTS[N_ACCOUNTS] = {"bob", "carol", "dave", "erin", "alice"};
enum { A_BOB, A_CAROL, A_DAVE, A_ERIN, A_ALICE };

static const char LIST_CTX[] = "whisper-devices-v1";
static const char GROUP_CTX[] = "whisper-group-v1";
static const char LINK_CTX[] = "whisper-link-v1";

typedef struct fze_world {
  fz_dev *alice;          /* alice.1: the engine's device */
  whisper_client *c;
  fz_dev *alice2, *bob1, *bob2, *bob_new, *carol1, *carol_new, *erin1, *mallory;
  uint8_t gid[WHISPER_GROUP_ID_LEN], other_gid[WHISPER_GROUP_ID_LEN];
  /* CHANGE: what alice holds of gid (H0, H1; H2: nothing), the link's keys */
  sy_group held[3];
  uint8_t h1[32];
  wh_keypair invite;
  /* alice's outgoing messages (RETRY) */
  uint8_t g3[WHISPER_GROUP_ID_LEN];
  struct fze_sent {
    const char *name, *to, *body;
    uint64_t age_ms;
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    char conv[WH_NAME_MAX + 1];
    uint64_t counter;
  } sent[6];
} fze_world;
enum { S_FRESH, S_OLD, S_CAROL, S_GROUP, S_OWN_COPY, S_GONE, N_SENT };

static fze_world *W;

/* bob's profile key, as alice holds it (PROFILE) */
static const uint8_t BOB_PK[32] = "fz-e2e bob's profile key ......";

/* --- keys and signed things ------------------------------------------------- */

static const uint8_t *pub_of(fz_dev *d) {
  FZ_ASSERT(wh_local_identity(d->ctx) == WHISPER_OK, "identity of %s", d->name);
  return d->ctx->identity.pub;
}

/* "ctx" || body signed by d's identity key, packed as a SignedDeviceList
 * (SignedGroupChange has the same shape). */
static whisper_buf *sign_wrap(fz_dev *d, const char *ctxs, const uint8_t *body, size_t n) {
  size_t cl = strlen(ctxs);
  uint8_t *msg = malloc(cl + n + 1), sig[WHISPER_SIGNATURE_LEN];
  FZ_ASSERT(msg != NULL, "out of memory");
  memcpy(msg, ctxs, cl);
  if (n) memcpy(msg + cl, body, n);
  FZ_ASSERT(wh_local_identity(d->ctx) == WHISPER_OK &&
                whisper_sign(d->ctx, d->ctx->identity.priv, msg, cl + n, sig) == WHISPER_OK,
            "sign");
  free(msg);
  Whisper__E2e__SignedDeviceList s = WHISPER__E2E__SIGNED_DEVICE_LIST__INIT;
  s.has_body = s.has_signature = 1;
  s.body = (ProtobufCBinaryData){n, (uint8_t *)body};
  s.signature = (ProtobufCBinaryData){sizeof sig, sig};
  whisper_buf *out = whisper_buf_new(NULL, whisper__e2e__signed_device_list__get_packed_size(&s));
  FZ_ASSERT(out != NULL, "out of memory");
  whisper__e2e__signed_device_list__pack(&s, out->data);
  return out;
}

/* A list of `account` at `version` naming devices ids[i] with keys[i]'s
 * identity keys, signed by `signer`. */
static whisper_buf *make_list(fz_dev *signer, const char *account, uint64_t version,
                              const uint32_t *ids, fz_dev *const *keys, size_t n) {
  Whisper__E2e__ListedDevice d[8], *dp[8];
  FZ_ASSERT(n <= 8, "list too long");
  for (size_t i = 0; i < n; i++) {
    whisper__e2e__listed_device__init(&d[i]);
    d[i].has_device_id = d[i].has_identity_key = 1;
    d[i].device_id = ids[i];
    d[i].identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)pub_of(keys[i])};
    dp[i] = &d[i];
  }
  Whisper__E2e__DeviceListBody b = WHISPER__E2E__DEVICE_LIST_BODY__INIT;
  b.account = (char *)account;
  b.has_version = 1;
  b.version = version;
  b.n_devices = n;
  b.devices = dp;
  size_t len = whisper__e2e__device_list_body__get_packed_size(&b);
  uint8_t *body = malloc(len + 1);
  FZ_ASSERT(body != NULL, "out of memory");
  whisper__e2e__device_list_body__pack(&b, body);
  whisper_buf *out = sign_wrap(signer, LIST_CTX, body, len);
  free(body);
  return out;
}

/* A change of `gid` at `version` (prev: the previous body's hash, or NULL)
 * by author.author_device, signed by `signer`. */
static whisper_buf *make_change(fz_dev *signer, const uint8_t *gid, uint64_t version,
                                const uint8_t *prev, const char *const *members, size_t nm,
                                const char *const *admins, size_t na, const char *author,
                                uint32_t author_device, uint8_t hash_out[32]) {
  Whisper__E2e__GroupChangeBody b = WHISPER__E2E__GROUP_CHANGE_BODY__INIT;
  b.has_group_id = b.has_version = b.has_author_device = 1;
  b.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, (uint8_t *)gid};
  b.version = version;
  if (prev) {
    b.has_prev = 1;
    b.prev = (ProtobufCBinaryData){32, (uint8_t *)prev};
  }
  b.n_members = nm;
  b.members = (char **)members;
  b.n_admins = na;
  b.admins = (char **)admins;
  b.author = (char *)author;
  b.author_device = author_device;
  size_t len = whisper__e2e__group_change_body__get_packed_size(&b);
  uint8_t *body = malloc(len + 1);
  FZ_ASSERT(body != NULL, "out of memory");
  whisper__e2e__group_change_body__pack(&b, body);
  if (hash_out) crypto_hash_sha256(hash_out, body, len);
  whisper_buf *out = sign_wrap(signer, GROUP_CTX, body, len);
  free(body);
  return out;
}

/* A change of gid (version, prev) with the new fields: `name`, settings
 * (bit 0 only admins edit info, 1 only admins send, 2 approval), the
 * world's invite key (link), and with `invite_priv` an invite signature. */
static whisper_buf *make_change_x(fz_dev *signer, uint64_t version, const uint8_t *prev,
                                  const char *const *members, size_t nm, const char *const *admins,
                                  size_t na, const char *author, uint32_t author_device,
                                  const char *name, int settings, int link,
                                  const uint8_t *invite_priv) {
  Whisper__E2e__GroupChangeBody b = WHISPER__E2E__GROUP_CHANGE_BODY__INIT;
  b.has_group_id = b.has_version = b.has_author_device = 1;
  b.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, W->gid};
  b.version = version;
  if (prev) b.has_prev = 1, b.prev = (ProtobufCBinaryData){32, (uint8_t *)prev};
  b.n_members = nm;
  b.members = (char **)members;
  b.n_admins = na;
  b.admins = (char **)admins;
  b.author = (char *)author;
  b.author_device = author_device;
  if (name) b.has_name = 1, b.name = (ProtobufCBinaryData){strlen(name), (uint8_t *)name};
  if (settings & 1) b.has_admins_edit_info = b.admins_edit_info = 1;
  if (settings & 2) b.has_admins_send = b.admins_send = 1;
  if (settings & 4) b.has_approval_required = b.approval_required = 1;
  if (link) b.has_invite_key = 1, b.invite_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, W->invite.pub};
  size_t len = whisper__e2e__group_change_body__get_packed_size(&b);
  uint8_t *body = malloc(len + 1);
  FZ_ASSERT(body != NULL, "out of memory");
  whisper__e2e__group_change_body__pack(&b, body);
  whisper_buf *out = sign_wrap(signer, GROUP_CTX, body, len);
  if (invite_priv) {
    uint8_t *msg = malloc(sizeof "whisper-group-join-v1" + len), sig[WHISPER_SIGNATURE_LEN];
    FZ_ASSERT(msg != NULL, "out of memory");
    memcpy(msg, "whisper-group-join-v1", 21);
    memcpy(msg + 21, body, len);
    FZ_ASSERT(whisper_sign(signer->ctx, invite_priv, msg, 21 + len, sig) == WHISPER_OK, "sign");
    free(msg);
    Whisper__E2e__SignedGroupChange *sc =
        whisper__e2e__signed_group_change__unpack(NULL, out->len, out->data);
    FZ_ASSERT(sc != NULL, "unpack");
    sc->has_invite_signature = 1;
    sc->invite_signature = (ProtobufCBinaryData){sizeof sig, sig};
    whisper_buf *o2 = whisper_buf_new(NULL, whisper__e2e__signed_group_change__get_packed_size(sc));
    FZ_ASSERT(o2 != NULL, "out of memory");
    whisper__e2e__signed_group_change__pack(sc, o2->data);
    sc->has_invite_signature = 0;
    sc->invite_signature = (ProtobufCBinaryData){0, NULL};
    whisper__e2e__signed_group_change__free_unpacked(sc, NULL);
    whisper_buf_free(out);
    out = o2;
  }
  free(body);
  return out;
}

/* --- the engine's transaction, as on_devices runs it ------------------------- */

static void after_call(const char *what) {
  FZ_ASSERT(!W->alice->fs.outer->depth, "%s left a store transaction open", what);
  FZ_ASSERT(W->alice->ctx->store == W->alice->fs.outer, "%s left the context on the engine's shim",
            what);
}

static int load_list(const char *account, sy_devlist *l) {
  int rc = wh_begin(W->c->ctx);
  if (rc == WHISPER_OK) rc = wh_finish(W->c->ctx, sy_devs_load(W->c, account, l));
  after_call("load");
  return rc;
}

/* on_devices with a signed list, in setup (must succeed). */
static void setup_accept(const char *account, const whisper_buf *list) {
  sy_devlist l;
  FZ_ASSERT(sy_txn_begin(W->c) == WHISPER_OK, "txn");
  FZ_ASSERT(sy_devs_load(W->c, account, &l) == WHISPER_OK, "load");
  int rc = sy_list_accept(W->c, account, list->data, list->len, &l, NULL);
  FZ_ASSERT(rc == WHISPER_OK, "setup list of %s: %d (%s)", account, rc,
            whisper_ctx_last_error(W->c->ctx));
  rc = sy_txn_end(W->c, sy_devs_save(W->c, account, &l));
  FZ_ASSERT(rc == WHISPER_OK, "setup save %s", account);
  sy_devs_free(&l);
  after_call("setup");
}

static void drop_events(whisper_client *c) {
  whisper_client_event_t e;
  while (whisper_client_take_event(c, &e)) {
  }
}

static char **names_of(const char *const *v, size_t n) {
  char **out = calloc(n + 1, sizeof *out);
  FZ_ASSERT(out != NULL, "out of memory");
  for (size_t i = 0; i < n; i++) FZ_ASSERT((out[i] = strdup(v[i])) != NULL, "out of memory");
  return out;
}

/* CHANGE's held states of gid (see the top). */
static void held_states(void) {
  static const char *const m0[] = {"bob", "alice"}, *const a0[] = {"bob"};
  static const char *const m1[] = {"bob", "alice", "carol"}, *const a1[] = {"bob", "alice"};
  uint8_t priv[32];
  memset(priv, 0x1C, sizeof priv);
  FZ_ASSERT(wh_keypair_from_priv(&W->invite, priv) == 0, "invite keys");
  /* the hash of change_v1's body (bob creates: bob, alice; admin bob),
   * made here without signing (the seeds' signatures stay as they were) */
  Whisper__E2e__GroupChangeBody b = WHISPER__E2E__GROUP_CHANGE_BODY__INIT;
  b.has_group_id = b.has_version = b.has_author_device = 1;
  b.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, W->gid};
  b.version = 1;
  b.n_members = 2;
  b.members = (char **)m0;
  b.n_admins = 1;
  b.admins = (char **)a0;
  b.author = "bob";
  b.author_device = 1;
  uint8_t body[256];
  size_t bl = whisper__e2e__group_change_body__pack(&b, body);
  crypto_hash_sha256(W->h1, body, bl);
  for (int i = 0; i < 2; i++) {
    sy_group *g = &W->held[i];
    memset(g, 0, sizeof *g);
    g->known = 1;
    g->version = 1;
    memcpy(g->hash, W->h1, 32);
    g->members = names_of(i ? m1 : m0, i ? 3 : 2);
    g->n_members = i ? 3 : 2;
    g->admins = names_of(i ? a1 : a0, i ? 2 : 1);
    g->n_admins = i ? 2 : 1;
  }
  sy_group *g = &W->held[1];
  g->name = whisper_buf_new((const uint8_t *)"Club", 4);
  g->admins_edit_info = g->admins_send = 1;
  g->has_invite = 1;
  memcpy(g->invite_key, W->invite.pub, WHISPER_PUBLIC_KEY_LEN);
  memset(&W->held[2], 0, sizeof W->held[2]);
}

static void world_new(void) {
  W = calloc(1, sizeof *W);
  FZ_ASSERT(W != NULL, "out of memory");
  W->alice = fz_dev_new("alice", 1, 0xE1);
  W->alice2 = fz_dev_new("alice", 2, 0xE2);
  W->bob1 = fz_dev_new("bob", 1, 0xE3);
  W->bob2 = fz_dev_new("bob", 2, 0xE4);
  W->bob_new = fz_dev_new("bob", 1, 0xE5);
  W->carol1 = fz_dev_new("carol", 1, 0xE6);
  W->carol_new = fz_dev_new("carol", 1, 0xE7);
  W->erin1 = fz_dev_new("erin", 1, 0xE8);
  W->mallory = fz_dev_new("mallory", 1, 0xE9);
  memset(W->gid, 0x61, sizeof W->gid);
  memset(W->other_gid, 0x62, sizeof W->other_gid);
  FZ_ASSERT(whisper_client_new(&W->c, W->alice->ctx, NULL) == WHISPER_OK, "client_new: %s",
            whisper_ctx_last_error(W->alice->ctx));
  W->c->now = FZ_NOW;
  held_states();

  /* alice's own list, signed by her engine */
  sy_dev own[2];
  memset(own, 0, sizeof own);
  own[0].id = 1;
  own[1].id = 2;
  memcpy(own[0].key, pub_of(W->alice), WHISPER_PUBLIC_KEY_LEN);
  memcpy(own[1].key, pub_of(W->alice2), WHISPER_PUBLIC_KEY_LEN);
  own[0].has_key = own[1].has_key = 1;
  whisper_buf *b = NULL;
  FZ_ASSERT(sy_list_sign(W->c, 3, own, 2, &b) == WHISPER_OK, "own list");
  setup_accept("alice", b);
  whisper_buf_free(b);

  static const uint32_t ids12[] = {1, 2};
  fz_dev *bk[] = {W->bob1, W->bob2};
  b = make_list(W->bob1, "bob", 5, ids12, bk, 2);
  setup_accept("bob", b);
  whisper_buf_free(b);

  fz_dev *ck[] = {W->carol1};
  b = make_list(W->carol1, "carol", 2, ids12, ck, 1);
  setup_accept("carol", b);
  whisper_buf_free(b);
  FZ_ASSERT(whisper_client_account_trust(W->c, "carol", pub_of(W->carol1), 1) == WHISPER_OK,
            "verify carol");

  /* dave: from before signed lists */
  sy_devlist l;
  memset(&l, 0, sizeof l);
  l.known = l.legacy = 1;
  FZ_ASSERT(sy_devs_add(&l, 1, 1111) == WHISPER_OK && sy_devs_add(&l, 2, 2222) == WHISPER_OK,
            "dave");
  FZ_ASSERT(wh_begin(W->c->ctx) == WHISPER_OK &&
                wh_finish(W->c->ctx, sy_devs_save(W->c, "dave", &l)) == WHISPER_OK,
            "save dave");
  sy_devs_free(&l);

  /* RETRY: group G3 (alice, bob), bob's devices holding alice's sender key,
   * and alice's outgoing messages, on an RNG stream of their own (the
   * seeds above do not depend on them) */
  memset(W->g3, 0x63, sizeof W->g3);
  sy_group g;
  memset(&g, 0, sizeof g);
  char *members[] = {"alice", "bob"};
  sy_devref have[] = {{"bob", 1}, {"bob", 2}};
  g.known = 1;
  g.members = members;
  g.n_members = 2;
  g.admins = members;
  g.n_admins = 1;
  g.have = have;
  g.n_have = 2;
  g.version = 1;
  memset(g.hash, 0x33, sizeof g.hash);
  FZ_ASSERT(wh_begin(W->c->ctx) == WHISPER_OK &&
                wh_finish(W->c->ctx, sy_group_save(W->c, W->g3, &g)) == WHISPER_OK,
            "save G3");
  static const struct {
    const char *name, *to, *body;
    uint64_t age_ms;
  } sends[N_SENT] = {
      [S_FRESH] = {"fresh", "bob", "to bob, an hour ago", 3600000},
      [S_OLD] = {"old", "bob", "to bob, eight days ago", 8ULL * 24 * 3600 * 1000},
      [S_CAROL] = {"carol", "carol", "to carol", 60000},
      [S_GROUP] = {"group", NULL, "to G3", 120000},
      /* alice.2's message to bob, kept as inbox.c own_copy keeps it (no number) */
      [S_OWN_COPY] = {"own copy", "bob", "from alice.2 to bob", 300000},
      /* a reference without its history entry (deleted from history) */
      [S_GONE] = {"gone", "bob", "", 400000},
  };
  uint64_t counter = W->alice->rng.counter;
  W->alice->rng.counter = UINT64_C(1) << 41;
  for (int i = 0; i < N_SENT; i++) {
    struct fze_sent *m = &W->sent[i];
    m->name = sends[i].name;
    m->to = sends[i].to;
    m->body = sends[i].body;
    m->age_ms = sends[i].age_ms;
    int rc;
    if (i == S_OWN_COPY || i == S_GONE) {
      FZ_ASSERT(wh_random(&W->c->ctx->rng, m->id, sizeof m->id) == 0, "random");
      FZ_ASSERT(sy_txn_begin(W->c) == WHISPER_OK, "txn");
      rc = WHISPER_OK;
      if (i == S_OWN_COPY) {
        whisper_device_t to[2] = {{"bob", 1}, {"bob", 2}};
        whisper_message_t hm = {.size = sizeof(whisper_message_t),
                                .conversation = m->to, .id = m->id, .id_len = sizeof m->id,
                                .sort_key = 77, .timestamp_ms = FZ_NOW - m->age_ms,
                                .body = (const uint8_t *)m->body, .body_len = strlen(m->body)};
        rc = whisper_history_add_outgoing(W->c->ctx, &hm, to, 2);
      }
      if (rc == WHISPER_OK) rc = sy_outref_put(W->c, m->id, m->to, i == S_GONE ? 9 : 0);
      rc = sy_txn_end(W->c, rc);
      after_call("setup");
    } else {
      rc = m->to ? whisper_client_send(W->c, m->to, (const uint8_t *)m->body, strlen(m->body),
                                       FZ_NOW - m->age_ms, m->id)
                 : whisper_client_send_group(W->c, W->g3, (const uint8_t *)m->body,
                                             strlen(m->body), FZ_NOW - m->age_ms, m->id);
    }
    FZ_ASSERT(rc == WHISPER_OK, "send %s: %d (%s)", m->name, rc, whisper_ctx_last_error(W->c->ctx));
    FZ_ASSERT(wh_begin(W->c->ctx) == WHISPER_OK &&
                  wh_finish(W->c->ctx, sy_outref_get(W->c, m->id, m->conv)) == WHISPER_OK,
              "outref %s", m->name);
    m->counter = sy_outref_counter(W->c, m->id);
    FZ_ASSERT((m->counter >= 1) == (i != S_OWN_COPY), "message %s has number %llu", m->name,
              (unsigned long long)m->counter);
  }
  /* PROFILE: alice's own profile (her key, made here: she is device 1),
   * and bob's key as his PROFILE_KEY brought it (version 1, no profile
   * fetched yet), on an RNG stream of their own */
  W->alice->rng.counter = UINT64_C(1) << 42;
  FZ_ASSERT(whisper_client_profile_set(W->c, "Alice", "", NULL, 0, FZ_NOW) == WHISPER_OK, "profile_set: %s",
            whisper_ctx_last_error(W->c->ctx));
  {
    Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
    ct.has_kind = ct.has_profile_key = ct.has_profile_version = 1;
    ct.kind = WHISPER__E2E__CONTENT__KIND__PROFILE_KEY;
    ct.profile_key = (ProtobufCBinaryData){32, (uint8_t *)BOB_PK};
    ct.profile_version = 1;
    ct.profile_owner = "bob";
    FZ_ASSERT(sy_txn_begin(W->c) == WHISPER_OK, "txn");
    int rc = sy_profile_key_receive(W->c, "bob", "bob", 0, 0, &ct);
    FZ_ASSERT(rc == 1 && sy_txn_end(W->c, WHISPER_OK) == WHISPER_OK, "bob's profile key: %d", rc);
    W->c->profile_due = 0;
  }
  W->alice->rng.counter = counter;
  W->c->now = FZ_NOW;
  FZ_ASSERT(W->c->jobs == NULL, "sends queued jobs while logged out");
  drop_events(W->c);
  after_call("world");
}

static void world_free(void) {
  whisper_client_free(W->c);
  for (int i = 0; i < 3; i++) sy_group_free(&W->held[i]);
  fz_dev *d[] = {W->alice, W->alice2, W->bob1, W->bob2, W->bob_new,
                 W->carol1, W->carol_new, W->erin1, W->mallory};
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) fz_dev_free(d[i]);
  free(W);
  W = NULL;
}

/* --- checks ------------------------------------------------------------------- */

static int name_ok(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
          s[i] == '_' || s[i] == '-'))
      return 0;
  return 1;
}

static int ctx_verify(const uint8_t *key, const char *ctxs, ProtobufCBinaryData body,
                      ProtobufCBinaryData sig) {
  size_t cl = strlen(ctxs);
  uint8_t *msg = malloc(cl + body.len + 1);
  FZ_ASSERT(msg != NULL, "out of memory");
  memcpy(msg, ctxs, cl);
  if (body.len) memcpy(msg + cl, body.data, body.len);
  int ok = whisper_verify(key, WHISPER_PUBLIC_KEY_LEN, msg, cl + body.len, sig.data, sig.len) ==
           WHISPER_OK;
  free(msg);
  return ok;
}

/* The list as parsed here: NULL body if it is not a valid signed list of
 * `account` (every rule of e2e.proto and docs/sync-protocol.md). */
typedef struct model_list {
  Whisper__E2e__SignedDeviceList *s;
  Whisper__E2e__DeviceListBody *b;
  const uint8_t *key1;
} model_list;

static void model_free(model_list *m) {
  if (m->b) whisper__e2e__device_list_body__free_unpacked(m->b, NULL);
  if (m->s) whisper__e2e__signed_device_list__free_unpacked(m->s, NULL);
  memset(m, 0, sizeof *m);
}

static int model_parse(const char *account, const uint8_t *p, size_t n, model_list *m) {
  memset(m, 0, sizeof *m);
  m->s = whisper__e2e__signed_device_list__unpack(NULL, n, p);
  if (m->s == NULL || !m->s->has_body || !m->s->has_signature || m->s->signature.len != 64)
    goto bad;
  m->b = whisper__e2e__device_list_body__unpack(NULL, m->s->body.len, m->s->body.data);
  if (m->b == NULL || m->b->account == NULL || strcmp(m->b->account, account) != 0 ||
      !m->b->has_version || m->b->version == 0 || m->b->n_devices < 1 || m->b->n_devices > 64)
    goto bad;
  for (size_t i = 0; i < m->b->n_devices; i++) {
    const Whisper__E2e__ListedDevice *d = m->b->devices[i];
    if (!d->has_device_id || d->device_id < 1 || d->device_id > 0x7fffffffu ||
        !d->has_identity_key || d->identity_key.len != WHISPER_PUBLIC_KEY_LEN ||
        whisper_public_key_check(d->identity_key.data, WHISPER_PUBLIC_KEY_LEN) != WHISPER_OK)
      goto bad;
    for (size_t k = 0; k < i; k++)
      if (m->b->devices[k]->device_id == d->device_id) goto bad;
    if (d->device_id == 1) m->key1 = d->identity_key.data;
  }
  if (m->key1 == NULL || !ctx_verify(m->key1, LIST_CTX, m->s->body, m->s->signature)) goto bad;
  return 1;
bad:
  model_free(m);
  return 0;
}

static const Whisper__E2e__ListedDevice *model_find(const model_list *m, uint32_t id) {
  for (size_t i = 0; i < m->b->n_devices; i++)
    if (m->b->devices[i]->device_id == id) return m->b->devices[i];
  return NULL;
}

static const sy_dev *dev_find(const sy_devlist *l, uint32_t id) {
  for (size_t i = 0; i < l->n; i++)
    if (l->d[i].id == id) return &l->d[i];
  return NULL;
}

/* The list holds exactly the model's devices with their keys. */
static int same_as_model(const sy_devlist *l, const model_list *m) {
  if (l->n != m->b->n_devices) return 0;
  for (size_t i = 0; i < m->b->n_devices; i++) {
    const sy_dev *d = dev_find(l, m->b->devices[i]->device_id);
    if (d == NULL || !d->has_key ||
        memcmp(d->key, m->b->devices[i]->identity_key.data, WHISPER_PUBLIC_KEY_LEN) != 0)
      return 0;
  }
  return 1;
}

static int devlist_eq(const sy_devlist *a, const sy_devlist *b) {
  if (a->known != b->known || a->legacy != b->legacy || a->authed != b->authed || a->n != b->n)
    return 0;
  if (a->authed && (a->version != b->version || a->trust != b->trust ||
                    memcmp(a->account_key, b->account_key, WHISPER_PUBLIC_KEY_LEN) != 0 ||
                    !fz_buf_eq(a->signed_list, b->signed_list)))
    return 0;
  for (size_t i = 0; i < a->n; i++) {
    const sy_dev *x = &a->d[i], *y = dev_find(b, a->d[i].id);
    if (y == NULL || x->regid != y->regid || !x->refetch != !y->refetch || x->has_key != y->has_key ||
        (x->has_key && memcmp(x->key, y->key, WHISPER_PUBLIC_KEY_LEN) != 0))
      return 0;
  }
  return 1;
}

/* Events of `type` in q (freed by events_free). */
static size_t events_count(const sy_evq *q, int type, const char *account) {
  size_t n = 0;
  for (const sy_event *e = q->head; e; e = e->next) {
    FZ_ASSERT(e->ev.type == WHISPER_EV_IDENTITY || e->ev.type == WHISPER_EV_DEVICES,
              "sy_list_accept raised event %d", e->ev.type);
    FZ_ASSERT(e->conversation && strcmp(e->conversation, account) == 0, "an event for %s",
              e->conversation ? e->conversation : "(none)");
    if ((int)e->ev.type == type) n++;
  }
  return n;
}

static void events_free(sy_evq *q) {
  while (q->head) {
    sy_event *e = q->head;
    q->head = e->next;
    sy_event_free(e);
  }
  q->tail = NULL;
}

/* --- LIST ------------------------------------------------------------------------ */

static void do_list(int variant, const uint8_t *p, size_t n) {
  whisper_client *c = W->c;
  fz_store *fs = &W->alice->fs;
  const char *account = ACCOUNTS[variant % N_ACCOUNTS];
  int own = strcmp(account, c->account) == 0;

  sy_devlist held, l;
  FZ_ASSERT(load_list(account, &held) == WHISPER_OK, "load %s", account);

  /* what the model says */
  model_list m;
  int valid = model_parse(account, p, n, &m);
  int want = WHISPER_OK, replaces = 1, key_change = 0;
  if (!valid) {
    want = WHISPER_EFORGED;
  } else if (own && c->device_id == 1 &&
             memcmp(m.key1, c->ctx->identity.pub, WHISPER_PUBLIC_KEY_LEN) != 0) {
    want = WHISPER_EFORGED; /* the primary holds the account key itself */
  } else if (held.authed) {
    if (memcmp(m.key1, held.account_key, WHISPER_PUBLIC_KEY_LEN) == 0) {
      if (m.b->version < held.version) want = WHISPER_EFORGED;
      else if (m.b->version == held.version) {
        if (same_as_model(&held, &m)) replaces = 0;
        else want = WHISPER_EFORGED;
      }
    } else {
      key_change = 1;
      if (held.trust == WHISPER_TRUST_VERIFIED) want = WHISPER_EUNTRUSTED;
    }
  }

  fz_watch_begin(fs);
  FZ_ASSERT(sy_txn_begin(c) == WHISPER_OK, "txn");
  FZ_ASSERT(sy_devs_load(c, account, &l) == WHISPER_OK, "load %s", account);
  sy_evq q = {NULL, NULL};
  int rc = sy_list_accept(c, account, p, n, &l, &q);
  if (fz_verbose())
    fprintf(stderr, "  list of %s (%zu bytes): %d %s\n", account, n, rc,
            rc ? whisper_ctx_last_error(c->ctx) : "");
  FZ_ASSERT(rc == want, "sy_list_accept of %s gave %d, the model %d (%s)", account, rc, want,
            whisper_ctx_last_error(c->ctx));
  int rc2 = sy_txn_end(c, rc == WHISPER_OK ? sy_devs_save(c, account, &l) : WHISPER_OK);
  after_call("list");
  FZ_ASSERT(rc2 == WHISPER_OK, "the transaction after sy_list_accept: %d", rc2);

  size_t ev_id = events_count(&q, WHISPER_EV_IDENTITY, account);
  size_t ev_dev = events_count(&q, WHISPER_EV_DEVICES, account);
  FZ_ASSERT(ev_id == (size_t)(key_change && (rc == WHISPER_OK || rc == WHISPER_EUNTRUSTED)),
            "%zu EV_IDENTITY for a list that %s the account key", ev_id,
            key_change ? "changes" : "keeps");
  for (const sy_event *e = q.head; e; e = e->next)
    if (e->ev.type == WHISPER_EV_IDENTITY)
      FZ_ASSERT(e->body && e->body_len == WHISPER_PUBLIC_KEY_LEN &&
                    memcmp(e->body, m.key1, WHISPER_PUBLIC_KEY_LEN) == 0,
                "EV_IDENTITY without the new account key");

  if (rc != WHISPER_OK) {
    FZ_ASSERT(ev_dev == 0, "a refused list raised EV_DEVICES");
    FZ_ASSERT(devlist_eq(&l, &held), "a refused list changed the devlist");
    const fz_touch *t = fz_store_changed(fs);
    FZ_ASSERT(t == NULL, "a refused list changed a record of kind %d", t ? t->kind : 0);
  } else {
    /* the list accepted verifies (checked again on its own bytes) */
    model_list v;
    FZ_ASSERT(model_parse(account, p, n, &v), "an accepted list does not verify");
    FZ_ASSERT(l.known && l.authed && !l.legacy, "an accepted list left an unauthenticated devlist");
    FZ_ASSERT(memcmp(l.account_key, v.key1, WHISPER_PUBLIC_KEY_LEN) == 0,
              "the devlist's account key is not the key of the list's device 1");
    FZ_ASSERT(l.version == v.b->version, "the devlist has version %llu, the list %llu",
              (unsigned long long)l.version, (unsigned long long)v.b->version);
    if (held.authed && !key_change)
      FZ_ASSERT(l.version >= held.version, "version %llu replaced %llu under the same key",
                (unsigned long long)l.version, (unsigned long long)held.version);
    if (key_change) FZ_ASSERT(held.trust != WHISPER_TRUST_VERIFIED, "a VERIFIED key was replaced");
    FZ_ASSERT(same_as_model(&l, &v), "the devlist is not the list's devices");
    int want_trust = key_change ? WHISPER_TRUST_CHANGED
                     : held.authed ? held.trust : WHISPER_TRUST_UNVERIFIED;
    FZ_ASSERT(l.trust == want_trust, "trust %d, expected %d", l.trust, want_trust);
    if (own && c->device_id == 1)
      FZ_ASSERT(memcmp(l.account_key, c->ctx->identity.pub, WHISPER_PUBLIC_KEY_LEN) == 0,
                "the primary took a list of its own account under another account key");
    if (replaces) {
      FZ_ASSERT(l.signed_list && l.signed_list->len == n && memcmp(l.signed_list->data, p, n) == 0,
                "the devlist does not keep the list's bytes");
    } else {
      FZ_ASSERT(devlist_eq(&l, &held), "the same list again changed the devlist");
    }
    size_t added = 0, removed = 0;
    for (size_t i = 0; i < v.b->n_devices; i++) {
      const Whisper__E2e__ListedDevice *d = v.b->devices[i];
      const sy_dev *o = dev_find(&held, d->device_id), *x = dev_find(&l, d->device_id);
      int same_key = o && o->has_key && memcmp(o->key, d->identity_key.data, 33) == 0;
      if (held.authed && !same_key) added++;
      if (o && o->has_key && !same_key)
        FZ_ASSERT(x->regid == 0 && x->refetch, "device %u's key changed and it kept its session",
                  d->device_id);
      if (own && d->device_id == c->device_id) continue;
      whisper_identity_info_t info = WHISPER_IDENTITY_INFO_INIT;
      FZ_ASSERT(whisper_identity_info(c->ctx, account, d->device_id, &info) == WHISPER_OK &&
                    memcmp(info.key, d->identity_key.data, WHISPER_PUBLIC_KEY_LEN) == 0,
                "the library does not trust %s.%u's listed key", account, d->device_id);
    }
    for (size_t i = 0; held.authed && i < held.n; i++) {
      const Whisper__E2e__ListedDevice *d = model_find(&v, held.d[i].id);
      if (d == NULL || !held.d[i].has_key ||
          memcmp(held.d[i].key, d->identity_key.data, WHISPER_PUBLIC_KEY_LEN) != 0)
        removed++;
    }
    FZ_ASSERT(ev_dev == added + removed, "%zu EV_DEVICES for %zu added and %zu removed", ev_dev,
              added, removed);
    /* what was saved is what loads */
    sy_devlist back;
    FZ_ASSERT(load_list(account, &back) == WHISPER_OK, "reload %s", account);
    FZ_ASSERT(devlist_eq(&back, &l), "the saved devlist of %s loads differently", account);
    sy_devs_free(&back);
    model_free(&v);
  }
  fz_watch_end(fs);
  events_free(&q);
  model_free(&m);
  sy_devs_free(&held);
  sy_devs_free(&l);
}

/* --- CHANGE ----------------------------------------------------------------------- */

static int names_ok(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!name_ok(names[i])) return 0;
    for (size_t k = 0; k < i; k++)
      if (strcmp(names[k], names[i]) == 0) return 0;
  }
  return 1;
}

static int listed(char **names, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return 1;
  return 0;
}

/* --- CHANGE: who may make it (groups.c) ----------------------------------------------- */

static const char JOIN_CTX[] = "whisper-group-join-v1";

static int in(char *const *v, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], name) == 0) return 1;
  return 0;
}

/* a == b with `name` added (op 1), taken out (-1), or as is (0): as sets. */
static int set_eq(char *const *a, size_t na, char *const *b, size_t nb, const char *name, int op) {
  size_t want = nb;
  if (op > 0 && !in(b, nb, name)) want++;
  if (op < 0 && in(b, nb, name)) want--;
  if (na != want) return 0;
  for (size_t i = 0; i < na; i++) {
    int ok = op > 0 && strcmp(a[i], name) == 0 ? 1 : in(b, nb, a[i]);
    if (op < 0 && strcmp(a[i], name) == 0) ok = 0;
    if (!ok) return 0;
  }
  return 1;
}

static int buf_eq(const whisper_buf *x, protobuf_c_boolean has, ProtobufCBinaryData v) {
  size_t lx = x ? x->len : 0, lv = has ? v.len : 0;
  return lx == lv && (lx == 0 || memcmp(x->data, v.data, lx) == 0);
}

static int info_eq(const sy_group *g, const Whisper__E2e__GroupChangeBody *b) {
  return buf_eq(g->name, b->has_name, b->name) && buf_eq(g->description, b->has_description, b->description) &&
         buf_eq(g->picture, b->has_picture, b->picture);
}

static int settings_eq(const sy_group *g, const Whisper__E2e__GroupChangeBody *b) {
  return !g->admins_edit_info == !(b->has_admins_edit_info && b->admins_edit_info) &&
         !g->admins_send == !(b->has_admins_send && b->admins_send) &&
         !g->approval == !(b->has_approval_required && b->approval_required);
}

static int link_eq(const sy_group *g, const Whisper__E2e__GroupChangeBody *b) {
  int has = b->has_invite_key && b->invite_key.len == WHISPER_PUBLIC_KEY_LEN;
  return g->has_invite == has &&
         (!has || memcmp(g->invite_key, b->invite_key.data, WHISPER_PUBLIC_KEY_LEN) == 0);
}

/* UTF-8 without NUL, decoded here by lead-byte ranges. */
static int group_utf8_model(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n;) {
    uint8_t c0 = p[i];
    size_t k;
    uint32_t cp;
    if (c0 == 0) return 0;
    if (c0 < 0x80) {
      i++;
      continue;
    }
    if (c0 >= 0xC2 && c0 <= 0xDF) k = 1, cp = c0 & 0x1F;
    else if (c0 >= 0xE0 && c0 <= 0xEF) k = 2, cp = c0 & 0x0F;
    else if (c0 >= 0xF0 && c0 <= 0xF4) k = 3, cp = c0 & 0x07;
    else return 0;
    if (i + k >= n) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (p[i + j] & 0x3F);
    }
    if (k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
    if (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

static void check_admin(int variant, const sy_change *ch) {
  whisper_client *c = W->c;
  const Whisper__E2e__GroupChangeBody *b = ch->b;
  /* the shape of the new fields (sy_group_body_ok, in sy_change_parse) */
  FZ_ASSERT(!b->has_name || (b->name.len <= WHISPER_GROUP_NAME_MAX && group_utf8_model(b->name.data, b->name.len)),
            "a bad name was taken");
  FZ_ASSERT(!b->has_description || (b->description.len <= WHISPER_GROUP_DESCRIPTION_MAX &&
                                    group_utf8_model(b->description.data, b->description.len)),
            "a bad description was taken");
  FZ_ASSERT(!b->has_picture || b->picture.len <= WHISPER_GROUP_PICTURE_MAX, "a picture over its limit");
  FZ_ASSERT(!b->has_invite_key || b->invite_key.len == WHISPER_PUBLIC_KEY_LEN, "an invite key of %zu bytes",
            b->invite_key.len);
  FZ_ASSERT(!ch->s->has_invite_signature || ch->s->invite_signature.len == WHISPER_SIGNATURE_LEN,
            "an invite signature of %zu bytes", ch->s->invite_signature.len);

  int which = (variant >> 1) & 3;
  const sy_group *g = &W->held[which == 3 ? 0 : which];
  const char *why = "unset";
  int rc = sy_group_change_why(c, g, ch, &why);
  if (fz_verbose()) fprintf(stderr, "  H%d: %s\n", which == 3 ? 0 : which, why ? why : "taken");
  FZ_ASSERT(rc == WHISPER_OK, "sy_group_change_why gave %d", rc);
  int join_sig = g->has_invite && ch->s->has_invite_signature &&
                 ctx_verify(g->invite_key, JOIN_CTX, ch->s->body, ch->s->invite_signature);
  if (why == NULL) {
    const char *a = b->author;
    if (!g->known) {
      FZ_ASSERT((b->version == 1 && b->n_members && strcmp(a, b->members[0]) == 0 && in(b->admins, b->n_admins, a)) ||
                    (in(b->members, b->n_members, "alice") && in(b->admins, b->n_admins, a)),
                "a starting state nobody entitled");
      FZ_ASSERT(b->n_members <= c->cfg.max_group_members, "a starting state past the limit");
    } else {
      FZ_ASSERT(b->version == g->version + 1 && b->has_prev && b->prev.len == 32 &&
                    memcmp(b->prev.data, g->hash, 32) == 0,
                "a change that does not follow was taken");
      FZ_ASSERT(b->n_members == 0 || b->n_admins > 0, "a change without an admin was taken");
      FZ_ASSERT(b->n_members <= c->cfg.max_group_members || b->n_members <= g->n_members,
                "a change past the limit was taken");
      if (!in(g->admins, g->n_admins, a)) {
        FZ_ASSERT(settings_eq(g, b) && link_eq(g, b), "a non-admin changed the settings or the link");
        for (size_t i = 0; i < b->n_admins; i++)
          FZ_ASSERT(in(g->admins, g->n_admins, b->admins[i]), "a non-admin made %s admin", b->admins[i]);
        if (in(g->members, g->n_members, a) && !in(b->members, b->n_members, a)) {
          FZ_ASSERT(set_eq(b->members, b->n_members, g->members, g->n_members, a, -1) && info_eq(g, b),
                    "a leave that changed more");
        } else if (in(g->members, g->n_members, a)) {
          FZ_ASSERT(set_eq(b->members, b->n_members, g->members, g->n_members, a, 0) &&
                        set_eq(b->admins, b->n_admins, g->admins, g->n_admins, a, 0),
                    "a member's change of the membership or admins");
          FZ_ASSERT(!g->admins_edit_info || info_eq(g, b), "a member edited the info where only admins do");
        } else {
          FZ_ASSERT(set_eq(b->members, b->n_members, g->members, g->n_members, a, 1) && info_eq(g, b) &&
                        set_eq(b->admins, b->n_admins, g->admins, g->n_admins, a, 0),
                    "a join that changed more");
          FZ_ASSERT(g->has_invite && !g->approval && join_sig, "a join without the link (or approval)");
        }
      }
    }
  }

  /* taken into a copy of the held state */
  sy_group t;
  memset(&t, 0, sizeof t);
  t.known = g->known;
  t.members = names_of((const char *const *)g->members, g->n_members);
  t.n_members = g->n_members;
  t.admins = names_of((const char *const *)g->admins, g->n_admins);
  t.n_admins = g->n_admins;
  if (g->name) t.name = whisper_buf_new(g->name->data, g->name->len);
  t.admins_edit_info = g->admins_edit_info;
  t.admins_send = g->admins_send;
  t.approval = g->approval;
  t.has_invite = g->has_invite;
  memcpy(t.invite_key, g->invite_key, sizeof t.invite_key);
  int bits = sy_group_take(c, &t, b);
  FZ_ASSERT(bits >= 0, "sy_group_take gave %d", bits);
  FZ_ASSERT(t.n_members == b->n_members && t.n_admins == b->n_admins, "the names were not taken");
  for (size_t i = 0; i < b->n_members; i++) FZ_ASSERT(strcmp(t.members[i], b->members[i]) == 0, "member %zu", i);
  for (size_t i = 0; i < b->n_admins; i++) FZ_ASSERT(strcmp(t.admins[i], b->admins[i]) == 0, "admin %zu", i);
  FZ_ASSERT(info_eq(&t, b) && settings_eq(&t, b) && link_eq(&t, b), "the state is not the body's");
  int want = (!g->known || !set_eq(b->members, b->n_members, g->members, g->n_members, "", 0)
                  ? WHISPER_GROUP_CHANGED_MEMBERS : 0) |
             (!set_eq(b->admins, b->n_admins, g->admins, g->n_admins, "", 0) ? WHISPER_GROUP_CHANGED_ADMINS : 0) |
             (!info_eq(g, b) ? WHISPER_GROUP_CHANGED_INFO : 0) |
             (!settings_eq(g, b) ? WHISPER_GROUP_CHANGED_SETTINGS : 0) |
             (!link_eq(g, b) ? WHISPER_GROUP_CHANGED_LINK : 0);
  FZ_ASSERT(bits == want, "sy_group_take said %d, what changed is %d", bits, want);
  sy_group_free(&t);

  /* as a join request */
  int ignore = -1;
  why = sy_group_request_why(c, g, ch, &ignore);
  FZ_ASSERT(ignore == 0 || ignore == 1, "ignore %d", ignore);
  int want_ignore = !g->known || !in(g->admins, g->n_admins, "alice") || in(g->members, g->n_members, b->author);
  FZ_ASSERT(ignore == want_ignore, "a request %s", ignore ? "ignored" : "taken up");
  if (!ignore && why == NULL)
    FZ_ASSERT(in(b->members, b->n_members, b->author) && join_sig, "a request without the link");
  if (!ignore && why) FZ_ASSERT(!in(b->members, b->n_members, b->author) || !join_sig, "a good request refused");
}

static void do_change(int variant, const uint8_t *p, size_t n) {
  whisper_client *c = W->c;
  const uint8_t *gid = (variant & 1) ? W->other_gid : W->gid;
  sy_change ch;
  memset(&ch, 0xA5, sizeof ch);
  int rc = sy_change_parse(c, gid, p, n, &ch);
  if (fz_verbose()) fprintf(stderr, "  change (%zu bytes): %d\n", n, rc);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EFORGED, "sy_change_parse gave %d", rc);
  if (rc != WHISPER_OK) {
    FZ_ASSERT(ch.s == NULL && ch.b == NULL, "a refused change left its parse");
    return;
  }
  const Whisper__E2e__GroupChangeBody *b = ch.b;
  FZ_ASSERT(ch.s && b && ch.s->has_signature && ch.s->signature.len == WHISPER_SIGNATURE_LEN,
            "a change without its signature");
  FZ_ASSERT(b->has_group_id && b->group_id.len == WHISPER_GROUP_ID_LEN &&
                memcmp(b->group_id.data, gid, WHISPER_GROUP_ID_LEN) == 0,
            "a change of another group was taken");
  FZ_ASSERT(b->has_version && b->version >= 1, "a change of version 0");
  FZ_ASSERT((b->version > 1) == (b->has_prev && b->prev.len == 32) && (b->version > 1 || !b->has_prev),
            "version %llu with prev of %zu bytes", (unsigned long long)b->version,
            b->has_prev ? b->prev.len : (size_t)0);
  FZ_ASSERT(name_ok(b->author) && b->has_author_device && b->author_device >= 1 &&
                b->author_device <= 0x7fffffffu,
            "a change by a bad author");
  FZ_ASSERT(names_ok(b->members, b->n_members) && names_ok(b->admins, b->n_admins),
            "bad or repeated member or admin names");
  for (size_t i = 0; i < b->n_admins; i++)
    FZ_ASSERT(listed(b->members, b->n_members, b->admins[i]), "admin %s is not a member",
              b->admins[i]);
  uint8_t h[32];
  crypto_hash_sha256(h, ch.s->body.data, ch.s->body.len);
  FZ_ASSERT(memcmp(h, ch.hash, 32) == 0, "the change's hash is not its body's");

  /* the signature, against the author's stored list */
  sy_devlist al;
  FZ_ASSERT(load_list(b->author, &al) == WHISPER_OK, "load %s", b->author);
  int want = 0;
  const sy_dev *d = dev_find(&al, b->author_device);
  if (al.authed && d && d->has_key) want = ctx_verify(d->key, GROUP_CTX, ch.s->body, ch.s->signature);
  rc = sy_change_verify(c, &ch, &al);
  if (fz_verbose()) fprintf(stderr, "  verify by %s.%u: %d\n", b->author, b->author_device, rc);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EFORGED, "sy_change_verify gave %d", rc);
  FZ_ASSERT((rc == WHISPER_OK) == want, "sy_change_verify gave %d, the signature check %d", rc,
            want);
  after_call("change");
  sy_devs_free(&al);
  check_admin(variant, &ch);
  sy_change_free(&ch);
  FZ_ASSERT(ch.s == NULL && ch.b == NULL, "sy_change_free");
}

/* --- PAYLOAD ---------------------------------------------------------------------- */

/* --- CONTENT ---------------------------------------------------------------------------- */

static int utf8_model(const char *s, size_t max) {
  size_t n = strlen(s);
  return n <= max && wh_utf8_valid((const uint8_t *)s, n);
}

static int id_model(const ProtobufCBinaryData *b) { return b->len >= 1 && b->len <= 64; }

static int who_model(const char *s) { return s == NULL || name_ok(s); }

/* an unknown field numbered 0 in m or any message inside it */
static int tag0_model(const ProtobufCMessage *m) {
  if (m == NULL) return 0;
  for (size_t i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0) return 1;
  for (unsigned f = 0; f < m->descriptor->n_fields; f++) {
    const ProtobufCFieldDescriptor *fd = &m->descriptor->fields[f];
    if (fd->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *at = (const char *)m + fd->offset;
    if (fd->label != PROTOBUF_C_LABEL_REPEATED) {
      if (tag0_model(*(ProtobufCMessage *const *)at)) return 1;
      continue;
    }
    size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
    for (size_t k = 0; k < n; k++)
      if (tag0_model((*(ProtobufCMessage *const *const *)at)[k])) return 1;
  }
  return 0;
}

/* An attachment pointer the engine can use (client.h's limits; the blob id
 * goes into a URL path: [A-Za-z0-9_-], 1..128). */
static int pointer_model(const Whisper__E2e__AttachmentPointer *a) {
  if (a == NULL || tag0_model(&a->base) || a->blob_id == NULL) return 0;
  size_t bl = strlen(a->blob_id);
  if (bl == 0 || bl > 128 || strspn(a->blob_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != bl)
    return 0;
  if (a->key.len != 64 || a->digest.len != 32 || a->size > (1ULL << 40)) return 0;
  if (a->has_plaintext_hash && a->plaintext_hash.len != 32) return 0;
  if (a->thumbnail.len > 65536) return 0;
  if ((a->content_type && !utf8_model(a->content_type, 127)) ||
      (a->file_name && (!utf8_model(a->file_name, 255) || strchr(a->file_name, '/'))) ||
      (a->caption && !utf8_model(a->caption, 4096)))
    return 0;
  if (a->incremental_mac.len)
    return a->chunk_size >= 16 && a->chunk_size <= 2u * 1024 * 1024 && a->incremental_mac.len % 32 == 0;
  return 1;
}

static void do_content(const uint8_t *p, size_t n) {
  Whisper__E2e__Content *m = whisper__e2e__content__unpack(NULL, n, p);
  int want = m != NULL;
  /* an unknown field numbered 0 cannot be written back: malformed */
  if (m && tag0_model(&m->base)) want = 0;
  if (want) {
    switch (m->kind) {
    case WHISPER__E2E__CONTENT__KIND__TEXT:
      want = m->text && utf8_model(m->text, SY_TEXT_MAX) &&
             (m->quote == NULL || (m->quote->has_id && id_model(&m->quote->id) &&
                                   who_model(m->quote->sender) &&
                                   (m->quote->excerpt == NULL || utf8_model(m->quote->excerpt, 100))));
      break;
    case WHISPER__E2E__CONTENT__KIND__REACTION:
    case WHISPER__E2E__CONTENT__KIND__EDIT:
    case WHISPER__E2E__CONTENT__KIND__DELETE:
      want = m->target && m->target->has_id && id_model(&m->target->id) && who_model(m->target->sender);
      if (m->kind == WHISPER__E2E__CONTENT__KIND__REACTION) want = want && m->emoji && utf8_model(m->emoji, 64);
      if (m->kind == WHISPER__E2E__CONTENT__KIND__EDIT) want = want && m->text && utf8_model(m->text, SY_TEXT_MAX);
      break;
    case WHISPER__E2E__CONTENT__KIND__CALL:
      want = m->call && m->call->has_call_id && m->call->call_id.len == 16 && m->call->type >= 1 &&
             m->call->type <= 5 && m->call->data.len <= 65536;
      break;
    case WHISPER__E2E__CONTENT__KIND__ATTACHMENT:
      want = pointer_model(m->attachment);
      break;
    case WHISPER__E2E__CONTENT__KIND__OPENED: /* view once: the target, and its conversation */
      want = m->target && m->target->has_id && id_model(&m->target->id) && who_model(m->target->sender) &&
             m->text && utf8_model(m->text, 255);
      break;
    default:
      break;
    }
  }
  Whisper__E2e__Content *ct = sy_content_parse(p, n);
  FZ_ASSERT((ct != NULL) == want, "content_parse %s what the model %s", ct ? "took" : "refused",
            want ? "takes" : "refuses");
  if (ct) {
    FZ_ASSERT(ct->kind == m->kind, "the kind changed");
    FZ_ASSERT(sy_content_known(ct->kind) == ((ct->kind >= 1 && ct->kind <= 5) || ct->kind == 9),
              "known kinds");
    size_t len = whisper__e2e__content__get_packed_size(ct);
    uint8_t *b = malloc(len ? len : 1);
    FZ_ASSERT(b != NULL, "out of memory");
    whisper__e2e__content__pack(ct, b);
    Whisper__E2e__Content *again = sy_content_parse(b, len);
    FZ_ASSERT(again && again->kind == ct->kind &&
                  (ct->text == NULL) == (again->text == NULL) &&
                  (ct->text == NULL || strcmp(ct->text, again->text) == 0),
              "a parsed content does not pack and parse back the same");
    whisper__e2e__content__free_unpacked(again, &wh_pb_alloc);
    whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
    free(b);
  }
  if (m) whisper__e2e__content__free_unpacked(m, NULL);
}

static void do_payload(const uint8_t *p, size_t n) {
  Whisper__E2e__Payload *pl = sy_payload_parse(p, n);
  if (fz_verbose()) fprintf(stderr, "  payload (%zu bytes): %s\n", n, pl ? "ok" : "refused");
  if (pl == NULL) return;
  FZ_ASSERT(pl->has_body != (pl->receipt != NULL), "a payload with %s",
            pl->has_body ? "both a body and a receipt" : "neither a body nor a receipt");
  FZ_ASSERT((pl->to != NULL) != (pl->has_group_id != 0), "a payload for %s",
            pl->to ? "both a person and a group" : "no conversation");
  if (pl->receipt) {
    /* a receipt goes to a person; what the engine makes of it reads back */
    FZ_ASSERT(pl->to != NULL, "a receipt to a group");
    size_t ni = 0;
    uint8_t(*ids)[WHISPER_CLIENT_ID_LEN] = calloc(pl->receipt->n_ids + 1, sizeof *ids);
    FZ_ASSERT(ids != NULL, "out of memory");
    for (size_t i = 0; i < pl->receipt->n_ids; i++)
      if (pl->receipt->ids[i].len == WHISPER_CLIENT_ID_LEN)
        memcpy(ids[ni++], pl->receipt->ids[i].data, WHISPER_CLIENT_ID_LEN);
    whisper_buf *r = NULL;
    FZ_ASSERT(sy_payload_receipt(W->c, pl->to, (int)pl->receipt->status,
                                 (const uint8_t(*)[WHISPER_CLIENT_ID_LEN])ids, ni, &r) == WHISPER_OK,
              "payload_receipt");
    Whisper__E2e__Payload *r2 = sy_payload_parse(r->data, r->len);
    FZ_ASSERT(r2 != NULL && r2->receipt != NULL && r2->receipt->n_ids == ni &&
                  strcmp(r2->to, pl->to) == 0,
              "a receipt made from a parsed one does not read back");
    whisper__e2e__payload__free_unpacked(r2, &wh_pb_alloc);
    whisper_buf_free(r);
    free(ids);
    whisper__e2e__payload__free_unpacked(pl, &wh_pb_alloc);
    return;
  }
  if (pl->to) FZ_ASSERT(name_ok(pl->to), "a payload to a bad account name");
  if (pl->has_group_id) FZ_ASSERT(pl->group_id.len == WHISPER_GROUP_ID_LEN, "a %zu-byte group id",
                                  pl->group_id.len);
  /* what the engine makes of the same conversation and body reads back */
  whisper_buf *again = NULL;
  static const uint8_t pid[WHISPER_CLIENT_ID_LEN] = {7};
  sy_body pb = {pid, pl->body.data, pl->body.len, NULL, 0};
  FZ_ASSERT(sy_payload_make(pl->to, pl->has_group_id ? pl->group_id.data : NULL, &pb, pl->counter,
                            pl->sent_at_ms, 0, &again) == WHISPER_OK,
            "payload_make");
  Whisper__E2e__Payload *p2 = sy_payload_parse(again->data, again->len);
  FZ_ASSERT(p2 != NULL, "a payload made from a parsed one does not parse");
  FZ_ASSERT(p2->body.len == pl->body.len &&
                (pl->body.len == 0 || memcmp(p2->body.data, pl->body.data, pl->body.len) == 0),
            "the body changed");
  FZ_ASSERT((pl->to == NULL) == (p2->to == NULL) && (pl->to == NULL || strcmp(pl->to, p2->to) == 0),
            "the recipient changed");
  /* the number gap_check reads (counter when set and not 0) reads back the same */
  FZ_ASSERT(p2->counter == pl->counter && (p2->has_counter && p2->counter) == (pl->has_counter && pl->counter),
            "the number changed");
  FZ_ASSERT(!(p2->has_resend && p2->resend), "a payload made afresh is marked resend");
  FZ_ASSERT(pl->resend == 0 || pl->has_resend, "a resend mark read from a payload without one");
  FZ_ASSERT(p2->sent_at_ms == pl->sent_at_ms, "the time changed");
  /* marked resend, as sy_resend_job makes it: read back with the same number */
  whisper_buf *marked = NULL;
  FZ_ASSERT(sy_payload_make(pl->to, pl->has_group_id ? pl->group_id.data : NULL, &pb, pl->counter,
                            pl->sent_at_ms, 1, &marked) == WHISPER_OK,
            "payload_make resend");
  Whisper__E2e__Payload *p3 = sy_payload_parse(marked->data, marked->len);
  FZ_ASSERT(p3 != NULL && p3->has_resend && p3->resend == 1, "a payload marked resend does not read so");
  FZ_ASSERT(p3->counter == pl->counter && p3->has_counter == p2->has_counter &&
                p3->sent_at_ms == pl->sent_at_ms &&
                p3->body.len == pl->body.len &&
                (pl->body.len == 0 || memcmp(p3->body.data, pl->body.data, pl->body.len) == 0) &&
                (pl->to == NULL) == (p3->to == NULL) && (pl->to == NULL || strcmp(pl->to, p3->to) == 0) &&
                p3->has_group_id == pl->has_group_id,
            "a payload marked resend reads otherwise");
  whisper__e2e__payload__free_unpacked(p3, &wh_pb_alloc);
  whisper_buf_free(marked);
  FZ_ASSERT(p2->has_group_id == pl->has_group_id &&
                (!pl->has_group_id || memcmp(p2->group_id.data, pl->group_id.data, 16) == 0),
            "the group changed");
  whisper__e2e__payload__free_unpacked(p2, &wh_pb_alloc);
  whisper__e2e__payload__free_unpacked(pl, &wh_pb_alloc);
  whisper_buf_free(again);
}

/* --- TOKEN ------------------------------------------------------------------------ */

static void do_token(const uint8_t *p, size_t n) {
  sy_token tk;
  memset(&tk, 0, sizeof tk);
  int rc = sy_token_parse(n ? p : (const uint8_t *)"", n, &tk);
  char digits[WHISPER_LINK_DIGITS + 1];
  memset(digits, 'x', sizeof digits);
  int rc2 = whisper_client_link_digits(n ? p : (const uint8_t *)"", n, digits);
  if (fz_verbose()) fprintf(stderr, "  token (%zu bytes): %d %d\n", n, rc, rc2);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EINVAL, "sy_token_parse gave %d", rc);
  FZ_ASSERT(rc2 == rc, "sy_token_parse gave %d, whisper_client_link_digits %d", rc, rc2);
  if (rc != WHISPER_OK) return;
  const size_t head = 1 + 4 + WHISPER_PUBLIC_KEY_LEN;
  FZ_ASSERT(n > head + 1 && p[0] == 1, "a token of version %u or %zu bytes", p[0], n);
  size_t al = p[head];
  FZ_ASSERT(al >= 1 && al <= 64 && n > head + 1 + al && n <= head + 1 + al + 64,
            "account length %zu in %zu bytes", al, n);
  uint32_t dev = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
  FZ_ASSERT(tk.device == dev && dev >= 2 && dev <= 0x7fffffffu, "a token for device %u (read %u)",
            dev, tk.device);
  FZ_ASSERT(name_ok(tk.account) && strlen(tk.account) == al &&
                memcmp(tk.account, p + head + 1, al) == 0,
            "a token for a bad account name");
  FZ_ASSERT(tk.key == p + 5 && whisper_public_key_check(tk.key, WHISPER_PUBLIC_KEY_LEN) == WHISPER_OK,
            "a token with a bad key");
  FZ_ASSERT(tk.code == p + head + 1 + al && tk.code_len == n - head - 1 - al && tk.code_len >= 1 &&
                tk.code_len <= 64,
            "a token's code of %zu bytes", tk.code_len);
  /* the digits: 8 decimal digits of SHA-256(ctx || al || account || device || key) */
  FZ_ASSERT(strlen(digits) == 8, "%zu link digits", strlen(digits));
  for (int i = 0; i < 8; i++) FZ_ASSERT(digits[i] >= '0' && digits[i] <= '9', "a link digit '%c'",
                                        digits[i]);
  uint8_t msg[sizeof LINK_CTX + 1 + 64 + 4 + WHISPER_PUBLIC_KEY_LEN], h[32];
  size_t m = 0;
  memcpy(msg, LINK_CTX, sizeof LINK_CTX - 1);
  m += sizeof LINK_CTX - 1;
  msg[m++] = (uint8_t)al;
  memcpy(msg + m, p + head + 1, al);
  m += al;
  memcpy(msg + m, p + 1, 4);
  m += 4;
  memcpy(msg + m, p + 5, WHISPER_PUBLIC_KEY_LEN);
  m += WHISPER_PUBLIC_KEY_LEN;
  crypto_hash_sha256(h, msg, m);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | h[i];
  char want[16];
  snprintf(want, sizeof want, "%08llu", (unsigned long long)(v % 100000000ULL));
  FZ_ASSERT(strcmp(want, digits) == 0, "link digits %s, expected %s", digits, want);
}

/* --- RETRY ------------------------------------------------------------------------ */

/* The DecryptionErrorMessage fields compared. */
static int dem_eq(const Whisper__Wire__DecryptionErrorMessage *a,
                  const Whisper__Wire__DecryptionErrorMessage *b) {
  return a->has_ratchet_key == b->has_ratchet_key &&
         (!a->has_ratchet_key || (a->ratchet_key.len == b->ratchet_key.len &&
                                  (a->ratchet_key.len == 0 ||
                                   memcmp(a->ratchet_key.data, b->ratchet_key.data,
                                          a->ratchet_key.len) == 0))) &&
         a->has_timestamp == b->has_timestamp && a->timestamp == b->timestamp &&
         a->has_device_id == b->has_device_id && a->device_id == b->device_id;
}

/* 0xC0 || Content{decryption_error_message: m} || 0x80 || `zeros` zero bytes,
 * as libsignal's PlaintextContent (and retry.c) writes it. */
static whisper_buf *plaintext_wrap(const Whisper__Wire__DecryptionErrorMessage *m, size_t zeros) {
  size_t ml = whisper__wire__decryption_error_message__get_packed_size(m);
  uint8_t *mb = malloc(ml + 1);
  FZ_ASSERT(mb != NULL, "out of memory");
  whisper__wire__decryption_error_message__pack(m, mb);
  Whisper__Wire__Content ct = WHISPER__WIRE__CONTENT__INIT;
  ct.has_decryption_error_message = 1;
  ct.decryption_error_message = (ProtobufCBinaryData){ml, mb};
  size_t cl = whisper__wire__content__get_packed_size(&ct);
  whisper_buf *out = whisper_buf_new(NULL, cl + 2 + zeros);
  FZ_ASSERT(out != NULL, "out of memory");
  out->data[0] = 0xC0;
  whisper__wire__content__pack(&ct, out->data + 1);
  out->data[cl + 1] = 0x80;
  memset(out->data + cl + 2, 0, zeros);
  free(mb);
  return out;
}

/* The model of a PlaintextContent (protobuf-c's own allocator): the
 * DecryptionErrorMessage inside, or NULL. */
static Whisper__Wire__DecryptionErrorMessage *model_dem(const uint8_t *p, size_t n) {
  if (n < 2 || p[0] != 0xC0) return NULL;
  size_t last = n - 1; /* the last byte that is not zero must be the boundary */
  while (last > 0 && p[last] == 0) last--;
  if (last == 0 || p[last] != 0x80) return NULL;
  Whisper__Wire__Content *ct = whisper__wire__content__unpack(NULL, last - 1, p + 1);
  if (ct == NULL) return NULL;
  Whisper__Wire__DecryptionErrorMessage *m = NULL;
  if (ct->has_decryption_error_message)
    m = whisper__wire__decryption_error_message__unpack(NULL, ct->decryption_error_message.len,
                                                        ct->decryption_error_message.data);
  whisper__wire__content__free_unpacked(ct, NULL);
  /* as libsignal reads one: a timestamp, and a ratchet key only if it is a public key */
  if (m && (!m->has_timestamp ||
            (m->has_ratchet_key && (m->ratchet_key.len < WHISPER_PUBLIC_KEY_LEN || m->ratchet_key.data[0] != 0x05)))) {
    whisper__wire__decryption_error_message__free_unpacked(m, NULL);
    m = NULL;
  }
  return m;
}

/* sy_decryption_error_parse on p: checked against the model and the
 * invariants; returns the model's result (the caller frees it). */
static Whisper__Wire__DecryptionErrorMessage *check_dem(const uint8_t *p, size_t n) {
  static const uint8_t none[1] = {0};
  if (p == NULL) p = none;
  Whisper__Wire__DecryptionErrorMessage *m = sy_decryption_error_parse(p, n);
  Whisper__Wire__DecryptionErrorMessage *want = model_dem(p, n);
  if (fz_verbose()) fprintf(stderr, "  plaintext content (%zu bytes): %s\n", n, m ? "ok" : "refused");
  if (m) {
    FZ_ASSERT(n >= 2 && p[0] == 0xC0, "a PlaintextContent without 0xC0 was taken");
    size_t end = n;
    while (end > 1 && p[end - 1] == 0) end--;
    FZ_ASSERT(end > 1 && p[end - 1] == 0x80,
              "a PlaintextContent not ending in 0x80 and zeros was taken");
    /* what it read, wrapped again, reads the same; unless it holds an
     * unknown field numbered 0 (tag `80 00`), which protobuf-c reads but
     * writes back as `00`, which it cannot read (README "Limits"; the
     * engine never packs a DecryptionErrorMessage it read) */
    int tag0 = 0;
    for (unsigned i = 0; i < m->base.n_unknown_fields; i++) tag0 |= m->base.unknown_fields[i].tag == 0;
    if (!tag0) {
      whisper_buf *again = plaintext_wrap(m, n - end);
      Whisper__Wire__DecryptionErrorMessage *m2 = sy_decryption_error_parse(again->data, again->len);
      FZ_ASSERT(m2 != NULL && dem_eq(m, m2),
                "a DecryptionErrorMessage wrapped again does not read the same");
      whisper__wire__decryption_error_message__free_unpacked(m2, &wh_pb_alloc);
      whisper_buf_free(again);
    }
  }
  FZ_ASSERT((m != NULL) == (want != NULL), "sy_decryption_error_parse %s a PlaintextContent the model %s",
            m ? "took" : "refused", want ? "takes" : "refuses");
  if (m) {
    FZ_ASSERT(dem_eq(m, want), "sy_decryption_error_parse read other fields than the model");
    whisper__wire__decryption_error_message__free_unpacked(m, &wh_pb_alloc);
  }
  return want;
}

static size_t jobs_count(void) {
  size_t n = 0;
  for (const sy_job *j = W->c->jobs; j; j = j->next) n++;
  return n;
}

enum { R_REFUSED, R_RESENT, R_FAILED, R_SKIPPED };

/* What sy_retry_answer should do with body from bob.1, the `prior`-th time
 * in this input the same message is answered (-1 .. : which message). */
static int model_retry(const uint8_t *p, size_t n, int prior, int *which, const char **why) {
  *which = -1;
  Whisper__E2e__RetryRequest *r = whisper__e2e__retry_request__unpack(NULL, n, p);
  Whisper__Wire__DecryptionErrorMessage *dem = NULL;
  int out = R_REFUSED;
  if (r && r->has_message_id && r->message_id.len == WHISPER_CLIENT_ID_LEN && r->has_decryption_error)
    dem = check_dem(r->decryption_error.data, r->decryption_error.len);
  if (dem && dem->has_device_id && dem->device_id != 1) {
    out = R_SKIPPED; /* for another device of alice's (it names the message's sender device) */
  } else if (dem && dem->has_device_id) {
    for (int i = 0; i < N_SENT; i++)
      if (memcmp(W->sent[i].id, r->message_id.data, WHISPER_CLIENT_ID_LEN) == 0) *which = i;
    if (*which == S_OLD) out = R_FAILED;
    else if (*which == S_FRESH || *which == S_GROUP) out = prior < 3 ? R_RESENT : R_FAILED;
  }
  /* why a refusal is (retry.c's sentences) */
  if (out == R_REFUSED && why)
    *why = *which == S_CAROL ? "a retry request from an account the message did not go to"
           : *which == S_GONE ? "a retry request for a message no longer in history"
           : dem && dem->has_device_id && dem->device_id == 1
               ? "a retry request for a message this device did not send" /* unknown, or alice.2's */
               : "a malformed retry request";
  if (out == R_REFUSED || out == R_SKIPPED) *which = -1;
  if (dem) whisper__wire__decryption_error_message__free_unpacked(dem, NULL);
  if (r) whisper__e2e__retry_request__free_unpacked(r, NULL);
  return out;
}

static int bob1_has_key(const sy_group *g) {
  for (size_t i = 0; i < g->n_have; i++)
    if (g->have[i].device == 1 && strcmp(g->have[i].account, "bob") == 0) return 1;
  return 0;
}

static int have_count(const sy_group *g, const char *account, uint32_t device) {
  int k = 0;
  for (size_t i = 0; i < g->n_have; i++)
    k += g->have[i].device == device && strcmp(g->have[i].account, account) == 0;
  return k;
}

/* Returns the message the request named and the model took (-1: refused). */
static int answer_once(const uint8_t *p, size_t n, int prior) {
  whisper_client *c = W->c;
  fz_store *fs = &W->alice->fs;
  int which;
  const char *why = NULL;
  int want = model_retry(p, n, prior, &which, &why);
  const struct fze_sent *sm = which >= 0 ? &W->sent[which] : NULL;
  sy_group g0;
  memset(&g0, 0, sizeof g0);
  if (sm && which == S_GROUP) {
    FZ_ASSERT(wh_begin(c->ctx) == WHISPER_OK && wh_finish(c->ctx, sy_group_load(c, W->g3, &g0)) == WHISPER_OK,
              "load G3");
  }
  size_t jobs0 = jobs_count();

  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  d.has_kind = d.has_type = d.has_content = d.has_sender_device = d.has_seq = 1;
  d.kind = WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE;
  d.type = 8;
  d.content = WHISPER__SYNC__CONTENT__CONTENT_RETRY;
  d.sender = "bob";
  d.sender_device = 1;
  d.seq = 1;
  d.has_body = 1;
  d.body = (ProtobufCBinaryData){n, (uint8_t *)p};

  fz_watch_begin(fs);
  sy_evq q = {NULL, NULL};
  FZ_ASSERT(sy_txn_begin(c) == WHISPER_OK, "txn");
  int rc = sy_retry_answer(c, &d, &q);
  int rc2 = sy_txn_end(c, rc);
  after_call("retry answer");
  if (fz_verbose())
    fprintf(stderr, "  retry request (%zu bytes, %d before): %d, %s %s\n", n, prior, rc,
            !q.head ? "no event"
            : q.head->ev.type == WHISPER_EV_REFUSED ? "refused:"
            : q.head->ev.status == WHISPER_RETRY_RESENT ? "resent"
            : "failed",
            q.head && q.head->message ? q.head->message : "");
  FZ_ASSERT(rc == WHISPER_OK && rc2 == WHISPER_OK, "sy_retry_answer gave %d, the transaction %d (%s)",
            rc, rc2, whisper_ctx_last_error(c->ctx));

  /* exactly one event, of the kind the model says */
  size_t nev = 0;
  for (const sy_event *e = q.head; e; e = e->next) {
    nev++;
    FZ_ASSERT(e->ev.type == WHISPER_EV_RETRY || e->ev.type == WHISPER_EV_REFUSED,
              "sy_retry_answer raised event %d", e->ev.type);
    FZ_ASSERT(e->ev.from_device == 1 && e->from && strcmp(e->from, "bob") == 0,
              "an event from %s.%u", e->from ? e->from : "(none)", e->ev.from_device);
    if (e->ev.type == WHISPER_EV_REFUSED) {
      FZ_ASSERT(e->ev.code == WHISPER_EFORGED, "a refused retry request with code %d", e->ev.code);
      FZ_ASSERT(want == R_REFUSED, "a retry request refused (%s), the model says %s",
                e->message ? e->message : "", want == R_RESENT ? "resent" : "failed");
      FZ_ASSERT(e->message && strcmp(e->message, why) == 0, "refused as \"%s\", the model says \"%s\"",
                e->message ? e->message : "", why);
    } else {
      FZ_ASSERT(e->ev.status == WHISPER_RETRY_RESENT || e->ev.status == WHISPER_RETRY_FAILED,
                "EV_RETRY with status %d", e->ev.status);
      FZ_ASSERT(want != R_REFUSED, "a retry request the model refuses was answered (%d)", e->ev.status);
      FZ_ASSERT(e->ev.status == (want == R_RESENT ? WHISPER_RETRY_RESENT : WHISPER_RETRY_FAILED),
                "EV_RETRY status %d, the model says %s", e->ev.status,
                want == R_RESENT ? "resent" : "failed");
      FZ_ASSERT(e->conversation && strcmp(e->conversation, sm->conv) == 0,
                "EV_RETRY for conversation %s, not %s", e->conversation ? e->conversation : "(none)",
                sm->conv);
      FZ_ASSERT(e->id && e->ev.id_len == WHISPER_CLIENT_ID_LEN &&
                    memcmp(e->id, sm->id, WHISPER_CLIENT_ID_LEN) == 0,
                "EV_RETRY for another message");
    }
  }
  FZ_ASSERT(nev == (want == R_SKIPPED ? 0u : 1u), "sy_retry_answer raised %zu events", nev);

  size_t jobs1 = jobs_count();
  if (want == R_REFUSED || want == R_SKIPPED) {
    const fz_touch *t = fz_store_changed(fs);
    FZ_ASSERT(t == NULL, "a refused retry request changed a record of kind %d", t ? t->kind : 0);
    FZ_ASSERT(fs->committed_writes == 0, "a refused retry request committed writes");
    FZ_ASSERT(jobs1 == jobs0, "a refused retry request queued a job");
  } else if (want == R_FAILED) {
    FZ_ASSERT(jobs1 == jobs0, "a retry request given up queued a job");
    int st = -1;
    FZ_ASSERT(whisper_history_status_get(c->ctx, sm->conv, sm->id, WHISPER_CLIENT_ID_LEN, "bob", 1,
                                         &st) == WHISPER_OK &&
                  st == WHISPER_STATUS_FAILED,
              "message %s given up for bob.1 has status %d", sm->name, st);
  } else {
    FZ_ASSERT(jobs1 == jobs0 + 1, "a resend queued %zu jobs", jobs1 - jobs0);
    const sy_job *j = c->jobs;
    while (j->next) j = j->next;
    FZ_ASSERT(j->kind == JOB_RESEND && j->device == 1 && strcmp(j->conv, "bob") == 0 &&
                  memcmp(j->resend_of, sm->id, WHISPER_CLIENT_ID_LEN) == 0,
              "the resend job is not for bob.1 and message %s", sm->name);
    Whisper__E2e__Payload *pl = sy_payload_parse(j->body, j->body_len);
    FZ_ASSERT(pl != NULL && pl->has_resend && pl->resend, "the resent payload is not marked resend");
    FZ_ASSERT(pl->has_body && pl->body.len == strlen(sm->body) &&
                  memcmp(pl->body.data, sm->body, pl->body.len) == 0,
              "the resent payload has another body");
    FZ_ASSERT(pl->has_counter && pl->counter == sm->counter, "the resent payload has number %llu, not %llu",
              (unsigned long long)pl->counter, (unsigned long long)sm->counter);
    FZ_ASSERT(pl->sent_at_ms == FZ_NOW - sm->age_ms, "the resent payload has another time");
    if (sm->to)
      FZ_ASSERT(pl->to && strcmp(pl->to, sm->to) == 0 && !pl->has_group_id,
                "the resent payload is for another conversation");
    else
      FZ_ASSERT(pl->to == NULL && pl->has_group_id && memcmp(pl->group_id.data, W->g3, 16) == 0,
                "the resent group payload is for another conversation");
    whisper__e2e__payload__free_unpacked(pl, &wh_pb_alloc);
    /* a fresh session with bob.1 */
    sy_devlist bl;
    FZ_ASSERT(load_list("bob", &bl) == WHISPER_OK, "load bob");
    const sy_dev *b1 = dev_find(&bl, 1);
    FZ_ASSERT(b1 && b1->refetch && b1->regid == 0, "a resend to bob.1 kept its session");
    sy_devs_free(&bl);
    if (which == S_GROUP) { /* and alice's sender key again; bob.2 keeps his */
      sy_group g1;
      FZ_ASSERT(wh_begin(c->ctx) == WHISPER_OK && wh_finish(c->ctx, sy_group_load(c, W->g3, &g1)) == WHISPER_OK,
                "load G3");
      FZ_ASSERT(!bob1_has_key(&g1), "bob.1 kept his mark of alice's sender key");
      FZ_ASSERT(have_count(&g1, "bob", 2) == have_count(&g0, "bob", 2) && g1.n_members == g0.n_members,
                "a resend to bob.1 changed the group otherwise");
      sy_group_free(&g1);
    }
  }
  if (g0.known) sy_group_free(&g0);
  fz_watch_end(fs);
  events_free(&q);
  return which;
}

static void do_retry(int variant, const uint8_t *p, size_t n) {
  /* the bytes as a PlaintextContent */
  Whisper__Wire__DecryptionErrorMessage *m = check_dem(p, n);
  if (m) whisper__wire__decryption_error_message__free_unpacked(m, NULL);
  /* and as a retry request from bob.1, answered 1..4 times */
  int times = 1 + (variant & 3), prior = 0;
  for (int i = 0; i < times; i++) {
    int which = answer_once(p, n, prior);
    if (which == S_FRESH || which == S_GROUP) prior++; /* a resend counted, or one refused */
  }
}

/* --- profiles ------------------------------------------------------------------- */

/* The profile records of alice's store ("P" || sub || name), raw (NULL: none). */
static whisper_buf *prec(char sub, const char *name) {
  uint8_t k[2 + 64];
  size_t n = name ? strlen(name) : 0;
  k[0] = 'P';
  k[1] = (uint8_t)sub;
  if (n) memcpy(k + 2, name, n);
  whisper_buf *b = NULL;
  int rc = wh_begin(W->c->ctx);
  if (rc == WHISPER_OK) rc = wh_finish(W->c->ctx, wh_get(W->c->ctx, WHISPER_REC_SYNC_STATE, k, 2 + n, &b));
  after_call("read");
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_ENOTFOUND, "read P%c: %d", sub, rc);
  return rc == WHISPER_OK ? b : NULL;
}

static int names_have(const char *list_sub, const char *name) {
  whisper_buf *b = prec(*list_sub, NULL);
  if (b == NULL) return 0;
  Whisper__Client__ProfileNames *l = whisper__client__profile_names__unpack(NULL, b->len, b->data);
  whisper_buf_free(b);
  FZ_ASSERT(l != NULL, "a profile name list does not decode");
  int has = 0;
  for (size_t i = 0; i < l->n_names; i++) has |= strcmp(l->names[i], name) == 0;
  whisper__client__profile_names__free_unpacked(l, NULL);
  return has;
}

/* (key, version) of a ProfileSelf ("Ps") or ProfileContact ("Pc" bob). */
static int held_key(int self, uint8_t key[32], uint64_t *version, uint64_t *have) {
  whisper_buf *b = prec(self ? 's' : 'c', self ? NULL : "bob");
  *version = *have = 0; /* have: the contact's profile version, or the own "fanned" */
  if (b == NULL) return 0;
  int ok = 0;
  if (self) {
    Whisper__Client__ProfileSelf *m = whisper__client__profile_self__unpack(NULL, b->len, b->data);
    FZ_ASSERT(m != NULL, "ProfileSelf does not decode");
    if (m->has_key && m->key.len == 32) memcpy(key, m->key.data, 32), ok = 1;
    *version = m->version;
    *have = m->fanned;
    whisper__client__profile_self__free_unpacked(m, NULL);
  } else {
    Whisper__Client__ProfileContact *m = whisper__client__profile_contact__unpack(NULL, b->len, b->data);
    FZ_ASSERT(m != NULL, "ProfileContact does not decode");
    if (m->has_key && m->key.len == 32) memcpy(key, m->key.data, 32), ok = 1;
    *version = m->version;
    *have = m->have;
    whisper__client__profile_contact__free_unpacked(m, NULL);
  }
  whisper_buf_free(b);
  return ok;
}

/* PROFILE_KEY: the bytes as a Content (of that kind) the engine takes in
 * one of four places (variant & 3): from bob.1 (1:1), from bob in alice's
 * group G3, from alice.2 to alice (her own devices), alice.2's copy of a
 * notice to bob. The code is exactly the model's: EINVALIDMSG (no valid
 * owner; a key that is not 32 bytes, or without a version), EFORGED (an
 * owner that is not the sender; a contact asking), else 1 when it takes
 * something and 0 when not; a refusal (rolled back as inbox.c rolls it
 * back) changes no stored byte; what is taken is stored as the model says. */
static void do_profile_key(int variant, const uint8_t *p, size_t n) {
  static const struct {
    const char *sender, *conv_name;
    int group, own;
  } at[4] = {{"bob", "bob", 0, 0}, {"bob", NULL, 1, 0}, {"alice", "alice", 0, 1}, {"alice", "bob", 0, 1}};
  int v = variant & 3;
  char g3[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(W->g3, g3);
  const char *conv = at[v].conv_name ? at[v].conv_name : g3;
  Whisper__E2e__Content *ct = sy_content_parse(p, n);
  if (ct == NULL || ct->kind != WHISPER__E2E__CONTENT__KIND__PROFILE_KEY) {
    if (ct) whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
    return;
  }
  uint8_t k0[32] = {0}, k1[32] = {0};
  uint64_t v0, h0, v1, h1;
  int has0 = held_key(at[v].own, k0, &v0, &h0);
  /* the model */
  int key = ct->has_profile_key, want;
  if (!name_ok(ct->profile_owner) || (key && ct->profile_key.len != 32) ||
      (key && (!ct->has_profile_version || ct->profile_version == 0)))
    want = WHISPER_EINVALIDMSG;
  else if (strcmp(ct->profile_owner, at[v].sender) != 0 || (!at[v].own && !key))
    want = WHISPER_EFORGED;
  else if (!key && at[v].own && strcmp(conv, "alice") != 0)
    want = WHISPER_EINVALIDMSG;
  else if (!key)
    want = has0 && v0 > 0; /* alice has a key and a version: owed to the asking device */
  else /* newer; or, to herself, the version she holds and has not told her contacts of */
    want = !has0 || ct->profile_version > v0 ||
           (at[v].own && strcmp(conv, "alice") == 0 && ct->profile_version == v0 && h0 < v0 &&
            memcmp(ct->profile_key.data, k0, 32) == 0);
  fz_store *fs = &W->alice->fs;
  fz_watch_begin(fs);
  W->c->profile_due = 0;
  FZ_ASSERT(sy_txn_begin(W->c) == WHISPER_OK, "txn");
  int rc = sy_profile_key_receive(W->c, at[v].sender, conv, at[v].group, at[v].own, ct);
  int rc2 = sy_txn_end(W->c, rc < 0 ? rc : WHISPER_OK);
  after_call("profile key");
  if (fz_verbose())
    fprintf(stderr, "  profile key at %d: %d (model %d) %s\n", v, rc, want,
            rc < 0 ? whisper_ctx_last_error(W->c->ctx) : "");
  FZ_ASSERT(rc == want, "profile key at %d: %d, the model says %d (%s)", v, rc, want,
            whisper_ctx_last_error(W->c->ctx));
  if (rc < 0) {
    FZ_ASSERT(fs->committed_writes == 0 && fz_store_changed(fs) == NULL, "a refused profile key changed the store");
  } else {
    FZ_ASSERT(rc2 == WHISPER_OK, "commit: %d", rc2);
    FZ_ASSERT(W->c->profile_due == (rc == 1), "profile_due %d after %d", W->c->profile_due, rc);
    int has1 = held_key(at[v].own, k1, &v1, &h1);
    if (key && (!has0 || ct->profile_version > v0)) {
      FZ_ASSERT(has1 && memcmp(k1, ct->profile_key.data, 32) == 0 && v1 == ct->profile_version,
                "a newer key was not kept");
      FZ_ASSERT(names_have("d", at[v].own ? "alice" : "bob"), "a newer key, and no fetch due");
    } else {
      FZ_ASSERT(has1 == has0 && memcmp(k0, k1, 32) == 0 && v1 == v0, "an older key replaced the held one");
    }
    if (at[v].own && strcmp(conv, "bob") == 0 && key) { /* an own copy: bob has the key */
      whisper_buf *b = prec('t', "bob");
      FZ_ASSERT(b != NULL, "an own copy to bob, and nothing recorded");
      Whisper__Client__ProfileSent *st = whisper__client__profile_sent__unpack(NULL, b->len, b->data);
      uint8_t h[32];
      crypto_hash_sha256(h, ct->profile_key.data, 32);
      FZ_ASSERT(st && st->has_key_tag && st->key_tag.len == 16 && st->version >= ct->profile_version &&
                    (st->version != ct->profile_version || memcmp(st->key_tag.data, h, 16) == 0),
                "the own copy's key is not what bob is recorded to have");
      whisper__client__profile_sent__free_unpacked(st, NULL);
      whisper_buf_free(b);
    }
    for (size_t i = 0; at[v].own && strcmp(conv, "alice") == 0 && key && i < ct->n_profile_withheld; i++)
      if (name_ok(ct->profile_withheld[i]) && strcmp(ct->profile_withheld[i], "alice") != 0)
        FZ_ASSERT(names_have("w", ct->profile_withheld[i]), "a withheld account not kept");
  }
  fz_watch_end(fs);
  whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
}

/* A model of sy_profile_open: the format, AES-256-GCM (libsodium's, when
 * the CPU has it; else -2: no opinion), the padding and the body. */
static int model_open(const uint8_t *pk, const char *account, uint64_t version, const uint8_t *b, size_t n,
                      Whisper__E2e__ProfileBody **out) {
  *out = NULL;
  if (n < 29 + 512 || n > 66560 || (n - 29) % 512 != 0 || b[0] != 1) return WHISPER_EINVALIDMSG;
  if (!crypto_aead_aes256gcm_is_available()) return -2;
  uint8_t key[32], ad[19 + 64 + 9];
  size_t al = strlen(account), adl = 0;
  wh_hkdf(key, 32, NULL, 0, pk, 32, "whisper-profile-v1");
  memcpy(ad, "whisper-profile-v1", 18), adl = 18;
  ad[adl++] = 0;
  memcpy(ad + adl, account, al), adl += al;
  ad[adl++] = 0;
  for (int i = 7; i >= 0; i--) ad[adl++] = (uint8_t)(version >> (8 * i));
  size_t m = n - 29;
  uint8_t *pt = malloc(m);
  FZ_ASSERT(pt != NULL, "out of memory");
  int rc = crypto_aead_aes256gcm_decrypt_detached(pt, NULL, b + 13, m, b + 13 + m, ad, adl, b + 1, key) == 0
               ? WHISPER_OK
               : WHISPER_EFORGED;
  size_t l = rc == WHISPER_OK ? (size_t)pt[0] << 24 | (size_t)pt[1] << 16 | (size_t)pt[2] << 8 | pt[3] : 0;
  if (rc == WHISPER_OK && l > m - 4) rc = WHISPER_EINVALIDMSG;
  for (size_t i = 4 + l; rc == WHISPER_OK && i < m; i++)
    if (pt[i]) rc = WHISPER_EINVALIDMSG;
  Whisper__E2e__ProfileBody *body = rc == WHISPER_OK ? whisper__e2e__profile_body__unpack(NULL, l, pt + 4) : NULL;
  if (rc == WHISPER_OK && body == NULL) rc = WHISPER_EINVALIDMSG;
  if (rc == WHISPER_OK) {
    const ProtobufCBinaryData *nm = &body->name, *ab = &body->about;
    int ok = body->has_name && nm->len >= 1 && nm->len <= 64 && memchr(nm->data, 0, nm->len) == NULL &&
             wh_utf8_valid(nm->data, nm->len) && ab->len <= 140 &&
             (ab->len == 0 || (memchr(ab->data, 0, ab->len) == NULL && wh_utf8_valid(ab->data, ab->len))) &&
             body->picture.len <= 65536;
    if (!ok) rc = WHISPER_EINVALIDMSG;
  }
  free(pt);
  if (rc == WHISPER_OK) *out = body;
  else if (body) whisper__e2e__profile_body__free_unpacked(body, NULL);
  return rc;
}

/* PROFILE: the bytes as the server's stored profile of bob at version
 * variant + 1: sy_profile_open with bob's key gives exactly the model's
 * code and fields; then as the Profile answer to alice's ProfileGet of
 * bob (sy_profile_answer): kept (bob's record holds it at that version,
 * EV_PROFILE) exactly when it opens and its version is not below the one
 * bob announced (1), else refused (EV_REFUSED, EFORGED) with no stored
 * byte changed. */
static void do_profile(int variant, const uint8_t *p, size_t n) {
  uint64_t version = (uint64_t)variant + 1;
  Whisper__E2e__ProfileBody *mb = NULL, *eb = NULL;
  int want = model_open(BOB_PK, "bob", version, p, n, &mb);
  int rc = sy_profile_open(BOB_PK, "bob", version, p, n, &eb);
  if (fz_verbose()) fprintf(stderr, "  profile v%llu (%zu bytes): %d (model %d)\n", (unsigned long long)version, n, rc, want);
  if (want != -2) FZ_ASSERT(rc == want, "profile_open: %d, the model says %d", rc, want);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EFORGED || rc == WHISPER_EINVALIDMSG, "profile_open: %d", rc);
  FZ_ASSERT((rc == WHISPER_OK) == (eb != NULL), "profile_open's output");
  if (eb && mb)
    FZ_ASSERT(eb->name.len == mb->name.len && memcmp(eb->name.data, mb->name.data, mb->name.len) == 0 &&
                  eb->about.len == mb->about.len && eb->picture.len == mb->picture.len &&
                  (mb->picture.len == 0 || memcmp(eb->picture.data, mb->picture.data, mb->picture.len) == 0),
              "profile_open read other fields than the model");
  if (eb) whisper__e2e__profile_body__free_unpacked(eb, &wh_pb_alloc);
  if (mb) whisper__e2e__profile_body__free_unpacked(mb, NULL);
  /* as the answer to a fetch */
  sy_req r;
  memset(&r, 0, sizeof r);
  r.kind = RQ_PROFILE_GET;
  snprintf(r.account, sizeof r.account, "bob");
  Whisper__Sync__Profile pr = WHISPER__SYNC__PROFILE__INIT;
  pr.account = "bob";
  pr.has_ciphertext = pr.has_version = 1;
  pr.ciphertext = (ProtobufCBinaryData){n, (uint8_t *)p};
  pr.version = version;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE;
  f.profile = &pr;
  fz_store *fs = &W->alice->fs;
  drop_events(W->c);
  fz_watch_begin(fs);
  sy_profile_answer(W->c, &r, &f);
  after_call("profile answer");
  int kept = rc == WHISPER_OK; /* version >= 1, the one bob announced */
  int events = 0, type = 0, code = 0;
  whisper_client_event_t e;
  while (whisper_client_take_event(W->c, &e)) events++, type = e.type, code = e.code;
  FZ_ASSERT(events == 1 && type == (kept ? WHISPER_EV_PROFILE : WHISPER_EV_REFUSED) &&
                (kept || code == WHISPER_EFORGED),
            "a profile answer (%s) raised %d event(s), the last %d", kept ? "kept" : "refused", events, type);
  uint8_t k[32];
  uint64_t v1, h1;
  FZ_ASSERT(held_key(0, k, &v1, &h1), "bob's key");
  if (kept) {
    FZ_ASSERT(h1 == version && v1 == version, "a kept profile is not held at its version");
    FZ_ASSERT(!names_have("d", "bob"), "bob's profile came, and is still due");
  } else {
    FZ_ASSERT(fs->committed_writes == 0 && fz_store_changed(fs) == NULL, "a refused profile changed the store");
  }
  fz_watch_end(fs);
}

/* --- the input ---------------------------------------------------------------- */

static void run_input(const uint8_t *data, size_t size) {
  int kind = data[0] & 7, variant = data[0] >> 3;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  fz_dev *a = W->alice;
  a->rng.counter = UINT64_C(1) << 40; /* the same stream for every input */
  W->c->now = FZ_NOW;
  sy_rates_free(W->c); /* the rate limits count within one input */
  fz_journal_begin(&a->fs);
  switch (kind) {
    case K_LIST: do_list(variant, p, n); break;
    case K_CHANGE: do_change(variant, p, n); break;
    case K_PAYLOAD: do_payload(p, n); break;
    case K_TOKEN: do_token(p, n); break;
    case K_CONTENT: do_content(p, n); break;
    case K_PROFILE_KEY: do_profile_key(variant, p, n); break;
    case K_PROFILE: do_profile(variant, p, n); break;
    default: do_retry(variant, p, n); break;
  }
  after_call("input");
  fz_journal_restore(&a->fs);
  drop_events(W->c);
  sy_jobs_free(W->c);
  sy_rates_free(W->c);
}

/* --- seeds ------------------------------------------------------------------------ */

static void seed(fz_seeds *s, const char *name, int kind, int variant, whisper_buf *b) {
  uint8_t *x = malloc(b->len + 1);
  FZ_ASSERT(x != NULL, "out of memory");
  x[0] = (uint8_t)(kind | variant << 3);
  memcpy(x + 1, b->data, b->len);
  whisper_buf *out = whisper_buf_new(x, b->len + 1);
  free(x);
  whisper_buf_free(b);
  /* each seed must pass the target's checks */
  run_input(out->data, out->len);
  fz_seeds_add(s, name, out, 1);
}

void fze_gen_seeds(fz_seeds *s);
void fze_gen_seeds(fz_seeds *s) {
  if (W == NULL) world_new();
  static const uint32_t i1[] = {1}, i12[] = {1, 2}, i123[] = {1, 2, 3}, i13[] = {1, 3};
  fz_dev *const bob12[] = {W->bob1, W->bob2}, *const bob123[] = {W->bob1, W->bob2, W->mallory};
  fz_dev *const bob1x[] = {W->bob1, W->mallory};
  fz_dev *const bobn[] = {W->bob_new, W->bob2};

  /* device lists */
  fz_dev *const erin[] = {W->erin1};
  seed(s, "list_first_sight", K_LIST, A_ERIN, make_list(W->erin1, "erin", 1, i1, erin, 1));
  seed(s, "list_newer", K_LIST, A_BOB, make_list(W->bob1, "bob", 6, i123, bob123, 3));
  seed(s, "list_remove", K_LIST, A_BOB, make_list(W->bob1, "bob", 7, i1, bob12, 1));
  seed(s, "list_older", K_LIST, A_BOB, make_list(W->bob1, "bob", 4, i12, bob12, 2));
  seed(s, "list_same", K_LIST, A_BOB, make_list(W->bob1, "bob", 5, i12, bob12, 2));
  seed(s, "list_same_version_other", K_LIST, A_BOB, make_list(W->bob1, "bob", 5, i13, bob1x, 2));
  seed(s, "list_device_key_change", K_LIST, A_BOB, make_list(W->bob1, "bob", 6, i12, bob1x, 2));
  seed(s, "list_key_change", K_LIST, A_BOB, make_list(W->bob_new, "bob", 1, i12, bobn, 2));
  seed(s, "list_bad_signature", K_LIST, A_BOB, make_list(W->mallory, "bob", 6, i12, bob12, 2));
  fz_dev *const carol[] = {W->carol1, W->bob2}, *const caroln[] = {W->carol_new};
  seed(s, "list_verified_newer", K_LIST, A_CAROL, make_list(W->carol1, "carol", 3, i12, carol, 2));
  seed(s, "list_verified_key_change", K_LIST, A_CAROL,
       make_list(W->carol_new, "carol", 3, i1, caroln, 1));
  fz_dev *const dave[] = {W->mallory, W->bob2};
  seed(s, "list_legacy", K_LIST, A_DAVE, make_list(W->mallory, "dave", 1, i12, dave, 2));
  sy_dev own[3];
  memset(own, 0, sizeof own);
  fz_dev *const ownk[] = {W->alice, W->alice2, W->mallory};
  for (int i = 0; i < 3; i++) {
    own[i].id = (uint32_t)i + 1;
    own[i].has_key = 1;
    memcpy(own[i].key, pub_of(ownk[i]), WHISPER_PUBLIC_KEY_LEN);
  }
  whisper_buf *b = NULL;
  FZ_ASSERT(sy_list_sign(W->c, 4, own, 3, &b) == WHISPER_OK, "own list");
  seed(s, "list_own", K_LIST, A_ALICE, b);
  /* the server's own list of alice, under its own key */
  fz_dev *const forged[] = {W->mallory, W->bob2};
  seed(s, "list_own_other_key", K_LIST, A_ALICE, make_list(W->mallory, "alice", 4, i12, forged, 2));

  /* group changes: bob.1 creates, bob.2 adds carol */
  const char *m1[] = {"bob", "alice"}, *m2[] = {"bob", "alice", "carol"}, *adm[] = {"bob"};
  uint8_t h1[32];
  seed(s, "change_v1", K_CHANGE, 0,
       make_change(W->bob1, W->gid, 1, NULL, m1, 2, adm, 1, "bob", 1, h1));
  seed(s, "change_v2", K_CHANGE, 0,
       make_change(W->bob2, W->gid, 2, h1, m2, 3, adm, 1, "bob", 2, NULL));
  seed(s, "change_other_group", K_CHANGE, 1,
       make_change(W->bob1, W->gid, 1, NULL, m1, 2, adm, 1, "bob", 1, NULL));
  seed(s, "change_not_listed", K_CHANGE, 0,
       make_change(W->mallory, W->gid, 2, h1, m2, 3, adm, 1, "bob", 3, NULL));
  seed(s, "change_legacy_author", K_CHANGE, 0,
       make_change(W->mallory, W->gid, 2, h1, m2, 3, adm, 1, "dave", 1, NULL));
  sy_group g, gn;
  memset(&g, 0, sizeof g);
  memset(&gn, 0, sizeof gn);
  g.version = 1;
  memcpy(g.hash, h1, 32);
  const char *m3[] = {"alice", "bob"}, *adm3[] = {"alice", "bob"};
  gn.members = (char **)m3;
  gn.n_members = 2;
  gn.admins = (char **)adm3;
  gn.n_admins = 2;
  FZ_ASSERT(sy_change_make(W->c, W->gid, &g, &gn, NULL, &b) == WHISPER_OK, "change_make");
  seed(s, "change_by_alice", K_CHANGE, 0, b);

  /* administration: against H0 (variant 0), H1 (2) and nothing held (4) */
  {
    const char *m0[] = {"bob", "alice"}, *a0[] = {"bob"}, *mb[] = {"bob"}, *a2[] = {"bob", "alice"};
    const char *mh1[] = {"bob", "alice", "carol"}, *ah1[] = {"bob", "alice"};
    const char *mj[] = {"bob", "alice", "carol", "erin"};
    /* H0: alice (no admin) names the group; bob promotes her; alice leaves */
    seed(s, "change_info_by_member", K_CHANGE, 0,
         make_change_x(W->alice, 2, W->h1, m0, 2, a0, 1, "alice", 1, "Lunch", 0, 0, NULL));
    seed(s, "change_promote", K_CHANGE, 0,
         make_change_x(W->bob1, 2, W->h1, m0, 2, a2, 2, "bob", 1, NULL, 0, 0, NULL));
    seed(s, "change_leave", K_CHANGE, 0,
         make_change_x(W->alice, 2, W->h1, mb, 1, a0, 1, "alice", 1, NULL, 0, 0, NULL));
    seed(s, "change_no_admin_left", K_CHANGE, 0,
         make_change_x(W->bob1, 2, W->h1, m0, 2, NULL, 0, "bob", 1, NULL, 0, 0, NULL));
    /* H1: carol (no admin) renames it where only admins edit the info; bob
     * turns approval on; erin joins by the link, and with another key */
    seed(s, "change_info_restricted", K_CHANGE, 2,
         make_change_x(W->carol1, 2, W->h1, mh1, 3, ah1, 2, "carol", 1, "Dinner", 3, 1, NULL));
    seed(s, "change_approval_on", K_CHANGE, 2,
         make_change_x(W->bob1, 2, W->h1, mh1, 3, ah1, 2, "bob", 1, "Club", 7, 0, NULL));
    seed(s, "change_join", K_CHANGE, 2,
         make_change_x(W->erin1, 2, W->h1, mj, 4, ah1, 2, "erin", 1, "Club", 3, 1, W->invite.priv));
    uint8_t other_key[32];
    memset(other_key, 0x2D, sizeof other_key);
    seed(s, "change_join_other_key", K_CHANGE, 2,
         make_change_x(W->erin1, 2, W->h1, mj, 4, ah1, 2, "erin", 1, "Club", 3, 1, other_key));
    seed(s, "change_revoke_by_member", K_CHANGE, 2,
         make_change_x(W->carol1, 2, W->h1, mh1, 3, ah1, 2, "carol", 1, "Club", 3, 0, NULL));
    /* nothing held: alice added by an admin */
    seed(s, "change_added_by_admin", K_CHANGE, 4,
         make_change_x(W->bob1, 7, W->h1, m0, 2, a0, 1, "bob", 1, "Seven", 0, 0, NULL));
  }

  /* payloads */
  static const uint8_t sid[WHISPER_CLIENT_ID_LEN] = {1};
  FZ_ASSERT(sy_payload_make("bob", NULL, &(sy_body){sid, (const uint8_t *)"hello bob", 9, NULL, 0}, 7,
                            FZ_NOW, 0, &b) == WHISPER_OK,
            "payload");
  seed(s, "payload_direct", K_PAYLOAD, 0, b);
  FZ_ASSERT(sy_payload_make(NULL, W->gid, &(sy_body){sid, (const uint8_t *)"hello group", 11, NULL, 0},
                            3, FZ_NOW, 0, &b) == WHISPER_OK,
            "payload");
  seed(s, "payload_group", K_PAYLOAD, 0, b);
  {
    const uint8_t rid[2][WHISPER_CLIENT_ID_LEN] = {{1, 2, 3}, {4, 5, 6}};
    FZ_ASSERT(sy_payload_receipt(W->c, "bob", WHISPER_STATUS_READ, rid, 2, &b) == WHISPER_OK,
              "receipt payload");
    seed(s, "payload_receipt", K_PAYLOAD, 0, b);
  }

  /* content: a reply, a reaction, an edit, a delete, a call, a newer kind */
  {
    Whisper__E2e__Quote q = WHISPER__E2E__QUOTE__INIT;
    q.has_id = 1;
    q.id = (ProtobufCBinaryData){16, (uint8_t *)sid};
    q.sender = "bob";
    q.excerpt = "what was said";
    Whisper__E2e__Target t = WHISPER__E2E__TARGET__INIT;
    t.has_id = 1;
    t.id = (ProtobufCBinaryData){16, (uint8_t *)sid};
    Whisper__E2e__Call call = WHISPER__E2E__CALL__INIT;
    call.has_call_id = call.has_type = call.has_data = 1;
    call.call_id = (ProtobufCBinaryData){16, (uint8_t *)sid};
    call.type = 1;
    call.data = (ProtobufCBinaryData){5, (uint8_t *)"v=0\r\n"};
    static const char *const names[] = {"content_reply", "content_reaction", "content_edit",
                                        "content_delete", "content_call", "content_newer"};
    static const uint32_t kinds[] = {1, 2, 3, 4, 5, 42};
    for (int i = 0; i < 6; i++) {
      Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
      ct.has_version = ct.has_kind = ct.has_at_ms = 1;
      ct.version = 1;
      ct.kind = kinds[i];
      ct.at_ms = FZ_NOW;
      if (i == 0) ct.text = "a reply", ct.quote = &q, ct.has_forwarded = 1, ct.forwarded = 2;
      if (i >= 1 && i <= 3) ct.target = &t;
      if (i == 1) ct.emoji = "👍";
      if (i == 2) ct.text = "edited";
      if (i == 4) ct.call = &call;
      if (i == 5) ct.text = "from a newer version";
      whisper_buf *cb = whisper_buf_new(NULL, whisper__e2e__content__get_packed_size(&ct));
      whisper__e2e__content__pack(&ct, cb->data);
      seed(s, names[i], K_CONTENT, 0, cb);
    }
  }

  /* profile keys (as from bob, in a group, from alice.2) and bob's profile */
  {
    static const uint8_t k2[32] = "fz-e2e another profile key ....";
    static const char *const withheld[] = {"carol"};
    static const struct {
      const char *name, *owner;
      int variant, key_len;
      uint64_t version;
      int withheld;
    } pk[] = {
        {"profile_key_bob", "bob", 0, 32, 2, 0},        {"profile_key_bob_older", "bob", 0, 32, 1, 0},
        {"profile_key_other_owner", "carol", 0, 32, 3, 0}, {"profile_key_contact_asks", "bob", 0, 0, 0, 0},
        {"profile_key_group", "bob", 1, 32, 4, 0},      {"profile_key_own_request", "alice", 2, 0, 0, 0},
        {"profile_key_own_newer", "alice", 2, 32, 5, 1}, {"profile_key_own_copy", "alice", 3, 32, 2, 0},
        {"profile_key_short", "bob", 0, 31, 2, 0},
    };
    for (size_t i = 0; i < sizeof pk / sizeof pk[0]; i++) {
      Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
      ct.has_version = ct.has_kind = ct.has_at_ms = 1;
      ct.version = 1;
      ct.kind = WHISPER__E2E__CONTENT__KIND__PROFILE_KEY;
      ct.at_ms = FZ_NOW;
      ct.profile_owner = (char *)pk[i].owner;
      if (pk[i].key_len) {
        ct.has_profile_key = ct.has_profile_version = 1;
        ct.profile_key = (ProtobufCBinaryData){(size_t)pk[i].key_len, (uint8_t *)k2};
        ct.profile_version = pk[i].version;
      }
      if (pk[i].withheld) ct.n_profile_withheld = 1, ct.profile_withheld = (char **)withheld;
      whisper_buf *cb = whisper_buf_new(NULL, whisper__e2e__content__get_packed_size(&ct));
      whisper__e2e__content__pack(&ct, cb->data);
      seed(s, pk[i].name, K_PROFILE_KEY, pk[i].variant, cb);
    }
    uint8_t pic[1500];
    for (size_t i = 0; i < sizeof pic; i++) pic[i] = (uint8_t)(i * 7);
    fz_rng seal_rng = {{0x5E}, 0}; /* the seeds' nonces: the same every run */
    wh_rng rng = {fz_rng_fn, &seal_rng};
    static const struct {
      const char *name;
      const uint8_t *key;
      uint64_t version;
      int variant;
      size_t pic;
    } pr[] = {
        {"profile_bob", BOB_PK, 1, 0, 0},
        {"profile_bob_newer_picture", BOB_PK, 3, 2, sizeof pic},
        {"profile_bob_other_version", BOB_PK, 2, 0, 0},
        {"profile_other_key", k2, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof pr / sizeof pr[0]; i++) {
      FZ_ASSERT(sy_profile_seal(&rng, pr[i].key, "bob", pr[i].version, (const uint8_t *)"Bob", 3,
                                (const uint8_t *)"about bob", 9, pr[i].pic ? pic : NULL, pr[i].pic, &b) == WHISPER_OK,
                "seal");
      seed(s, pr[i].name, K_PROFILE, pr[i].variant, b);
    }
  }

  /* a payload sent again (sy_resend_job's mark) */
  FZ_ASSERT(sy_payload_make("bob", NULL, &(sy_body){sid, (const uint8_t *)"hello again", 11, NULL, 0},
                            5, FZ_NOW, 1, &b) == WHISPER_OK,
            "payload");
  seed(s, "payload_resend", K_PAYLOAD, 0, b);

  /* retry requests: PlaintextContents, then RetryRequests from bob.1 */
  {
    Whisper__Wire__DecryptionErrorMessage dm = WHISPER__WIRE__DECRYPTION_ERROR_MESSAGE__INIT;
    dm.has_timestamp = dm.has_device_id = 1;
    dm.timestamp = FZ_NOW - 5000;
    dm.device_id = 1;
    whisper_buf *plain = plaintext_wrap(&dm, 0);
    dm.has_ratchet_key = 1;
    dm.ratchet_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, (uint8_t *)pub_of(W->bob2)};
    whisper_buf *keyed = plaintext_wrap(&dm, 0);
    seed(s, "retry_plaintext_ratchet_key", K_RETRY, 0, plaintext_wrap(&dm, 0));
    seed(s, "retry_plaintext_no_ratchet_key", K_RETRY, 0, whisper_buf_new(plain->data, plain->len));
    seed(s, "retry_plaintext_zero_padding", K_RETRY, 0, plaintext_wrap(&dm, 13));
    seed(s, "retry_plaintext_no_boundary", K_RETRY, 0, whisper_buf_new(keyed->data, keyed->len - 1));
    dm.device_id = 2;
    whisper_buf *dev2 = plaintext_wrap(&dm, 0);
    static const uint8_t unknown_id[WHISPER_CLIENT_ID_LEN] = "not a message id";
    const struct {
      const char *name;
      const uint8_t *id;
      const whisper_buf *dem;
      int variant;
    } reqs[] = {
        {"retry_request", W->sent[S_FRESH].id, keyed, 0},
        {"retry_request_no_ratchet_key", W->sent[S_FRESH].id, plain, 0},
        {"retry_request_four_times", W->sent[S_FRESH].id, keyed, 3},
        {"retry_request_too_old", W->sent[S_OLD].id, keyed, 0},
        {"retry_request_group", W->sent[S_GROUP].id, plain, 1},
        {"retry_request_not_recipient", W->sent[S_CAROL].id, keyed, 0},
        {"retry_request_unknown_id", unknown_id, keyed, 0},
        {"retry_request_own_copy", W->sent[S_OWN_COPY].id, keyed, 0},
        {"retry_request_not_in_history", W->sent[S_GONE].id, keyed, 0},
        {"retry_request_other_device", W->sent[S_FRESH].id, dev2, 0},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
      Whisper__E2e__RetryRequest r = WHISPER__E2E__RETRY_REQUEST__INIT;
      r.has_message_id = r.has_decryption_error = 1;
      r.message_id = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, (uint8_t *)reqs[i].id};
      r.decryption_error = (ProtobufCBinaryData){reqs[i].dem->len, reqs[i].dem->data};
      b = whisper_buf_new(NULL, whisper__e2e__retry_request__get_packed_size(&r));
      FZ_ASSERT(b != NULL, "out of memory");
      whisper__e2e__retry_request__pack(&r, b->data);
      seed(s, reqs[i].name, K_RETRY, reqs[i].variant, b);
    }
    whisper_buf_free(plain);
    whisper_buf_free(keyed);
    whisper_buf_free(dev2);
  }

  /* a link token of alice.2, as its engine makes it */
  whisper_client *c2 = NULL;
  FZ_ASSERT(whisper_client_new(&c2, W->alice2->ctx, NULL) == WHISPER_OK, "client alice.2");
  static const uint8_t code[16] = "fz-e2e-linkcode!";
  FZ_ASSERT(sy_token_make(c2, code, sizeof code, &b) == WHISPER_OK, "token");
  whisper_client_free(c2);
  /* the same with "alice\0x" for its account (7 bytes): the account read
   * must be what the length says, not a name cut at a NUL (found by this
   * target: sy_token_parse took it as "alice") */
  whisper_buf *nul = whisper_buf_new(NULL, b->len + 2);
  FZ_ASSERT(nul != NULL, "out of memory");
  memcpy(nul->data, b->data, 38);
  nul->data[38] = 7;
  memcpy(nul->data + 39, "alice\0x", 7);
  memcpy(nul->data + 46, b->data + 44, b->len - 44);
  seed(s, "token", K_TOKEN, 0, b);
  seed(s, "token_nul_in_account", K_TOKEN, 0, nul);
  world_free();
}

#ifndef FZE_SEEDS_ONLY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (W == NULL) world_new();
  if (size == 0) return 0;
  run_input(data, size);
  return 0;
}
#endif
