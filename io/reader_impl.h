/* Inside fkm_reader: the dispatcher (reader.c) and the format readers behind it (h5read.c,
 * npy.c, bigann.c, and rawfile.c shared by the last two). Not part of the io.h interface.
 *
 * fkm_reader_open picks the format by the file's extension, fills the common fields below
 * and calls the format's opener; the opener checks the file, sets n, d, dtype, elem, format
 * and ops/impl. Every read goes through the dispatcher, which checks the row range once, so
 * that a format's read() only ever sees 0 ≤ row0, 1 ≤ nrows, row0 + nrows ≤ n. */
#ifndef FKM_READER_IMPL_H
#define FKM_READER_IMPL_H

#include "io_internal.h" /* io.h and hdf5.h */

#include <stddef.h>
#include <stdint.h>

/* Element type on disk, finer than fkm_io_dtype (float64 is reported as FKM_IO_F32). */
typedef enum {
    FKM_EL_F32 = 0,
    FKM_EL_F16,  /* IEEE binary16 bits */
    FKM_EL_BF16, /* bfloat16 bits: the top half of a float32 */
    FKM_EL_F64,
    FKM_EL_U8,
    FKM_EL_I8,
} fkm_elem;

/* Bytes per element, the dtype fkm_dsinfo reports, and a short name ("float32", ...). */
size_t fkm_elem_size(fkm_elem e);
fkm_io_dtype fkm_elem_dtype(fkm_elem e);
const char *fkm_elem_name(fkm_elem e);

/* Convert `count` elements of type e, in host byte order, to float32. Exact for every
 * type but float64 (rounded to nearest). Runs over OpenMP threads for large counts. */
void fkm_elem_to_f32(fkm_elem e, const void *src, size_t count, float *dst);

typedef struct fkm_reader_ops {
    /* Read rows [row0, row0+nrows) into dst: float32 when f32 is 1, else the native form
     * (IEEE half bits for FKM_EL_F16, float32 for everything else). */
    int (*read)(fkm_reader *r, int64_t row0, int64_t nrows, void *dst, int f32, fkm_error *err);
    /* Free the format's state (r->impl); the dispatcher frees r itself. */
    void (*close)(fkm_reader *r);
} fkm_reader_ops;

struct fkm_reader {
    const fkm_reader_ops *ops; /* NULL until an opener succeeds */
    void *impl;                /* the format's own state */
    int64_t n, d;              /* rows, columns */
    fkm_io_dtype dtype;        /* what fkm_dsinfo.dtype says */
    fkm_elem elem;             /* the element type on disk */
    char format[32];           /* "HDF5", "npy v1.0", "fbin", ... (for fkm info) */
    char role[16];             /* "input", "init": the first word of messages */
    char file[512];            /* the path as given */
    char dset[512];            /* HDF5 dataset path; "" for the other formats */
    int vector;                /* fkm_reader_open_vector: a 1-D array reads as n×1 */
};

/* The formats. Each returns FKM_OK with r->ops set, or an error with everything it
 * allocated released (r->ops NULL). Messages start "ROLE 'FILE': ". */
int fkm_h5_reader_open(fkm_reader *r, fkm_dsinfo *info, fkm_error *err); /* uses r->dset */

/* The string attribute `dtype` of an HDF5 object (how bfloat16 data stored as uint16 is
 * marked): 1 with its value in buf (trailing spaces dropped, control characters shown as
 * '?'), 0 when there is none, -1 when it exists but is not one readable string. */
int fkm_h5_dtype_attr(hid_t obj, char *buf, size_t len);
/* The same for any string attribute `name` of obj. */
int fkm_h5_str_attr(hid_t obj, const char *name, char *buf, size_t len);
int fkm_npy_open(fkm_reader *r, fkm_error *err);
int fkm_bigann_open(fkm_reader *r, fkm_elem elem, fkm_error *err);

/* The format a path's extension selects (case-insensitive): .npy, .fbin, .u8bin, .i8bin,
 * else HDF5. For the big-ann formats *elem gets the element type. */
typedef enum { FKM_FMT_HDF5 = 0, FKM_FMT_NPY, FKM_FMT_BIGANN } fkm_format;
fkm_format fkm_format_of(const char *path, fkm_elem *elem);

/* Open a reader for ROLE ("input", "init", ...): fkm_reader_open is ROLE "input". */
int fkm_reader_open_as(const char *role, const char *file, const char *dataset, fkm_reader **r,
                       fkm_dsinfo *info, fkm_error *err);

/* ---- rawfile.c: a C-order n×d array of one element type at a byte offset of a file,
 * little-endian, read with pread (64-bit offsets). Shared by npy.c and bigann.c. ---- */

/* Open r->file read-only and learn its size: FKM_EINPUT for "no such file", "is a
 * directory", "not a regular file" or a failed open. *fd is -1 on failure. */
int fkm_raw_open_file(const fkm_reader *r, int *fd, int64_t *size, fkm_error *err);

/* Read exactly len bytes at offset off; a short read is an error. FKM_EINPUT when
 * `header` (then the message says the header is cut short), FKM_ERUNTIME otherwise. */
int fkm_raw_pread(const fkm_reader *r, int fd, void *buf, size_t len, int64_t off, int header,
                  fkm_error *err);

/* Check that offset + n×d elements of r->elem is exactly `size` bytes (messages:
 * "file is S bytes, header says O + N×D×E = T"), with every product checked for overflow.
 * r->n, r->d and r->elem must be set. */
int fkm_raw_check_size(const fkm_reader *r, int64_t offset, int64_t size, fkm_error *err);

/* Make r read its rows from fd at `offset` (r->n, r->d, r->elem set and checked). Takes
 * the fd: closes it on failure too. */
int fkm_raw_attach(fkm_reader *r, int fd, int64_t offset, fkm_error *err);

#endif
