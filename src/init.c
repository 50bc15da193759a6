/* Initial centroids. `random` draws k distinct global row ids from the seed alone, so the
 * start does not depend on how many ranks share the rows. */
#include "init.h"
#include "comm.h"
#include "half.h"
#include "rng.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* Open-addressing set of int64 row ids, for Floyd's sampling. */
typedef struct {
    int64_t *slot;
    uint64_t mask;
} idset;

static int set_insert(idset *s, int64_t v)
{ /* 1 when inserted, 0 when already there */
    uint64_t h = fkm_mix64((uint64_t)v) & s->mask;
    while (s->slot[h] >= 0) {
        if (s->slot[h] == v) return 0;
        h = (h + 1) & s->mask;
    }
    s->slot[h] = v;
    return 1;
}

int fkm_sample_rows(int64_t n, int64_t k, uint64_t seed, int64_t *ids, fkm_error *err)
{
    return fkm_sample_rows_stream(n, k, seed, FKM_STREAM_INIT, ids, err);
}

int fkm_sample_rows_stream(int64_t n, int64_t k, uint64_t seed, uint64_t stream, int64_t *ids,
                           fkm_error *err)
{
    uint64_t cap = 16;
    while (cap < (uint64_t)k * 2) cap <<= 1;
    idset s = {fkm_malloc(cap * sizeof(int64_t), "the init sample", err), cap - 1};
    if (!s.slot) return FKM_ENOMEM;
    memset(s.slot, 0xff, cap * sizeof(int64_t));
    /* Floyd: for j in [n-k, n), take t uniform in [0, j]; t if new, else j. */
    int64_t m = 0;
    for (int64_t j = n - k; j < n; j++) {
        int64_t t = (int64_t)fkm_rand_below(seed, stream, (uint64_t)j, (uint64_t)j + 1);
        ids[m++] = set_insert(&s, t) ? t : (set_insert(&s, j), j);
    }
    free(s.slot);
    return FKM_OK;
}

int fkm_init_from_rows(const int64_t *ids, int64_t k, const fkm_rowsrc *src, int64_t row0,
                       double *out, fkm_error *err)
{
    const int64_t d = src->d;
    memset(out, 0, (size_t)(k * d) * sizeof(double));
    void *row = fkm_malloc(fkm_rowsrc_row_bytes(src), "a row", err);
    if (!row) return FKM_ENOMEM;
    for (int64_t j = 0; j < k; j++) {
        int64_t r = ids[j] - row0;
        if (r < 0 || r >= src->n) continue;
        int st = src->read(src->ctx, r, 1, row, err);
        if (st) {
            free(row);
            return st;
        }
        for (int64_t t = 0; t < d; t++)
            out[j * d + t] = src->dt == FKM_DT_F16 ? fkm_half_to_float(((const uint16_t *)row)[t])
                                                   : ((const float *)row)[t];
    }
    free(row);
    return FKM_OK;
}

int fkm_gather_rows(struct fkm_comm *c, const fkm_rowsrc *src, int64_t row0, const int64_t *ids,
                    int64_t m, float *out, fkm_error *err)
{
    const int64_t d = src->d;
    int64_t block = (int64_t)((32u << 20) / ((size_t)d * sizeof(double)));
    if (block < 1) block = 1;
    if (block > m) block = m > 0 ? m : 1;
    double *acc = fkm_malloc((size_t)(block * d) * sizeof(double), "the gathered rows", err);
    int s = fkm_comm_agree(c, err);
    for (int64_t b0 = 0; b0 < m && !s; b0 += block) {
        const int64_t mb = m - b0 < block ? m - b0 : block;
        fkm_init_from_rows(ids + b0, mb, src, row0, acc, err);
        if ((s = fkm_comm_agree(c, err))) break;
        if ((s = fkm_comm_allreduce_sum_f64(c, acc, mb * d, err))) break;
        for (int64_t i = 0; i < mb * d; i++) out[b0 * d + i] = (float)acc[i];
    }
    free(acc);
    return fkm_comm_agree(c, err);
}
