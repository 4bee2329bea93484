/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cfg: the diagnostics list shared by the YAML reader, the object decoders
 * and the cross-reference checks. Errors are collected, not fatal, so that
 * `ingressd -t` can report every independent mistake in one run.
 */
#include "ingressd/cfg.h"

#include <stdlib.h>
#include <string.h>

void cfg_errs_init(struct cfg_errs *e) { memset(e, 0, sizeof(*e)); }

void cfg_errs_free(struct cfg_errs *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].file);
        free(e->v[i].obj);
        free(e->v[i].msg);
    }
    free(e->v);
    memset(e, 0, sizeof(*e));
}

void cfg_errs_vadd(struct cfg_errs *e, enum cfg_sev sev, const char *file, unsigned line,
                   unsigned col, const char *obj, const char *fmt, va_list ap)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        struct cfg_err *v = realloc(e->v, cap * sizeof(*v));
        if (!v)
            abort();
        e->v = v;
        e->cap = cap;
    }
    struct cfg_err *err = &e->v[e->n++];
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    err->sev = sev;
    err->file = file ? strdup(file) : NULL;
    err->line = line;
    err->col = col;
    err->obj = obj ? strdup(obj) : NULL;
    err->msg = msg;
    if (sev == CFG_ERROR)
        e->nerrors++;
    else
        e->nwarnings++;
}

void cfg_errs_add(struct cfg_errs *e, enum cfg_sev sev, const char *file, unsigned line,
                  unsigned col, const char *obj, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_errs_vadd(e, sev, file, line, col, obj, fmt, ap);
    va_end(ap);
}

void cfg_err_format(const struct cfg_err *err, char *buf, size_t len)
{
    const char *sev = err->sev == CFG_ERROR ? "error" : "warning";
    if (err->line)
        snprintf(buf, len, "%s:%u:%u: %s: %s%s%s", err->file ? err->file : "-", err->line,
                 err->col, sev, err->obj ? err->obj : "", err->obj ? ": " : "", err->msg);
    else
        snprintf(buf, len, "%s: %s: %s%s%s", err->file ? err->file : "-", sev,
                 err->obj ? err->obj : "", err->obj ? ": " : "", err->msg);
}

void cfg_errs_print(const struct cfg_errs *e, FILE *out)
{
    char buf[2048];
    for (size_t i = 0; i < e->n; i++) {
        cfg_err_format(&e->v[i], buf, sizeof(buf));
        fprintf(out, "%s\n", buf);
    }
}
