/* Dataset readers and output writers. Every reader returns rows of a range, so that each
 * rank reads only its own shard, in chunks of bounded size. */
#ifndef FKM_IO_H
#define FKM_IO_H

#include "fkm.h"
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element type on disk. fkm_reader_read_f32 converts every one to float32 (exactly, but
 * float64, which is rounded); fkm_reader_read_native returns IEEE half bits for FKM_IO_F16
 * and float32 for all the others. */
typedef enum {
    FKM_IO_F32 = 0,  /* float32, and float64 (converted on the fly) */
    FKM_IO_F16 = 1,  /* IEEE binary16 */
    FKM_IO_BF16 = 2, /* bfloat16 (HDF5 only: see fkm_reader_open) */
    FKM_IO_U8 = 3,   /* uint8 (HDF5, .npy '|u1', .u8bin) */
    FKM_IO_I8 = 4,   /* int8 (HDF5, .npy '|i1', .i8bin) */
} fkm_io_dtype;

typedef struct fkm_dsinfo {
    int64_t n, d;          /* rows, columns */
    fkm_io_dtype dtype;    /* element type on disk */
    int chunked;           /* 1 when the dataset is chunked (HDF5 only) */
    int64_t chunk[2];      /* chunk shape when chunked */
} fkm_dsinfo;

typedef struct fkm_reader fkm_reader;

/* Open an N×D matrix for reading and check it: N ≥ 1, D ≥ 1, a supported element type.
 * FKM_EINPUT with a one-line message naming the file (and dataset) otherwise; *r is then
 * NULL. The format follows the file's extension (case-insensitive):
 *
 *   .npy    NumPy format 1.0/2.0/3.0, 2-D, C order, dtype '<f4', '<f2', '<f8' (converted to
 *           float32), '|u1' or '|i1'; the file must hold exactly the header's rows×columns.
 *   .fbin   big-ann: uint32 LE rows, uint32 LE columns, then rows×columns float32 LE;
 *   .u8bin  the same with uint8 elements, .i8bin with int8; the file size must be exactly
 *           8 + rows×columns×element size.
 *   other   HDF5, FILE:DATASET (dataset NULL or "" means "/data"): a 2-D dataset of
 *           float32, float16, float64 or other HDF5 floats (converted to float32; info->dtype
 *           then says FKM_IO_F32), int8, uint8, or bfloat16 stored as 16-bit unsigned
 *           integers (any byte order) carrying a string attribute dtype = "bfloat16".
 *
 * `dataset` is ignored for the non-HDF5 formats. Every format reads only the rows asked for
 * (.npy/.fbin/.u8bin/.i8bin with pread at 64-bit offsets), so ranks stream and shard them
 * alike. info may be NULL. A reader is used by one thread at a time (HDF5 is not
 * thread-safe). */
int fkm_reader_open(const char *file, const char *dataset, fkm_reader **r, fkm_dsinfo *info,
                    fkm_error *err);
/* Open one value per row (sample weights, say) for reading: as fkm_reader_open, but a 1-D
 * dataset or array of n values also reads as n×1, and anything with more than one column is an
 * FKM_EINPUT error. Messages start with `role` (e.g. "--weights"). */
int fkm_reader_open_vector(const char *role, const char *file, const char *dataset, fkm_reader **r,
                           fkm_dsinfo *info, fkm_error *err);
/* Read rows [row0, row0+nrows) converted to float32 into dst (nrows×d). */
int fkm_reader_read_f32(fkm_reader *r, int64_t row0, int64_t nrows, float *dst, fkm_error *err);
/* Read rows [row0, row0+nrows) in the native form: the IEEE half bits (uint16_t) when
 * info.dtype is FKM_IO_F16, float32 for every other type (bfloat16, int8, uint8 and float64
 * converted as by read_f32). Rows outside [0, N) are an FKM_ERUNTIME error; nrows == 0
 * reads nothing. A short read (a file truncated after opening) is an FKM_ERUNTIME error. */
int fkm_reader_read_native(fkm_reader *r, int64_t row0, int64_t nrows, void *dst, fkm_error *err);
void fkm_reader_close(fkm_reader *r);

/* Output file: rank 0 creates it under a temporary name beside `path` (path + ".tmp.<pid>")
 * with /centroids (k×d float32), /counts (k int64), the root attributes, and, when
 * n_labels > 0, an empty /labels dataset of n_labels int32. */
