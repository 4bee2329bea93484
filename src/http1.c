/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http1: HTTP/1.1 heads and body framing, over llhttp.
 *
 * Where it sits (style.md 3.2): conn.c finds a complete head in the
 * downstream input (h1_head_len), moves it into the request's own buffer,
 * and calls h1_parse_request() on that contiguous memory; proxy.c then routes
 * on the h1_msg views and forwards the body through h1_body_feed(), which
 * validates framing and tells where the message ends. The same parser, in
 * response mode, reads what pods answer.
 *
 * Why this shape:
 *  - the head is parsed only once it is whole, in one llhttp_execute() over
 *    one buffer, so every span callback fires exactly once and the views in
 *    struct h1_msg point into that buffer: no copy of names or values;
 *  - llhttp runs without any lenient flag, and we add what it does not check
 *    (or checks only in its compile-time strict mode, which this build does
 *    not use): header name tokens, value bytes, target bytes, bare LF line
 *    ends, Host syntax and count, h2c, TE on HTTP/1.0. Anything that two
 *    implementations could frame differently is refused, never forwarded;
 *  - bodies are validated, not decoded: the proxy forwards the exact bytes
 *    llhttp accepted (chunk framing and trailers included), which is both
 *    the cheapest relay and the one that cannot desync. Only an HTTP/1.0
 *    client receiving a chunked response needs decoding (body_sink).
 *
 * Threads: any; an h1_msg is owned by one request on one worker.
 */
#include "ingressd/http1.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* ---- character classes ---- */

