/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap-t.h: the data model of one immutable configuration snapshot.
 *
 * Built by the loader thread (snap.c, from the decoded Kubernetes objects) in
 * one arena, published to workers, read-only from then on. Everything a
 * request needs to be routed and balanced is reachable from struct snap; all
 * runtime-mutable state (health, counters, pools, cursors) lives outside it and
 * is only *pointed to* (struct hc_ep is refcounted by the health table).
 *
 * Lifetime: refcounted; each worker holds one ref on its current snapshot and
 * each in-flight request one more. The last snap_release() frees the arena.
 */
#ifndef INGRESSD_SNAP_T_H
#define INGRESSD_SNAP_T_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct arena;
struct route_table;
struct hc_ep;
struct lb_ring;
struct tls_store;
struct np_table;
struct route_spec;

#define SNAP_MAGIC 0x534e4150u

enum lb_algo { LB_ROUND_ROBIN = 0, LB_LEAST_CONN, LB_EWMA, LB_HASH };
enum lb_hash_by { LB_HASH_REMOTE_ADDR = 0, LB_HASH_HEADER, LB_HASH_COOKIE, LB_HASH_PATH };
enum lb_affinity { LB_AFFINITY_NONE = 0, LB_AFFINITY_CLIENT_IP, LB_AFFINITY_COOKIE };

/* retry_on bits (ingressd/retry-on: "error,timeout,http_502,http_503,http_504") */
#define RETRY_ON_ERROR   0x01u  /* connect failure / reset before any response byte (default) */
#define RETRY_ON_TIMEOUT 0x02u
#define RETRY_ON_502     0x04u
#define RETRY_ON_503     0x08u
#define RETRY_ON_504     0x10u

struct snap_hc_conf {                  /* active health check; interval 0 = no active checks */
    const char *path;                  /* NULL = TCP connect check */
    uint32_t interval_ms;
    uint32_t timeout_ms;
    uint32_t healthy_threshold;
    uint32_t unhealthy_threshold;
    uint16_t port;                     /* 0 = the endpoint's own port */
    uint16_t status_min, status_max;   /* expected status range, default 200-399 */
};

struct snap_outlier_conf {             /* passive health (outlier detection) */
    uint32_t consecutive_failures;     /* 0 = off; default 5 */
    uint32_t base_ejection_ms;         /* default 1000 */
    uint32_t max_ejection_ms;          /* cap, default 30000 */
    uint32_t max_ejection_pct;         /* default 50 */
};

struct snap_timeouts {                 /* milliseconds */
    uint32_t client_header;            /* whole request head must arrive in this (slowloris) */
    uint32_t client_idle;              /* keep-alive idle between requests */
    uint32_t client_body;              /* between two reads of a request body */
    uint32_t upstream_connect;
    uint32_t upstream_read;            /* between two reads from the pod (response) */
    uint32_t upstream_idle;            /* idle pooled upstream connection lifetime */
    uint32_t tunnel_idle;              /* upgraded (WebSocket) connection idle */
};

struct snap_listener {
    const char *address;               /* as written, "127.0.0.1:18080" */
    struct sockaddr_storage sa;
    socklen_t salen;
    bool tls;
};

struct snap_tls_conf {
    const char *ciphers;               /* TLS 1.2 cipher list, OpenSSL syntax */
    const char *ciphersuites;          /* TLS 1.3 suites */
    uint32_t hsts_max_age;             /* 0 = no HSTS header */
    bool hsts_include_subdomains;
    uint32_t ticket_rotate_ms;         /* session ticket key rotation */
};

struct snap_settings {                 /* ProxyConfig spec, defaults applied */
    struct snap_listener *listeners;
    uint32_t nlisteners;
    const char *admin;                 /* NULL = no admin listener */
    struct sockaddr_storage admin_sa;
    socklen_t admin_salen;
    uint32_t workers;                  /* defaults to the CPU count */
    const char *default_certificate;   /* "ns/name" or NULL */
    const char *ingress_class;         /* NULL = serve every Ingress */
    struct snap_timeouts timeouts;
    uint64_t max_body_size;            /* 0 = unlimited; default 1 GiB? see cfg docs */
    uint32_t max_header_size;          /* whole request head; default 32 KiB -> 431 */
    uint32_t drain_timeout_ms;         /* default 30 s */
    uint32_t upstream_keepalive;       /* max idle upstream conns per endpoint per worker */
    uint32_t retries;                  /* default 2 */
    uint32_t retry_budget_pct;         /* default 20; at least 3 concurrent retries always */
    uint32_t panic_threshold_pct;      /* 0 = off */
    enum lb_algo load_balance;         /* default for Services without the annotation */
    struct snap_hc_conf health;        /* default active check */
    struct snap_outlier_conf outlier;
    struct snap_tls_conf tls;
    const char *access_log;            /* NULL = no access log; "-" = stderr */
};

