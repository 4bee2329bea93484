/* SPDX-License-Identifier: Apache-2.0 */
/*
 * np: NetworkPolicy ingress rules (ipBlock cidr/except + ports) compiled per
 * backend at load time; np_allow() is a lock-free read on the request path.
 */
#ifndef INGRESSD_NP_H
#define INGRESSD_NP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct arena;
struct k8s_obj;
struct np_table;
struct snap_backend;

/* true when the client may reach the backend's pods on port (pod port) */
bool np_allow(const struct np_table *t, const struct snap_backend *be,
              const struct sockaddr *client, uint16_t port);

/* what np_build needs to know about each backend (index = backend id) */
struct np_backend_in {
    const struct k8s_obj *svc;         /* the Service object, NULL if unknown */
    const char *target_name;           /* Service targetPort name, or NULL */
    uint32_t target_port;              /* resolved pod port (0 = unknown / several) */
};

/*
 * Compiles the NetworkPolicy objects pols[0..npol) for nbe backends into the
 * arena. Returns NULL when no policy selects any backend (allow all).
 * Loader thread.
 */
struct np_table *np_build(struct arena *a, struct k8s_obj *const *pols, uint32_t npol,
                          const struct np_backend_in *in, uint32_t nbe);

#endif