static const uint8_t tchar[256] = {
    /* token chars: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA */
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static inline bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static inline bool is_subdelim(unsigned char c)
{
    return c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' ||
           c == '+' || c == ',' || c == ';' || c == '=';
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---- head scanning ---- */

long h1_head_len(struct evbuffer *b, struct h1_scan *sc, size_t max)
{
    size_t len = evbuffer_get_length(b);
    struct evbuffer_ptr ptr;
    struct evbuffer_iovec v[8];

    while (sc->off < len) {
        if (evbuffer_ptr_set(b, &ptr, sc->off, EVBUFFER_PTR_SET) < 0)
            return H1_E400;
        int nv = evbuffer_peek(b, (ev_ssize_t)(len - sc->off), &ptr, v, 8);
        if (nv <= 0)
            break;
        if (nv > 8)
            nv = 8;
        for (int i = 0; i < nv; i++) {
            const unsigned char *p = v[i].iov_base;
            size_t n = v[i].iov_len;
            if (n > len - sc->off)
                n = len - sc->off;
            uint8_t st = sc->st;
            size_t k = 0;
            while (k < n) {
                if (st == 0) {
                    /* inside a line: jump to its CR with memchr (vectorised) rather
                     * than a branchy loop per byte; an LF before it is a bare LF */
                    const unsigned char *cr = memchr(p + k, '\r', n - k);
                    size_t end = cr ? (size_t)(cr - p) : n;
                    if (end > k && memchr(p + k, '\n', end - k))
                        return H1_E400;
                    k = end;
                    if (k == n)
                        break;
                }
                unsigned char c = p[k++];
                /* st: 0 in a line, 1 saw CR, 2 saw CRLF, 3 saw CRLF CR */
                if (c == '\r') {
                    if (st == 1 || st == 3)
                        return H1_E400;
                    st = st == 2 ? 3 : 1;
                } else if (c == '\n') {
                    if (st == 1) {
                        st = 2;
                    } else if (st == 3) {
                        size_t hl = sc->off + k;
                        sc->st = 0;
                        if (hl > max)
                            return H1_E431;
                        return (long)hl;
                    } else {
                        return H1_E400; /* bare LF */
                    }
                } else {
                    if (st == 1 || st == 3)
                        return H1_E400; /* CR not followed by LF */
                    st = 0;
                }
            }
            sc->st = st;
            sc->off += n;
        }
    }
    if (sc->off >= max)
        return H1_E431;
    return 0;
}

/* ---- llhttp callbacks ---- */

static inline struct h1_msg *M(llhttp_t *p) { return p->data; }

/* extends a span that llhttp may deliver in pieces (it does not over one buffer) */
static inline void span(struct str *s, const char *at, size_t n)
{
    if (s->p && s->p + s->n == at)
        s->n += n;
    else
        *s = str_make(at, n);
}

static int cb_method(llhttp_t *p, const char *at, size_t n) { span(&M(p)->method, at, n); return 0; }
static int cb_url(llhttp_t *p, const char *at, size_t n) { span(&M(p)->target, at, n); return 0; }
static int cb_version(llhttp_t *p, const char *at, size_t n) { span(&M(p)->version, at, n); return 0; }
static int cb_status(llhttp_t *p, const char *at, size_t n) { span(&M(p)->reason, at, n); return 0; }

static int cb_field(llhttp_t *p, const char *at, size_t n)
{
    struct h1_msg *m = M(p);
    if (m->fresh) { /* the same name in pieces */
        span(&m->hdrs[m->nhdrs - 1].name, at, n);
        return 0;
    }
    if (m->nhdrs >= m->cap) {
        /* rare: more headers than fit inline; one array of the maximum, kept */
        if (m->cap >= H1_MAX_HEADERS ||
            (!m->heap && !(m->heap = malloc(H1_MAX_HEADERS * sizeof(*m->heap))))) {
            m->err = H1_E431;
            return HPE_USER;
        }
        memcpy(m->heap, m->hdrs, m->nhdrs * sizeof(*m->heap));
        m->hdrs = m->heap;
        m->cap = H1_MAX_HEADERS;
    }
    struct h1_hdr *h = &m->hdrs[m->nhdrs++];
    h->name = str_make(at, n);
    h->value = STR_NULL;
    h->kind = H1H_OTHER;
    h->hop = false;
    m->fresh = true;
    return 0;
}

static int cb_value(llhttp_t *p, const char *at, size_t n)
{
    struct h1_msg *m = M(p);
    if (!m->fresh)
        goto bad; /* a value without a name (empty name, or obs-fold) */
    struct h1_hdr *h = &m->hdrs[m->nhdrs - 1];
    if (!h->value.p)
        h->value = str_make(at, n);
    else if (h->value.p + h->value.n == at)
        h->value.n += n;
    else
        goto bad; /* a value in pieces over one buffer: obs-fold */
    return 0;
bad:
    m->err = H1_E400;
    return HPE_USER;
}

struct kind_name {
    const char *name;
    uint8_t len, kind;
};

static const struct kind_name kinds[] = {
    { "host", 4, H1H_HOST },
    { "connection", 10, H1H_CONNECTION },
    { "keep-alive", 10, H1H_KEEP_ALIVE },
    { "proxy-connection", 16, H1H_PROXY_CONNECTION },
    { "te", 2, H1H_TE },
    { "trailer", 7, H1H_TRAILER },
    { "upgrade", 7, H1H_UPGRADE },
    { "transfer-encoding", 17, H1H_TRANSFER_ENCODING },
    { "content-length", 14, H1H_CONTENT_LENGTH },
    { "expect", 6, H1H_EXPECT },
    { "x-forwarded-for", 15, H1H_XFF },
    { "x-forwarded-proto", 17, H1H_XFPROTO },
    { "x-forwarded-host", 16, H1H_XFHOST },
    { "x-forwarded-port", 16, H1H_XFPORT },
    { "x-real-ip", 9, H1H_XREAL_IP },
    { "x-request-id", 12, H1H_XREQUEST_ID },
    { "http2-settings", 14, H1H_HTTP2_SETTINGS },
};

static uint8_t classify(struct str name)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].len == name.n && str_ieq_cstr(name, kinds[i].name))
            return kinds[i].kind;
    return H1H_OTHER;
}

/* marks the headers a Connection value names as hop-by-hop, except the framing
 * ones the proxy writes itself (Content-Length, Transfer-Encoding, and Host on
 * requests: the contract says Connection never removes them) */
static void mark_connection_tokens(struct h1_msg *m, struct str v, bool keep_host)
{
    while (v.n) {
        struct str tok = str_trim(str_next_token(&v, ','));
        if (!tok.n)
            continue;
        uint8_t k = classify(tok);
        if (k == H1H_CONTENT_LENGTH || k == H1H_TRANSFER_ENCODING || (keep_host && k == H1H_HOST))
            continue;
        for (uint32_t j = 0; j < m->nhdrs; j++)
            if (m->hdrs[j].name.n == tok.n && str_ieq(m->hdrs[j].name, tok))
                m->hdrs[j].hop = true;
    }
}

