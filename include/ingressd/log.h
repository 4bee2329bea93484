/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log: the error log (stderr unless --log FILE). One write(2) per line so lines
 * from different threads never interleave. Any thread.
 */
#ifndef INGRESSD_LOG_H
#define INGRESSD_LOG_H

enum log_level { LOGL_ERR = 0, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

int log_open(const char *path);                      /* NULL = stderr; <0 on error */
void log_set_level(enum log_level lvl);
int log_fd(void);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOGL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
