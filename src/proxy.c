/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proxy (px_): the request state machine (Varnish cache_req_fsm.c, HAProxy
 * stream.c). The flow of one request (style.md 3.2):
 *
 *  lsn accept (W) -> conn.c (+ TLS via tls_new_server_ssl(w->snap->tls))
 *   -> conn.c: head complete -> px_start(): copy the head into the request,
 *      h1_parse_request() (400/405/417/431 + close on anything ambiguous)
 *   -> take a snapshot ref (held until px_finish, so reloads never pull the
 *      routes from under a request)
 *   -> target: origin-form normalised (h1_normalize), absolute-form routed
 *      by its authority (must agree with Host)
 *   -> route_match(host, normalised path) or the default backend, else 404
 *   -> TLS listener: Host not covered by the connection's certificate -> 421
 *      plain listener and route.ssl_redirect -> 308 https://host/target
 *   -> rewrite-target (ingress-nginx): the forwarded path is the target with
 *      $0..$9 from the route regex's groups (route_match_caps), query kept
 *      by nginx's rules; built in place in r->ushead, nothing allocated
 *      beyond that buffer's growth, and skipped entirely without a target
 *   -> backend NULL or no ready endpoint -> 503 + Retry-After
 *   -> np_allow() -> 403
 *   -> Content-Length over proxy-body-size (route) or spec.limits.maxBodySize
 *      -> 413 (chunked bodies: decoded bytes counted as they stream)
 *   -> rewritten head built once into r->ushead (hop-by-hop removed,
 *      X-Forwarded-*, X-Real-IP, X-Request-ID), Expect answered here (100)
 *   -> lb_pick() (skips down/ejected/tried endpoints) -> ups_get() (pooled or
 *      fresh connect) -> head written with one evbuffer_add
 *   -> request body streamed (h1_body_feed validates, bytes move raw with
 *      evbuffer_remove_buffer, watermarks pause the client)
 *   -> response head parsed (invalid -> 502, read timeout -> 504), rewritten,
 *      body streamed back the same way; 101 -> raw tunnel both ways
 *   -> failures before any response byte: lb_done(CONNECT_FAIL/RESET/
 *      TIMEOUT), retried on another endpoint as the backend's retry-on says
 *      (default: connect failures and resets), within the retry count;
 *      timeouts and 5xx retries also spend the retry budget. Resets, read
 *      timeouts and 5xx are retried only for idempotent requests whose body
 *      was not consumed; a reused pooled connection found dead is retried
 *      once on a fresh one. Never once response bytes went out.
 *   -> ExternalName Services: no endpoints, the name is resolved (evdns,
 *      per-worker base, 10 s answer cache of up to 8 addresses, IPv4 and
 *      IPv6) and connected to directly; requests rotate over the addresses,
 *      and a failed attempt is retried (same rules and count as above) on
 *      the answer's next address, never one already tried.
 *   -> px_finish(): lb_done, counters, snapshot ref released, upstream back
 *      to its pool, downstream back to keep-alive (or closed).
 *
 * Statuses: no route 404, no ready endpoint 503, every connect failed 502,
 * invalid response 502, upstream timeout 504, malformed 400, head too large
 * 431, body too large 413. Error responses are one small text line with
 * X-Request-ID.
 *
 * Memory: a px_req comes from a per-worker free-list and keeps its buffers
 * (raw head copy, rewritten head) across reuse, so a keep-alive request costs
 * no malloc of ours. Worker thread only.
 */
#include "ingressd/proxy.h"

#include <event2/buffer.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ingressd/conn.h"
#include "ingressd/log.h"
#include "ingressd/np.h"
#include "ingressd/route.h"
#include "ingressd/snap.h"
#include "ingressd/tls.h"
#include "ingressd/upstream.h"
#include "ingressd/wrk.h"

/* request objects kept for reuse per worker: a loop turn at 1,000 connections
 * ends hundreds of requests and starts as many, and a fresh one is a 3 KB
 * calloc plus its buffers' reallocs (7% of the CPU at wrk -c 1000 with 256) */
#define PX_FREE_MAX  1024
#define PX_HIGH_WM   (256 * 1024)       /* pause the reading side above this */
#define RESP_HEAD_MAX (64 * 1024)

static void px_connect(struct px_req *r);
static void px_finish(struct px_req *r);
static void pump_req(struct px_req *r);
static void pump_resp(struct px_req *r);
static void sp_pipes_free(struct wrk *w);

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline const struct snap_timeouts *TO(const struct px_req *r) { return &r->snap->cfg.timeouts; }


/* ---- small string building (bounded; never overflows, reports it) ---- */

struct sb {
    char *p;
    size_t n, cap;
    bool over;
};

static inline void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
#define SB_LIT(b, s) sb_put((b), (s), sizeof(s) - 1)
static inline void sb_str(struct sb *b, struct str s) { sb_put(b, s.p, s.n); }
static inline void sb_cstr(struct sb *b, const char *s) { sb_put(b, s, strlen(s)); }

static inline void sb_hdr(struct sb *b, const struct h1_hdr *h)
{
    sb_str(b, h->name);
    SB_LIT(b, ": ");
    sb_str(b, h->value);
    SB_LIT(b, "\r\n");
}

/* hop-by-hop in both directions: the fixed set, plus what Connection names.
 * Upgrade is decided by the caller (kept only when tunnelling). */
static inline bool px_hdr_is_hop(const struct h1_hdr *h)
{
    switch (h->kind) {
    case H1H_CONNECTION:
    case H1H_KEEP_ALIVE:
    case H1H_PROXY_CONNECTION:
    case H1H_TE:
    case H1H_TRAILER:
        return true;
    case H1H_UPGRADE:
        return false;
    default:
        return h->hop;
    }
}

static void sb_u64(struct sb *b, uint64_t v)
{
    char t[24];
    int i = 24;
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_put(b, t + i, (size_t)(24 - i));
}

static bool grow(char **p, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    char *q = realloc(*p, n);
    if (!q)
        return false;
    *p = q;
    *cap = (uint32_t)n;
    return true;
}

/* ---- request objects ---- */

static struct px_req *req_get(struct wrk *w)
{
    struct px_req *r = w->req_free;
    if (r) {
        w->req_free = r->next_free;
        w->nreq_free--;
    } else {
        r = calloc(1, sizeof(*r));
        if (!r)
            return NULL;
    }
    /* reset everything before the parsed messages; keep the buffers */
    char *ush = r->ushead;
    uint32_t ushcap = r->usheadcap;
    char *raw = r->raw;
    uint32_t rawcap = r->rawcap;
    memset(r, 0, offsetof(struct px_req, req));
    r->ushead = ush;
    r->usheadcap = ushcap;
    r->raw = raw;
    r->rawcap = rawcap;
    r->usheadlen = 0;
    r->reqidlen = 0;
    r->reqid_from_client = r->head_method = r->idempotent = r->client_keepalive = false;
    r->client_10 = r->upgrade = r->req_done = r->body_started = r->resp_started = false;
    r->resp_done = r->close_after = r->dechunk = r->sent_100 = r->retry_begun = false;
    r->ds_paused = r->us_paused = r->fresh_retry = false;
    r->attempts = 0;
    r->status = 0;
    r->body_bytes = 0;
    r->last_res = LB_OK;
    r->req.body_sink = NULL;
    r->resp.body_sink = NULL;
    r->magic = PX_MAGIC;
    r->w = w;
    return r;
}

static void req_put(struct wrk *w, struct px_req *r)
{
    r->magic = 0;
    if (w->nreq_free < PX_FREE_MAX && r->usheadcap <= 256 * 1024 && r->rawcap <= 256 * 1024) {
        r->next_free = w->req_free;
        w->req_free = r;
        w->nreq_free++;
    } else {
        h1_msg_free(&r->req);
        h1_msg_free(&r->resp);
        free(r->ushead);
        free(r->raw);
        free(r);
    }
}

