/* whisperd's source addresses (examples/whisperd/addrs.c): the key of a
 * peer (an IPv4 address; an IPv6 /64; an IPv4-mapped IPv6 address as its
 * IPv4 address), its text, and the counts per address that cap the
 * connections not logged in. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "test.h"
#include "whisperd.h"

static wd_addr v4(const char *text) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(443);
  inet_pton(AF_INET, text, &sa.sin_addr);
  wd_addr a;
  wd_addr_of_sockaddr(&sa, sizeof sa, &a);
  return a;
}

static wd_addr v6(const char *text) {
  struct sockaddr_in6 sa;
  memset(&sa, 0, sizeof sa);
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(443);
  inet_pton(AF_INET6, text, &sa.sin6_addr);
  wd_addr a;
  wd_addr_of_sockaddr(&sa, sizeof sa, &a);
  return a;
}

static int same(wd_addr x, wd_addr y) {
  return x.len == y.len && memcmp(x.b, y.b, x.len) == 0;
}

static void test_keys(void) {
  char buf[80];
  wd_addr a = v4("192.0.2.10");
  CHECK(a.len == 4);
  CHECK(strcmp(wd_addr_format(&a, buf, sizeof buf), "192.0.2.10") == 0);
  CHECK(!same(a, v4("192.0.2.11"))); /* IPv4: each address its own */
  /* IPv6: the /64 */
  wd_addr b = v6("2001:db8:1:2::1");
  CHECK(b.len == 8);
  CHECK(same(b, v6("2001:db8:1:2:ffff:eeee:dddd:cccc")));
  CHECK(!same(b, v6("2001:db8:1:3::1")));
  CHECK(strcmp(wd_addr_format(&b, buf, sizeof buf), "2001:db8:1:2::/64") == 0);
  /* a dual-stack socket's view of an IPv4 peer is that IPv4 address */
  CHECK(same(v6("::ffff:192.0.2.10"), a));
  CHECK(v6("::ffff:192.0.2.10").len == 4);
  /* ::1 and :: are /64s like any other */
  CHECK(v6("::1").len == 8 && same(v6("::1"), v6("::2")));
  /* loopback peers get no source limits in the core (net.c) */
  wd_addr lo4 = v4("127.0.0.1"), lo42 = v4("127.1.2.3"), lo6 = v6("::1"), m = v6("::ffff:127.0.0.1");
  CHECK(wd_addr_is_loopback(&lo4) && wd_addr_is_loopback(&lo42) && wd_addr_is_loopback(&lo6));
  CHECK(wd_addr_is_loopback(&m));
  CHECK(!wd_addr_is_loopback(&a) && !wd_addr_is_loopback(&b));
  /* not an IP peer: no key */
  struct sockaddr_un un;
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  wd_addr u;
  wd_addr_of_sockaddr(&un, sizeof un, &u);
  CHECK(u.len == 0);
  CHECK(strcmp(wd_addr_format(&u, buf, sizeof buf), "?") == 0);
  /* a short sockaddr is refused */
  struct sockaddr_in6 sa6;
  memset(&sa6, 0, sizeof sa6);
  sa6.sin6_family = AF_INET6;
  wd_addr_of_sockaddr(&sa6, sizeof(struct sockaddr_in), &u);
  CHECK(u.len == 0);
  wd_addr_of_sockaddr(NULL, 0, &u);
  CHECK(u.len == 0);
}

/* wd_addr_of_fd on real sockets: a TCP connection on loopback, a Unix pair */
static void test_fd(void) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  CHECK(l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(l, 1) == 0 &&
        getsockname(l, (struct sockaddr *)&sa, &sl) == 0);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(c, (struct sockaddr *)&sa, sizeof sa) == 0);
  int s = accept(l, NULL, NULL);
  wd_addr a;
  wd_addr_of_fd(s, &a);
  CHECK(same(a, v4("127.0.0.1")));
  close(s);
  close(c);
  close(l);
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  wd_addr_of_fd(sv[0], &a);
  CHECK(a.len == 0);
  close(sv[0]);
  close(sv[1]);
  wd_addr_of_fd(-1, &a);
  CHECK(a.len == 0);
}

static void test_counts(void) {
  wd_addr_counts *t = wd_addr_counts_new();
  CHECK(t != NULL);
  wd_addr a = v4("198.51.100.7"), b = v6("2001:db8::1"), b2 = v6("2001:db8::2"), none;
  memset(&none, 0, sizeof none);
  CHECK(wd_addr_count(t, &a) == 0);
  CHECK(wd_addr_inc(t, &a) == 0 && wd_addr_inc(t, &a) == 0 && wd_addr_inc(t, &b) == 0);
  CHECK(wd_addr_inc(t, &b2) == 0); /* the same /64 as b */
  CHECK(wd_addr_count(t, &a) == 2 && wd_addr_count(t, &b) == 2 && wd_addr_count(t, &b2) == 2);
  CHECK(wd_addr_counts_size(t) == 2);
  /* an address without a key is never counted */
  CHECK(wd_addr_inc(t, &none) == 0 && wd_addr_count(t, &none) == 0 && wd_addr_counts_size(t) == 2);
  wd_addr_dec(t, &none);
  wd_addr_dec(t, &a);
  CHECK(wd_addr_count(t, &a) == 1);
  wd_addr_dec(t, &a);
  CHECK(wd_addr_count(t, &a) == 0 && wd_addr_counts_size(t) == 1); /* gone at 0 */
  wd_addr_dec(t, &a); /* not counted: nothing */
  CHECK(wd_addr_count(t, &a) == 0 && wd_addr_count(t, &b) == 2);
  /* many addresses (the table grows), each counted apart, then all gone */
  enum { N = 20000 };
  int ok = 1;
  for (unsigned i = 0; i < N; i++) {
    wd_addr x = {4, {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i}};
    ok &= wd_addr_inc(t, &x) == 0;
    if (i % 3 == 0) ok &= wd_addr_inc(t, &x) == 0;
  }
  CHECK(ok);
  CHECK(wd_addr_counts_size(t) == N + 1);
  for (unsigned i = 0; i < N; i++) {
    wd_addr x = {4, {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i}};
    ok &= wd_addr_count(t, &x) == (i % 3 == 0 ? 2u : 1u);
    wd_addr_dec(t, &x);
    if (i % 3 == 0) wd_addr_dec(t, &x);
    ok &= wd_addr_count(t, &x) == 0;
  }
  CHECK(ok);
  CHECK(wd_addr_counts_size(t) == 1 && wd_addr_count(t, &b) == 2);
  wd_addr_counts_free(t);
  wd_addr_counts_free(NULL);
  CHECK(wd_addr_count(NULL, &a) == 0);
}

int main(void) {
  if (sodium_init() < 0) return 2;
  test_keys();
  test_fd();
  test_counts();
  return test_done();
}