struct snap_endpoint {
    const char *addr;                  /* "ip:port", the key in the health table */
    struct sockaddr_storage sa;
    socklen_t salen;
    bool ready;                        /* EndpointSlice conditions.ready (Endpoints: addresses) */
    bool terminating;                  /* no new requests */
    struct hc_ep *hc;                  /* shared runtime state; the snapshot holds one ref */
};

/* One Service port resolved to its endpoints, plus the policy to use them. */
struct snap_backend {
    uint32_t id;                       /* index into snap->backends */
    const char *name;                  /* "ns/svc:port" (unique key) */
    const char *service;               /* "ns/svc" */
    struct snap_endpoint *eps;
    uint32_t neps;
    uint32_t nready;                   /* eps with ready && !terminating */
    enum lb_algo algo;
    enum lb_hash_by hash_by;
    const char *hash_key;              /* header or cookie name for HEADER/COOKIE */
    enum lb_affinity affinity;
    uint32_t affinity_timeout_s;       /* ClientIP timeoutSeconds; default 10800 */
    const char *affinity_cookie;       /* cookie name, default "INGRESSD" */
    const struct lb_ring *ring;        /* consistent-hash ring, built at load (NULL if unused) */
    struct snap_hc_conf hc;
    uint32_t retry_on;                 /* RETRY_ON_* */
    uint32_t retries;
    bool upstream_tls;                 /* ingressd/backend-protocol: HTTPS */
    const char *upstream_sni;
    bool upstream_verify;
    void *upstream_ssl_ctx;            /* SSL_CTX* (refcounted by OpenSSL), or NULL */
    const char *external_name;         /* Service type ExternalName: resolved at connect time */
    uint16_t external_port;
};

/* What a matched route does; pointed to by the route table. */
struct snap_route {
    const struct snap_backend *backend; /* NULL: no backend (503 if the service has no endpoints) */
    const char *ingress;                /* "ns/name" of the Ingress it came from */
    const char *host;                   /* rule host or NULL */
    const char *path;                   /* rule path */
    bool ssl_redirect;                  /* 308 plain HTTP to https (host has TLS and not disabled) */
    bool has_tls;                       /* rule host is covered by some spec.tls */
    uint32_t rewrite_len;               /* 0 = none */
    const char *rewrite_target;         /* nginx.ingress.kubernetes.io/rewrite-target or NULL */
    bool has_max_body_size;             /* proxy-body-size annotation given (else cfg.max_body_size) */
    uint64_t max_body_size;             /* per-route limit, 0 = unlimited */
    bool use_regex;                     /* the path is a PCRE2 pattern (use-regex) */
    uint32_t seq;                       /* declaration order (for diagnostics and regex order) */
};

struct snap_quarantine {               /* an object rejected on the last load */
    const char *object;                /* "Ingress default/shop" */
    const char *file;
    uint32_t line;
    const char *error;                 /* first error message */
    bool serving_previous;             /* its last good version is in this snapshot */
};

struct snap {
    unsigned magic;                    /* SNAP_MAGIC */
    _Atomic unsigned refs;
    uint64_t gen;                      /* generation, 1 for the first snapshot */
    struct arena *arena;               /* owns everything below */
    const char *source;                /* configuration path */
    struct snap_settings cfg;
    const struct route_table *routes;
    const struct snap_route *default_route; /* Ingress defaultBackend, or NULL (404) */
    struct snap_backend *backends;
    uint32_t nbackends;
    struct tls_store *tls;             /* SNI -> SSL_CTX; NULL without TLS listeners */
    struct np_table *netpol;           /* NULL = allow all */
    struct snap_quarantine *quarantine;
    uint32_t nquarantine;
    uint32_t ningresses, nrules, nservices, nendpoints; /* -t summary and /config */
    uint64_t load_ns;                  /* build duration */
    void *objects;                     /* cfg object set that built it (for quarantine reuse) */
    /* added by rld (admin /config lists the routes): the specs route_build() compiled,
     * copied into the arena; NULL when the builder does not keep them */
    const struct route_spec *route_specs;
    uint32_t nroute_specs;
};

#endif
