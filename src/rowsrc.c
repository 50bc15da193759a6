#include "rowsrc.h"

#include <string.h>

static int mem_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    const fkm_rowsrc *s = ctx;
    size_t rb = fkm_rowsrc_row_bytes(s);
    memcpy(dst, (const char *)s->resident + (size_t)r0 * rb, (size_t)m * rb);
    return FKM_OK;
}

void fkm_rowsrc_memory(fkm_rowsrc *s, const void *rows, fkm_dtype dt, int64_t n, int64_t d)
{
    s->n = n;
    s->d = d;
    s->dt = dt;
    s->resident = rows;
    s->read = mem_read;
    s->ctx = s;
}

static int file_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    fkm_filesrc *f = ctx;
    return fkm_reader_read_native(f->reader, f->row0 + r0, m, dst, err);
}

void fkm_rowsrc_file(fkm_rowsrc *s, fkm_filesrc *f, fkm_reader *r, const fkm_dsinfo *info,
                     int64_t row0, int64_t n)
{
    f->reader = r;
    f->row0 = row0;
    s->n = n;
    s->d = info->d;
    s->dt = info->dtype == FKM_IO_F16 ? FKM_DT_F16 : FKM_DT_F32;
    s->resident = NULL;
    s->read = file_read;
    s->ctx = f;
}