void px_free_all(struct wrk *w)
{
    sp_pipes_free(w);
    struct px_req *r;
    while ((r = w->req_free)) {
        w->req_free = r->next_free;
        h1_msg_free(&r->req);
        h1_msg_free(&r->resp);
        free(r->ushead);
        free(r->raw);
        free(r);
    }
    w->nreq_free = 0;
}

/* ---- request ids ---- */

static void gen_reqid(struct wrk *w, char *out, uint8_t *len)
{
    static const char hx[] = "0123456789abcdef";
    uint64_t seq = ++w->reqid_seq;
    memcpy(out, w->reqid_prefix, 16);
    for (int i = 0; i < 16; i++)
        out[16 + i] = hx[(seq >> (60 - 4 * i)) & 15];
    out[32] = 0;
    *len = 32;
}

static bool reqid_ok(struct str v)
{
    if (v.n == 0 || v.n > 63)
        return false;
    for (size_t i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* ---- our own responses ---- */

static void count_status(struct wrk *w, unsigned status)
{
    unsigned k = status / 100;
    WRK_INC(w, responses_by_class[k < 6 ? k : 0]);
}

/* writes a small complete response to the client */
static void write_simple(struct conn *c, unsigned status, const char *reqid, size_t reqidlen,
                         bool close, const char *extra, size_t extralen)
{
    char buf[2048];
    struct sb b = { buf, 0, sizeof(buf), false };
    const char *reason = h1_reason(status);
    size_t blen = 3 + 1 + strlen(reason) + 1;
    SB_LIT(&b, "HTTP/1.1 ");
    sb_u64(&b, status);
    SB_LIT(&b, " ");
    sb_cstr(&b, reason);
    SB_LIT(&b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    sb_u64(&b, blen);
    SB_LIT(&b, "\r\nX-Request-ID: ");
    sb_put(&b, reqid, reqidlen);
    SB_LIT(&b, "\r\n");
    if (extra)
        sb_put(&b, extra, extralen);
    if (close)
        SB_LIT(&b, "Connection: close\r\n");
    SB_LIT(&b, "\r\n");
    sb_u64(&b, status);
    SB_LIT(&b, " ");
    sb_cstr(&b, reason);
    SB_LIT(&b, "\n");
    if (b.over)
        return;
    bufferevent_write(c->bev, buf, b.n);
    conn_flush(c);
    count_status(c->w, status);
}

void px_reject(struct conn *c, unsigned status)
{
    char id[40];
    uint8_t idn;
    gen_reqid(c->w, id, &idn);
    write_simple(c, status, id, idn, true, NULL, 0);
    conn_close_after_flush(c);
}

/* answers status for r (no response byte may have gone out), then ends r */
static void px_error(struct px_req *r, unsigned status, const char *extra, size_t extralen)
{
    if (r->resp_started) {
        px_abort(r);
        return;
    }
    /* unread request body, framing doubt or no keep-alive: close afterwards */
    bool close = r->close_after || !r->client_keepalive || !r->req_done || status == 400 ||
                 r->w->draining;
    r->close_after = close;
    write_simple(r->ds, status, r->reqid, r->reqidlen, close, extra, extralen);
    r->status = status;
    r->resp_started = r->resp_done = true;
    px_finish(r);
}

/* ---- rewrite-target ---- */

/*
 * Expands a route's rewrite-target the way ingress-nginx's generated
 * `rewrite "(?i)<path>" <target> break;` does: the WHOLE path is replaced by
 * the target (since ingress-nginx 0.22 nothing of the request path survives
 * unless a capture group carries it), $0..$9 taken from the groups of the
 * route's regex (a non-regex rule has no groups: $n are empty, as for a
 * literal nginx pattern). The query follows nginx's argument rules: "?q"
 * after a target without '?', "&q" after one with a query of its own,
 * nothing when the target ends in '?'. Bytes of the target that cannot
 * appear in a request line are %-encoded; captures come from the validated,
 * normalised path and are copied as they are. A result not starting with
 * '/' gets one (the loader only accepts targets starting with '/', so an
 * absolute URL, which nginx would answer with a 302, never gets here).
 *
 * Writes min(total, cap) bytes to out (out may be NULL with cap 0, to size);
 * returns the total length and the length without the query in *plen.
 */
struct rw_out {
    char *p;
    size_t n, cap;
    bool lead;                         /* a '/' is due before the first byte */
};

static void rw_put(struct rw_out *o, const char *s, size_t n)
{
    if (!n)
        return;
    if (o->lead) {
        o->lead = false;
        if (s[0] != '/')
            rw_put(o, "/", 1);
    }
    if (o->n + n <= o->cap)
        memcpy(o->p + o->n, s, n);
    o->n += n;
}

static size_t rw_expand(const char *t, size_t tn, const char *path, const struct route_caps *caps,
                        const char *q, size_t qn, char *out, size_t cap, size_t *plen)
{
    static const char hx[] = "0123456789ABCDEF";
    struct rw_out o = { out, 0, cap, true };
    size_t pl = SIZE_MAX;
    bool own_query = false, no_args = false;
    for (size_t i = 0; i < tn; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == '$' && i + 1 < tn && t[i + 1] >= '0' && t[i + 1] <= '9') {
            int g = t[++i] - '0';
            if (g < caps->n)
                rw_put(&o, path + caps->ov[2 * g], caps->ov[2 * g + 1] - caps->ov[2 * g]);
            continue;
        }
        if (ch == '?' && pl == SIZE_MAX) {
            if (i + 1 == tn) {
                no_args = true; /* nginx: a final '?' drops the request's arguments */
                break;
            }
            if (o.lead)
                rw_put(&o, "/", 1);
            pl = o.n;
            own_query = true;
        }
        if (ch <= 0x20 || ch >= 0x7f || ch == '#') { /* # would end the target */
            char e[3] = { '%', hx[ch >> 4], hx[ch & 15] };
            rw_put(&o, e, 3);
        } else {
            rw_put(&o, (const char *)&ch, 1);
        }
    }
    if (o.lead)
        rw_put(&o, "/", 1); /* an empty result is "/" */
    if (pl == SIZE_MAX)
        pl = o.n;
    if (!no_args && qn > 1) {
        if (own_query) {
            rw_put(&o, "&", 1);
            rw_put(&o, q + 1, qn - 1);
        } else {
            rw_put(&o, q, qn);
        }
    }
    *plen = pl;
    return o.n;
}

/* ---- start ---- */

static bool is_idempotent(uint8_t m)
{
    return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS || m == HTTP_TRACE || m == HTTP_PUT ||
           m == HTTP_DELETE;
}

static struct str host_only(struct str h)
{
    if (!h.n)
        return h;
    if (h.p[0] == '[') {
        const char *e = memchr(h.p, ']', h.n);
        return e ? str_make(h.p, (size_t)(e - h.p) + 1) : h;
    }
    const char *colon = memchr(h.p, ':', h.n);
    return colon ? str_make(h.p, (size_t)(colon - h.p)) : h;
}

static struct str lb_header(void *ctx, struct str name)
{
    struct px_req *r = ctx;
    return h1_get_name(&r->req, name);
}

static uint16_t sa_port(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

void px_start(struct conn *c, long head_len)
{
    struct wrk *w = c->w;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t hl = (size_t)head_len;
    struct px_req *r = req_get(w);
    if (!r || !grow(&r->raw, &r->rawcap, hl)) {
        if (r)
            req_put(w, r);
        px_reject(c, 500);
        return;
    }
    r->ds = c;
    c->req = r;
    r->snap = snap_ref(w->snap);
    r->t_start_us = now_us();
    WRK_INC(w, requests);
    WRK_INC(w, inflight);
    lb_request_begin();

    /* the head is copied out so that its views outlive the input buffer */
    evbuffer_remove(in, r->raw, hl);
    WRK_ADD(w, bytes_in, hl);
    int rc = h1_parse_request(&r->req, r->raw, hl);
    struct h1_msg *m = &r->req;
    r->client_10 = m->minor == 0;
    r->client_keepalive = rc == H1_OK && m->keep_alive;
    r->req_done = rc == H1_OK && m->no_body;
    if (m->reqid_idx >= 0 && reqid_ok(m->hdrs[m->reqid_idx].value)) {
        struct str v = m->hdrs[m->reqid_idx].value;
        memcpy(r->reqid, v.p, v.n);
        r->reqidlen = (uint8_t)v.n;
        r->reqid_from_client = true;
    } else {
        gen_reqid(w, r->reqid, &r->reqidlen);
    }
    if (rc != H1_OK) {
        r->close_after = true;
        px_error(r, (unsigned)-rc, NULL, 0);
        return;
    }
    r->head_method = m->method_id == HTTP_HEAD;
    r->idempotent = is_idempotent(m->method_id);
    r->upgrade = m->upgrade;

    /* target -> host + normalised origin-form */
    struct str host = m->host_idx >= 0 ? m->hdrs[m->host_idx].value : STR_NULL;
    struct str target = m->target, authority;
    bool asterisk = false;
    if (target.p[0] != '/') {
        if (h1_split_absolute(target, &authority, &target)) {
            if (!h1_host_valid(authority) || (host.p && !str_ieq(authority, host))) {
                px_error(r, 400, NULL, 0);
                return;
            }
            if (!host.p)
                host = authority;
        } else if (target.n == 1 && target.p[0] == '*' && m->method_id == HTTP_OPTIONS) {
            asterisk = true;
        } else {
            px_error(r, 400, NULL, 0);
            return;
        }
    }
    size_t extra = 512 + (size_t)c->ipn * 2 + host.n + r->reqidlen;
    if (!grow(&r->ushead, &r->usheadcap, hl + target.n + extra + 64)) {
        px_error(r, 500, NULL, 0);
        return;
    }
    struct sb b = { r->ushead, 0, r->usheadcap, false };
    sb_str(&b, m->method);
    SB_LIT(&b, " ");
    const char *path;
    size_t pathlen;
    if (asterisk) {
        SB_LIT(&b, "*");
        path = "/";
        pathlen = 1;
    } else {
        long tn = h1_normalize(target.p, target.n, b.p + b.n, b.cap - b.n, &pathlen);
        if (tn < 0) {
            px_error(r, 400, NULL, 0);
            return;
        }
        path = b.p + b.n;
        b.n += (size_t)tn;
    }
    size_t tstart = (size_t)(path - b.p), tlen = b.n - tstart;

    /* route */
    const struct snap *s = r->snap;
    struct route_caps caps;
    caps.n = 0;
    const struct snap_route *rt =
        s->routes ? route_match_caps(s->routes, host.p ? host.p : "", host.n, path, pathlen, &caps)
                  : NULL;
    if (!rt)
        rt = s->default_route;
    if (!rt) {
        px_error(r, 404, NULL, 0);
        return;
    }
    r->route = rt;
    struct str hname = host_only(host);
    if (c->tls && c->ssl && hname.n && !tls_ssl_covers_host(c->ssl, hname.p, hname.n)) {
        px_error(r, 421, NULL, 0);
        return;
    }
    if (!c->tls && rt->ssl_redirect && hname.n) {
        char loc[4096];
        struct sb lb = { loc, 0, sizeof(loc), false };
        SB_LIT(&lb, "Location: https://");
        sb_str(&lb, hname);
        sb_put(&lb, b.p + tstart, tlen);
        SB_LIT(&lb, "\r\n");
        if (!lb.over) {
            px_error(r, 308, loc, lb.n);
            return;
        }
    }
    /* upstream-hash-by path hashes the request's path ($request_uri), not a rewritten one */
    struct str hash_path = STR_NULL;
    if (rt->rewrite_len && !asterisk) {
        /* the only per-request work of a rewrite; routes without one skip all of it */
        hash_path = target;
        for (size_t i = 0; i < target.n; i++)
            if (target.p[i] == '?' || target.p[i] == '#') {
                hash_path.n = i;
                break;
            }
        const char *q = b.p + tstart + pathlen;
        size_t qn = tlen - pathlen, plen;
        size_t need =
            rw_expand(rt->rewrite_target, rt->rewrite_len, path, &caps, q, qn, NULL, 0, &plen);
        if (!grow(&r->ushead, &r->usheadcap, hl + target.n + extra + 64 + need)) {
            px_error(r, 500, NULL, 0);
            return;
        }
        b.p = r->ushead;
        b.cap = r->usheadcap;
        path = b.p + tstart;
        q = path + pathlen;
        /* expand behind the original target, then move it into its place */
        rw_expand(rt->rewrite_target, rt->rewrite_len, path, &caps, q, qn, b.p + b.n, need, &plen);
        memmove(b.p + tstart, b.p + b.n, need);
        b.n = tstart + need;
        tlen = need;
        pathlen = plen;
    }
    const struct snap_backend *be = rt->backend;
    if (!be || (be->nready == 0 && !(be->external_name && be->neps == 0))) {
        static const char ra[] = "Retry-After: 1\r\n";
        px_error(r, 503, ra, sizeof(ra) - 1);
        return;
    }
    r->be = be;
    if (s->netpol && be->neps &&
        !np_allow(s->netpol, be, (const struct sockaddr *)&c->peer, sa_port(&be->eps[0].sa))) {
        px_error(r, 403, NULL, 0);
        return;
    }
    r->max_body = rt->has_max_body_size ? rt->max_body_size : s->cfg.max_body_size;
    if (m->has_cl && r->max_body && m->content_length > r->max_body) {
        px_error(r, 413, NULL, 0);
        return;
    }

    /* the rewritten head: one buffer, written with one add per attempt */
    SB_LIT(&b, " HTTP/1.1\r\n");
    bool has_xff = false;
    for (uint32_t i = 0; i < m->nhdrs; i++) {
        const struct h1_hdr *h = &m->hdrs[i];
        if (px_hdr_is_hop(h))
            continue;
        switch (h->kind) {
        case H1H_EXPECT:
        case H1H_XFPROTO:
        case H1H_XFHOST:
        case H1H_XFPORT:
        case H1H_XREAL_IP:
        case H1H_HTTP2_SETTINGS:
            continue;
        case H1H_UPGRADE:
            if (!r->upgrade)
                continue;
            break;
        case H1H_XFF:
            has_xff = true; /* all of them are joined below, in order */
            continue;
        case H1H_XREQUEST_ID:
            if (!r->reqid_from_client)
                continue;
            break;
        default:
            break;
        }
        sb_hdr(&b, h);
    }
    if (m->host_idx < 0 && host.p) {
        SB_LIT(&b, "Host: ");
        sb_str(&b, host);
        SB_LIT(&b, "\r\n");
    }
    SB_LIT(&b, "X-Forwarded-For: ");
    if (has_xff) {
        for (uint32_t i = 0; i < m->nhdrs; i++) {
            if (m->hdrs[i].kind == H1H_XFF && m->hdrs[i].value.n) {
                sb_str(&b, m->hdrs[i].value);
                SB_LIT(&b, ", ");
            }
        }
    }
    sb_put(&b, c->ip, c->ipn);
    SB_LIT(&b, "\r\nX-Real-IP: ");
    sb_put(&b, c->ip, c->ipn);
    if (c->tls)
        SB_LIT(&b, "\r\nX-Forwarded-Proto: https");
    else
        SB_LIT(&b, "\r\nX-Forwarded-Proto: http");
    if (host.n) {
        SB_LIT(&b, "\r\nX-Forwarded-Host: ");
        sb_str(&b, host);
    }
    SB_LIT(&b, "\r\nX-Forwarded-Port: ");
    sb_u64(&b, c->port);
    if (!r->reqid_from_client) {
        SB_LIT(&b, "\r\nX-Request-ID: ");
        sb_put(&b, r->reqid, r->reqidlen);
    }
    if (r->upgrade)
        SB_LIT(&b, "\r\nConnection: upgrade");
    SB_LIT(&b, "\r\n\r\n");
    if (b.over) {
        px_error(r, 431, NULL, 0);
        return;
    }
    r->usheadlen = (uint32_t)b.n;
    r->no_host = !host.p;

    r->lbr.client = (const struct sockaddr *)&c->peer;
    r->lbr.path = hash_path.p ? hash_path : str_make(r->ushead + tstart, pathlen);
    r->lbr.get_header = lb_header;
    r->lbr.ctx = r;

    if (m->expect_continue && !r->req_done) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        bufferevent_write(c->bev, cont, sizeof(cont) - 1);
        conn_flush(c);
        r->sent_100 = true;
    }
    px_connect(r);
}

/* ---- upstream attempts ---- */

/* the backend's count is already resolved (annotation, else spec.retries): 0 means none */
static uint32_t retries_allowed(const struct px_req *r)
{
    return r->be->retries;
}

static void report(struct px_req *r, enum lb_result res)
{
    if (!r->ep)
        return;
    if (r->ep == &r->ext_ep) { /* ExternalName: no endpoint state to feed */
        r->ep = NULL;
        return;
    }
    lb_done(r->be, r->ep, res, now_us() - r->t_try_us);
    r->ep = NULL;
}

static void final_failure(struct px_req *r)
{
    if (r->last_res == LB_TIMEOUT)
        px_error(r, 504, NULL, 0);
    else
        px_error(r, 502, NULL, 0);
}

static void attach(struct px_req *r, bool fresh)
{
    struct ups_conn *u = ups_get(r->w, r->be, r->ep, r, fresh);
    if (!u) {
        WRK_INC(r->w, upstream_connect_errors);
        report(r, LB_CONNECT_FAIL);
        r->last_res = LB_CONNECT_FAIL;
        /* no socket at all: resources, not the pod; try the next one */
        px_connect(r);
        return;
    }
    r->us = u;
    struct evbuffer *out = bufferevent_get_output(u->bev);
    if (r->no_host && r->ep->addr) {
        /* HTTP/1.0 without Host: we speak 1.1 upstream, which needs one */
        evbuffer_add(out, r->ushead, r->usheadlen - 2);
        evbuffer_add_printf(out, "Host: %s\r\n\r\n", r->ep->addr);
    } else {
        evbuffer_add(out, r->ushead, r->usheadlen);
    }
    if (u->connected) {
        ups_flush(u);
        r->state = PX_WAIT_RESP;
        if (!r->req_done)
            pump_req(r);
        else {
            ups_read_timeout(u, TO(r)->upstream_read ? TO(r)->upstream_read : 60000);
        }
    } else {
        r->state = PX_CONNECTING;
    }
}

/* ---- ExternalName: the Service names a DNS name, resolved per request ---- */

/*
 * A small per-worker cache of ExternalName answers (evdns has none), so a
 * busy ExternalName route does not resolve on every request. Entries live
 * EXT_TTL_MS; the cache is tiny and searched linearly.
 *
 * An answer keeps up to PX_EXT_MAX distinct addresses (IPv4 and IPv6, in the
 * resolver's order), as Envoy's STRICT_DNS clusters and nginx's resolver use
 * all of them. Each request copies the answer and starts at the entry's
 * rotating cursor, so requests spread over the addresses; a failed attempt
 * goes on to the answer's next address (px_connect decides whether it may:
 * the same retry-on, retry count and budget as endpoints), never back to one
 * already tried. There is no health state for these addresses: a dead one
 * costs the requests that start on it one failed attempt each.
 */
#define EXT_CACHE 16
#define EXT_TTL_MS 10000

struct ext_entry {
    char name[128];
    uint16_t port;
    uint8_t n;                         /* addresses in a[] */
    uint8_t next;                      /* rotation: where the next request starts */
    union px_addr a[PX_EXT_MAX];
    uint64_t expires_us;
};

static _Thread_local struct ext_entry ext_cache[EXT_CACHE];

static struct ext_entry *ext_find(const char *name, uint16_t port, uint64_t now)
{
    for (int i = 0; i < EXT_CACHE; i++) {
        struct ext_entry *e = &ext_cache[i];
        if (e->expires_us > now && e->port == port && !strcmp(e->name, name))
            return e;
    }
    return NULL;
}

/* stores an answer (n >= 1); returns its entry, or NULL when the name does not fit */
static struct ext_entry *ext_store(const char *name, uint16_t port, const union px_addr *a,
                                   unsigned n)
{
    if (strlen(name) >= sizeof(ext_cache[0].name))
        return NULL;
    struct ext_entry *victim = &ext_cache[0];
    bool same = false;
    for (int i = 0; i < EXT_CACHE; i++) {
        if (ext_cache[i].expires_us < victim->expires_us)
            victim = &ext_cache[i];
        if (ext_cache[i].port == port && !strcmp(ext_cache[i].name, name)) {
            victim = &ext_cache[i];
            same = true;
            break;
        }
    }
    /* a refreshed answer keeps the rotation going rather than restarting at its first address */
    uint8_t next = same ? victim->next : 0;
    snprintf(victim->name, sizeof(victim->name), "%s", name);
    victim->port = port;
    memcpy(victim->a, a, n * sizeof(a[0]));
    victim->n = (uint8_t)n;
    victim->next = (uint8_t)(next % n);
    victim->expires_us = now_us() + (uint64_t)EXT_TTL_MS * 1000;
    return victim;
}

/* where the next request on this answer starts; moves the cursor on */
static uint8_t ext_rotate(struct ext_entry *e)
{
    uint8_t first = e->next;
    e->next = (uint8_t)((first + 1u) % e->n);
    return first;
}

/*
 * Copies up to PX_EXT_MAX distinct IPv4/IPv6 addresses of an answer into
 * out[], in the answer's order; other families and short addresses are
 * skipped, and duplicates too (they would make a retry hit the same address
 * twice). Returns how many. evdns hands a struct evutil_addrinfo, which is
 * the system's struct addrinfo wherever that exists.
 */
unsigned px_ext_collect(const struct addrinfo *ai, union px_addr *out)
{
    unsigned n = 0;
    for (; ai && n < PX_EXT_MAX; ai = ai->ai_next) {
        if (!ai->ai_addr)
            continue;
        size_t len = ai->ai_addr->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
                     : ai->ai_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                          : 0;
        if (!len || ai->ai_addrlen < len)
            continue;
        union px_addr a;
        memset(&a, 0, sizeof(a));
        memcpy(&a, ai->ai_addr, len);
        bool dup = false;
        for (unsigned i = 0; i < n && !dup; i++)
            dup = !memcmp(&out[i], &a, sizeof(a));
        if (!dup)
            out[n++] = a;
    }
    return n;
}

static uint16_t ext_port(const struct snap_backend *be)
{
    return be->external_port ? be->external_port : 80;
}

static bool is_ext(const struct px_req *r)
{
    return r->be->external_name && r->be->neps == 0;
}

/* one attempt on the next untried address of the request's answer (caller checked one is left) */
static void ext_try(struct px_req *r)
{
    const union px_addr *a = &r->ext_addr[(r->ext_first + r->ext_tried) % r->ext_n];
    r->ext_tried++;
    socklen_t len = a->sa.sa_family == AF_INET6 ? sizeof(a->in6) : sizeof(a->in);
    memcpy(&r->ext_ep.sa, a, len);
    r->ext_ep.salen = len;
    r->ep = &r->ext_ep;
    r->attempts++;
    r->t_try_us = now_us();
    attach(r, false);
}

static void ext_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
    if (err == EVUTIL_EAI_CANCEL) {
        if (ai)
            evutil_freeaddrinfo(ai);
        return; /* the request went away (px_abort) */
    }
    struct px_req *r = arg;
    r->dnsreq = NULL;
    if (err || !ai) {
        log_warn("ExternalName %s: %s", r->be->external_name,
                 err ? evutil_gai_strerror(err) : "no address");
        if (ai)
            evutil_freeaddrinfo(ai);
        r->last_res = LB_CONNECT_FAIL;
        px_error(r, 502, NULL, 0);
        return;
    }
    unsigned n = px_ext_collect(ai, r->ext_addr);
    evutil_freeaddrinfo(ai);
    if (!n) {
        log_warn("ExternalName %s: no IPv4 or IPv6 address", r->be->external_name);
        r->last_res = LB_CONNECT_FAIL;
        px_error(r, 502, NULL, 0);
        return;
    }
    r->ext_n = (uint8_t)n;
    struct ext_entry *e = ext_store(r->be->external_name, ext_port(r->be), r->ext_addr, n);
    r->ext_first = e ? ext_rotate(e) : 0;
    ext_try(r);
}

/* first attempt: the cached answer, else resolve; a retry: the answer's next address */
static void ext_connect(struct px_req *r)
{
    const struct snap_backend *be = r->be;
    struct wrk *w = r->w;
    if (r->attempts > 0) {
        ext_try(r); /* px_connect checked that one is left */
        return;
    }
    memset(&r->ext_ep, 0, sizeof(r->ext_ep));
    r->ext_ep.addr = be->external_name;
    r->ext_ep.ready = true;
    r->ext_n = r->ext_first = r->ext_tried = 0;
    struct ext_entry *e = ext_find(be->external_name, ext_port(be), now_us());
    if (e) {
        memcpy(r->ext_addr, e->a, e->n * sizeof(e->a[0]));
        r->ext_n = e->n;
        r->ext_first = ext_rotate(e);
        ext_try(r);
        return;
    }
    if (!w->dns)
        w->dns = evdns_base_new(w->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!w->dns) {
        px_error(r, 502, NULL, 0);
        return;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", ext_port(be));
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    r->state = PX_RESOLVING;
    /* may answer at once (literal address, /etc/hosts): ext_resolved runs first */
    struct evdns_getaddrinfo_request *q =
        evdns_getaddrinfo(w->dns, be->external_name, port, &hints, ext_resolved, r);
    if (q && r->state == PX_RESOLVING)
        r->dnsreq = q;
}

/* is there a target this request has not tried yet (an endpoint, or an address of the answer) */
static bool untried_left(const struct px_req *r)
{
    if (is_ext(r))
        return r->ext_tried < r->ext_n;
    return r->lbr.ntried < r->be->nready;
}

static void px_connect(struct px_req *r)
{
    bool ext = is_ext(r);
    if (r->attempts > retries_allowed(r) ||
        (ext ? r->attempts > 0 && r->ext_tried >= r->ext_n : r->lbr.ntried >= LB_MAX_TRIED)) {
        final_failure(r); /* for ExternalName: every address of the answer failed */
        return;
    }
    if (r->attempts > 0) {
        /*
         * The retry budget exists against retry storms on pods that are
         * slow or failing (timeouts, 5xx). A connect failure or a reset
         * before any response byte means the pod is gone or going: a pod
         * that dies takes all its in-flight requests with it at once, and
         * every one of them must land elsewhere, so those retries (still
         * bounded by the retry count) do not spend the budget.
         */
        if (!r->retry_begun && r->last_res != LB_CONNECT_FAIL && r->last_res != LB_RESET) {
            if (!lb_retry_begin(r->snap->cfg.retry_budget_pct)) {
                final_failure(r);
                return;
            }
            r->retry_begun = true;
        }
        WRK_INC(r->w, retries);
    }
    if (ext) {
        ext_connect(r);
        return;
    }
    const struct snap_endpoint *ep = lb_pick(r->be, &r->lbr, r->snap->cfg.panic_threshold_pct);
    if (!ep) {
        if (r->attempts == 0) {
            static const char ra[] = "Retry-After: 1\r\n";
            px_error(r, 503, ra, sizeof(ra) - 1);
        } else {
            final_failure(r);
        }
        return;
    }
    r->ep = ep;
    r->lbr.tried[r->lbr.ntried++] = ep;
    r->attempts++;
    r->t_try_us = now_us();
    attach(r, false);
}

/* the attempt on r->us failed before any response byte */
static void attempt_failed(struct px_req *r, enum lb_result res, bool connecting)
{
    struct ups_conn *u = r->us;
    bool reused = u && u->reused;
    r->us = NULL;
    ups_close(u);
    r->last_res = res;
    if (res == LB_TIMEOUT)
        WRK_INC(r->w, upstream_timeouts);
    /* the pod never saw a request whose connect failed: any method may go elsewhere */
    bool replayable = !r->body_started && (r->idempotent || connecting);
    /* a pooled connection the pod had closed: once more on a fresh one */
    if (reused && res == LB_RESET && replayable && !r->fresh_retry && r->ep) {
        r->fresh_retry = true;
        attach(r, true);
        return;
    }
    report(r, res);
    uint32_t on = r->be->retry_on;
    bool allowed = connecting ? (on & (RETRY_ON_ERROR | (res == LB_TIMEOUT ? RETRY_ON_TIMEOUT : 0)))
                              : (on & (res == LB_TIMEOUT ? RETRY_ON_TIMEOUT : RETRY_ON_ERROR));
    if (!replayable || !allowed) {
        final_failure(r);
        return;
    }
    px_connect(r);
}

/* ---- request body ---- */

static void pump_req(struct px_req *r)
{
    struct evbuffer *in = bufferevent_get_input(r->ds->bev);
    struct evbuffer *out = bufferevent_get_output(r->us->bev);
    uint64_t max = r->max_body;

    while (!r->req_done && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t used = 0;
        int rc = h1_body_feed(&r->req, v.iov_base, v.iov_len, &used);
        if (rc < 0) {
            r->close_after = true;
            if (r->us) {
                struct ups_conn *u = r->us;
                r->us = NULL;
                ups_close(u); /* the pod saw part of a broken body: never reuse */
            }
            report(r, LB_OK);
            px_error(r, 400, NULL, 0);
            return;
        }
        r->body_bytes += used;
        /* the limit counts the decoded body, as nginx's client_max_body_size (chunk framing is free) */
        if (max && r->req.body_len > max) {
            r->close_after = true;
            struct ups_conn *u = r->us;
            r->us = NULL;
            ups_close(u);
            report(r, LB_OK);
            px_error(r, 413, NULL, 0);
            return;
        }
        if (used) {
            r->body_started = true;
            evbuffer_remove_buffer(in, out, used);
            WRK_ADD(r->w, bytes_in, used);
        }
        if (rc == 1)
            r->req_done = true;
        else if (used < v.iov_len)
            break;
    }
    ups_flush(r->us);
    /* a flush that left this much queued enabled EV_WRITE: px_us_write resumes */
    if (evbuffer_get_length(out) >= PX_HIGH_WM) {
        if (!r->ds_paused) {
            r->ds_paused = true;
            conn_read_enable(r->ds, false);
        }
    } else if (r->ds_paused) {
        r->ds_paused = false;
        if (!r->ds_eof)
            conn_read_enable(r->ds, true);
    }
    if (r->req_done) {
        conn_timer(r->ds, 0);
        ups_read_timeout(r->us, TO(r)->upstream_read ? TO(r)->upstream_read : 60000);
        return;
    }
    if (r->ds_eof && evbuffer_get_length(in) == 0) {
        /* the client ended its input in the middle of the body */
        struct conn *c = r->ds;
        px_abort(r);
        conn_close(c);
        return;
    }
    conn_timer(r->ds, TO(r)->client_body ? TO(r)->client_body : 60000);
}

/* ---- response ---- */

static bool resp_head(struct px_req *r, const char *head, size_t hl)
{
    struct h1_msg *m = &r->resp;
    struct conn *c = r->ds;
    size_t need = hl + 512 + r->reqidlen;
    if (!grow(&r->ushead, &r->usheadcap, need))
        return false;
    bool tunnel = m->status == 101;
    r->dechunk = !tunnel && r->client_10 && m->chunked;
    if (!tunnel && (!r->req_done || m->want_eof || r->dechunk || r->w->draining))
        r->close_after = true;
    if (!r->client_keepalive)
        r->close_after = true;
    struct sb b = { r->ushead, 0, r->usheadcap, false };
    SB_LIT(&b, "HTTP/1.1 ");
    sb_u64(&b, m->status);
    SB_LIT(&b, " ");
    sb_str(&b, m->reason);
    SB_LIT(&b, "\r\n");
    bool has_reqid = false, has_hsts = false;
    for (uint32_t i = 0; i < m->nhdrs; i++) {
        const struct h1_hdr *h = &m->hdrs[i];
        if (px_hdr_is_hop(h))
            continue;
        switch (h->kind) {
        case H1H_UPGRADE:
            if (!tunnel)
                continue;
            break;
        case H1H_TRANSFER_ENCODING:
            if (r->dechunk)
                continue;
            break;
        case H1H_XREQUEST_ID:
            has_reqid = true;
            break;
        default:
            if (h->name.n == 25 && str_ieq_cstr(h->name, "strict-transport-security"))
                has_hsts = true;
            break;
        }
        sb_hdr(&b, h);
    }
    if (!has_reqid) {
        SB_LIT(&b, "X-Request-ID: ");
        sb_put(&b, r->reqid, r->reqidlen);
        SB_LIT(&b, "\r\n");
    }
    const struct snap_tls_conf *tc = &r->snap->cfg.tls;
    if (c->tls && tc->hsts_max_age && !has_hsts) {
        SB_LIT(&b, "Strict-Transport-Security: max-age=");
        sb_u64(&b, tc->hsts_max_age);
        if (tc->hsts_include_subdomains)
            SB_LIT(&b, "; includeSubDomains");
        SB_LIT(&b, "\r\n");
    }
    if (r->lbr.set_cookie && r->be && r->be->affinity_cookie) {
        SB_LIT(&b, "Set-Cookie: ");
        sb_cstr(&b, r->be->affinity_cookie);
        SB_LIT(&b, "=");
        sb_cstr(&b, r->lbr.cookie_value);
        SB_LIT(&b, "; Path=/; HttpOnly\r\n");
    }
    if (tunnel)
        SB_LIT(&b, "Connection: upgrade\r\n");
    else if (r->close_after)
        SB_LIT(&b, "Connection: close\r\n");
    else if (r->client_10)
        SB_LIT(&b, "Connection: keep-alive\r\n");
    SB_LIT(&b, "\r\n");
    if (b.over)
        return false;
    (void)head;
    bufferevent_write(c->bev, b.p, b.n);
    WRK_ADD(r->w, bytes_out, b.n);
    return true;
}

static void enter_tunnel(struct px_req *r)
{
    struct conn *c = r->ds;
    struct ups_conn *u = r->us;
    r->state = PX_TUNNEL;
    c->state = CONN_TUNNEL;
    conn_timer(c, 0);
    uint32_t ms = TO(r)->tunnel_idle ? TO(r)->tunnel_idle : 3600000;
    conn_read_timeout(c, ms);
    ups_read_timeout(u, ms);
    evbuffer_add_buffer(bufferevent_get_output(c->bev), bufferevent_get_input(u->bev));
    evbuffer_add_buffer(bufferevent_get_output(u->bev), bufferevent_get_input(c->bev));
    conn_flush(c);
    ups_flush(u);
    conn_read_enable(c, true);
    ups_read_enable(u, true);
}

static void read_enable(struct px_req *r, struct bufferevent *src, bool on)
{
    if (src == r->ds->bev)
        conn_read_enable(r->ds, on);
    else
        ups_read_enable(r->us, on);
}

static void tunnel_move(struct px_req *r, struct bufferevent *src, struct bufferevent *dst,
                        bool *paused)
{
    struct evbuffer *out = bufferevent_get_output(dst);
    size_t n = evbuffer_get_length(bufferevent_get_input(src));
    evbuffer_add_buffer(out, bufferevent_get_input(src));
    if (src == r->ds->bev) {
        WRK_ADD(r->w, bytes_in, n);
        ups_flush(r->us);
    } else {
        WRK_ADD(r->w, bytes_out, n);
        conn_flush(r->ds);
    }
    if (evbuffer_get_length(out) >= PX_HIGH_WM) {
        if (!*paused) {
            *paused = true;
            read_enable(r, src, false);
        }
    } else if (*paused) {
        *paused = false;
        read_enable(r, src, true);
    }
}

static void read_resp_head(struct px_req *r)
{
    struct ups_conn *u = r->us;
    struct evbuffer *in = bufferevent_get_input(u->bev);
    for (;;) {
        long hl = h1_head_len(in, &u->scan, RESP_HEAD_MAX);
        if (hl == 0)
            return;
        if (hl < 0) {
            ups_close(u);
            r->us = NULL;
            report(r, LB_HTTP_5XX);
            r->close_after = true;
            px_error(r, 502, NULL, 0);
            return;
        }
        const char *head = (const char *)evbuffer_pullup(in, hl);
        if (h1_parse_response(&r->resp, head, (size_t)hl, r->head_method) != H1_OK) {
            ups_close(u);
            r->us = NULL;
            report(r, LB_HTTP_5XX);
            r->close_after = true;
            px_error(r, 502, NULL, 0);
            return;
        }
        unsigned st = r->resp.status;
        memset(&u->scan, 0, sizeof(u->scan));
        if (st >= 100 && st < 200 && st != 101) {
            /* interim responses: ours already said 100, pass the others */
            if (st == 100 && r->sent_100) {
                evbuffer_drain(in, (size_t)hl);
            } else if (!r->client_10) {
                evbuffer_remove_buffer(in, bufferevent_get_output(r->ds->bev), (size_t)hl);
                conn_flush(r->ds);
            } else {
                evbuffer_drain(in, (size_t)hl);
            }
            continue;
        }
        if (st == 101 && !r->upgrade) {
            ups_close(u);
            r->us = NULL;
            report(r, LB_HTTP_5XX);
            px_error(r, 502, NULL, 0);
            return;
        }
        /* 5xx from the pod: another endpoint, when configured and safe */
        uint32_t bit = st == 502 ? RETRY_ON_502 : st == 503 ? RETRY_ON_503 : st == 504 ? RETRY_ON_504 : 0;
        if (bit && (r->be->retry_on & bit) && r->idempotent && !r->body_started &&
            r->attempts <= retries_allowed(r) && untried_left(r)) {
            ups_close(u);
            r->us = NULL;
            report(r, LB_HTTP_5XX);
            r->last_res = LB_HTTP_5XX;
            px_connect(r);
            return;
        }
        report(r, st >= 500 ? LB_HTTP_5XX : LB_OK);
        r->status = st;
        if (!resp_head(r, head, (size_t)hl)) {
            evbuffer_drain(in, (size_t)hl);
            ups_close(u);
            r->us = NULL;
            px_error(r, 502, NULL, 0);
            return;
        }
        evbuffer_drain(in, (size_t)hl);
        r->resp_started = true;
        count_status(r->w, st);
        if (st == 101) {
            enter_tunnel(r);
            return;
        }
        r->state = PX_RESP_BODY;
        if (r->dechunk)
            r->resp.body_sink = bufferevent_get_output(r->ds->bev);
        if (r->resp.no_body) {
            r->resp_done = true;
            conn_flush(r->ds);
            px_finish(r);
            return;
        }
        pump_resp(r);
        return;
    }
}

/* ---- response bodies by splice(2) ---- */

/*
 * A large Content-Length body between two plain sockets moves pod socket ->
 * pipe -> client socket without entering user space (HAProxy's splicing):
 * the kernel hands the pod's pages to the client's socket instead of two
 * copies through our buffers. The head and whatever body came with it still go through the
 * buffers first; the framing is the Content-Length, so the pipe carries
 * exactly the body's remaining bytes, and the parser is told it is complete
 * at the end. Backpressure: the pod is read only while the pipe is empty.
 */
/* smaller bodies go through the buffers: at 64 KiB the pipe's extra calls cost
 * more than the copies (36 -> 41 us per response), at 1 MiB splicing saves 38% */
#define SP_MIN      (256 * 1024)
#define SP_CHUNK    (256 * 1024)        /* per splice call (the pipe takes what fits) */
#define SP_ROUNDS   64                  /* pipe fills per event: others get their turn */

static bool sp_pipe_get(struct wrk *w, int p[2])
{
    if (w->npipes) {
        w->npipes--;
        p[0] = w->pipes[w->npipes][0];
        p[1] = w->pipes[w->npipes][1];
        return true;
    }
    return pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0;
}

static void sp_pipe_put(struct wrk *w, int p[2], bool empty)
{
    if (empty && w->npipes < sizeof(w->pipes) / sizeof(w->pipes[0])) {
        w->pipes[w->npipes][0] = p[0];
        w->pipes[w->npipes][1] = p[1];
        w->npipes++;
    } else {
        close(p[0]);
        close(p[1]);
    }
    p[0] = p[1] = -1;
}

/* leaves splice mode; idempotent. The pipe is reused only when empty. */
static void sp_stop(struct px_req *r)
{
    if (!r->splicing)
        return;
    r->splicing = false;
    event_del(&r->sp_wev);
    if (r->us)
        r->us->splice = false;
    sp_pipe_put(r->w, r->sp_pipe, r->sp_inpipe == 0);
}

static void sp_pipes_free(struct wrk *w)
{
    while (w->npipes) {
        w->npipes--;
        close(w->pipes[w->npipes][0]);
        close(w->pipes[w->npipes][1]);
    }
}

static void sp_pump(struct px_req *r);

static void sp_wcb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sp_pump(arg);
}

static bool sp_start(struct px_req *r)
{
    struct ups_conn *u = r->us;
    struct conn *c = r->ds;
    if (r->dechunk || !r->resp.has_cl || r->resp.chunked || r->resp.want_eof || c->tls || u->tls ||
        r->resp.content_length - r->resp.body_len < SP_MIN ||
        evbuffer_get_length(bufferevent_get_input(u->bev)) > 0 || !sp_pipe_get(r->w, r->sp_pipe))
        return false;
    r->splicing = true;
    r->sp_left = r->resp.content_length - r->resp.body_len;
    r->sp_inpipe = 0;
    event_assign(&r->sp_wev, r->w->base, bufferevent_getfd(c->bev), EV_WRITE | EV_PERSIST, sp_wcb, r);
    u->splice = true;
    r->us_paused = false;
    ups_read_enable(u, true);
    return true;
}

static void sp_pump(struct px_req *r)
{
    struct ups_conn *u = r->us;
    struct conn *c = r->ds;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int cfd = bufferevent_getfd(c->bev), ufd = bufferevent_getfd(u->bev);
    for (int i = 0; i < SP_ROUNDS; i++) {
        if (r->sp_inpipe) {
            /* what the buffers hold (the head, the first body bytes) leaves first */
            if (evbuffer_get_length(out) > 0 && (conn_sock_write(out, cfd) < 0 && errno != EAGAIN))
                goto cut;
            if (evbuffer_get_length(out) > 0)
                goto client_full;
            ssize_t n = splice(r->sp_pipe[0], NULL, cfd, NULL, r->sp_inpipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0 && errno == EAGAIN)
                goto client_full;
            if (n <= 0)
                goto cut;
            r->sp_inpipe -= (uint64_t)n;
            WRK_ADD(r->w, bytes_out, (uint64_t)n);
            if (r->sp_inpipe)
                continue;
            event_del(&r->sp_wev);
            ups_read_enable(u, true);
        }
        if (r->sp_left == 0) {
            /* every byte is at the client (or in its output): the message is complete */
            sp_stop(r);
            r->resp.body_len = r->resp.content_length;
            r->resp.complete = true;
            r->resp_done = true;
            conn_flush(c);
            px_finish(r);
            return;
        }
        ssize_t n = splice(ufd, NULL, r->sp_pipe[1], NULL, r->sp_left < SP_CHUNK ? r->sp_left : SP_CHUNK,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0 && errno == EAGAIN)
            return; /* the pod's read event calls again */
        if (n <= 0)
            goto cut; /* the pod closed (or failed) before the end of its body */
        r->sp_left -= (uint64_t)n;
        r->sp_inpipe += (uint64_t)n;
    }
    /* enough for one event: the rest when the client can take it */
    if (r->sp_inpipe)
        event_add(&r->sp_wev, NULL);
    return;
client_full:
    ups_read_enable(u, false);
    event_add(&r->sp_wev, NULL);
    return;
cut:
    /* the client can only see the cut: close it, as for a framing error */
    sp_stop(r);
    px_abort(r);
    conn_close(c);
}

static void pump_resp(struct px_req *r)
{
    if (r->splicing) {
        sp_pump(r);
        return;
    }
    struct ups_conn *u = r->us;
    struct evbuffer *in = bufferevent_get_input(u->bev);
    struct evbuffer *out = bufferevent_get_output(r->ds->bev);
    while (!r->resp_done && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t used = 0;
        int rc = h1_body_feed(&r->resp, v.iov_base, v.iov_len, &used);
        if (rc < 0) {
            /* the pod broke framing mid-body: the client can only see a cut */
            struct conn *c = r->ds;
            px_abort(r);
            conn_close(c);
            return;
        }
        if (used) {
            if (r->dechunk)
                evbuffer_drain(in, used);
            else
                evbuffer_remove_buffer(in, out, used);
            WRK_ADD(r->w, bytes_out, used);
        }
        if (rc == 1)
            r->resp_done = true;
        else if (used < v.iov_len)
            break;
    }
    if (!r->resp_done && sp_start(r)) {
        sp_pump(r);
        return;
    }
    conn_flush(r->ds);
    if (r->resp_done) {
        px_finish(r);
        return;
    }
    if (evbuffer_get_length(out) >= PX_HIGH_WM) {
        if (!r->us_paused) {
            r->us_paused = true;
            ups_read_enable(u, false);
        }
    } else if (r->us_paused) {
        r->us_paused = false;
        ups_read_enable(u, true);
    }
}

/* ---- end of a request ---- */

/*
 * Access log, only when spec.accessLog is set: one line per request, one
 * write(2) (appends of one line are atomic, so workers share the file
 * without a lock). The file is opened by the worker the first time a
 * snapshot names it (a one-off open, not per request).
 */
static void access_log(struct px_req *r)
{
    const char *path = r->snap->cfg.access_log;
    struct wrk *w = r->w;
    if (!path || !r->req.method.n)
        return;
    if (!w->alog_path || strcmp(w->alog_path, path) != 0) {
        if (w->alog_fd > 2)
            close(w->alog_fd);
        free(w->alog_path);
        w->alog_path = strdup(path);
        if (!strcmp(path, "-") || !strcmp(path, "stderr"))
            w->alog_fd = 2;
        else
            w->alog_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (w->alog_fd < 0)
            log_warn("worker %u: cannot open access log %s", w->id, path);
    }
    if (w->alog_fd < 0)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    struct sb b = { line, n, sizeof(line) - 1, false };
    sb_put(&b, r->ds->ip, r->ds->ipn);
    SB_LIT(&b, " \"");
    sb_str(&b, r->req.method);
    SB_LIT(&b, " ");
    struct str t = r->req.target;
    sb_put(&b, t.p, t.n > 1024 ? 1024 : t.n);
    SB_LIT(&b, "\" ");
    sb_u64(&b, r->status);
    SB_LIT(&b, " ");
    sb_u64(&b, (now_us() - r->t_start_us) / 1000);
    SB_LIT(&b, "ms ");
    if (r->be)
        sb_cstr(&b, r->be->name);
    else
        SB_LIT(&b, "-");
    SB_LIT(&b, " ");
    sb_put(&b, r->reqid, r->reqidlen);
    if (b.over)
        b.n = sizeof(line) - 1;
    line[b.n++] = '\n';
    ssize_t wn = write(w->alog_fd, line, b.n);
    (void)wn;
}

static void px_release(struct px_req *r)
{
    sp_stop(r);
    access_log(r);
    report(r, LB_OK);
    if (r->retry_begun)
        lb_retry_end();
    lb_request_end();
    snap_release(r->snap);
    r->snap = NULL;
    r->state = PX_DONE;
    WRK_DEC(r->w, inflight);
}

static void px_finish(struct px_req *r)
{
    struct wrk *w = r->w;
    struct conn *c = r->ds;
    struct ups_conn *u = r->us;
    sp_stop(r); /* before the pod connection goes back to its pool */
    r->us = NULL;
    if (u) {
        if (r->resp_done && r->req_done && r->resp.keep_alive && !r->resp.want_eof &&
            r->state != PX_TUNNEL && r->resp.status != 101)
            ups_put(u);
        else
            ups_close(u);
    }
    bool close = r->close_after || !r->req_done;
    if (r->ds_paused && !r->ds_eof)
        conn_read_enable(c, true);
    conn_read_timeout(c, 0);
    px_release(r);
    req_put(w, r);
    conn_request_done(c, close);
}

void px_abort(struct px_req *r)
{
    if (!r || r->magic != PX_MAGIC)
        return;
    if (r->dnsreq) {
        struct evdns_getaddrinfo_request *q = r->dnsreq;
        r->dnsreq = NULL;
        evdns_getaddrinfo_cancel(q);
    }
    struct conn *c = r->ds;
    struct ups_conn *u = r->us;
    r->us = NULL;
    ups_close(u);
    px_release(r);
    if (c && c->req == r)
        c->req = NULL;
    req_put(r->w, r);
}

void px_set_draining(struct px_req *r)
{
    if (r && !r->resp_started)
        r->close_after = true;
}

/* ---- events from conn.c ---- */

void px_ds_read(struct px_req *r)
{
    if (!r)
        return;
    struct conn *c = r->ds;
    switch (r->state) {
    case PX_TUNNEL:
        tunnel_move(r, c->bev, r->us->bev, &r->ds_paused);
        return;
    case PX_WAIT_RESP:
    case PX_RESP_BODY:
        if (!r->req_done && r->us) {
            pump_req(r);
            return;
        }
        break;
    case PX_CONNECTING:
        /* body bytes wait for the connect; do not buffer an upload meanwhile */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) >= PX_HIGH_WM && !r->ds_paused) {
            r->ds_paused = true;
            conn_read_enable(c, false);
        }
        return;
    default:
        break;
    }
    /* pipelined bytes wait for their turn; hold back past a limit */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 64 * 1024 && !c->read_paused) {
        c->read_paused = true;
        conn_read_enable(c, false);
    }
}