typedef struct fkm_out_meta {
    int64_t k, d, n;
    int iterations;
    double inertia;
    int converged;
    uint64_t seed;
    const char *metric; /* "l2" */
    const char *init;   /* "random" or the init file:dataset */
    int nranks;         /* > 0 marks a checkpoint: attributes checkpoint = 1 and nranks are
                           added, `iterations` is the last finished iteration and `inertia`
                           that iteration's inertia (the stop test's state) */
    int64_t chunk_rows; /* > 0: attribute chunk_rows, the rows per statistics chunk of the
                           run (what bitwise reproduction needs); 0: not written */
    const double *weight_sums; /* k, or NULL: written as /weights (float64), the clusters'
                           weight sums of a weighted run */
} fkm_out_meta;

/* Writes exactly at tmp_path (the rename is the caller's); on failure the file is removed.
 * Attribute types: k, d, n int64; iterations, converged int32; inertia double; seed uint64;
 * metric, init, version variable-length UTF-8 strings. */
int fkm_out_create(const char *tmp_path, const fkm_out_meta *m, const float *centroids,
                   const int64_t *counts, int64_t n_labels, fkm_error *err);
/* Write labels rows [row0, row0+n) into an existing file's /labels (one rank at a time).
 * n == 0 does nothing (a rank without rows). */
int fkm_out_write_labels(const char *tmp_path, int64_t row0, int64_t n, const int32_t *labels,
                         fkm_error *err);
/* Write rows [row0, row0+n) of the 1-D float32 dataset `name` (e.g. "/distances") of an
 * existing file, creating it with n_total rows (chunked, like /labels) when it is absent (one
 * rank at a time: the first writer creates it). n == 0 does nothing. */
int fkm_out_write_f32(const char *tmp_path, const char *name, int64_t n_total, int64_t row0,
                      int64_t n, const float *values, fkm_error *err);
/* Check that `path` can be written (its directory exists and is writable, it is not a
 * directory): FKM_EINPUT naming the path otherwise. */
int fkm_out_check_path(const char *path, fkm_error *err);

/* Read a checkpoint written by fkm_out_create with nranks > 0: its centroids (malloc'ed
 * k×d) and meta (metric and init point to static storage; chunk_rows 0 when the checkpoint
 * has none). FKM_EINPUT naming the file when it is missing, not a checkpoint, or does not
 * match want_k, want_d, want_n, want_seed, want_metric. */
int fkm_ckpt_read(const char *file, int64_t want_k, int64_t want_d, int64_t want_n,
                  uint64_t want_seed, const char *want_metric, fkm_out_meta *m, float **centroids,
                  fkm_error *err);

/* Load a k×d float32 init matrix from FILE:DATASET (any format and type fkm_reader_open
 * reads; dataset NULL or "" means "/centroids" for HDF5, ignored otherwise). *c is
 * malloc'ed. Checks the shape against want_k (0 = any) and want_d (0 = any), and that every
 * value is finite; messages start "init 'FILE...'". With want_k == 0, learn the row count
 * first from fkm_reader_open's info. */
int fkm_load_matrix(const char *file, const char *dataset, int64_t want_k, int64_t want_d,
                    float **c, fkm_error *err);

/* `fkm gen`: a reproducible Gaussian mixture of `clusters` centres written as a chunked
 * dataset, generated block by block in bounded memory. Row i depends on (seed, i) only:
 * centre c coordinate j = spread·(2u−1), u = fkm_rand_unit(seed, GEN_CENTER, c·d+j); the
 * row's centre c = fkm_rand_below(seed, GEN_LABEL, i, clusters); value = centre +
 * sigma·fkm_rand_normal(seed, GEN_NOISE, i·d+j). Written to output + ".tmp.<pid>", then
 * renamed; the dataset carries attributes clusters, seed, spread, sigma. dataset NULL or ""
 * means "/data"; intermediate groups are created. */
typedef struct fkm_gen_params {
    const char *output, *dataset;
    int64_t n, d, clusters;
    fkm_io_dtype dtype;
    uint64_t seed;
    double spread;   /* centres uniform in [-spread, spread]^d; 10 */
    double sigma;    /* noise standard deviation; 1 */
} fkm_gen_params;
int fkm_gen(const fkm_gen_params *g, fkm_error *err);

/* `fkm info`: print every 2-D dataset of an HDF5 file (path, shape, dtype, chunking) to
 * stdout; for .npy/.fbin/.u8bin/.i8bin files one line: file, shape, dtype, format. */
int fkm_info(const char *file, fkm_error *err);

#ifdef __cplusplus
}
#endif
#endif
