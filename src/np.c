/* SPDX-License-Identifier: Apache-2.0 */
/* np: PLACEHOLDER until NetworkPolicy lands: allow everything. */
#include "ingressd/np.h"

bool np_allow(const struct np_table *t, const struct snap_backend *be, const struct sockaddr *client,
              uint16_t port)
{
    (void)t; (void)be; (void)client; (void)port;
    return true;
}
