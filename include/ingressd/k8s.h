/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s: typed Kubernetes (and ingressd/v1 ProxyConfig) objects decoded from a
 * ydoc tree through field tables (nginx ngx_command_t, twemproxy
 * conf_commands): every field is a row {name, type, offset, required}, so the
 * decoders are data, and wrong types / missing required fields / unknown
 * fields are reported the same way everywhere.
 *
 * Ownership: every decoded object has its own small arena and an atomic
 * refcount, and is immutable once decoded. A snapshot references the set of
 * objects it was built from, so a later load can keep serving the last good
 * version of an object that is now broken (quarantine) without re-parsing.
 * Decoded on the loader thread; any thread may drop a ref.
 */
#ifndef INGRESSD_K8S_H
#define INGRESSD_K8S_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingressd/snap-t.h"

struct arena;
struct cfg_errs;
struct ydoc;
struct ydoc_node;

enum k8s_kind {
    K8S_PROXYCONFIG = 0,
    K8S_INGRESS,
    K8S_INGRESSCLASS,
    K8S_SERVICE,
    K8S_ENDPOINTSLICE,
    K8S_ENDPOINTS,
    K8S_SECRET,
    K8S_NETPOL,
    K8S_NKINDS
};

struct k8s_pos {
    uint32_t line, col;                /* 1-based, 0 = unknown */
};

struct k8s_kv {
    const char *k, *v;
    struct k8s_pos pos;                /* of the value */
};

struct k8s_kvs {
    struct k8s_kv *v;
    uint32_t n;
};

struct k8s_strs {
    const char **v;
    uint32_t n;
};

/* Kubernetes IntOrString (targetPort, NetworkPolicy port) */
struct k8s_intstr {
    bool set;
    bool is_num;
    uint32_t num;
    const char *str;
};

struct k8s_meta {
    const char *name;
    const char *ns;                    /* "default" when absent */
    struct k8s_kvs labels;
    struct k8s_kvs annotations;
};

/* ---- annotations that shape a backend (Service and Ingress) ---- */

#define K8S_HC_PATH      0x01u
#define K8S_HC_INTERVAL  0x02u
#define K8S_HC_TIMEOUT   0x04u
#define K8S_HC_HEALTHY   0x08u
#define K8S_HC_UNHEALTHY 0x10u
#define K8S_HC_PORT      0x20u

struct k8s_policy {                    /* overrides; -1 / 0 / NULL = not given */
    int algo;                          /* enum lb_algo or -1 */
    int hash_by;                       /* enum lb_hash_by or -1 */
    const char *hash_key;
    int affinity;                      /* enum lb_affinity or -1 */
    const char *affinity_cookie;
    struct snap_hc_conf hc;
    uint32_t hc_set;                   /* K8S_HC_* given */
    uint32_t retry_on;                 /* 0 = not given */
    int retries;                       /* -1 = not given */
    int upstream_tls;                  /* -1 not given, 0 HTTP, 1 HTTPS */
    const char *upstream_ca;           /* "ns/name" Secret with ca.crt (ingressd/upstream-ca-secret) */
    bool any;                          /* something was given */
};

struct k8s_ing_annot {                 /* routing behaviour from Ingress annotations */
    bool use_regex;
    int ssl_redirect;                  /* -1 not given */
    bool force_ssl_redirect;           /* redirect even without spec.tls for the host */
    const char *rewrite_target;
    bool has_body_size;
    uint64_t max_body_size;            /* nginx.ingress.kubernetes.io/proxy-body-size */
};

/* ---- ProxyConfig (ingressd/v1) ---- */

struct k8s_ing_backend {
    bool set;
    const char *service;               /* backend.service.name */
    const char *ns;                    /* ProxyConfig only: service.namespace (NULL = default) */
    const char *port_name;             /* backend.service.port.name or NULL */
    uint32_t port_number;              /* backend.service.port.number or 0 */
    bool has_resource;                 /* backend.resource (not supported: no route) */
    struct k8s_pos pos;                /* of backend.service */
    struct k8s_pos port_pos;
};


struct k8s_listen {
    const char *address;
    bool tls;
    struct k8s_pos pos, address_pos;
};

