/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proxy: the pure part of ExternalName's multi-address handling (which
 * addresses of an answer a request may try). Rotation and retries over them
 * run against real sockets in tests/integration/20-proxy-basic.py.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "ingressd/proxy.h"

TestSuite(px);

/* an answer list built by hand: a[i] chained in order */
struct answer {
    struct addrinfo ai[12];
    struct sockaddr_storage ss[12];
    int n;
};

static void add(struct answer *a, const char *ip, unsigned port)
{
    struct addrinfo *ai = &a->ai[a->n];
    struct sockaddr_storage *ss = &a->ss[a->n];
    memset(ai, 0, sizeof(*ai));
    memset(ss, 0, sizeof(*ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        cr_assert_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
        ai->ai_addrlen = sizeof(*s6);
    } else if (!strcmp(ip, "unix")) {
        struct sockaddr_un *su = (struct sockaddr_un *)ss;
        su->sun_family = AF_UNIX;
        ai->ai_addrlen = sizeof(*su);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        cr_assert_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
        ai->ai_addrlen = sizeof(*s4);
    }
    ai->ai_family = ss->ss_family;
    ai->ai_addr = (struct sockaddr *)ss;
    if (a->n > 0)
        a->ai[a->n - 1].ai_next = ai;
    a->n++;
}

static const char *ip_of(const union px_addr *a, char *buf, size_t n)
{
    if (a->sa.sa_family == AF_INET6)
        return inet_ntop(AF_INET6, &a->in6.sin6_addr, buf, (socklen_t)n);
    return inet_ntop(AF_INET, &a->in.sin_addr, buf, (socklen_t)n);
}

Test(px, ext_collect_keeps_order_and_both_families)
{
    struct answer a = { .n = 0 };
    add(&a, "127.0.0.9", 80);
    add(&a, "::1", 80);
    add(&a, "127.0.0.10", 80);
    union px_addr out[PX_EXT_MAX];
    char b[64];
    cr_assert_eq(px_ext_collect(a.ai, out), 3);
    cr_assert_str_eq(ip_of(&out[0], b, sizeof(b)), "127.0.0.9");
    cr_assert_str_eq(ip_of(&out[1], b, sizeof(b)), "::1");
    cr_assert_eq(out[1].in6.sin6_port, htons(80));
    cr_assert_str_eq(ip_of(&out[2], b, sizeof(b)), "127.0.0.10");
}

Test(px, ext_collect_drops_duplicates_so_no_address_is_tried_twice)
{
    struct answer a = { .n = 0 };
    add(&a, "127.0.0.14", 80);
    add(&a, "127.0.0.15", 80);
    add(&a, "127.0.0.14", 80);
    add(&a, "::1", 80);
    add(&a, "::1", 80);
    add(&a, "127.0.0.14", 81); /* another port is another address */
    union px_addr out[PX_EXT_MAX];
    cr_assert_eq(px_ext_collect(a.ai, out), 4);
    cr_assert_eq(out[3].in.sin_port, htons(81));
}

Test(px, ext_collect_caps_the_answer_and_skips_other_families)
{
    struct answer a = { .n = 0 };
    add(&a, "unix", 0);
    char ip[32];
    for (int i = 0; i < 10; i++) {
        snprintf(ip, sizeof(ip), "127.0.1.%d", i + 1);
        add(&a, ip, 80);
    }
    a.ai[1].ai_addrlen = 4; /* too short for an IPv4 address: skipped */
    union px_addr out[PX_EXT_MAX + 1];
    memset(out, 0xee, sizeof(out));
    char b[64];
    cr_assert_eq(px_ext_collect(a.ai, out), PX_EXT_MAX);
    cr_assert_str_eq(ip_of(&out[0], b, sizeof(b)), "127.0.1.2");
    cr_assert_str_eq(ip_of(&out[PX_EXT_MAX - 1], b, sizeof(b)), "127.0.1.9");
    cr_assert_eq(out[PX_EXT_MAX].sa.sa_family, (sa_family_t)0xeeee, "nothing written past the cap");
    cr_assert_eq(px_ext_collect(NULL, out), 0);
}
