#include "rowsrc.h"
#include "half.h"

#include <math.h>
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

int64_t fkm_skipsrc_base_row(const fkm_skipsrc *k, int64_t i)
{
    /* bad[j] - j valid rows come before bad[j]: find the first j where that exceeds i */
    int64_t lo = 0, hi = k->nbad;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (k->bad[mid] - mid > i)
            hi = mid;
        else
            lo = mid + 1;
    }
    return i + lo;
}

static int skip_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    const fkm_skipsrc *k = ctx;
    const size_t rb = fkm_rowsrc_row_bytes(k->base);
    int64_t o = fkm_skipsrc_base_row(k, r0), j = o - r0; /* j bad rows lie before o */
    char *out = dst;
    while (m > 0) {
        while (j < k->nbad && k->bad[j] == o) { /* step over bad rows */
            o++;
            j++;
        }
        int64_t run = j < k->nbad ? k->bad[j] - o : m;
        if (run > m) run = m;
        int st = k->base->read(k->base->ctx, o, run, out, err);
        if (st) return st;
        out += (size_t)run * rb;
        o += run;
        m -= run;
    }
    return FKM_OK;
}

void fkm_rowsrc_skip(fkm_rowsrc *s, fkm_skipsrc *k, const fkm_rowsrc *base, const int64_t *bad,
                     int64_t nbad)
{
    k->base = base;
    k->bad = bad;
    k->nbad = nbad;
    s->n = base->n - nbad;
    s->d = base->d;
    s->dt = base->dt;
    s->resident = NULL;
    s->read = skip_read;
    s->ctx = k;
}

static int subset_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    const fkm_subsrc *u = ctx;
    const size_t rb = fkm_rowsrc_row_bytes(u->base);
    char *out = dst;
    for (int64_t i = r0; i < r0 + m;) {
        int64_t run = 1; /* base rows idx[i], idx[i] + 1, ... */
        while (i + run < r0 + m && u->idx[i + run] == u->idx[i] + run) run++;
        int st = u->base->read(u->base->ctx, u->idx[i], run, out, err);
        if (st) return st;
        out += (size_t)run * rb;
        i += run;
    }
    return FKM_OK;
}

void fkm_rowsrc_subset(fkm_rowsrc *s, fkm_subsrc *u, const fkm_rowsrc *base, const int64_t *idx,
                       int64_t n)
{
    u->base = base;
    u->idx = idx;
    s->n = n;
    s->d = base->d;
    s->dt = base->dt;
    s->resident = NULL;
    s->read = subset_read;
    s->ctx = u;
}

static int normalize_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    const fkm_rowsrc *b = ctx;
    int st = b->read(b->ctx, r0, m, dst, err);
    if (st) return st;
    const int64_t d = b->d;
#pragma omp parallel for schedule(static) if (m > 4096)
    for (int64_t i = 0; i < m; i++) {
        double n2 = 0;
        if (b->dt == FKM_DT_F16) {
            uint16_t *h = (uint16_t *)dst + i * d;
            for (int64_t t = 0; t < d; t++) n2 += (double)fkm_half_to_float(h[t]) * fkm_half_to_float(h[t]);
            const double inv = n2 > 0 ? 1.0 / sqrt(n2) : 1.0;
            for (int64_t t = 0; t < d; t++) h[t] = fkm_float_to_half((float)(fkm_half_to_float(h[t]) * inv));
        } else {
            float *f = (float *)dst + i * d;
            for (int64_t t = 0; t < d; t++) n2 += (double)f[t] * f[t];
            const double inv = n2 > 0 ? 1.0 / sqrt(n2) : 1.0;
            for (int64_t t = 0; t < d; t++) f[t] = (float)(f[t] * inv);
        }
    }
    return FKM_OK;
}

void fkm_rowsrc_normalize(fkm_rowsrc *s, const fkm_rowsrc *base)
{
    s->n = base->n;
    s->d = base->d;
    s->dt = base->dt;
    s->resident = NULL;
    s->read = normalize_read;
    s->ctx = (void *)base;
}
