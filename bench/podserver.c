/* SPDX-License-Identifier: Apache-2.0 */
/*
 * podserver: the small, fast HTTP/1.1 "pod" behind ingressd in the demo, the
 * integration tests and the benchmark (where it is also the ceiling: wrk
 * straight at it says what the machine can do without a proxy in between).
 *
 *   podserver --listen IP:PORT [--listen ...] [--name NAME] [--size BYTES]
 *             [--threads N]
 *
 * What it answers:
 *   - any method, any path: 200 with a body of SIZE bytes (default 13, the
 *     repeating filler "hello, world\n"), headers X-Pod: NAME and
 *     Content-Length; HEAD gets the headers only, 1xx/204/304 carry no body.
 *   - query parameters on any path: ?size=N (body size for this request),
 *     ?delay=MS (answer after MS milliseconds), ?status=N (status code),
 *     ?close=1 (Connection: close, then close), ?chunked=1 (Transfer-Encoding:
 *     chunked, the body as one chunk), ?trailers=1 (with chunked: a trailer
 *     "X-Pod-Trailer: NAME", announced by "Trailer: X-Pod-Trailer").
 *   - Expect: 100-continue on a request with a body gets "100 Continue" first.
 *   - a path starting "/echo": a plain-text dump of the request,
 *         pod=NAME
 *         METHOD TARGET HTTP/1.x
 *         Name: value                 (every header, as received, in order)
 *         body-bytes=N
 *         body-sha256=HEX
 *         trailer Name: value         (chunked trailers, if any)
 *   - keep-alive by HTTP/1.1 rules (Connection: close and HTTP/1.0 without
 *     keep-alive close after the response), pipelined requests answered in
 *     order, Content-Length and chunked request bodies read fully (llhttp).
 *   - a malformed request gets 400 and the connection is closed.
 *
 * How it works. main() binds every --listen address once per thread with
 * SO_REUSEPORT (the kernel spreads connections across threads), prints
 * "listening ADDR" per address (flushed), then runs N identical threads, each
 * a level-triggered epoll loop owning its sockets; nothing is shared between
 * threads, so there are no locks. A connection reads into a fixed buffer and
 * llhttp parses it in place; on_message_complete pauses the parser so that
 * each request is answered between two llhttp_execute() calls, which is what
 * makes ?delay and backpressure simple: a delayed or backlogged connection
 * just keeps its unparsed bytes and stops reading.
 *
 * Responses go into a per-connection output queue of segments: bytes in a
 * per-connection scratch buffer (status line, headers, echo text), or a count
 * of filler bytes served from one static buffer whose length is a multiple
 * of the 13-byte pattern, so a 1 GiB body costs no memory and stays the exact
 * repeating pattern. After each read the whole queue goes out with one
 * writev; what the socket does not take waits for EPOLLOUT. Reading stops
 * while more than OUT_HIGH bytes are queued, so a client that pipelines huge
 * downloads without reading cannot grow us.
 *
 * Closing: after a "close" response the write side is shut down and the
 * socket is read and discarded for up to LINGER_MS (a lingering close, as
 * nginx does) so that unread request bytes do not turn into an RST that
 * destroys the response on its way to the client.
 *
 * Threads: main (parse options, bind, then wait in pthread_join), and N
 * workers that own everything they touch. SIGTERM/SIGINT exit at once (0).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN 16
#define MAX_THREADS 64
#define IN_CAP (64 * 1024)         /* read buffer per connection */
#define OUT_HIGH (1024 * 1024)     /* stop reading while this much is queued */
#define HDR_LIMIT (1024 * 1024)    /* url + headers kept for one request */
#define MAX_IOV 64
#define LINGER_MS 2000
#define PATTERN "hello, world\n"
#define PATTERN_LEN 13
#define FILL_LEN (PATTERN_LEN * 5041) /* 65533: whole patterns, so segments chain seamlessly */

/* ---- configuration (set by main before the threads start, then read-only) ---- */

static const char *pod_name = "pod";
static size_t pod_name_len = 3;
static uint64_t pod_size = PATTERN_LEN;
static char filler[FILL_LEN];