void px_ds_write(struct px_req *r)
{
    if (!r)
        return;
    if (r->us_paused && r->us) {
        r->us_paused = false;
        ups_read_enable(r->us, true);
        if (r->state == PX_TUNNEL)
            tunnel_move(r, r->us->bev, r->ds->bev, &r->us_paused);
        else if (r->state == PX_RESP_BODY)
            pump_resp(r);
    }
}

void px_ds_eof(struct px_req *r, bool error)
{
    struct conn *c = r->ds;
    if (r->state == PX_TUNNEL) {
        /* client is gone: pass what it sent, then the tunnel ends */
        px_abort(r);
        conn_close(c);
        return;
    }
    /*
     * A half-close after the request was sent is a normal end of input:
     * answer, then close. The body may still be waiting in our buffer (the
     * pod connection is not up yet): pump_req decides once it has run dry.
     */
    bool body_pending = !r->req_done && (r->state == PX_CONNECTING || r->state == PX_RESOLVING) &&
                        evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
    if (!error && (r->req_done || body_pending)) {
        r->close_after = true;
        r->ds_eof = true;
        conn_read_enable(c, false);
        return;
    }
    px_abort(r);
    conn_close(c);
}

void px_ds_timeout(struct px_req *r)
{
    struct conn *c = r->ds;
    if (r->state == PX_TUNNEL || r->resp_started) {
        px_abort(r);
        conn_close(c);
        return;
    }
    /* the client stalled its body */
    struct ups_conn *u = r->us;
    r->us = NULL;
    ups_close(u);
    report(r, LB_OK);
    r->close_after = true;
    px_error(r, 408, NULL, 0);
}

