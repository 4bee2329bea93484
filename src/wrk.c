/* SPDX-License-Identifier: Apache-2.0 */
/* wrk: PLACEHOLDER until the data plane lands. */
#include "ingressd/wrk.h"

#include <string.h>

int wrk_pool_start(struct snap *s) { (void)s; return -1; }
void wrk_pool_publish(struct snap *s) { (void)s; }
void wrk_pool_drain(uint32_t timeout_ms) { (void)timeout_ms; }
void wrk_pool_stats(struct wrk_stats *out) { memset(out, 0, sizeof(*out)); }
uint64_t wrk_pool_inflight(void) { return 0; }