/* ---- growable byte buffer ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0; /* p may be NULL (an empty buf) */
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int buf_str(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

static int buf_u64(struct buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    return buf_add(b, tmp, (size_t)n);
}

/* ---- connections ---- */

enum { K_LISTEN = 1, K_CONN = 2 };

struct seg {
    size_t off;  /* offset in scratch (scratch segment) */
    size_t len;  /* bytes left to send */
    bool fill;   /* filler bytes rather than scratch bytes */
    size_t fpos; /* position within the filler pattern (fill segments) */
};

struct worker;

struct resp {                /* what to answer, decided when the request is complete */
    int status;
    uint64_t size;           /* filler body bytes (not used by echo) */
    bool keep;               /* keep the connection after this response */
    bool head;               /* HEAD: headers only */
    bool echo;               /* body is the /echo dump */
    bool chunked;            /* ?chunked=1: Transfer-Encoding: chunked */
    bool trailers;           /* ?trailers=1 (with chunked): X-Pod-Trailer trailer */
};

struct conn {
    int kind;               /* K_CONN; first, shared with struct lsn */
    int fd;
    struct worker *w;
    llhttp_t parser;
    char *in;               /* IN_CAP bytes: received, not yet parsed */
    size_t in_len;
    struct buf scratch;     /* bytes referenced by queued segments */
    struct seg *q;          /* output queue */
    size_t qhead, qlen, qcap;
    uint64_t qbytes;        /* bytes queued, filler included */
    uint32_t events;        /* current epoll interest */
    bool closing;           /* no more requests: flush, then close */
    bool lingering;         /* write side shut; draining input until EOF */
    bool delayed;           /* a response waits for its deadline */
    int64_t deadline_ms;    /* for delayed / lingering */
    struct conn *tnext, *tprev; /* worker timer list membership */
    bool in_timers;

    /* the request being parsed */
    struct buf url;
    struct buf hdrs;        /* "Name: value\n" lines, as received */
    struct buf trailers;
    bool in_value;          /* last header callback was a value */
    bool headers_done;
    bool echo;
    bool too_big;
    uint64_t body_bytes;
    EVP_MD_CTX *md;

    bool expect_hdr;        /* the header being read is Expect */
    bool expect_continue;   /* Expect: 100-continue seen */
    char hname[8];          /* first bytes of the header name being read */
    size_t hname_len;

    struct resp pending;    /* the response waiting for its delay */
};

struct lsn {
    int kind; /* K_LISTEN */
    int fd;
};

struct worker {
    int ep;
    pthread_t tid;
    struct lsn lsn[MAX_LISTEN];
    int nlsn;
    struct conn *timers; /* unordered; only delayed and lingering connections */
};

static llhttp_settings_t settings;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void timer_add(struct conn *c, int64_t deadline)
{
    c->deadline_ms = deadline;
    if (c->in_timers)
        return;
    c->in_timers = true;
    c->tprev = NULL;
    c->tnext = c->w->timers;
    if (c->tnext)
        c->tnext->tprev = c;
    c->w->timers = c;
}

static void timer_del(struct conn *c)
{
    if (!c->in_timers)
        return;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        c->w->timers = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    c->in_timers = false;
}

static void conn_free(struct conn *c)
{
    timer_del(c);
    close(c->fd); /* also leaves the epoll set */
    free(c->in);
    free(c->scratch.p);
    free(c->q);
    free(c->url.p);
    free(c->hdrs.p);
    free(c->trailers.p);
    EVP_MD_CTX_free(c->md);
    free(c);
}

/* ---- output queue ---- */

static int q_push(struct conn *c, bool fill, size_t off, size_t len)
{
    if (len == 0)
        return 0;
    if (c->qhead + c->qlen == c->qcap) {
        if (c->qhead > 0) {
            memmove(c->q, c->q + c->qhead, c->qlen * sizeof *c->q);
            c->qhead = 0;
        } else {
            size_t cap = c->qcap ? c->qcap * 2 : 8;
            struct seg *q = realloc(c->q, cap * sizeof *q);
            if (!q)
                return -1;
            c->q = q;
            c->qcap = cap;
        }
    }
    struct seg *s = &c->q[c->qhead + c->qlen++];
    s->fill = fill;
    s->off = off;
    s->len = len;
    s->fpos = 0;
    c->qbytes += len;
    return 0;
}

/* queue the scratch bytes [from, scratch.len) as one segment, merging with
 * the previous scratch segment when contiguous */
static int q_scratch(struct conn *c, size_t from)
{
    size_t n = c->scratch.len - from;
    if (n == 0)
        return 0;
    if (c->qlen > 0) {
        struct seg *last = &c->q[c->qhead + c->qlen - 1];
        if (!last->fill && last->off + last->len == from) {
            last->len += n;
            c->qbytes += n;
            return 0;
        }
    }
    return q_push(c, false, from, n);
}

/* write as much of the queue as the socket takes: 0 ok, -1 connection dead */
static int q_flush(struct conn *c)
{
    while (c->qlen > 0) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        for (size_t i = c->qhead; i < c->qhead + c->qlen && n < MAX_IOV; i++) {
            struct seg *s = &c->q[i];
            if (!s->fill) {
                iov[n].iov_base = c->scratch.p + s->off;
                iov[n++].iov_len = s->len;
                continue;
            }
            /* filler: the pattern restarts every FILL_LEN bytes */
            size_t pos = s->fpos, left = s->len;
            while (left > 0 && n < MAX_IOV) {
                size_t k = FILL_LEN - pos < left ? FILL_LEN - pos : left;
                iov[n].iov_base = filler + pos;
                iov[n++].iov_len = k;
                left -= k;
                pos = 0;
            }
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        size_t left = (size_t)w;
        c->qbytes -= left;
        while (left > 0) {
            struct seg *s = &c->q[c->qhead];
            size_t k = s->len < left ? s->len : left;
            s->len -= k;
            left -= k;
            if (s->fill)
                s->fpos = (s->fpos + k) % FILL_LEN;
            else
                s->off += k;
            if (s->len == 0) {
                c->qhead++;
                c->qlen--;
            }
        }
    }
    c->qhead = 0;
    c->scratch.len = 0; /* nothing references it any more */
    return 0;
}

/* ---- responses ---- */

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

/* append the /echo dump of the current request to t */
static int echo_dump(struct conn *c, struct buf *t)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char ver[16], hx[2 * EVP_MAX_MD_SIZE];
    int rc = 0;

    rc |= buf_str(t, "pod=");
    rc |= buf_add(t, pod_name, pod_name_len);
    rc |= buf_str(t, "\n");
    rc |= buf_str(t, llhttp_method_name((llhttp_method_t)llhttp_get_method(&c->parser)));
    rc |= buf_str(t, " ");
    rc |= buf_add(t, c->url.p, c->url.len);
    int vn = snprintf(ver, sizeof ver, " HTTP/%u.%u\n", c->parser.http_major, c->parser.http_minor);
    rc |= buf_add(t, ver, (size_t)vn);
    rc |= buf_add(t, c->hdrs.p, c->hdrs.len);
    rc |= buf_str(t, "body-bytes=");
    rc |= buf_u64(t, c->body_bytes);
    rc |= buf_str(t, "\nbody-sha256=");
    EVP_DigestFinal_ex(c->md, md, &mdlen);
    for (unsigned i = 0; i < mdlen; i++) {
        hx[2 * i] = hex[md[i] >> 4];
        hx[2 * i + 1] = hex[md[i] & 15];
    }
    rc |= buf_add(t, hx, 2 * mdlen);
    rc |= buf_str(t, "\n");
    rc |= buf_add(t, c->trailers.p, c->trailers.len);
    return rc;
}

