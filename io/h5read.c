/* HDF5 dataset reader: opens and checks a 2-D float dataset, then reads row ranges
 * (hyperslabs [row0, row0+nrows) × [0, d)) as float32 or in the file's own type. */
#include "half.h"
#include "io_internal.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fkm_reader {
    hid_t file, dset, fspace;
    hid_t native_type; /* memory type of read_native: H5T_NATIVE_FLOAT or a half type */
    int own_native; /* 1 when native_type was created here and must be closed */
    int64_t n, d;
    fkm_io_dtype dtype;
    uint16_t *scratch; /* half bits of read_f32 on float16 data, grown on demand */
    size_t scratch_len; /* elements */
    char role[16];
    char file_name[512], dset_name[512]; /* for messages */
};

void fkm_reader_close(fkm_reader *r)
{
    if (!r) return;
    if (r->own_native && r->native_type >= 0) H5Tclose(r->native_type);
    if (r->fspace >= 0) H5Sclose(r->fspace);
    if (r->dset >= 0) H5Dclose(r->dset);
    if (r->file >= 0) H5Fclose(r->file);
    free(r->scratch);
    free(r);
}

/* Why H5Dopen2 failed: the path is missing, or names something that is not a dataset. */
static int dataset_open_error(const fkm_reader *r, fkm_error *err)
{
    hid_t obj = H5Oopen(r->file, r->dset_name, H5P_DEFAULT);
    char detail[256];
    if (obj < 0)
        return fkm_fail(err, FKM_EINPUT,
                        "%s '%s': dataset '%s' not found (`fkm info %s` lists them)", r->role,
                        r->file_name, r->dset_name, r->file_name);
    H5I_type_t t = H5Iget_type(obj);
    H5Oclose(obj);
    if (t == H5I_GROUP)
        return fkm_fail(err, FKM_EINPUT, "%s '%s': '%s' is a group, not a dataset", r->role,
                        r->file_name, r->dset_name);
    if (t != H5I_DATASET)
        return fkm_fail(err, FKM_EINPUT, "%s '%s': '%s' is not a dataset", r->role, r->file_name,
                        r->dset_name);
    return fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' cannot be opened (HDF5: %s)", r->role,
                    r->file_name, r->dset_name, fkm_h5_detail(detail, sizeof detail));
}

