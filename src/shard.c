#include "shard.h"
#include "util.h"

#include <stdlib.h>

int fkm_shard_read(fkm_reader *r, const fkm_dsinfo *info, int64_t row0, int64_t n,
                   int64_t chunk_rows, fkm_shard_data *s, fkm_error *err)
{
    s->row0 = row0;
    s->n = n;
    s->d = info->d;
    s->dt = info->dtype == FKM_IO_F16 ? FKM_DT_F16 : FKM_DT_F32;
    const size_t esz = s->dt == FKM_DT_F16 ? 2 : 4, row_bytes = (size_t)info->d * esz;
    s->rows = fkm_malloc((size_t)n * row_bytes, "this rank's shard", err);
    if (!s->rows) return FKM_ENOMEM;
    if (chunk_rows <= 0) chunk_rows = (int64_t)((64u << 20) / row_bytes) > 0 ? (int64_t)((64u << 20) / row_bytes) : 1;
    for (int64_t off = 0; off < n; off += chunk_rows) {
        int64_t m = n - off < chunk_rows ? n - off : chunk_rows;
        int st = fkm_reader_read_native(r, row0 + off, m, (char *)s->rows + (size_t)off * row_bytes, err);
        if (st) return st;
    }
    return FKM_OK;
}

void fkm_shard_free(fkm_shard_data *s)
{
    free(s->rows);
    s->rows = NULL;
}
