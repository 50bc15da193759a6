#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int fkm_fail(fkm_error *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void fkm_error_clear(fkm_error *err)
{
    if (err) {
        err->status = FKM_OK;
        err->msg[0] = '\0';
    }
}

double fkm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void *fkm_malloc(size_t bytes, const char *what, fkm_error *err)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        fkm_fail(err, FKM_ENOMEM, "out of host memory: %s needs %.1f MiB", what,
                 (double)bytes / (1024.0 * 1024.0));
    return p;
}

void *fkm_calloc(size_t count, size_t size, const char *what, fkm_error *err)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        fkm_fail(err, FKM_ENOMEM, "out of host memory: %s needs %.1f MiB", what,
                 (double)count * (double)size / (1024.0 * 1024.0));
    return p;
}

void fkm_shard(int64_t n, int p, int r, int64_t *row0, int64_t *cnt)
{
    int64_t base = n / p, extra = n % p;
    *row0 = (int64_t)r * base + (r < extra ? r : extra);
    *cnt = base + (r < extra ? 1 : 0);
}
