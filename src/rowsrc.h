/* A row source: where a rank's rows come from each time a backend streams them. Rows are
 * addressed locally, [0, n) of this rank's shard; every read is a whole number of rows. */
#ifndef FKM_ROWSRC_H
#define FKM_ROWSRC_H

#include "backend.h"
#include "io.h"

typedef struct fkm_rowsrc {
    int64_t n, d;
    fkm_dtype dt;          /* element type handed out: FKM_DT_F16 (half bits) or FKM_DT_F32 */
    const void *resident;  /* all n rows in host memory, or NULL when they stay in the file */
    /* Copy local rows [r0, r0+m) into dst. Thread-compatible: one caller at a time, which
     * need not be the thread that made the source. */
    int (*read)(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err);
    void *ctx;
} fkm_rowsrc;

static inline size_t fkm_rowsrc_row_bytes(const fkm_rowsrc *s)
{
    return (size_t)s->d * (s->dt == FKM_DT_F16 ? 2 : 4);
}

/* Rows already in host memory (not copied; the memory must outlive the source). */
void fkm_rowsrc_memory(fkm_rowsrc *s, const void *rows, fkm_dtype dt, int64_t n, int64_t d);

/* Rows [row0, row0+n) of an open reader, read on demand (the reader must outlive it). */
typedef struct fkm_filesrc {
    fkm_reader *reader;
    int64_t row0;
} fkm_filesrc;
void fkm_rowsrc_file(fkm_rowsrc *s, fkm_filesrc *f, fkm_reader *r, const fkm_dsinfo *info,
                     int64_t row0, int64_t n);


/* The rows of base without the rows listed in bad (sorted local indices): local row i of this
 * source is the i-th row of base that is not in bad. */
typedef struct fkm_skipsrc {
    const fkm_rowsrc *base;
    const int64_t *bad;
    int64_t nbad;
} fkm_skipsrc;
void fkm_rowsrc_skip(fkm_rowsrc *s, fkm_skipsrc *k, const fkm_rowsrc *base, const int64_t *bad,
                     int64_t nbad);
/* The base row of row i of a skip source. */
int64_t fkm_skipsrc_base_row(const fkm_skipsrc *k, int64_t i);

/* The rows of base listed in idx (sorted, distinct local indices of base): local row i of
 * this source is base row idx[i]. Contiguous runs are read with one base read each. */
typedef struct fkm_subsrc {
    const fkm_rowsrc *base;
    const int64_t *idx;
} fkm_subsrc;
void fkm_rowsrc_subset(fkm_rowsrc *s, fkm_subsrc *u, const fkm_rowsrc *base, const int64_t *idx,
                       int64_t n);

/* The rows of base scaled to unit L2 length (cosine metric): each row's norm in fp64, the
 * scaled values rounded once to the source's type (float16 rows stay float16). Zero rows
 * stay zero. */
void fkm_rowsrc_normalize(fkm_rowsrc *s, const fkm_rowsrc *base);

/* Read every row of src once, in pieces of about 64 MiB, and find the rows holding a NaN or
 * an infinity. Without skip, the first one is an FKM_EINPUT naming it (global row
 * row0 + i, its column and value; `what` names the input). With skip, *bad gets their sorted
 * local indices (malloc'ed; NULL when none) and *nbad their number. */
int fkm_scan_nonfinite(const fkm_rowsrc *src, int64_t row0, int skip, const char *what,
                       int64_t **bad, int64_t *nbad, fkm_error *err);

#endif
