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

struct np_table;
struct snap_backend;

/* true when the client may reach the backend's pods on port (pod port) */
bool np_allow(const struct np_table *t, const struct snap_backend *be,
              const struct sockaddr *client, uint16_t port);

#endif