/*
 * Queue the response R to the current request: head, then the body (the echo
 * dump, or SIZE filler bytes), framed by Content-Length or, with ?chunked=1,
 * as one chunk plus optional trailers. HEAD and 1xx/204/304 get no body.
 */
static int respond(struct conn *c, const struct resp *r)
{
    struct buf *b = &c->scratch;
    size_t start = b->len;
    bool bodyless = (r->status >= 100 && r->status < 200) || r->status == 204 || r->status == 304;
    bool http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
    bool chunked = r->chunked && !http10 && !bodyless;
    struct buf t = { 0 };
    uint64_t size = r->size;
    char line[96];
    int rc = 0;

    if (r->echo && !bodyless) {
        rc |= echo_dump(c, &t);
        size = t.len;
    }
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\nX-Pod: ", r->status, reason(r->status));
    rc |= buf_add(b, line, (size_t)n);
    rc |= buf_add(b, pod_name, pod_name_len);
    if (r->echo && !bodyless)
        rc |= buf_str(b, "\r\nContent-Type: text/plain");
    if (chunked) {
        rc |= buf_str(b, "\r\nTransfer-Encoding: chunked");
        if (r->trailers)
            rc |= buf_str(b, "\r\nTrailer: X-Pod-Trailer");
    } else if (!bodyless) {
        rc |= buf_str(b, "\r\nContent-Length: ");
        rc |= buf_u64(b, size);
    }
    rc |= buf_str(b, !r->keep ? "\r\nConnection: close\r\n\r\n"
                     : http10 ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\n\r\n");
    if (!bodyless && !r->head) {
        if (chunked && size > 0) {
            n = snprintf(line, sizeof line, "%llx\r\n", (unsigned long long)size);
            rc |= buf_add(b, line, (size_t)n);
        }
        if (r->echo) {
            rc |= buf_add(b, t.p, t.len);
        } else if (size > 0) {
            rc |= q_scratch(c, start);
            rc |= q_push(c, true, 0, size);
            start = b->len;
        }
        if (chunked) {
            rc |= buf_str(b, size > 0 ? "\r\n0\r\n" : "0\r\n");
            if (r->trailers) {
                rc |= buf_str(b, "X-Pod-Trailer: ");
                rc |= buf_add(b, pod_name, pod_name_len);
                rc |= buf_str(b, "\r\n");
            }
            rc |= buf_str(b, "\r\n");
        }
    }
    free(t.p);
    if (rc)
        return -1;
    return q_scratch(c, start);
}

/* ---- llhttp callbacks ---- */

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    c->url.len = c->hdrs.len = c->trailers.len = 0;
    c->in_value = c->headers_done = c->echo = c->too_big = false;
    c->expect_hdr = c->expect_continue = false;
    c->hname_len = 0;
    c->body_bytes = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->url.len + n > HDR_LIMIT) {
        c->too_big = true;
        return HPE_USER;
    }
    return buf_add(&c->url, at, n) < 0 ? HPE_USER : 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->echo = c->url.len >= 5 && memcmp(c->url.p, "/echo", 5) == 0;
    if (c->echo) {
        if (!c->md && !(c->md = EVP_MD_CTX_new()))
            return HPE_USER;
        EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
    }
    return 0;
}

