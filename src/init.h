/* Initial centroids (see init.c). */
#ifndef FKM_INIT_H
#define FKM_INIT_H

#include "backend.h"
#include "fkm.h"

/* k distinct row ids of [0, n), a pure function of (n, k, seed), in draw order. */
int fkm_sample_rows(int64_t n, int64_t k, uint64_t seed, int64_t *ids, fkm_error *err);
/* Copy the rows among ids that fall in this rank's shard [row0, row0+nlocal) into out
 * (k×d, zero elsewhere): a sum over ranks then gives every rank all k rows. */
int fkm_init_from_rows(const int64_t *ids, int64_t k, int64_t d, const void *shard, fkm_dtype dt,
                       int64_t row0, int64_t nlocal, double *out);

#endif
