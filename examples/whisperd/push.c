/*
 * whisperd: the push hook.
 *
 * The core asks for a push (WHISPER_SERVER_PUSH) when a device that is
 * offline gets new mail, at most once per offline period. whisperd hands
 * it to a wd_push_hook (whisperd.h). This file has the one implementation
 * the reference server ships: a log line per push.
 *
 * Where APNs / FCM plug in: write another wd_push_hook whose notify()
 *   1. looks up the push token the device registered for (account,
 *      device_id) (a registration endpoint and its table are outside the
 *      sync protocol),
 *   2. queues a content-free wake-up (APNs: a background notification or
 *      a mutable-content alert decrypted by a notification extension;
 *      FCM: a high-priority data message) carrying nothing but "you have
 *      mail": the mailbox holds only ciphertext anyway,
 *   3. returns at once: notify() runs on the event loop, so the HTTP/2
 *      request to the push service goes out from a worker thread or an
 *      lws client connection, with its own retries,
 * and install it in main.c instead of wd_push_log_hook().
 */
#include "whisperd.h"

/* At debug level only: a line per wake-up names who got mail when, which
 * a log kept at the default level should not collect. The count is in
 * /metrics (whisperd_pushes_total). */
static void log_notify(void *user, const char *account, uint32_t device_id,
                       uint64_t mailbox_depth) {
  (void)user;
  wd_debug("push account=%s device=%lu depth=%llu", account ? account : "?",
           (unsigned long)device_id, (unsigned long long)mailbox_depth);
}

void wd_push_log_hook(wd_push_hook *hook) {
  hook->user = NULL;
  hook->notify = log_notify;
  hook->destroy = NULL;
}

void wd_push_hook_destroy(wd_push_hook *hook) {
  if (hook->destroy) hook->destroy(hook->user);
  hook->user = NULL;
  hook->destroy = NULL;
}