/* headers are kept only for /echo; trailers go to their own list */
static int on_hfield(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    /* the first bytes of every name, to spot Expect */
    for (size_t i = 0; i < n && c->hname_len < sizeof c->hname; i++)
        c->hname[c->hname_len++] = at[i];
    if (!c->echo)
        return 0;
    struct buf *b = c->headers_done ? &c->trailers : &c->hdrs;
    int rc = 0;
    if (c->in_value || b->len == 0) {
        if (c->in_value)
            rc |= buf_str(b, "\n");
        if (c->headers_done)
            rc |= buf_str(b, "trailer ");
        c->in_value = false;
    }
    rc |= buf_add(b, at, n);
    if (c->hdrs.len + c->trailers.len > HDR_LIMIT) {
        c->too_big = true;
        return HPE_USER;
    }
    return rc ? HPE_USER : 0;
}

static int on_hfield_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->expect_hdr = !c->headers_done && c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0;
    c->hname_len = 0;
    if (!c->echo)
        return 0;
    return buf_str(c->headers_done ? &c->trailers : &c->hdrs, ": ") < 0 ? HPE_USER : 0;
}

static int on_hvalue(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    if (c->expect_hdr && n >= 12 && strncasecmp(at, "100-continue", 12) == 0)
        c->expect_continue = true;
    if (!c->echo)
        return 0;
    c->in_value = true;
    if (c->hdrs.len + c->trailers.len + n > HDR_LIMIT) {
        c->too_big = true;
        return HPE_USER;
    }
    return buf_add(c->headers_done ? &c->trailers : &c->hdrs, at, n) < 0 ? HPE_USER : 0;
}

