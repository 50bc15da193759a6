/* Small shared helpers: error formatting, timing, checked allocation. */
#ifndef FKM_UTIL_H
#define FKM_UTIL_H

#include "fkm.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fill err (status + printf-style one-line message) and return status. err may be NULL. */
int fkm_fail(fkm_error *err, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void fkm_error_clear(fkm_error *err);

/* Monotonic wall clock in milliseconds. */
double fkm_now_ms(void);

/* malloc that reports the size in err on failure (FKM_ENOMEM); NULL on failure. */
void *fkm_malloc(size_t bytes, const char *what, fkm_error *err);
void *fkm_calloc(size_t count, size_t size, const char *what, fkm_error *err);

/* Balanced contiguous split of n rows over p parts: part r gets [*row0, *row0 + *cnt). */
void fkm_shard(int64_t n, int p, int r, int64_t *row0, int64_t *cnt);

#ifdef __cplusplus
}
#endif
#endif
