/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/http1.h"

TestSuite(h1);

static struct h1_msg msg;

/* parses a request head (up to the blank line) and, if any, its body;
 * returns the head status, or the body status when the head was fine */
static int req(const char *raw)
{
    const char *end = strstr(raw, "\r\n\r\n");
    cr_assert(end, "test input needs a blank line");
    size_t hl = (size_t)(end + 4 - raw);
    struct evbuffer *b = evbuffer_new();
    struct h1_scan sc = { 0 };
    evbuffer_add(b, raw, strlen(raw));
    long l = h1_head_len(b, &sc, 32768);
    evbuffer_free(b);
    if (l < 0)
        return (int)l;
    cr_assert_eq((size_t)l, hl);
    int rc = h1_parse_request(&msg, raw, hl);
    if (rc != H1_OK || msg.no_body)
        return rc;
    size_t used = 0;
    int b2 = h1_body_feed(&msg, end + 4, strlen(end + 4), &used);
    if (b2 < 0)
        return b2;
    return H1_OK;
}

static long scan(const char *raw, size_t max)
{
    struct evbuffer *b = evbuffer_new();
    struct h1_scan sc = { 0 };
    evbuffer_add(b, raw, strlen(raw));
    long l = h1_head_len(b, &sc, max);
    evbuffer_free(b);
    return l;
}

Test(h1, simple_get_parses_views)
{
    const char *r = "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-A:  v1 \r\n\r\n";
    cr_assert_eq(h1_parse_request(&msg, r, strlen(r)), H1_OK);
    cr_assert(str_eq(msg.method, STR_LIT("GET")));
    cr_assert(str_eq(msg.target, STR_LIT("/a?b=1")));
    cr_assert_eq(msg.minor, 1);
    cr_assert_eq(msg.nhdrs, 2);
    cr_assert(str_eq(msg.hdrs[1].value, STR_LIT("v1")));
    cr_assert_eq(msg.hdrs[0].kind, H1H_HOST);
    cr_assert(msg.no_body);
    cr_assert(msg.keep_alive);
    /* views point into the input, no copy */
    cr_assert(msg.target.p >= r && msg.target.p < r + strlen(r));
}

Test(h1, content_length_body_ends_exactly)
{
    const char *r = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    cr_assert_eq(h1_parse_request(&msg, r, strlen(r)), H1_OK);
    cr_assert(msg.has_cl && msg.content_length == 5 && !msg.no_body);
    size_t used;
    cr_assert_eq(h1_body_feed(&msg, "abc", 3, &used), 0);
    cr_assert_eq(used, 3);
    cr_assert_eq(h1_body_feed(&msg, "deGET / HTTP/1.1\r\n", 18, &used), 1);
    cr_assert_eq(used, 2);
}

Test(h1, chunked_body_with_trailers)
{
    const char *r = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(h1_parse_request(&msg, r, strlen(r)), H1_OK);
    cr_assert(msg.chunked);
    const char *b = "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    size_t used;
    cr_assert_eq(h1_body_feed(&msg, b, strlen(b), &used), 1);
    cr_assert_eq(used, strlen(b) - 4);
}

Test(h1, chunked_body_decodes_into_sink)
{
    const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct evbuffer *sink = evbuffer_new();
    msg.body_sink = sink;
    cr_assert_eq(h1_parse_response(&msg, r, strlen(r), false), H1_OK);
    const char *b = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    size_t used;
    cr_assert_eq(h1_body_feed(&msg, b, strlen(b), &used), 1);
    cr_assert_eq(evbuffer_get_length(sink), 5);
    msg.body_sink = NULL;
    evbuffer_free(sink);
}

Test(h1, rejects_cl_with_te)
{
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
                 H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
                 H1_E400);
}

Test(h1, rejects_duplicate_and_invalid_cl)
{
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
                 H1_E400);
}

Test(h1, rejects_te_other_than_final_chunked)
{
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
                 H1_E400);
    /* HTTP/1.0 has no chunked */
    cr_assert_eq(req("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), H1_E400);
}

Test(h1, rejects_invalid_chunk_sizes)
{
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
                 H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n"),
                 H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n"), H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n"), H1_E400);
    /* bare CR where a CRLF belongs (llhttp's loose mode accepts these: built strict) */
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r8"),
                 H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\rXhello\r\n0\r\n\r\n"),
                 H1_E400);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n"),
                 H1_E400);
}

