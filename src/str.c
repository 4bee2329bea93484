/* SPDX-License-Identifier: Apache-2.0 */
/*
 * str: byte-slice helpers and the two value grammars the configuration shares
 * with Kubernetes and ingress-nginx (Go durations, nginx sizes).
 */
#include "ingressd/str.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>

static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

bool str_eq(struct str a, struct str b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }

bool str_ieq(struct str a, struct str b)
{
    if (a.n != b.n)
        return false;
    for (size_t i = 0; i < a.n; i++)
        if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
            return false;
    return true;
}

bool str_ieq_cstr(struct str a, const char *b) { return str_ieq(a, str_cstr(b)); }

bool str_has_prefix(struct str s, struct str prefix)
{
    return s.n >= prefix.n && memcmp(s.p, prefix.p, prefix.n) == 0;
}

struct str str_trim(struct str s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
        s.n--;
    return s;
}

struct str str_next_token(struct str *s, char sep)
{
    const char *e = s->n ? memchr(s->p, sep, s->n) : NULL;
    struct str tok;
    if (!e) {
        tok = *s;
        s->p += s->n;
        s->n = 0;
        return tok;
    }
    tok = str_make(s->p, (size_t)(e - s->p));
    s->n -= tok.n + 1;
    s->p = e + 1;
    return tok;
}

bool str_to_u64(struct str s, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;
    if (s.n == 0)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        unsigned d = (unsigned char)s.p[i] - '0';
        if (d > 9 || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

unsigned long long str_hash(struct str s)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < s.n; i++)
        h = (h ^ (unsigned char)s.p[i]) * 1099511628211ULL;
    return h;
}

unsigned long long str_ihash(struct str s)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < s.n; i++)
        h = (h ^ lower((unsigned char)s.p[i])) * 1099511628211ULL;
    return h;
}

/* Go time.ParseDuration subset: sequences of <decimal><unit>, unit in h m s ms us ns */
bool str_parse_duration_ms(const char *s, unsigned long long *ms)
{
    double total_ns = 0;
    const char *p = s;
    if (!s || !*s)
        return false;
    /* a bare number means seconds, as ingress-nginx's annotations do */
    {
        const char *q = s;
        while (isdigit((unsigned char)*q) || *q == '.')
            q++;
        if (*q == '\0') {
            char *end;
            double v = strtod(s, &end);
            if (*end || v < 0 || v > 1e9)
                return false;
            *ms = (unsigned long long)(v * 1000.0 + 0.5);
            return true;
        }
    }
    while (*p) {
        char *end;
        double v;
        double unit;
        if (!isdigit((unsigned char)*p) && *p != '.')
            return false;
        v = strtod(p, &end);
        if (end == p)
            return false;
        p = end;
        if (p[0] == 'h') {
            unit = 3600e9;
            p += 1;
        } else if (p[0] == 'm' && p[1] == 's') {
            unit = 1e6;
            p += 2;
        } else if (p[0] == 'm') {
            unit = 60e9;
            p += 1;
        } else if (p[0] == 's') {
            unit = 1e9;
            p += 1;
        } else if ((p[0] == 'u' && p[1] == 's') || (p[0] == 'n' && p[1] == 's')) {
            unit = p[0] == 'u' ? 1e3 : 1;
            p += 2;
        } else {
            return false;
        }
        total_ns += v * unit;
        if (total_ns > 1e18)
            return false;
    }
    *ms = (unsigned long long)(total_ns / 1e6 + 0.5);
    return true;
}

bool str_parse_size(const char *s, unsigned long long *bytes)
{
    unsigned long long v = 0, mul = 1;
    const char *p = s;
    if (!s || !isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        p++;
    }
    switch (lower((unsigned char)*p)) {
    case '\0': break;
    case 'k': mul = 1ULL << 10; p++; break;
    case 'm': mul = 1ULL << 20; p++; break;
    case 'g': mul = 1ULL << 30; p++; break;
    default: return false;
    }
    if (mul > 1 && lower((unsigned char)*p) == 'b')
        p++;
    if (*p != '\0' || (mul > 1 && v > UINT64_MAX / mul))
        return false;
    *bytes = v * mul;
    return true;
}
