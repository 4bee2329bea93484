/* SPDX-License-Identifier: Apache-2.0 */
/* hc: PLACEHOLDER until health checks land. */
#include "ingressd/hc.h"

int hc_start(void) { return 0; }
void hc_apply(struct snap *s) { (void)s; }
void hc_stop(void) {}