static int on_hvalue_complete(llhttp_t *p)
{
    ((struct conn *)p->data)->expect_hdr = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (c->echo && c->in_value && buf_str(&c->hdrs, "\n") < 0)
        return HPE_USER;
    c->in_value = false;
    c->headers_done = true;
    /* Expect: 100-continue on a request with a body: say go ahead (sent with
     * the next flush, before the final response) */
    if (c->expect_continue && p->http_minor >= 1 &&
        ((p->flags & F_CHUNKED) || p->content_length > 0)) {
        size_t start = c->scratch.len;
        if (buf_str(&c->scratch, "HTTP/1.1 100 Continue\r\n\r\n") < 0 || q_scratch(c, start) < 0)
            return HPE_USER;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct conn *c = p->data;
    c->body_bytes += n;
    if (c->echo)
        EVP_DigestUpdate(c->md, at, n);
    return 0;
}

/* the value of query parameter NAME in the current url, or -1 */
static int64_t query_num(struct conn *c, const char *name)
{
    const char *u = c->url.p, *end = u + c->url.len;
    const char *q = memchr(u, '?', c->url.len);
    size_t nl = strlen(name);
    if (!q)
        return -1;
    for (const char *s = q + 1; s < end;) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *e = amp ? amp : end;
        if ((size_t)(e - s) > nl && memcmp(s, name, nl) == 0 && s[nl] == '=') {
            int64_t v = 0;
            const char *d = s + nl + 1;
            if (d == e)
                return -1;
            for (; d < e && *d >= '0' && *d <= '9'; d++)
                if (v < INT64_MAX / 10 - 10)
                    v = v * 10 + (*d - '0');
            return v;
        }
        s = e + 1;
    }
    return -1;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (c->echo && c->in_value && c->headers_done && buf_str(&c->trailers, "\n") < 0)
        return HPE_USER;
    int64_t v;
    struct resp r = {
        .status = 200,
        .size = pod_size,
        .keep = llhttp_should_keep_alive(p) && !p->upgrade && query_num(c, "close") <= 0,
        .head = llhttp_get_method(p) == HTTP_HEAD,
        .echo = c->echo,
        .chunked = query_num(c, "chunked") > 0,
        .trailers = query_num(c, "trailers") > 0,
    };
    if ((v = query_num(c, "status")) >= 100 && v <= 999)
        r.status = (int)v;
    if ((v = query_num(c, "size")) >= 0)
        r.size = (uint64_t)v;
    if ((v = query_num(c, "delay")) > 0) {
        c->delayed = true;
        c->pending = r;
        timer_add(c, now_ms() + v);
    } else if (respond(c, &r) < 0) {
        return HPE_USER;
    } else if (!r.keep) {
        c->closing = true;
    }
    return HPE_PAUSED; /* one request per llhttp_execute(): see process() */
}

/* ---- event handling ---- */

