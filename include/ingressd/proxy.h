/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proxy (px_): the request state machine (the flow is written at the top of
 * proxy.c). A px_req lives from a complete request head to the end of its
 * response (or tunnel); it holds its own snapshot ref for that whole time.
 * Objects come from a per-worker free-list and are reused, buffers included.
 * Worker thread only.
 */
#ifndef INGRESSD_PROXY_H
#define INGRESSD_PROXY_H

/* first: event_struct.h undoes sys/queue.h's TAILQ macros (see wrk.h) */
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "ingressd/http1.h"
#include "ingressd/lb.h"
#include "ingressd/snap-t.h"

struct conn;
struct wrk;
struct snap;
struct snap_route;
struct snap_backend;
struct snap_endpoint;
struct ups_conn;
struct evdns_getaddrinfo_request;
struct addrinfo;

#define PX_MAGIC 0x50585251u
#define PX_EXT_MAX 8                   /* ExternalName: addresses kept per DNS answer */

/* one resolved address (IPv4 or IPv6), without sockaddr_storage's 128 bytes */
union px_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

enum px_state {
    PX_NEW = 0,
    PX_RESOLVING,                      /* ExternalName: waiting for DNS */
    PX_CONNECTING,                     /* waiting for the pod connection */
    PX_WAIT_RESP,                      /* request sent (body may still stream) */
    PX_RESP_BODY,                      /* response head forwarded, body streaming */
    PX_TUNNEL,                         /* 101: raw bytes both ways */
    PX_DONE,
};

struct px_req {
    unsigned magic;
    enum px_state state;
    struct wrk *w;
    struct conn *ds;                   /* downstream connection */
    struct ups_conn *us;               /* upstream connection, or NULL */
    struct snap *snap;                 /* own ref, for the request's life */
    const struct snap_route *route;
    const struct snap_backend *be;
    const struct snap_endpoint *ep;    /* current pick (lb_done owed when set) */
    struct lb_req lbr;
    enum lb_result last_res;           /* why the last attempt failed */
    bool fresh_retry;                  /* the dead-pooled-connection retry was used */
    struct snap_endpoint ext_ep;       /* ExternalName: the address being tried */
    uint8_t ext_n;                     /* ExternalName: addresses in ext_addr (0: not resolved) */
    uint8_t ext_first;                 /* where this request starts in them (the rotation) */
    uint8_t ext_tried;                 /* tried so far, in order from ext_first */
    struct evdns_getaddrinfo_request *dnsreq; /* in flight, or NULL */
    char *raw;                         /* copy of the request head (views point here) */
    uint32_t rawcap;
    struct h1_msg req;                 /* request (body framing state) */
    struct h1_msg resp;                /* response head + body framing */
    char *ushead;                      /* rewritten request head (reused buffer) */
    uint32_t usheadlen, usheadcap;
    char reqid[64];
    uint8_t reqidlen;
    bool reqid_from_client;
    bool head_method;                  /* HEAD: response has no body */
    bool idempotent;
    bool client_keepalive;             /* client wants keep-alive */
    bool client_10;                    /* HTTP/1.0 client */
    bool upgrade;                      /* request asks for an upgrade */
    bool req_done;                     /* request body fully forwarded */
    bool body_started;                 /* some body bytes left the client buffer */
    bool resp_started;                 /* bytes of a response went to the client */
    bool resp_done;
    bool close_after;                  /* Connection: close on this response */
    bool dechunk;                      /* HTTP/1.0 client, chunked response */
    bool sent_100;
    bool ds_eof;                       /* the client half-closed (no more input) */
    bool no_host;                      /* HTTP/1.0 without Host: add the endpoint's */
    bool retry_begun;
    bool ds_paused, us_paused;         /* backpressure */
    bool splicing;                     /* response body moves pod -> pipe -> client (splice) */
    uint64_t sp_left;                  /* body bytes still to take from the pod */
    uint64_t sp_inpipe;                /* bytes in the pipe, not yet at the client */
    int sp_pipe[2];
    struct event sp_wev;               /* client writable, while the pipe waits for it */
    unsigned attempts;
    unsigned status;                   /* response status sent (for counters) */
    uint64_t body_bytes;               /* raw request body bytes moved (limit: req.body_len) */
    uint64_t max_body;                 /* route's limit (annotation) or spec.limits, 0 = none */
    uint64_t t_start_us, t_try_us;
    struct px_req *next_free;
    /* not cleared per request (only [0, ext_n) is read): this request's copy of the answer */
    union px_addr ext_addr[PX_EXT_MAX];
};

/* a complete head is at the front of c's input (head_len bytes) */
void px_start(struct conn *c, long head_len);
/* answers an error before a request exists (bad head, 408, 431), then closes */
void px_reject(struct conn *c, unsigned status);
/* downstream events for the request in progress */
void px_ds_read(struct px_req *r);
void px_ds_write(struct px_req *r);
void px_ds_eof(struct px_req *r, bool error);
void px_ds_timeout(struct px_req *r);
/* upstream events */
void px_us_read(struct px_req *r);
void px_us_write(struct px_req *r);
void px_us_event(struct px_req *r, short what);
/* the worker drains: this request's response closes the connection */
void px_set_draining(struct px_req *r);
/* frees the free-list (worker exit) */
void px_free_all(struct wrk *w);
/* aborts the request without a response (connection going away) */
void px_abort(struct px_req *r);
/* ExternalName: up to PX_EXT_MAX distinct IPv4/IPv6 addresses of a resolver
 * answer into out[], in the answer's order; returns how many (pure, any thread) */
unsigned px_ext_collect(const struct addrinfo *ai, union px_addr *out);

#endif