static int cb_value_done(llhttp_t *p)
{
    struct h1_msg *m = M(p);
    if (!m->fresh)
        goto bad;
    m->fresh = false;
    struct h1_hdr *h = &m->hdrs[m->nhdrs - 1];
    if (!h->value.p)
        h->value = str_make(h->name.p + h->name.n, 0);
    if (h->name.n == 0)
        goto bad;
    for (size_t i = 0; i < h->name.n; i++)
        if (!tchar[(unsigned char)h->name.p[i]])
            goto bad;
    /* field-value: VCHAR, obs-text, SP, HTAB; CR/LF here would be obs-fold */
    for (size_t i = 0; i < h->value.n; i++) {
        unsigned char c = (unsigned char)h->value.p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            goto bad;
    }
    h->value = str_trim(h->value);
    h->kind = classify(h->name);
    if (h->kind == H1H_HOST) {
        if (m->host_idx >= 0)
            goto bad; /* several Host headers */
        m->host_idx = (int)(m->nhdrs - 1);
    } else if (h->kind == H1H_XREQUEST_ID && m->reqid_idx < 0) {
        m->reqid_idx = (int)(m->nhdrs - 1);
    }
    return 0;
bad:
    m->err = H1_E400;
    return HPE_USER;
}

static int cb_headers_done(llhttp_t *p)
{
    struct h1_msg *m = M(p);
    m->headers_done = true;
    m->minor = p->http_minor;
    m->method_id = p->method;
    m->status = (uint16_t)p->status_code;
    m->has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    m->content_length = m->has_cl ? p->content_length : 0;
    m->chunked = (p->flags & F_CHUNKED) != 0;
    m->keep_alive = llhttp_should_keep_alive(p);
    m->upgrade = p->upgrade;
    if (p->type == HTTP_RESPONSE) {
        m->want_eof = llhttp_message_needs_eof(p);
        if (m->head_response && m->status >= 200) {
            m->want_eof = false;
            return 1; /* a HEAD response never has a body */
        }
    }
    return 0;
}

static int cb_complete(llhttp_t *p)
{
    M(p)->complete = true;
    return HPE_PAUSED; /* stop exactly at the end of this message */
}

static int cb_body(llhttp_t *p, const char *at, size_t n)
{
    struct h1_msg *m = M(p);
    m->body_len += n;
    if (m->body_sink && evbuffer_add(m->body_sink, at, n) < 0)
        return HPE_USER;
    return 0;
}

static const llhttp_settings_t h1_settings = {
    .on_method = cb_method,
    .on_url = cb_url,
    .on_version = cb_version,
    .on_status = cb_status,
    .on_header_field = cb_field,
    .on_header_value = cb_value,
    .on_header_value_complete = cb_value_done,
    .on_headers_complete = cb_headers_done,
    .on_body = cb_body,
    .on_message_complete = cb_complete,
};

static void msg_init(struct h1_msg *m, llhttp_type_t type, bool head_req)
{
    struct evbuffer *sink = m->body_sink;
    /* only reset what a parse reads; hdrs[] entries are written before use */
    memset(m, 0, offsetof(struct h1_msg, hdrs));
    m->hdrs = m->inline_hdrs;
    m->cap = H1_INLINE_HEADERS;
    m->nhdrs = 0;
    m->host_idx = -1;
    m->reqid_idx = -1;
    m->content_length = 0;
    m->body_len = 0;
    m->has_cl = m->chunked = m->keep_alive = m->upgrade = false;
    m->expect_continue = m->no_body = m->complete = m->want_eof = false;
    m->fresh = m->headers_done = m->bad = false;
    m->head_response = head_req;
    m->err = 0;
    m->body_sink = sink;
    llhttp_init(&m->parser, type, &h1_settings);
    m->parser.data = m;
}

/* runs llhttp over a whole head; H1_OK when the head parsed and ends exactly at n */
static int run_head(struct h1_msg *m, const char *p, size_t n, int bad)
{
    llhttp_errno_t e = llhttp_execute(&m->parser, p, n);
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        /* message complete inside the head: it had no body */
        if (llhttp_get_error_pos(&m->parser) != p + n)
            return bad;
        m->no_body = true;
    } else if (e != HPE_OK) {
        return m->err ? m->err : bad;
    }
    if (!m->headers_done)
        return bad;
    return H1_OK;
}

/* ---- requests ---- */