Test(h1, rejects_control_chars)
{
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f" "b\r\n\r\n"), H1_E400);
    const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    cr_assert_neq(h1_parse_request(&msg, nul, sizeof(nul) - 1), H1_OK);
    cr_assert_eq(req("GET /a\x01" "b HTTP/1.1\r\nHost: a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nX\x01Y: b\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), H1_E400);
}

Test(h1, rejects_bare_lf_and_bare_cr)
{
    cr_assert_eq(scan("GET / HTTP/1.1\nHost: a\n\n", 32768), H1_E400);
    cr_assert_eq(scan("GET / HTTP/1.1\r\nHost: a\n\r\n", 32768), H1_E400);
    cr_assert_eq(scan("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 32768), H1_E400);
    cr_assert_eq(scan("GET / HTTP/1.1\r\nHost: a\r\n", 32768), 0);
}

Test(h1, rejects_obs_fold)
{
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), H1_E400);
}

Test(h1, host_required_once_on_11)
{
    cr_assert_eq(req("GET / HTTP/1.1\r\nX: a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nhOsT: b\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.0\r\nX: a\r\n\r\n"), H1_OK);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: \r\n\r\n"), H1_E400);
}

Test(h1, host_syntax)
{
    cr_assert(h1_host_valid(STR_LIT("example.com")));
    cr_assert(h1_host_valid(STR_LIT("example.com:8080")));
    cr_assert(h1_host_valid(STR_LIT("127.0.0.1:1")));
    cr_assert(h1_host_valid(STR_LIT("[::1]:443")));
    cr_assert(h1_host_valid(STR_LIT("[2001:db8::1]")));
    cr_assert(h1_host_valid(STR_LIT("xn--bcher-kva.example")));
    cr_assert(h1_host_valid(STR_LIT("a_b.example")));
    cr_assert_not(h1_host_valid(STR_LIT("user@example.com")));
    cr_assert_not(h1_host_valid(STR_LIT("user:pw@example.com")));
    cr_assert_not(h1_host_valid(STR_LIT("example.com:")));
    cr_assert_not(h1_host_valid(STR_LIT("example.com:http")));
    cr_assert_not(h1_host_valid(STR_LIT("example.com:65536")));
    cr_assert_not(h1_host_valid(STR_LIT("example.com:123456")));
    cr_assert_not(h1_host_valid(STR_LIT("example.com:80:80")));
    cr_assert_not(h1_host_valid(STR_LIT("exa mple.com")));
    cr_assert_not(h1_host_valid(STR_LIT("example.com/path")));
    cr_assert_not(h1_host_valid(STR_LIT("[::1")));
    cr_assert_not(h1_host_valid(STR_LIT("[zz]")));
    cr_assert_not(h1_host_valid(STR_LIT(":80")));
    cr_assert_not(h1_host_valid(STR_LIT("")));
    cr_assert_not(h1_host_valid(STR_LIT("a%zz")));
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a:x\r\n\r\n"), H1_E400);
}

Test(h1, refuses_h2c_connect_and_preface)
{
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                     "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"),
                 H1_E400);
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\r\n"),
                 H1_E400);
    cr_assert_eq(req("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), H1_E405);
    cr_assert_lt(req("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0);
}

Test(h1, websocket_upgrade_is_flagged)
{
    cr_assert_eq(req("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), H1_OK);
    cr_assert(msg.upgrade);
}

Test(h1, expect_continue)
{
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"), H1_OK);
    cr_assert(msg.expect_continue);
    cr_assert_eq(req("POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\n"), H1_E417);
}

Test(h1, connection_names_hop_headers_but_not_framing)
{
    cr_assert_eq(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, Content-Length, Host\r\n"
                     "X-Secret: 1\r\nX-Keep: 2\r\n\r\n"),
                 H1_OK);
    cr_assert(msg.hdrs[2].hop);      /* X-Secret */
    cr_assert_not(msg.hdrs[3].hop);  /* X-Keep */
    cr_assert_not(msg.hdrs[0].hop);  /* Host */
    cr_assert_eq(msg.hdrs[1].kind, H1H_CONNECTION);
}

Test(h1, too_many_headers_is_431)
{
    char buf[8192];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < H1_MAX_HEADERS + 1; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    cr_assert_eq(h1_parse_request(&msg, buf, n), H1_E431);
}

Test(h1, head_over_limit_is_431)
{
    char buf[4096];
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
    buf[sizeof(buf) - 1] = 0;
    cr_assert_eq(scan(buf, 1024), H1_E431);
    cr_assert_eq(scan("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 10), H1_E431);
}

Test(h1, bad_versions_and_methods)
{
    cr_assert_eq(req("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_E400);
    cr_assert_eq(req("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), H1_E400);
}

static const char *norm(const char *in)
{
    static char out[1024];
    size_t pl;
    long n = h1_normalize(in, strlen(in), out, sizeof(out), &pl);
    if (n < 0)
        return NULL;
    out[n] = 0;
    return out;
}

Test(h1, normalise_paths)
{
    cr_assert_str_eq(norm("/"), "/");
    cr_assert_str_eq(norm("/admin"), "/admin");
    cr_assert_str_eq(norm("/%61dmin"), "/admin");
    cr_assert_str_eq(norm("/%41%42"), "/AB");
    cr_assert_str_eq(norm("/public/../admin"), "/admin");
    cr_assert_str_eq(norm("/public/%2e%2e/admin"), "/admin");
    cr_assert_str_eq(norm("/public/%2E./admin"), "/admin");
    cr_assert_str_eq(norm("//admin"), "/admin");
    cr_assert_str_eq(norm("///admin//x///"), "/admin/x/");
    cr_assert_str_eq(norm("/a/./b"), "/a/b");
    cr_assert_str_eq(norm("/a/."), "/a/");
    cr_assert_str_eq(norm("/a/b/.."), "/a/");
    cr_assert_str_eq(norm("/.."), "/");
    cr_assert_str_eq(norm("/../../x"), "/x");
    cr_assert_str_eq(norm("/a/..b"), "/a/..b");
    cr_assert_str_eq(norm("/a.b/c"), "/a.b/c");
    cr_assert_str_eq(norm("/a%2fb"), "/a%2Fb");    /* reserved stays encoded */
    cr_assert_str_eq(norm("/a%2Fb/../c"), "/c");    /* %2F is not a separator */
    cr_assert_str_eq(norm("/x?q=/../a//b"), "/x?q=/../a//b");
    cr_assert_str_eq(norm("/x#frag"), "/x");
    cr_assert_str_eq(norm("/x?q#frag"), "/x?q");
    cr_assert_str_eq(norm("/%7euser"), "/~user");
    cr_assert_null(norm("/a%zz"));
    cr_assert_null(norm("/a%2"));
    cr_assert_null(norm("/a%"));
    cr_assert_null(norm("a/b"));
    cr_assert_null(norm("?x"));
    size_t pl;
    char out[64];
    cr_assert_eq(h1_normalize("/a/b?x=1", 8, out, sizeof(out), &pl), 8);
    cr_assert_eq(pl, 4);
}

Test(h1, absolute_form)
{
    struct str a, r;
    cr_assert(h1_split_absolute(STR_LIT("http://example.com/x?y"), &a, &r));
    cr_assert(str_eq(a, STR_LIT("example.com")));
    cr_assert(str_eq(r, STR_LIT("/x?y")));
    cr_assert(h1_split_absolute(STR_LIT("HTTPS://example.com:8443"), &a, &r));
    cr_assert(str_eq(a, STR_LIT("example.com:8443")));
    cr_assert(str_eq(r, STR_LIT("/")));
    cr_assert_not(h1_split_absolute(STR_LIT("http://u@example.com/"), &a, &r));
    cr_assert_not(h1_split_absolute(STR_LIT("ftp://example.com/"), &a, &r));
    cr_assert_not(h1_split_absolute(STR_LIT("/x"), &a, &r));
    cr_assert_not(h1_split_absolute(STR_LIT("http:///x"), &a, &r));
}

Test(h1, responses)
{
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n";
    cr_assert_eq(h1_parse_response(&msg, r, strlen(r), false), H1_OK);
    cr_assert_eq(msg.status, 200);
    cr_assert(msg.keep_alive && msg.has_cl);
    cr_assert_eq(h1_parse_response(&msg, r, strlen(r), true), H1_OK);
    cr_assert(msg.no_body);
    const char *r204 = "HTTP/1.1 204 No Content\r\n\r\n";
    cr_assert_eq(h1_parse_response(&msg, r204, strlen(r204), false), H1_OK);
    cr_assert(msg.no_body);
    const char *r10 = "HTTP/1.0 200 OK\r\n\r\n";
    cr_assert_eq(h1_parse_response(&msg, r10, strlen(r10), false), H1_OK);
    cr_assert(msg.want_eof && !msg.keep_alive);
    cr_assert_eq(h1_body_eof(&msg), 1);
    const char *r101 = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    cr_assert_eq(h1_parse_response(&msg, r101, strlen(r101), false), H1_OK);
    cr_assert(msg.upgrade && msg.status == 101);
    const char *bad = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(h1_parse_response(&msg, bad, strlen(bad), false), H1_E502);
    const char *bad2 = "HTTP/1.1 2000 OK\r\n\r\n";
    cr_assert_eq(h1_parse_response(&msg, bad2, strlen(bad2), false), H1_E502);
    const char *trunc = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    cr_assert_eq(h1_parse_response(&msg, trunc, strlen(trunc), false), H1_OK);
    cr_assert_eq(h1_body_eof(&msg), H1_E400);
}

Test(h1, body_len_counts_decoded_bytes_and_resets_per_message)
{
    const char *r = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(h1_parse_request(&msg, r, strlen(r)), H1_OK);
    cr_assert_eq(msg.body_len, 0);
    size_t used;
    /* split mid-chunk: framing bytes never count */
    cr_assert_eq(h1_body_feed(&msg, "a\r\n01234", 8, &used), 0);
    cr_assert_eq(msg.body_len, 5);
    const char *rest = "56789\r\n3\r\nabc\r\n0\r\n\r\n";
    cr_assert_eq(h1_body_feed(&msg, rest, strlen(rest), &used), 1);
    cr_assert_eq(msg.body_len, 13);
    const char *r2 = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n";
    cr_assert_eq(h1_parse_request(&msg, r2, strlen(r2)), H1_OK);
    cr_assert_eq(msg.body_len, 0);
    cr_assert_eq(h1_body_feed(&msg, "wxyz", 4, &used), 1);
    cr_assert_eq(msg.body_len, 4);
}

/* the head-end scan as the plain byte-at-a-time state machine it replaced:
 * the model h1_head_len (memchr over line bodies) must agree with */
static long model_head_len(const unsigned char *p, size_t n)
{
    int st = 0; /* 0 in a line, 1 saw CR, 2 saw CRLF, 3 saw CRLF CR */
    for (size_t k = 0; k < n; k++) {
        unsigned char c = p[k];
        if (c == '\r') {
            if (st == 1 || st == 3)
                return H1_E400;
            st = st == 2 ? 3 : 1;
        } else if (c == '\n') {
            if (st == 1)
                st = 2;
            else if (st == 3)
                return (long)(k + 1);
            else
                return H1_E400;
        } else {
            if (st == 1 || st == 3)
                return H1_E400;
            st = 0;
        }
    }
    return 0;
}

Test(h1, head_scan_agrees_with_the_byte_model_in_any_chunking)
{
    static const char alpha[] = "aaaaaaaa: \r\r\r\n\n\n";
    unsigned seed = 12345;
    for (int t = 0; t < 20000; t++) {
        unsigned char buf[160];
        size_t n = 1 + (size_t)(rand_r(&seed) % sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)alpha[rand_r(&seed) % (sizeof(alpha) - 1)];
        /* a valid head now and then, so the "found" answer is checked too */
        if (t % 4 == 0 && n > 8)
            memcpy(buf + n / 2, "\r\nX: y\r\n\r\n", n - n / 2 < 10 ? n - n / 2 : 10);
        long want = model_head_len(buf, n);

        /* fed in random pieces, each its own evbuffer chain, scanning after each */
        struct evbuffer *b = evbuffer_new();
        struct h1_scan sc = { 0 };
        long got = 0;
        size_t fed = 0;
        while (fed < n && got == 0) {
            size_t piece = 1 + (size_t)(rand_r(&seed) % 24);
            if (piece > n - fed)
                piece = n - fed;
            struct evbuffer *tmp = evbuffer_new();
            evbuffer_add(tmp, buf + fed, piece);
            evbuffer_add_buffer(b, tmp); /* keeps chain boundaries */
            evbuffer_free(tmp);
            fed += piece;
            got = h1_head_len(b, &sc, 1 << 20);
        }
        evbuffer_free(b);
        cr_assert_eq(got, want, "case %d: got %ld, want %ld", t, got, want);
    }
}
