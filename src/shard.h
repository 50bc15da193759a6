/* This rank's shard: its contiguous row range, read in bounded chunks. */
#ifndef FKM_SHARD_H
#define FKM_SHARD_H

#include "backend.h"
#include "io.h"

typedef struct fkm_shard_data {
    int64_t row0, n, d;
    fkm_dtype dt;  /* FKM_DT_F16 when the file holds float16, else float32 */
    void *rows;    /* n×d elements of dt */
} fkm_shard_data;

/* Read rows [row0, row0+n) of the open reader, chunk_rows at a time (0 = 64 MiB worth). */
int fkm_shard_read(fkm_reader *r, const fkm_dsinfo *info, int64_t row0, int64_t n,
                   int64_t chunk_rows, fkm_shard_data *s, fkm_error *err);
void fkm_shard_free(fkm_shard_data *s);

#endif