int h1_parse_request(struct h1_msg *m, const char *p, size_t n)
{
    msg_init(m, HTTP_REQUEST, false);
    int rc = run_head(m, p, n, H1_E400);
    if (rc != H1_OK)
        return rc;
    if (m->parser.http_major != 1)
        return H1_E400;
    /* request-target: no controls, no spaces (llhttp's loose mode lets some through) */
    if (m->target.n == 0 || m->method.n == 0 || m->target.p != m->method.p + m->method.n + 1 ||
        m->target.p + m->target.n + 1 >= p + n || m->target.p[m->target.n] != ' ' ||
        m->target.p[m->target.n + 1] != 'H')
        return H1_E400; /* exactly one SP around the target */
    for (size_t i = 0; i < m->target.n; i++) {
        unsigned char c = (unsigned char)m->target.p[i];
        if (c <= 0x20 || c == 0x7f)
            return H1_E400;
    }
    if (m->method_id == HTTP_CONNECT)
        return H1_E405;
    if (m->method_id == HTTP_PRI)
        return H1_E400;
    /* HTTP/1.0 has no chunked: a TE there is a smuggling attempt */
    if (m->minor == 0 && (m->parser.flags & F_TRANSFER_ENCODING))
        return H1_E400;
    if (m->host_idx < 0) {
        if (m->minor >= 1)
            return H1_E400;
    } else if (!h1_host_valid(m->hdrs[m->host_idx].value)) {
        return H1_E400;
    }
    for (uint32_t i = 0; i < m->nhdrs; i++) {
        struct h1_hdr *h = &m->hdrs[i];
        switch (h->kind) {
        case H1H_UPGRADE:
            if (h1_list_has(h->value, "h2c"))
                return H1_E400;
            break;
        case H1H_HTTP2_SETTINGS:
            return H1_E400;
        case H1H_EXPECT:
            if (str_ieq_cstr(h->value, "100-continue"))
                m->expect_continue = m->minor >= 1;
            else
                return H1_E417;
            break;
        case H1H_CONNECTION:
            mark_connection_tokens(m, h->value, true);
            break;
        default:
            break;
        }
    }
    return H1_OK;
}

/* ---- responses ---- */

int h1_parse_response(struct h1_msg *m, const char *p, size_t n, bool head_req)
{
    msg_init(m, HTTP_RESPONSE, head_req);
    int rc = run_head(m, p, n, H1_E502);
    if (rc != H1_OK)
        return H1_E502;
    if (m->parser.http_major != 1 || m->status < 100 || m->status > 599)
        return H1_E502;
    for (uint32_t i = 0; i < m->nhdrs; i++) {
        struct h1_hdr *h = &m->hdrs[i];
        if (h->kind != H1H_CONNECTION)
            continue;
        mark_connection_tokens(m, h->value, false);
    }
    return H1_OK;
}

/* ---- bodies ---- */

int h1_body_feed(struct h1_msg *m, const char *p, size_t n, size_t *used)
{
    if (m->complete) {
        *used = 0;
        return 1;
    }
    llhttp_errno_t e = llhttp_execute(&m->parser, p, n);
    if (e == HPE_OK) {
        *used = n;
        return 0;
    }
    if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && m->complete) {
        *used = (size_t)(llhttp_get_error_pos(&m->parser) - p);
        return 1;
    }
    *used = 0;
    return H1_E400;
}

int h1_body_eof(struct h1_msg *m)
{
    if (m->complete || m->want_eof) {
        m->complete = true;
        return 1;
    }
    return H1_E400;
}

void h1_msg_free(struct h1_msg *m)
{
    if (m->hdrs == m->heap)
        m->hdrs = m->inline_hdrs;
    free(m->heap);
    m->heap = NULL;
    m->nhdrs = 0;
}

/* ---- header helpers ---- */

struct str h1_get(const struct h1_msg *m, enum h1_hdr_kind kind)
{
    for (uint32_t i = 0; i < m->nhdrs; i++)
        if (m->hdrs[i].kind == kind)
            return m->hdrs[i].value;
    return STR_NULL;
}

struct str h1_get_name(const struct h1_msg *m, struct str name)
{
    for (uint32_t i = 0; i < m->nhdrs; i++)
        if (m->hdrs[i].name.n == name.n && str_ieq(m->hdrs[i].name, name))
            return m->hdrs[i].value;
    return STR_NULL;
}

bool h1_list_has(struct str v, const char *tok)
{
    while (v.n) {
        struct str t = str_trim(str_next_token(&v, ','));
        if (str_ieq_cstr(t, tok))
            return true;
    }
    return false;
}

/* ---- Host ---- */

