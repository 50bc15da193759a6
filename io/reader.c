/* The reader dispatcher: picks the format by the file's extension (.npy, .fbin, .u8bin,
 * .i8bin, else HDF5), checks every row range once, and converts elements to float32 for
 * all formats. Also fkm_load_matrix, which reads an init matrix from any format. */
#include "half.h"
#include "reader_impl.h"
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- element types ---------- */

size_t fkm_elem_size(fkm_elem e)
{
    switch (e) {
    case FKM_EL_F64: return 8;
    case FKM_EL_F32: return 4;
    case FKM_EL_F16:
    case FKM_EL_BF16: return 2;
    case FKM_EL_U8:
    case FKM_EL_I8: return 1;
    }
    return 0;
}

fkm_io_dtype fkm_elem_dtype(fkm_elem e)
{
    switch (e) {
    case FKM_EL_F16: return FKM_IO_F16;
    case FKM_EL_BF16: return FKM_IO_BF16;
    case FKM_EL_U8: return FKM_IO_U8;
    case FKM_EL_I8: return FKM_IO_I8;
    case FKM_EL_F32:
    case FKM_EL_F64: break;
    }
    return FKM_IO_F32;
}

const char *fkm_elem_name(fkm_elem e)
{
    switch (e) {
    case FKM_EL_F32: return "float32";
    case FKM_EL_F16: return "float16";
    case FKM_EL_BF16: return "bfloat16";
    case FKM_EL_F64: return "float64";
    case FKM_EL_U8: return "uint8";
    case FKM_EL_I8: return "int8";
    }
    return "unknown";
}

