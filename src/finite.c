/* The non-finite check of the input rows (NaN or ±inf), and the list of rows to skip. */
#include "half.h"
#include "rowsrc.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>

int fkm_scan_nonfinite(const fkm_rowsrc *src, int64_t row0, int skip, const char *what,
                       int64_t **bad, int64_t *nbad, fkm_error *err)
{
    *bad = NULL;
    *nbad = 0;
    const size_t rb = fkm_rowsrc_row_bytes(src);
    const int64_t d = src->d;
    int64_t piece = (int64_t)((64u << 20) / rb), cap = 0;
    if (piece > src->n) piece = src->n;
    if (piece < 1) piece = 1;
    void *buf = src->resident ? NULL : fkm_malloc((size_t)piece * rb, "the finiteness check", err);
    if (!src->resident && !buf) return FKM_ENOMEM;
    int st = FKM_OK;
    for (int64_t r0 = 0; r0 < src->n && !st; r0 += piece) {
        int64_t m = src->n - r0 < piece ? src->n - r0 : piece;
        const void *rows = src->resident ? (const char *)src->resident + (size_t)r0 * rb : buf;
        if (!src->resident && (st = src->read(src->ctx, r0, m, buf, err))) break;
        for (int64_t i = 0; i < m && !st; i++) {
            int64_t bad_col = -1;
            float v = 0;
            for (int64_t t = 0; t < d; t++) {
                v = src->dt == FKM_DT_F16 ? fkm_half_to_float(((const uint16_t *)rows)[i * d + t])
                                          : ((const float *)rows)[i * d + t];
                if (!isfinite(v)) {
                    bad_col = t;
                    break;
                }
            }
            if (bad_col < 0) continue;
            if (!skip) {
                st = fkm_fail(err, FKM_EINPUT,
                              "%s: row %lld has a non-finite value (%g) in column %lld; "
                              "--skip-nonfinite leaves such rows out",
                              what, (long long)(row0 + r0 + i), (double)v, (long long)bad_col);
                break;
            }
            if (*nbad == cap) {
                cap = cap ? 2 * cap : 64;
                int64_t *nb = realloc(*bad, (size_t)cap * sizeof(int64_t));
                if (!nb) {
                    st = fkm_fail(err, FKM_ENOMEM, "out of host memory listing non-finite rows");
                    break;
                }
                *bad = nb;
            }
            (*bad)[(*nbad)++] = r0 + i;
        }
    }
    free(buf);
    if (st) {
        free(*bad);
        *bad = NULL;
        *nbad = 0;
    }
    return st;
}