/* ---- events from upstream.c ---- */

void px_us_read(struct px_req *r)
{
    switch (r->state) {
    case PX_WAIT_RESP:
    case PX_CONNECTING:
        read_resp_head(r);
        break;
    case PX_RESP_BODY:
        pump_resp(r);
        break;
    case PX_TUNNEL:
        tunnel_move(r, r->us->bev, r->ds->bev, &r->us_paused);
        break;
    default:
        break;
    }
}

void px_us_write(struct px_req *r)
{
    if (r->ds_paused) {
        r->ds_paused = false;
        if (!r->ds_eof)
            conn_read_enable(r->ds, true);
        if (r->state == PX_TUNNEL)
            tunnel_move(r, r->ds->bev, r->us->bev, &r->ds_paused);
        else if (!r->req_done)
            pump_req(r);
    }
}

void px_us_event(struct px_req *r, short what)
{
    struct ups_conn *u = r->us;
    if (what & BEV_EVENT_CONNECTED) {
        r->state = PX_WAIT_RESP;
        bufferevent_set_timeouts(u->bev, NULL, NULL); /* the connect timeout is over */
        if (!r->req_done)
            pump_req(r);
        else
            ups_read_timeout(u, TO(r)->upstream_read ? TO(r)->upstream_read : 60000);
        return;
    }
    bool timeout = (what & BEV_EVENT_TIMEOUT) != 0;
    switch (r->state) {
    case PX_CONNECTING:
        WRK_INC(r->w, upstream_connect_errors);
        attempt_failed(r, timeout ? LB_TIMEOUT : LB_CONNECT_FAIL, true);
        return;
    case PX_WAIT_RESP:
        if (!timeout && (what & BEV_EVENT_EOF) && evbuffer_get_length(bufferevent_get_input(u->bev))) {
            /* EOF right after a complete head still in the buffer: read it first */
            read_resp_head(r);
            if (r->state != PX_WAIT_RESP || r->us != u)
                return;
        }
        if (u->scan.off > 0) {
            /* part of a head arrived: response bytes, no retry */
            r->us = NULL;
            ups_close(u);
            report(r, timeout ? LB_TIMEOUT : LB_RESET);
            r->last_res = timeout ? LB_TIMEOUT : LB_RESET;
            final_failure(r);
            return;
        }
        attempt_failed(r, timeout ? LB_TIMEOUT : LB_RESET, false);
        return;
    case PX_RESP_BODY:
        if (!timeout && (what & BEV_EVENT_EOF)) {
            pump_resp(r);
            if (r->state != PX_RESP_BODY)
                return;
            if (h1_body_eof(&r->resp) == 1) {
                r->resp_done = true;
                px_finish(r);
                return;
            }
        }
        if (timeout)
            WRK_INC(r->w, upstream_timeouts);
        struct conn *c = r->ds;
        px_abort(r);
        conn_close(c);
        return;
    case PX_TUNNEL: {
        struct conn *c = r->ds;
        tunnel_move(r, u->bev, c->bev, &r->us_paused);
        px_abort(r);
        conn_close_after_flush(c);
        return;
    }
    default:
        return;
    }
}
