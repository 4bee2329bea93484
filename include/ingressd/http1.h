/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http1: HTTP/1.1 message parsing over llhttp (strict: no lenient flag is
 * ever set), plus the checks llhttp leaves to us (Host syntax, one Host,
 * control characters, h2c, obs-fold) and path normalisation for routing.
 *
 * A head is parsed in one go from contiguous memory that ends with the blank
 * line, so every slice in struct h1_msg points into that memory (no copy);
 * the caller keeps the memory alive as long as it uses the slices. Bodies are
 * then fed in pieces through h1_body_feed(), which only validates framing and
 * finds the end: callers forward the validated bytes raw.
 *
 * Worker threads; a struct h1_msg belongs to one request of one connection.
 */
#ifndef INGRESSD_HTTP1_H
#define INGRESSD_HTTP1_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingressd/str.h"

struct evbuffer;

#define H1_MAX_HEADERS   128            /* more -> 431 */
#define H1_INLINE_HEADERS 24            /* kept inside the message; more spill to the heap */
#define H1_MAX_CONN_TOKS 8              /* names listed by Connection we remember */

/* headers the proxy treats specially (classified once at parse time) */
enum h1_hdr_kind {
    H1H_OTHER = 0,
    H1H_HOST,
    H1H_CONNECTION,
    H1H_KEEP_ALIVE,
    H1H_PROXY_CONNECTION,
    H1H_TE,
    H1H_TRAILER,
    H1H_UPGRADE,
    H1H_TRANSFER_ENCODING,
    H1H_CONTENT_LENGTH,
    H1H_EXPECT,
    H1H_XFF,                           /* X-Forwarded-For */
    H1H_XFPROTO,
    H1H_XFHOST,
    H1H_XFPORT,
    H1H_XREAL_IP,
    H1H_XREQUEST_ID,
    H1H_HTTP2_SETTINGS,
};

struct h1_hdr {
    struct str name, value;            /* value trimmed of OWS */
    uint8_t kind;                      /* enum h1_hdr_kind */
    bool hop;                          /* named by Connection: drop when forwarding */
};

/* errors map straight to statuses: -400, -405, -417, -431, -502 */
enum h1_status { H1_OK = 0, H1_E400 = -400, H1_E405 = -405, H1_E417 = -417, H1_E431 = -431,
                 H1_E502 = -502 };

struct h1_msg {
    llhttp_t parser;                   /* data points back to this struct */
    /* request line / status line */
    struct str method, target, version, reason;
    uint8_t minor;                     /* HTTP/1.minor */
    uint8_t method_id;                 /* enum llhttp_method */
    uint16_t status;                   /* responses */
    /* headers, in order: inline_hdrs, or the heap array once there are more */
    struct h1_hdr *hdrs;
    uint32_t nhdrs, cap;
    int host_idx;                      /* index of Host in hdrs, -1 if none */
    int reqid_idx;                     /* index of X-Request-ID, -1 if none */
    /* framing, as llhttp decided it */
    uint64_t content_length;           /* when has_cl */
    uint64_t body_len;                 /* decoded body bytes fed so far (chunk framing excluded) */
    bool has_cl, chunked;
    bool keep_alive;                   /* llhttp_should_keep_alive after the head */
    bool upgrade;                      /* Connection: upgrade + Upgrade (or 101) */
    bool expect_continue;              /* Expect: 100-continue */
    bool no_body;                      /* message complete with the head */
    bool complete;                     /* message complete (head or body feed) */
    bool want_eof;                     /* response body delimited by close */
    bool head_response;                /* response to HEAD: no body whatever it says */
    /* internal state of the head parse */
    bool fresh, headers_done, bad;   /* fresh: a name awaits its value */
    int err;                           /* enum h1_status of a callback-detected error */
    struct evbuffer *body_sink;        /* non-NULL: h1_body_feed copies decoded body here */
    struct h1_hdr *heap;               /* H1_MAX_HEADERS entries once needed, kept for reuse */
    struct h1_hdr inline_hdrs[H1_INLINE_HEADERS];
};

/* frees what a message allocated (a spilled header array); the message stays usable */
void h1_msg_free(struct h1_msg *m);

/*
 * Looks for the end of a head in b, scanning from sc (zeroed for a new head,
 * kept between calls so a slow client costs O(bytes)). Returns the head length including
 * the blank line, 0 when not complete yet, or an H1_E* (bare LF line ends,
 * which HTTP/1.1 does not allow and which smuggle, are H1_E400; a head that
 * cannot end within max bytes is H1_E431).
 */
struct h1_scan {
    size_t off;                        /* bytes already scanned */
    uint8_t st;                        /* line-end state machine */
};
long h1_head_len(struct evbuffer *b, struct h1_scan *sc, size_t max);

/*
 * Parses a request head (p[0..n) is exactly the head with its blank line).
 * Rejects everything ambiguous: CL with TE, duplicate/invalid CL, TE other
 * than a final chunked (and any TE on HTTP/1.0), control characters,
 * obs-fold, several or missing (1.1) Host, invalid Host, h2c and HTTP/2
 * prefaces, CONNECT (H1_E405). Returns H1_OK or an H1_E*.
 */
int h1_parse_request(struct h1_msg *m, const char *p, size_t n);

/* parses a response head; head_req: the request was HEAD (no body). H1_OK or H1_E502 */
int h1_parse_response(struct h1_msg *m, const char *p, size_t n, bool head_req);

/*
 * Feeds body bytes of the message whose head was parsed last. Sets *used to
 * the bytes that belong to this message. Returns 1 when the message is
 * complete (the rest of p belongs to the next one), 0 when more is needed,
 * H1_E400 on invalid framing (bad chunk size, ...).
 */
int h1_body_feed(struct h1_msg *m, const char *p, size_t n, size_t *used);
/* the peer closed: 1 if that completes an EOF-delimited body, else H1_E400 */
int h1_body_eof(struct h1_msg *m);

/* the value of the first header of `kind`, STR_NULL if absent */
struct str h1_get(const struct h1_msg *m, enum h1_hdr_kind kind);
/* case-insensitive lookup by name, STR_NULL if absent */
struct str h1_get_name(const struct h1_msg *m, struct str name);
/* true when the comma-separated list v contains token tok (case-insensitive) */
bool h1_list_has(struct str v, const char *tok);

/* true when h is an RFC 3986 uri-host with an optional non-empty numeric port */
bool h1_host_valid(struct str h);

/*
 * Normalises an origin-form path for routing and forwarding: drops the
 * fragment, decodes %XX only for unreserved characters (and upper-cases the
 * hex of the others), merges slashes, removes dot segments. The query (from
 * '?') is copied unchanged after the path. out needs n + 1 bytes at most.
 * Returns the output length, or <0 on invalid percent-encoding or a
 * path not starting with '/'. *pathlen gets the length without the query.
 */
long h1_normalize(const char *in, size_t n, char *out, size_t cap, size_t *pathlen);

/*
 * Splits an absolute-form target "http://authority/path?q" into authority
 * and the origin-form rest ("/" if empty). false if not absolute-form or
 * malformed (userinfo, bad scheme).
 */
bool h1_split_absolute(struct str target, struct str *authority, struct str *rest);

/* reason phrase for our own responses */
const char *h1_reason(unsigned status);

#endif