/* Open and check ROLE's FILE:DATASET; messages start with "ROLE 'FILE': ". */
static int reader_open(const char *role, const char *file, const char *dataset, fkm_reader **out,
                       fkm_dsinfo *info, fkm_error *err)
{
    fkm_error_clear(err);
    fkm_reader *r = NULL;
    hid_t ftype = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    char tname[64], detail[256];
    int st = FKM_OK;

    *out = NULL;
    if (!dataset || !dataset[0]) dataset = "/data";
    r = fkm_calloc(1, sizeof *r, "reader", err);
    if (!r) return FKM_ENOMEM;
    r->file = r->dset = r->fspace = r->native_type = H5I_INVALID_HID;
    snprintf(r->role, sizeof r->role, "%s", role);
    snprintf(r->file_name, sizeof r->file_name, "%s", file ? file : "");
    snprintf(r->dset_name, sizeof r->dset_name, "%s", dataset);

    st = fkm_h5_open_ro(role, file, &r->file, err);
    if (st) goto fail;

    r->dset = H5Dopen2(r->file, dataset, H5P_DEFAULT);
    if (r->dset < 0) {
        st = dataset_open_error(r, err);
        goto fail;
    }

    /* shape: exactly 2-D, at least one row and one column */
    r->fspace = H5Dget_space(r->dset);
    if (r->fspace < 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its shape (HDF5: %s)",
                      role, file, dataset, fkm_h5_detail(detail, sizeof detail));
        goto fail;
    }
    H5S_class_t sclass = H5Sget_simple_extent_type(r->fspace);
    int rank = H5Sget_simple_extent_ndims(r->fspace);
    if (sclass == H5S_NULL || sclass == H5S_SCALAR) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' is %s, expected 2-D (rows × columns)",
                      role, file, dataset,
                      sclass == H5S_NULL ? "empty (null dataspace)" : "a scalar");
        goto fail;
    }
    if (rank < 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its rank (HDF5: %s)",
                      role, file, dataset, fkm_h5_detail(detail, sizeof detail));
        goto fail;
    }
    if (rank != 2) {
        st = fkm_fail(err, FKM_EINPUT,
                      "%s '%s': dataset '%s' is %d-D, expected 2-D (rows × columns)", role, file,
                      dataset, rank);
        goto fail;
    }
    hsize_t dims[2];
    if (H5Sget_simple_extent_dims(r->fspace, dims, NULL) < 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its shape (HDF5: %s)",
                      role, file, dataset, fkm_h5_detail(detail, sizeof detail));
        goto fail;
    }

    /* element type: float16 is read as raw half bits, every other float through float32 */
    ftype = H5Dget_type(r->dset);
    if (ftype < 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its type (HDF5: %s)",
                      role, file, dataset, fkm_h5_detail(detail, sizeof detail));
        goto fail;
    }
    if (H5Tget_class(ftype) != H5T_FLOAT || (H5Tget_size(ftype) == 2 && !fkm_h5_is_half(ftype))) {
        st = fkm_fail(err, FKM_EINPUT,
                      "%s '%s': dataset '%s' has type %s, expected float32 or float16", role, file,
                      dataset, fkm_h5_type_name(ftype, tname, sizeof tname));
        goto fail;
    }
    if (fkm_h5_is_half(ftype)) {
        r->dtype = FKM_IO_F16;
        /* same byte order as the host: read with the file's own type, so HDF5 copies the bits
         * without a conversion pass; otherwise a native half type makes it swap the bytes */
        if (H5Tget_order(ftype) == H5Tget_order(H5T_NATIVE_FLOAT))
            r->native_type = H5Tcopy(ftype);
        else
            r->native_type = fkm_h5_half_type(H5T_NATIVE_FLOAT);
        if (r->native_type < 0) {
            st =
                fkm_fail(err, FKM_ERUNTIME, "%s '%s': cannot make a float16 memory type (HDF5: %s)",
                         role, file, fkm_h5_detail(detail, sizeof detail));
            goto fail;
        }
        r->own_native = 1;
    } else {
        r->dtype = FKM_IO_F32;
        r->native_type = H5T_NATIVE_FLOAT;
    }

    if (dims[0] == 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' has 0 rows", role, file, dataset);
        goto fail;
    }
    if (dims[1] == 0) {
        st = fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s' has 0 columns", role, file, dataset);
        goto fail;
    }
    r->n = (int64_t)dims[0];
    r->d = (int64_t)dims[1];

    if (info) {
        memset(info, 0, sizeof *info);
        info->n = r->n;
        info->d = r->d;
        info->dtype = r->dtype;
        dcpl = H5Dget_create_plist(r->dset);
        if (dcpl < 0) {
            st =
                fkm_fail(err, FKM_EINPUT, "%s '%s': dataset '%s': cannot get its layout (HDF5: %s)",
                         role, file, dataset, fkm_h5_detail(detail, sizeof detail));
            goto fail;
        }
        if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
            hsize_t cdims[2];
            if (H5Pget_chunk(dcpl, 2, cdims) != 2) {
                st = fkm_fail(err, FKM_EINPUT,
                              "%s '%s': dataset '%s': cannot get its chunk shape (HDF5: %s)", role,
                              file, dataset, fkm_h5_detail(detail, sizeof detail));
                goto fail;
            }
            info->chunked = 1;
            info->chunk[0] = (int64_t)cdims[0];
            info->chunk[1] = (int64_t)cdims[1];
        }
    }

    if (dcpl >= 0) H5Pclose(dcpl);
    H5Tclose(ftype);
    *out = r;
    return FKM_OK;

fail:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ftype >= 0) H5Tclose(ftype);
    fkm_reader_close(r);
    return st;
}

int fkm_reader_open(const char *file, const char *dataset, fkm_reader **r, fkm_dsinfo *info,
                    fkm_error *err)
{
    return reader_open("input", file, dataset, r, info, err);
}

/* A caller's bug rather than bad input, but say exactly what was asked. */
static int check_range(const fkm_reader *r, int64_t row0, int64_t nrows, fkm_error *err)
{
    fkm_error_clear(err);
    if (!r) return fkm_fail(err, FKM_ERUNTIME, "read from a reader that is not open");
    if (row0 < 0 || nrows < 0 || row0 > r->n - nrows)
        return fkm_fail(err, FKM_ERUNTIME,
                        "%s '%s': rows [%lld, %lld) are outside dataset '%s' of %lld rows", r->role,
                        r->file_name, (long long)row0, (long long)row0 + (long long)nrows,
                        r->dset_name, (long long)r->n);
    return FKM_OK;
}

