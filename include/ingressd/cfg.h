/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cfg: configuration diagnostics. Errors are collected, never fatal on the
 * first one (h2o errprintf, nginx -t), and printed as
 *     FILE:LINE:COL: error: Ingress default/shop: spec.rules[0].http.paths[1].pathType: unknown value "Foo"
 * Loader thread (and main for -t).
 */
#ifndef INGRESSD_CFG_H
#define INGRESSD_CFG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

enum cfg_sev { CFG_ERROR = 0, CFG_WARNING = 1 };

struct cfg_err {
    enum cfg_sev sev;
    char *file;           /* owned (malloc) */
    unsigned line, col;   /* 1-based; 0 = unknown */
    char *obj;            /* "Ingress default/shop" or NULL; owned */
    char *msg;            /* owned */
};

struct cfg_errs {
    struct cfg_err *v;
    size_t n, cap;
    size_t nerrors, nwarnings;
};

void cfg_errs_init(struct cfg_errs *e);
void cfg_errs_free(struct cfg_errs *e);
void cfg_errs_add(struct cfg_errs *e, enum cfg_sev sev, const char *file, unsigned line,
                  unsigned col, const char *obj, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
void cfg_errs_vadd(struct cfg_errs *e, enum cfg_sev sev, const char *file, unsigned line,
                   unsigned col, const char *obj, const char *fmt, va_list ap);
/* formats one diagnostic as a single line without newline into buf */
void cfg_err_format(const struct cfg_err *err, char *buf, size_t len);
/* prints every diagnostic, one per line */
void cfg_errs_print(const struct cfg_errs *e, FILE *out);

#endif
