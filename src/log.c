/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log: timestamped lines, each formatted into a stack buffer and written with
 * one write(2), so concurrent threads never interleave within a line.
 */
#include "ingressd/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_fd_ = 2;
static atomic_int log_level_ = LOGL_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_open(const char *path)
{
    if (!path || strcmp(path, "-") == 0 || strcmp(path, "stderr") == 0) {
        atomic_store(&log_fd_, 2);
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int old = atomic_exchange(&log_fd_, fd);
    if (old > 2)
        close(old);
    return 0;
}

void log_set_level(enum log_level lvl) { atomic_store(&log_level_, (int)lvl); }
int log_fd(void) { return atomic_load(&log_fd_); }

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    char buf[4096];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;

    if ((int)lvl > atomic_load_explicit(&log_level_, memory_order_relaxed))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03ldZ [%s] ", ts.tv_nsec / 1000000,
                          level_names[lvl]);
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t w = write(atomic_load_explicit(&log_fd_, memory_order_relaxed), buf, n);
    (void)w;
}