struct k8s_proxycfg {
    struct k8s_listen *listen;
    uint32_t nlisten;
    struct k8s_pos listen_pos;
    struct snap_settings s;            /* everything else, defaults applied */
    struct k8s_pos admin_pos, defcert_pos, tls_pos;
    struct k8s_ing_backend default_backend; /* spec.defaultBackend (last resort before 404) */
};

/* ---- Ingress ---- */


enum k8s_path_type { K8S_PATH_EXACT = 0, K8S_PATH_PREFIX, K8S_PATH_IMPL };

struct k8s_ing_path {
    const char *path;                  /* default "/" */
    int path_type;                     /* enum k8s_path_type */
    struct k8s_ing_backend backend;
    struct k8s_pos pos, path_pos;
};

struct k8s_ing_rule {
    const char *host;
    struct k8s_ing_path *paths;
    uint32_t npaths;
    struct k8s_pos pos;
};

struct k8s_ing_tls {
    struct k8s_strs hosts;
    const char *secret;
    struct k8s_pos pos, secret_pos;
};

struct k8s_ingress {
    const char *class_name;
    struct k8s_pos class_pos;
    struct k8s_ing_backend default_backend;
    struct k8s_ing_rule *rules;
    uint32_t nrules;
    struct k8s_ing_tls *tls;
    uint32_t ntls;
    struct k8s_policy policy;          /* annotation overrides of the Service's policy */
    struct k8s_ing_annot annot;
    const char *class_annotation;      /* kubernetes.io/ingress.class */
};

/* ---- IngressClass ---- */

struct k8s_ingressclass {
    const char *controller;
    bool is_default;                   /* annotation ingressclass.kubernetes.io/is-default-class */
};

/* ---- Service ---- */

enum k8s_svc_type { K8S_SVC_CLUSTERIP = 0, K8S_SVC_NODEPORT, K8S_SVC_LOADBALANCER,
                    K8S_SVC_EXTERNALNAME };

struct k8s_svc_port {
    const char *name;                  /* "" when unnamed */
    uint32_t port;
    struct k8s_intstr target;          /* defaults to port */
    uint32_t node_port;
    const char *protocol;
    struct k8s_pos pos;
};

struct k8s_service {
    int type;                          /* enum k8s_svc_type */
    const char *external_name;
    struct k8s_kvs selector;
    bool has_selector;
    int session_affinity;              /* 0 None, 1 ClientIP */
    uint32_t affinity_timeout_s;       /* sessionAffinityConfig.clientIP.timeoutSeconds */
    struct k8s_svc_port *ports;
    uint32_t nports;
    struct k8s_policy policy;
};

/* ---- EndpointSlice / Endpoints ---- */

struct k8s_ep_port {
    const char *name;                  /* "" when unnamed */
    uint32_t port;                     /* 0 = unset */
    const char *protocol;
};

struct k8s_ep_addr {
    const char *ip;
    bool ready;
    bool terminating;
    struct k8s_pos pos;
};

struct k8s_endpointslice {            /* also the decoded form of v1 Endpoints subsets */
    void *raw;                         /* endpoints[] as written (decoder scratch) */
    uint32_t nraw;
    const char *service;               /* label kubernetes.io/service-name (slice) or name */
    int address_type;                  /* 0 IPv4, 1 IPv6, 2 FQDN */
    struct k8s_ep_addr *addrs;         /* every address of every endpoint, flattened */
    uint32_t naddrs;
    struct k8s_ep_port *ports;
    uint32_t nports;
    /* v1 Endpoints: one (addrs, ports) group per subset */
    struct k8s_ep_subset {
        struct k8s_ep_addr *addrs;
        uint32_t naddrs;
        struct k8s_ep_addr *not_ready;
        uint32_t nnot_ready;
        struct k8s_ep_port *ports;
        uint32_t nports;
    } *subsets;
    uint32_t nsubsets;
};

/* ---- Secret ---- */

struct k8s_secret {
    const char *type;
    struct k8s_kvs data;               /* base64 as written */
    struct k8s_kvs string_data;
    /* decoded tls.crt / tls.key / ca.crt (data or stringData), NULL if absent */
    const unsigned char *crt, *key, *ca;
    size_t crtlen, keylen, calen;
};

/* ---- NetworkPolicy ---- */

struct k8s_np_ipblock {
    const char *cidr;
    struct k8s_strs except;
    struct k8s_pos pos;
};