/* Read rows [row0, row0+nrows) with memory type `mtype` into dst. */
static int read_rows(fkm_reader *r, int64_t row0, int64_t nrows, void *dst, hid_t mtype,
                     fkm_error *err)
{
    char detail[256];
    int st = check_range(r, row0, nrows, err);
    if (st || nrows == 0) return st;

    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)nrows, (hsize_t)r->d};
    hid_t mspace = H5Screate_simple(2, count, NULL);
    if (mspace < 0)
        return fkm_fail(err, FKM_ERUNTIME,
                        "%s '%s': cannot make a dataspace of %lld rows (HDF5: %s)", r->role,
                        r->file_name, (long long)nrows, fkm_h5_detail(detail, sizeof detail));
    if (H5Sselect_hyperslab(r->fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
        st = fkm_fail(err, FKM_ERUNTIME,
                      "%s '%s': cannot select rows [%lld, %lld) of '%s' (HDF5: %s)", r->role,
                      r->file_name, (long long)row0, (long long)(row0 + nrows), r->dset_name,
                      fkm_h5_detail(detail, sizeof detail));
    else if (H5Dread(r->dset, mtype, mspace, r->fspace, H5P_DEFAULT, dst) < 0)
        st = fkm_fail(err, FKM_ERUNTIME,
                      "%s '%s': reading rows [%lld, %lld) of '%s' failed (HDF5: %s)", r->role,
                      r->file_name, (long long)row0, (long long)(row0 + nrows), r->dset_name,
                      fkm_h5_detail(detail, sizeof detail));
    H5Sclose(mspace);
    return st;
}

int fkm_reader_read_native(fkm_reader *r, int64_t row0, int64_t nrows, void *dst, fkm_error *err)
{
    return read_rows(r, row0, nrows, dst, r ? r->native_type : H5I_INVALID_HID, err);
}

int fkm_reader_read_f32(fkm_reader *r, int64_t row0, int64_t nrows, float *dst, fkm_error *err)
{
    if (!r || r->dtype != FKM_IO_F16) /* HDF5 converts float32/float64 to native float */
        return read_rows(r, row0, nrows, dst, H5T_NATIVE_FLOAT, err);

    /* float16: read the bits, then convert here (HDF5's soft float conversion is slow) */
    int st = check_range(r, row0, nrows, err);
    if (st || nrows == 0) return st;
    size_t len = (size_t)nrows * (size_t)r->d;
    if (len > r->scratch_len) {
        free(r->scratch);
        r->scratch_len = 0;
        r->scratch = fkm_malloc(len * sizeof *r->scratch, "float16 read buffer", err);
        if (!r->scratch) return FKM_ENOMEM;
        r->scratch_len = len;
    }
    st = read_rows(r, row0, nrows, r->scratch, r->native_type, err);
    if (st) return st;
    const uint16_t *h = r->scratch;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < (int64_t)len; i++) dst[i] = fkm_half_to_float(h[i]);
    return FKM_OK;
}

int fkm_load_matrix(const char *file, const char *dataset, int64_t want_k, int64_t want_d,
                    float **c, fkm_error *err)
{
    fkm_error_clear(err);
    fkm_reader *r = NULL;
    fkm_dsinfo info;
    float *m = NULL;
    int st;

    *c = NULL;
    if (!dataset || !dataset[0]) dataset = "/centroids";
    st = reader_open("init", file, dataset, &r, &info, err);
    if (st) return st;
    if (want_d > 0 && info.d != want_d) {
        st = fkm_fail(err, FKM_EINPUT, "init '%s:%s': has %lld columns, data has %lld", file,
                      dataset, (long long)info.d, (long long)want_d);
        goto done;
    }
    if (want_k > 0 && info.n != want_k) {
        st = fkm_fail(err, FKM_EINPUT, "init '%s:%s': has %lld rows, --k is %lld", file, dataset,
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
                          "init '%s:%s': row %lld column %lld is %g, expected a finite value", file,
                          dataset, (long long)(i / info.d), (long long)(i % info.d), (double)m[i]);
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