static void set_events(struct conn *c)
{
    uint32_t ev = 0;
    if (c->lingering)
        ev = EPOLLIN;
    else {
        if (!c->closing && !c->delayed && c->qbytes < OUT_HIGH && c->in_len < IN_CAP)
            ev |= EPOLLIN;
        if (c->qlen > 0)
            ev |= EPOLLOUT;
    }
    if (ev == c->events)
        return;
    struct epoll_event e = { .events = ev, .data.ptr = c };
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void bad_request(struct conn *c, int status)
{
    static const char body[] = "bad request\n";
    size_t start = c->scratch.len;
    char line[160];
    int n = snprintf(line, sizeof line,
                     "HTTP/1.1 %d %s\r\nX-Pod: ", status, reason(status));
    buf_add(&c->scratch, line, (size_t)n);
    buf_add(&c->scratch, pod_name, pod_name_len);
    n = snprintf(line, sizeof line, "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 sizeof body - 1, body);
    buf_add(&c->scratch, line, (size_t)n);
    q_scratch(c, start);
    c->closing = true;
}

/* parse what is buffered, one request at a time, until blocked */
static void process(struct conn *c)
{
    size_t off = 0;
    while (off < c->in_len && !c->closing && !c->delayed && c->qbytes < OUT_HIGH) {
        llhttp_errno_t err = llhttp_execute(&c->parser, c->in + off, c->in_len - off);
        if (err == HPE_OK) {
            off = c->in_len;
            break;
        }
        if (err == HPE_PAUSED) {
            off = (size_t)(llhttp_get_error_pos(&c->parser) - c->in);
            llhttp_resume(&c->parser);
            continue;
        }
        /* HPE_PAUSED_UPGRADE cannot happen: the response to an upgrade
         * request is "close", so the loop stopped before; anything else is
         * a malformed request (or a limit) */
        bad_request(c, c->too_big ? 431 : 400);
        off = c->in_len;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void start_linger(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->in_len = 0;
    timer_add(c, now_ms() + LINGER_MS);
}

/* the connection's state changed: flush, maybe close; false when freed */
static bool settle(struct conn *c)
{
    if (!c->lingering) {
        /* a backlog (OUT_HIGH) may have stopped parsing with pipelined requests
         * still buffered: once the socket took some, answer them too */
        for (int round = 0; round < 64; round++) {
            if (q_flush(c) < 0) {
                conn_free(c);
                return false;
            }
            size_t before = c->in_len;
            if (before == 0 || c->closing || c->delayed || c->qbytes >= OUT_HIGH)
                break;
            process(c);
            if (c->in_len == before)
                break;
        }
        if (c->closing && c->qlen == 0 && !c->delayed)
            start_linger(c);
    }
    set_events(c);
    return true;
}

static void on_readable(struct conn *c)
{
    if (c->lingering) {
        char tmp[16384];
        ssize_t r;
        while ((r = read(c->fd, tmp, sizeof tmp)) > 0)
            ;
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            conn_free(c);
        return;
    }
    ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        if (r == 0 && (c->qlen > 0 || c->delayed)) {
            /* half-close: the client may still read what we owe it */
            c->closing = true;
            settle(c);
            return;
        }
        conn_free(c);
        return;
    }
    if (r > 0) {
        c->in_len += (size_t)r;
        process(c);
    }
    settle(c);
}

static void on_timer(struct conn *c)
{
    timer_del(c);
    if (c->lingering) {
        conn_free(c);
        return;
    }
    c->delayed = false;
    if (respond(c, &c->pending) < 0) {
        conn_free(c);
        return;
    }
    if (!c->pending.keep)
        c->closing = true;
    process(c);
    settle(c);
}

static void do_accept(struct worker *w, struct lsn *l)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c || !(c->in = malloc(IN_CAP))) {
            free(c);
            close(fd);
            continue;
        }
        c->kind = K_CONN;
        c->fd = fd;
        c->w = w;
        llhttp_init(&c->parser, HTTP_REQUEST, &settings);
        c->parser.data = c;
        c->events = EPOLLIN;
        struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e) < 0)
            conn_free(c);
    }
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    for (;;) {
        int timeout = -1;
        int64_t now = now_ms();
        for (struct conn *c = w->timers; c; c = c->tnext) {
            int64_t d = c->deadline_ms - now;
            if (d < 0)
                d = 0;
            if (timeout < 0 || d < timeout)
                timeout = (int)d;
        }
        int n = epoll_wait(w->ep, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            if (kind == K_LISTEN) {
                do_accept(w, evs[i].data.ptr);
                continue;
            }
            struct conn *c = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            if (ev & EPOLLOUT) {
                if (!settle(c))
                    continue; /* freed; its other bits go with it */
                if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    continue;
            }
            if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
        }
        /* freed connections may have been in this batch: only timers are
         * walked here, and conn_free unlinks them, so this walk is safe */
        now = now_ms();
        for (struct conn *c = w->timers, *next; c; c = next) {
            next = c->tnext;
            if (c->deadline_ms <= now)
                on_timer(c);
        }
    }
    return NULL;
}