bool h1_host_valid(struct str h)
{
    size_t i = 0;
    if (h.n == 0)
        return false;
    if (h.p[0] == '[') {
        /* IP-literal: IPv6 address (hex, ':' and a dotted tail) */
        for (i = 1; i < h.n && h.p[i] != ']'; i++) {
            unsigned char c = (unsigned char)h.p[i];
            if (!(hexval(c) >= 0 || c == ':' || c == '.'))
                return false;
        }
        if (i >= h.n || i == 1)
            return false;
        i++;
    } else {
        for (; i < h.n && h.p[i] != ':'; i++) {
            unsigned char c = (unsigned char)h.p[i];
            if (c == '%') {
                if (i + 2 >= h.n || hexval((unsigned char)h.p[i + 1]) < 0 ||
                    hexval((unsigned char)h.p[i + 2]) < 0)
                    return false;
                i += 2;
            } else if (!is_unreserved(c) && !is_subdelim(c)) {
                return false; /* includes '@' (userinfo), '/', spaces */
            }
        }
        if (i == 0)
            return false;
    }
    if (i == h.n)
        return true;
    if (h.p[i] != ':')
        return false;
    i++;
    if (i == h.n || h.n - i > 5)
        return false;
    unsigned port = 0;
    for (; i < h.n; i++) {
        if (h.p[i] < '0' || h.p[i] > '9')
            return false;
        port = port * 10 + (unsigned)(h.p[i] - '0');
    }
    return port <= 65535;
}

/* ---- targets ---- */

long h1_normalize(const char *in, size_t n, char *out, size_t cap, size_t *pathlen)
{
    size_t pend = 0, qend;
    while (pend < n && in[pend] != '?' && in[pend] != '#')
        pend++;
    qend = pend;
    if (pend < n && in[pend] == '?')
        while (qend < n && in[qend] != '#')
            qend++;
    if (pend == 0 || in[0] != '/' || cap < n + 1)
        return -1;

    /* pass 1: percent-decoding of unreserved characters only */
    size_t dn = 0;
    for (size_t i = 0; i < pend; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= pend)
                return -1;
            hi = hexval((unsigned char)in[i + 1]);
            lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            unsigned char d = (unsigned char)(hi << 4 | lo);
            if (is_unreserved(d)) {
                out[dn++] = (char)d;
            } else {
                static const char hx[] = "0123456789ABCDEF";
                out[dn++] = '%';
                out[dn++] = hx[hi];
                out[dn++] = hx[lo];
            }
            i += 2;
        } else {
            out[dn++] = (char)c;
        }
    }

    /* pass 2, in place: merge slashes, remove dot segments (RFC 3986 5.2.4) */
    size_t o = 0, i = 0;
    while (i < dn) {
        while (i < dn && out[i] == '/')
            i++;
        size_t s = i;
        while (i < dn && out[i] != '/')
            i++;
        size_t len = i - s;
        if (len == 0) {
            out[o++] = '/';
            break;
        }
        if (len == 1 && out[s] == '.') {
            if (i >= dn)
                out[o++] = '/';
            continue;
        }
        if (len == 2 && out[s] == '.' && out[s + 1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            if (i >= dn)
                out[o++] = '/';
            continue;
        }
        out[o++] = '/';
        memmove(out + o, out + s, len);
        o += len;
    }
    if (o == 0)
        out[o++] = '/';
    *pathlen = o;
    if (qend > pend) {
        memcpy(out + o, in + pend, qend - pend);
        o += qend - pend;
    }
    return (long)o;
}

bool h1_split_absolute(struct str t, struct str *authority, struct str *rest)
{
    size_t i;
    if (t.n > 7 && str_ieq(str_make(t.p, 7), STR_LIT("http://")))
        i = 7;
    else if (t.n > 8 && str_ieq(str_make(t.p, 8), STR_LIT("https://")))
        i = 8;
    else
        return false;
    size_t a = i;
    while (i < t.n && t.p[i] != '/' && t.p[i] != '?' && t.p[i] != '#') {
        if (t.p[i] == '@')
            return false;
        i++;
    }
    if (i == a)
        return false;
    *authority = str_make(t.p + a, i - a);
    if (i == t.n)
        *rest = STR_LIT("/");
    else if (t.p[i] != '/')
        return false;
    else
        *rest = str_make(t.p + i, t.n - i);
    return true;
}

const char *h1_reason(unsigned status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
