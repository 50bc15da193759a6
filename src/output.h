/* Writing the fit's output file: collective over the ranks, all or nothing. */
#ifndef FKM_OUTPUT_H
#define FKM_OUTPUT_H

#include "comm.h"
#include "io.h"

/* Rank 0 writes centroids, counts and attributes under a temporary name; then, when
 * labels != NULL, every rank in turn writes its rows of /labels (and, when distances != NULL,
 * of /distances: float32); then rank 0 renames the file into place. On any failure the
 * temporary file is removed and every rank returns the same error. */
int fkm_output_write(fkm_comm *c, const char *path, const fkm_out_meta *m, const float *centroids,
                     const int64_t *counts, const int32_t *labels, const float *distances,
                     int64_t row0, int64_t nlocal, fkm_error *err);

#endif