/* ---- start-up ---- */

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int bind_one(struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)sa, sizeof *sa) < 0 || listen(fd, 4096) < 0) {
        close(fd);
        return -1;
    }
    if (sa->sin_port == 0) {
        /* port 0: every thread must share the port the first one got */
        socklen_t len = sizeof *sa;
        getsockname(fd, (struct sockaddr *)sa, &len);
    }
    return fd;
}

/*
 * SO_REUSEPORT would let us share an address with a leftover podserver (or one
 * from a concurrent test run), and the kernel would split connections between
 * the two without a word. So first bind a plain socket: if anyone listens
 * there already, that fails, and so do we. 0 free, -1 taken (errno set).
 */
static int addr_is_free(const struct sockaddr_in *sa)
{
    if (sa->sin_port == 0)
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* TIME_WAIT is fine */
    int rc = bind(fd, (const struct sockaddr *)sa, sizeof *sa);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void usage(void)
{
    fprintf(stderr, "usage: podserver --listen IP:PORT [--listen ...] [--name NAME] "
                    "[--size BYTES] [--threads N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct sockaddr_in addrs[MAX_LISTEN];
    int naddrs = 0, nthreads = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--listen") == 0) {
            if (naddrs == MAX_LISTEN || parse_addr(v, &addrs[naddrs]) < 0) {
                fprintf(stderr, "podserver: bad --listen %s\n", v);
                return 2;
            }
            naddrs++;
        } else if (strcmp(a, "--name") == 0) {
            pod_name = v;
            pod_name_len = strlen(v);
        } else if (strcmp(a, "--size") == 0) {
            pod_size = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--threads") == 0) {
            nthreads = atoi(v);
            if (nthreads < 1 || nthreads > MAX_THREADS)
                usage();
        } else {
            usage();
        }
    }
    if (naddrs == 0)
        usage();
    for (size_t i = 0; i < FILL_LEN; i++)
        filler[i] = PATTERN[i % PATTERN_LEN];

    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_url_complete = on_url_complete;
    settings.on_header_field = on_hfield;
    settings.on_header_field_complete = on_hfield_complete;
    settings.on_header_value = on_hvalue;
    settings.on_header_value_complete = on_hvalue_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    for (int i = 0; i < naddrs; i++) {
        if (addr_is_free(&addrs[i]) < 0) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &addrs[i].sin_addr, ip, sizeof ip);
            fprintf(stderr, "podserver: bind %s:%u: %s\n", ip, ntohs(addrs[i].sin_port),
                    strerror(errno));
            return 1;
        }
    }
    static struct worker ws[MAX_THREADS];
    for (int t = 0; t < nthreads; t++) {
        struct worker *w = &ws[t];
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0) {
            perror("podserver: epoll_create1");
            return 1;
        }
        for (int i = 0; i < naddrs; i++) {
            int fd = bind_one(&addrs[i]);
            if (fd < 0) {
                char ip[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &addrs[i].sin_addr, ip, sizeof ip);
                fprintf(stderr, "podserver: bind %s:%u: %s\n", ip, ntohs(addrs[i].sin_port),
                        strerror(errno));
                return 1;
            }
            w->lsn[i].kind = K_LISTEN;
            w->lsn[i].fd = fd;
            struct epoll_event e = { .events = EPOLLIN, .data.ptr = &w->lsn[i] };
            epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e);
        }
        w->nlsn = naddrs;
    }
    for (int i = 0; i < naddrs; i++) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &addrs[i].sin_addr, ip, sizeof ip);
        printf("listening %s:%u\n", ip, ntohs(addrs[i].sin_port));
    }
    fflush(stdout);
    for (int t = 1; t < nthreads; t++)
        if (pthread_create(&ws[t].tid, NULL, worker_run, &ws[t]) != 0) {
            perror("podserver: pthread_create");
            return 1;
        }
    worker_run(&ws[0]);
    return 0;
}
