/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s-int.h: the field-table machinery shared by the k8s_*.c decoders (not a
 * public API). A decoder is a table of struct k8s_field rows, one per YAML
 * key, walked by k8s__decode_map(); kind-specific semantics that a table
 * cannot say (cross-field rules, value grammars) go in a kind's check hook.
 */
#ifndef INGRESSD_K8S_INT_H
#define INGRESSD_K8S_INT_H

#include <stddef.h>

#include "ingressd/k8s.h"
#include "ingressd/ydoc.h"

enum k8s_ftype {
    KF_STR = 0,    /* any non-null scalar -> const char * */
    KF_BOOL,       /* true/false -> bool */
    KF_U32,        /* integer in [min, max] -> uint32_t */
    KF_DURATION,   /* Go duration or bare seconds -> uint32_t ms */
    KF_SIZE,       /* 512, 8k, 1m, 1g -> uint64_t */
    KF_SIZE32,     /* same, -> uint32_t */
    KF_U16,        /* integer in [min, max] -> uint16_t */
    KF_ENUM,       /* one of enums[] -> int (index) */
    KF_MAP,        /* nested map decoded with sub table at off */
    KF_SEQ,        /* list: elements decoded with sub[0] into an arena array */
    KF_KVS,        /* map of string -> string -> struct k8s_kvs */
    KF_INTSTR,     /* IntOrString -> struct k8s_intstr */
    KF_IGNORE,     /* accepted, not used (status, managedFields, ...) */
    KF_FUNC,       /* custom setter fn */
};

struct k8s_dctx;

struct k8s_field {
    const char *name;                  /* NULL ends a table */
    enum k8s_ftype type;
    size_t off;                        /* where the value goes, from the decoded struct */
    bool required;
    uint32_t min, max;                 /* KF_U32 range (max 0 = UINT32_MAX) */
    const char *const *enums;          /* KF_ENUM: NULL-terminated names */
    const struct k8s_field *sub;       /* KF_MAP: table; KF_SEQ: the element row */
    size_t elem_size;                  /* KF_SEQ */
    size_t cnt_off;                    /* KF_SEQ: uint32_t element count */
    size_t pos_off;                    /* offset + 1 of a struct k8s_pos to fill (0 = none) */
    size_t set_off;                    /* offset + 1 of a bool set when present (0 = none) */
    bool (*fn)(struct k8s_dctx *c, const struct ydoc_node *n, void *dst);  /* KF_FUNC */
};

#define K8S_OFF1(type, member) (offsetof(type, member) + 1)

/*
 * The field path ("spec.rules[0].http") is kept as a stack of pieces and
 * only spelled out for a message: a clean object never pays for it.
 */
#define K8S_PATH_MAX 128

struct k8s_path_seg {
    const char *key;                   /* NULL: a list index */
    uint32_t idx;
};

struct k8s_dctx {
    struct k8s_obj *o;
    struct cfg_errs *errs;
    struct arena *a;
    struct k8s_path_seg path[K8S_PATH_MAX];
    size_t plen;                       /* pieces (deeper ones than K8S_PATH_MAX are not kept) */
};

struct k8s_kind_def {
    enum k8s_kind kind;
    const char *name;
    const char *const *api_versions;   /* NULL-terminated */
    const struct k8s_field *top;       /* fields besides apiVersion/kind/metadata */
    void (*init)(struct k8s_obj *o);   /* defaults, before decoding */
    void (*check)(struct k8s_dctx *c, const struct ydoc_node *n);  /* post-decode semantics */
};

extern const struct k8s_kind_def k8s__proxycfg_def, k8s__ingress_def, k8s__ingressclass_def,
    k8s__service_def, k8s__endpointslice_def, k8s__endpoints_def, k8s__secret_def,
    k8s__netpol_def;

/* path helpers: push returns the length to restore */
size_t k8s__path_key(struct k8s_dctx *c, const char *key);
size_t k8s__path_idx(struct k8s_dctx *c, uint32_t i);
static inline void k8s__path_restore(struct k8s_dctx *c, size_t len)
{
    c->plen = len;
}

/* error / warning at node n (or pos) about the current path */
void k8s__err(struct k8s_dctx *c, const struct ydoc_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void k8s__err_at(struct k8s_dctx *c, struct k8s_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void k8s__warn(struct k8s_dctx *c, const struct ydoc_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void k8s__decode_map(struct k8s_dctx *c, const struct k8s_field *t, const struct ydoc_node *n,
                     void *base);
struct k8s_pos k8s__pos(const struct ydoc_node *n);

/* value grammars shared by decoders (annotations included) */
bool k8s__is_ip(const char *s);

void k8s__policy_parse(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia);

#endif
