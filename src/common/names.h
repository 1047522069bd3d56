/*
 * Internal (src/common): the names the sync protocol carries, checked and
 * made alike by the engine and the server core: account names, device
 * ids, the conversation name of a group ("#" and its id in hex), and
 * lists of names (a group's members, its admins) compared as sets.
 * (The library core's addresses take any name of 1..WH_NAME_MAX bytes:
 * wh_addr_make; an account of the sync protocol is narrower.)
 */
#ifndef WH_COMMON_NAMES_H
#define WH_COMMON_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define WH_ACCOUNT_MAX 64 /* account names: 1..64 bytes of [a-z0-9._-] */
#define WH_GROUP_ID_LEN 16
#define WH_GROUP_CONV_LEN (1 + 2 * WH_GROUP_ID_LEN) /* "#" and 32 hex digits */

/* 1 if `s` is an account name: 1..WH_ACCOUNT_MAX bytes of [a-z0-9._-]. */
int wh_account_ok(const char *s);

/* 1 if `id` is a device id on the wire: 1..2^31-1. */
static inline int wh_device_id_ok(uint32_t id) { return id >= 1 && id <= 0x7FFFFFFFu; }

/* The conversation name of group `gid`: "#" and 32 lowercase hex digits. */
void wh_group_conv(char out[WH_GROUP_CONV_LEN + 1], const uint8_t gid[WH_GROUP_ID_LEN]);
/* And back: 1 and the id if `conv` is a group's, else 0. */
int wh_group_conv_parse(const char *conv, uint8_t gid[WH_GROUP_ID_LEN]);

/* 1 if lists a and b (each holding a name at most once) hold the same
 * names, 0 if not, -1 out of memory (compared sorted: groups may be
 * large). */
int wh_names_same(char *const *a, size_t na, char *const *b, size_t nb);
/* The same, with `name` added to b (op 1) or taken out of it (op -1). */
int wh_names_same_but(char *const *a, size_t na, char *const *b, size_t nb, const char *name,
                      int op);

#endif
