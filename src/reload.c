/* SPDX-License-Identifier: Apache-2.0 */
/* rld: PLACEHOLDER until hot reload lands. */
#include "ingressd/rld.h"

#include <string.h>

#include "ingressd/snap.h"

static struct snap *current;

int rld_start(struct event_base *base, const char *path, struct snap *initial)
{
    (void)base;
    (void)path;
    current = snap_ref(initial);
    return 0;
}
void rld_request(const char *why) { (void)why; }
int rld_request_wait(const char *why, uint32_t timeout_ms) { (void)why; (void)timeout_ms; return -1; }
struct snap *rld_current(void) { return snap_ref(current); }
void rld_status(struct rld_status *out) { memset(out, 0, sizeof(*out)); }
void rld_stop(void) { snap_release(current); current = NULL; }
