/* The serialized prekey bundle (wire.proto PreKeyBundle). */
#include <string.h>

#include "internal.h"
#include "protocol/pb.h"
#include "versioned.h"
#include "wire.pb-c.h"

int whisper_bundle_encode(const whisper_prekey_bundle_t *in, whisper_buf **out) {
  if (out == NULL) return WHISPER_EINVAL;
  *out = NULL;
  if (in == NULL || in->size < WHISPER_PREKEY_BUNDLE_SIZE_1_0) return WHISPER_EINVAL;
  whisper_prekey_bundle_t bundle, *b = &bundle; /* the fields both sides have */
  wh_versioned_in(&bundle, sizeof bundle, in);
  Whisper__Wire__PreKeyBundle pb = WHISPER__WIRE__PRE_KEY_BUNDLE__INIT;
  pb.has_registration_id = pb.has_device_id = pb.has_signed_prekey_id = 1;
  pb.has_signed_prekey = pb.has_signed_prekey_signature = pb.has_identity_key = 1;
  pb.registration_id = b->registration_id;
  pb.device_id = b->device_id;
  if (b->has_prekey) {
    pb.has_prekey_id = pb.has_prekey = 1;
    pb.prekey_id = b->prekey_id;
    pb.prekey = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)b->prekey};
  }
  pb.signed_prekey_id = b->signed_prekey_id;
  pb.signed_prekey = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)b->signed_prekey};
  pb.signed_prekey_signature = (ProtobufCBinaryData){WH_SIG_LEN, (uint8_t *)b->signed_prekey_signature};
  pb.identity_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)b->identity_key};
  *out = whisper_buf_new(NULL, whisper__wire__pre_key_bundle__get_packed_size(&pb));
  if (*out == NULL) return WHISPER_ENOMEM;
  whisper__wire__pre_key_bundle__pack(&pb, (*out)->data);
  return WHISPER_OK;
}

static int take_key(uint8_t out[WH_PUB_LEN], const ProtobufCBinaryData *k) {
  if (!wh_pub_ok(k->data, k->len)) return WHISPER_EINVALIDKEY;
  memcpy(out, k->data, WH_PUB_LEN);
  return WHISPER_OK;
}

int whisper_bundle_decode(const uint8_t *data, size_t len, whisper_prekey_bundle_t *caller) {
  if (caller == NULL || (data == NULL && len) || caller->size < WHISPER_PREKEY_BUNDLE_SIZE_1_0)
    return WHISPER_EINVAL;
  /* filled here, then the fields both sides have copied out */
  whisper_prekey_bundle_t bundle, *out = &bundle;
  memset(out, 0, sizeof *out);
  Whisper__Wire__PreKeyBundle *pb = whisper__wire__pre_key_bundle__unpack(&wh_pb_alloc, len, data);
  if (pb == NULL) {
    wh_versioned_out(caller, out, sizeof *out);
    return WHISPER_EINVALIDMSG;
  }
  int rc = WHISPER_OK;
  if (!pb->has_registration_id || !pb->has_device_id || !pb->has_signed_prekey_id ||
      !pb->has_signed_prekey || !pb->has_signed_prekey_signature || !pb->has_identity_key ||
      pb->has_prekey_id != pb->has_prekey)
    rc = WHISPER_EINVALIDMSG;
  if (rc == WHISPER_OK) rc = take_key(out->identity_key, &pb->identity_key);
  if (rc == WHISPER_OK) rc = take_key(out->signed_prekey, &pb->signed_prekey);
  if (rc == WHISPER_OK && pb->has_prekey) rc = take_key(out->prekey, &pb->prekey);
  if (rc == WHISPER_OK && pb->signed_prekey_signature.len != WH_SIG_LEN) rc = WHISPER_EINVALIDSIG;
  if (rc == WHISPER_OK) {
    memcpy(out->signed_prekey_signature, pb->signed_prekey_signature.data, WH_SIG_LEN);
    out->registration_id = pb->registration_id;
    out->device_id = pb->device_id;
    out->has_prekey = pb->has_prekey;
    out->prekey_id = pb->prekey_id;
    out->signed_prekey_id = pb->signed_prekey_id;
  } else {
    memset(out, 0, sizeof *out);
  }
  whisper__wire__pre_key_bundle__free_unpacked(pb, &wh_pb_alloc);
  wh_versioned_out(caller, out, sizeof *out);
  return rc;
}