static inline float bf16_to_float(uint16_t b)
{ /* bfloat16 is the top half of a float32: exact, NaN and inf included */
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void fkm_elem_to_f32(fkm_elem e, const void *src, size_t count, float *dst)
{
    const int64_t n = (int64_t)count;
    switch (e) {
    case FKM_EL_F32: memmove(dst, src, count * sizeof(float)); break;
    case FKM_EL_F16: {
        const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) dst[i] = fkm_half_to_float(s[i]);
        break;
    }
    case FKM_EL_BF16: {
        const uint16_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_float(s[i]);
        break;
    }
    case FKM_EL_F64: {
        const double *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    case FKM_EL_U8: {
        const uint8_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    case FKM_EL_I8: {
        const int8_t *s = src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    }
}

/* ---------- dispatch ---------- */

static int ends_with(const char *s, const char *suffix)
{ /* case-insensitive */
    size_t ls = strlen(s), lx = strlen(suffix);
    if (ls < lx) return 0;
    for (size_t i = 0; i < lx; i++)
        if (tolower((unsigned char)s[ls - lx + i]) != suffix[i]) return 0;
    return 1;
}

fkm_format fkm_format_of(const char *path, fkm_elem *elem)
{
    if (!path) return FKM_FMT_HDF5;
    if (ends_with(path, ".npy")) return FKM_FMT_NPY;
    static const struct {
        const char *ext;
        fkm_elem elem;
    } bigann[] = {{".fbin", FKM_EL_F32}, {".u8bin", FKM_EL_U8}, {".i8bin", FKM_EL_I8}};
    for (size_t i = 0; i < sizeof bigann / sizeof bigann[0]; i++) {
        if (ends_with(path, bigann[i].ext)) {
            if (elem) *elem = bigann[i].elem;
            return FKM_FMT_BIGANN;
        }
    }
    return FKM_FMT_HDF5;
}

void fkm_reader_close(fkm_reader *r)
{
    if (!r) return;
    if (r->ops) r->ops->close(r);
    free(r);
}

/* "not an HDF5 file" for a file that is a .npy under another name: say so. */
static void npy_hint(const fkm_reader *r, fkm_error *err)
{
    if (!err || err->status != FKM_EINPUT || !strstr(err->msg, "not an HDF5 file")) return;
    FILE *f = fopen(r->file, "rb");
    unsigned char magic[6] = {0};
    size_t got = f ? fread(magic, 1, sizeof magic, f) : 0;
    if (f) fclose(f);
    if (got == sizeof magic && memcmp(magic, "\x93NUMPY", 6) == 0)
        fkm_fail(err, FKM_EINPUT,
                 "%s '%s': not an HDF5 file; it looks like a NumPy array: name it with the .npy "
                 "extension",
                 r->role, r->file);
}

static int open_reader(const char *role, const char *file, const char *dataset, int vector,
                       fkm_reader **out, fkm_dsinfo *info, fkm_error *err)
{
    fkm_error_clear(err);
    *out = NULL;
    if (!file || !file[0]) return fkm_fail(err, FKM_EINPUT, "%s: no file given", role);
    fkm_reader *r = fkm_calloc(1, sizeof *r, "reader", err);
    if (!r) return FKM_ENOMEM;
    snprintf(r->role, sizeof r->role, "%s", role);
    snprintf(r->file, sizeof r->file, "%s", file);
    r->vector = vector;

    fkm_elem elem = FKM_EL_F32;
    fkm_dsinfo tmp;
    if (!info) info = &tmp;
    memset(info, 0, sizeof *info);
    int st;
    switch (fkm_format_of(file, &elem)) {
    case FKM_FMT_NPY: st = fkm_npy_open(r, err); break;
    case FKM_FMT_BIGANN: st = fkm_bigann_open(r, elem, err); break;
    default:
        snprintf(r->dset, sizeof r->dset, "%s", dataset && dataset[0] ? dataset : "/data");
        st = fkm_h5_reader_open(r, info, err);
        if (st) npy_hint(r, err);
        break;
    }
    if (st) {
        fkm_reader_close(r);
        return st;
    }
    if (vector && r->d != 1) {
        fkm_fail(err, FKM_EINPUT, "%s '%s'%s%s: %lld × %lld values, expected one per row (a 1-D array, or one column)",
                 role, file, r->dset[0] ? ":" : "", r->dset, (long long)r->n, (long long)r->d);
        fkm_reader_close(r);
        return FKM_EINPUT;
    }
    info->n = r->n;
    info->d = r->d;
    info->dtype = r->dtype;
    *out = r;
    return FKM_OK;
}

int fkm_reader_open_as(const char *role, const char *file, const char *dataset, fkm_reader **out,
                       fkm_dsinfo *info, fkm_error *err)
{
    return open_reader(role, file, dataset, 0, out, info, err);
}

int fkm_reader_open_vector(const char *role, const char *file, const char *dataset, fkm_reader **out,
                           fkm_dsinfo *info, fkm_error *err)
{
    return open_reader(role, file, dataset, 1, out, info, err);
}

int fkm_reader_open(const char *file, const char *dataset, fkm_reader **r, fkm_dsinfo *info,
                    fkm_error *err)
{
    return fkm_reader_open_as("input", file, dataset, r, info, err);
}

/* A caller's bug rather than bad input, but say exactly what was asked. */
static int check_range(const fkm_reader *r, int64_t row0, int64_t nrows, fkm_error *err)
{
    fkm_error_clear(err);
    if (!r || !r->ops) return fkm_fail(err, FKM_ERUNTIME, "read from a reader that is not open");
    if (row0 < 0 || nrows < 0 || row0 > r->n - nrows) {
        if (r->dset[0])
            return fkm_fail(err, FKM_ERUNTIME,
                            "%s '%s': rows [%lld, %lld) are outside dataset '%s' of %lld rows",
                            r->role, r->file, (long long)row0, (long long)row0 + (long long)nrows,
                            r->dset, (long long)r->n);
        return fkm_fail(err, FKM_ERUNTIME, "%s '%s': rows [%lld, %lld) are outside its %lld rows",
                        r->role, r->file, (long long)row0, (long long)row0 + (long long)nrows,
                        (long long)r->n);
    }
    return FKM_OK;
}

int fkm_reader_read_f32(fkm_reader *r, int64_t row0, int64_t nrows, float *dst, fkm_error *err)
{
    int st = check_range(r, row0, nrows, err);
    if (st || nrows == 0) return st;
    return r->ops->read(r, row0, nrows, dst, 1, err);
}

int fkm_reader_read_native(fkm_reader *r, int64_t row0, int64_t nrows, void *dst, fkm_error *err)
{
    int st = check_range(r, row0, nrows, err);
    if (st || nrows == 0) return st;
    return r->ops->read(r, row0, nrows, dst, 0, err);
}

/* ---------- init matrix ---------- */

int fkm_load_matrix(const char *file, const char *dataset, int64_t want_k, int64_t want_d,
                    float **c, fkm_error *err)
{
    fkm_error_clear(err);
    fkm_reader *r = NULL;
    fkm_dsinfo info;
    float *m = NULL;
    char where[1100];
    int st;

    *c = NULL;
    if (!dataset || !dataset[0]) dataset = "/centroids";
    st = fkm_reader_open_as("init", file, dataset, &r, &info, err);
    if (st) return st;
    if (r->dset[0]) /* HDF5: FILE:DATASET; the other formats hold one array */
        snprintf(where, sizeof where, "%s:%s", file, dataset);
    else
        snprintf(where, sizeof where, "%s", file);
    if (want_d > 0 && info.d != want_d) {
        st = fkm_fail(err, FKM_EINPUT, "init '%s': has %lld columns, data has %lld", where,
                      (long long)info.d, (long long)want_d);
        goto done;
    }
    if (want_k > 0 && info.n != want_k) {
        st = fkm_fail(err, FKM_EINPUT, "init '%s': has %lld rows, --k is %lld", where,
                      (long long)info.n, (long long)want_k);
        goto done;
    }
    m = fkm_malloc((size_t)info.n * (size_t)info.d * sizeof *m, "init centroids", err);
    if (!m) {
        st = FKM_ENOMEM;
        goto done;
    }
    st = fkm_reader_read_f32(r, 0, info.n, m, err);
    if (st) goto done;
    /* a NaN or inf centroid would poison every distance: reject it here, by position */
    for (int64_t i = 0; i < info.n * info.d; i++) {
        if (!isfinite(m[i])) {
            st = fkm_fail(err, FKM_EINPUT,
                          "init '%s': row %lld column %lld is %g, expected a finite value", where,
                          (long long)(i / info.d), (long long)(i % info.d), (double)m[i]);
            goto done;
        }
    }
    *c = m;
    m = NULL;
done:
    free(m);
    fkm_reader_close(r);
    return st;
}
