/* Initial centroids (see init.c). */
#ifndef FKM_INIT_H
#define FKM_INIT_H

#include "backend.h"
#include "fkm.h"
#include "rowsrc.h"

/* k distinct row ids of [0, n), a pure function of (n, k, seed), in draw order. */
int fkm_sample_rows(int64_t n, int64_t k, uint64_t seed, int64_t *ids, fkm_error *err);
/* Copy the rows among ids that fall in this rank's rows [row0, row0 + src->n) into out
 * (k×d, zero elsewhere): a sum over ranks then gives every rank all k rows. */
int fkm_init_from_rows(const int64_t *ids, int64_t k, const fkm_rowsrc *src, int64_t row0,
                       double *out, fkm_error *err);

#endif