struct k8s_np_peer {
    bool has_ipblock;
    struct k8s_np_ipblock ipblock;
    bool has_pod_selector, has_ns_selector;
};

struct k8s_np_port {
    const char *protocol;              /* TCP default */
    struct k8s_intstr port;            /* unset = all ports */
    uint32_t end_port;                 /* 0 = single port */
    struct k8s_pos pos;
};

struct k8s_np_rule {
    struct k8s_np_peer *from;
    uint32_t nfrom;
    struct k8s_np_port *ports;
    uint32_t nports;
};

struct k8s_netpol {
    struct k8s_kvs pod_selector;       /* matchLabels */
    bool has_match_expressions;
    struct k8s_strs policy_types;
    bool has_ingress_field, has_egress_field;
    struct k8s_np_rule *ingress;
    uint32_t ningress;
};

/* ---- one decoded object ---- */

struct k8s_obj {
    _Atomic unsigned refs;
    struct arena *arena;               /* owns the object and all it points to */
    enum k8s_kind kind;
    const char *kind_name;             /* "Ingress" */
    const char *id;                    /* "Ingress default/shop" (diagnostics, quarantine) */
    const char *key;                   /* "ns/name" */
    const char *file;
    struct k8s_pos pos;                /* of the object's map */
    struct k8s_meta meta;
    uint32_t seq;                      /* position in the stream (file order) */
    int32_t line_shift;                /* reused on a reload: add to every line (loader only) */
    uint32_t nerrors;                  /* decode + cross-check errors (0 = good) */
    const char *first_error;           /* first error message, for quarantine records */
    struct k8s_pos first_error_pos;
    union {
        struct k8s_proxycfg pc;
        struct k8s_ingress ing;
        struct k8s_ingressclass ic;
        struct k8s_service svc;
        struct k8s_endpointslice eps;  /* EndpointSlice and Endpoints */
        struct k8s_secret sec;
        struct k8s_netpol np;
    } u;
};

/* the objects of one stream, in file order (+ refs) */
struct k8s_objs {
    struct k8s_obj **v;
    uint32_t n, cap;
};

/*
 * Decodes every document of d (unwrapping `kind: List` items), appending
 * good and bad objects alike to out (a bad one has nerrors > 0); documents
 * that are not objects at all, or of unsupported kinds, are reported and
 * skipped. Diagnostics go to errs.
 */
void k8s_decode_stream(const struct ydoc *d, struct k8s_objs *out, struct cfg_errs *errs);

struct k8s_obj *k8s_obj_ref(struct k8s_obj *o);
void k8s_obj_put(struct k8s_obj *o);                 /* NULL is a no-op */
void k8s_objs_push(struct k8s_objs *s, struct k8s_obj *o);  /* takes the caller's ref */
void k8s_objs_free(struct k8s_objs *s);              /* puts every ref */

const char *k8s_kind_name(enum k8s_kind k);

/* ProxyConfig defaults (documented in k8s_proxycfg.c) */
void k8s_proxycfg_defaults(struct snap_settings *s);

/*
 * Adds an error attributed to object o (counted in o->nerrors, first one
 * remembered for quarantine). fmt already includes "field.path: ".
 */
void k8s_obj_error(struct k8s_obj *o, struct cfg_errs *errs, struct k8s_pos pos, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
void k8s_obj_warn(struct k8s_obj *o, struct cfg_errs *errs, struct k8s_pos pos, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

/* a policy with nothing given (every override "not set") */
void k8s_policy_init(struct k8s_policy *p);

/* annotation / label value or NULL */
const char *k8s_kv_get(const struct k8s_kvs *kv, const char *k);
const struct k8s_kv *k8s_kv_find(const struct k8s_kvs *kv, const char *k);

/* base64 (EVP_DecodeBlock, padding-aware) into the arena; false on bad input */
bool k8s_base64_decode(struct arena *a, const char *in, size_t inlen, const unsigned char **out,
                       size_t *outlen);

/* "10.0.0.0/8" / "2001:db8::/32" -> network bytes, family, prefix; false on a bad CIDR */
bool k8s_parse_cidr(const char *s, unsigned char addr[16], int *family, unsigned *prefix);

/* "ip:port" / "[v6]:port" -> sockaddr; false on a bad address */
bool k8s_parse_hostport(const char *s, struct sockaddr_storage *sa, socklen_t *salen);

#endif
