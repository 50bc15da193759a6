/* Output writers: the result file (/centroids, /counts, /labels and root attributes) and
 * the writability check done before any work starts. */
#define _POSIX_C_SOURCE 200809L /* strdup, access */
#include "io_internal.h"
#include "util.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fkm_out_check_path(const char *path, fkm_error *err)
{
    fkm_error_clear(err);
    struct stat st;
    if (!path || !path[0]) return fkm_fail(err, FKM_EINPUT, "output: empty path");
    size_t len = strlen(path);
    if (path[len - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return fkm_fail(err, FKM_EINPUT, "output '%s': is a directory, expected a file name", path);

    char *copy = strdup(path); /* dirname() may modify its argument */
    if (!copy) return fkm_fail(err, FKM_ENOMEM, "out of host memory checking output '%s'", path);
    const char *dir = dirname(copy);
    int status = FKM_OK;
    if (stat(dir, &st) != 0)
        status = fkm_fail(err, FKM_EINPUT, "output '%s': directory '%s' does not exist", path, dir);
    else if (!S_ISDIR(st.st_mode))
        status = fkm_fail(err, FKM_EINPUT, "output '%s': '%s' is not a directory", path, dir);
    else if (access(dir, W_OK | X_OK) != 0) /* we create a temporary file there and rename it */
        status = fkm_fail(err, FKM_EINPUT, "output '%s': directory '%s' is not writable (%s)", path,
                          dir, strerror(errno));
    free(copy);
    return status;
}

/* A scalar attribute NAME of file type ftype on loc, written from *val in memory type mtype. */
static int put_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *val,
                    const char *path, fkm_error *err)
{
    char detail[256];
    hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    int ok = space >= 0;
    if (ok) attr = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && attr >= 0 && H5Awrite(attr, mtype, val) >= 0;
    if (attr >= 0 && H5Aclose(attr) < 0) ok = 0;
    if (space >= 0) H5Sclose(space);
    if (!ok)
        return fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot write attribute '%s' (HDF5: %s)",
                        path, name, fkm_h5_detail(detail, sizeof detail));
    return FKM_OK;
}

/* A variable-length UTF-8 string attribute: h5py reads it back as a Python str. */
static int put_str_attr(hid_t loc, const char *name, const char *value, const char *path,
                        fkm_error *err)
{
    char detail[256];
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        if (t >= 0) H5Tclose(t);
        return fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot make a string type (HDF5: %s)",
                        path, fkm_h5_detail(detail, sizeof detail));
    }
    const char *v = value ? value : "";
    int st = put_attr(loc, name, t, t, &v, path, err);
    H5Tclose(t);
    return st;
}

/* A contiguous dataset NAME of the given shape, written whole from buf. */
static int put_dataset(hid_t file, const char *name, int rank, const hsize_t *dims, hid_t ftype,
                       hid_t mtype, const void *buf, const char *path, fkm_error *err)
{
    char detail[256];
    hid_t space = H5Screate_simple(rank, dims, NULL), dset = H5I_INVALID_HID;
    int ok = space >= 0;
    if (ok) dset = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && dset >= 0 && H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    if (dset >= 0 && H5Dclose(dset) < 0) ok = 0;
    if (space >= 0) H5Sclose(space);
    if (!ok)
        return fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot write dataset '%s' (HDF5: %s)",
                        path, name, fkm_h5_detail(detail, sizeof detail));
    return FKM_OK;
}

/* /labels: n int32, chunked so that ranks can write their ranges one after another;
 * never filled, since every row is written by some rank. */
static int make_labels(hid_t file, int64_t n, const char *path, fkm_error *err)
{
    char detail[256];
    hsize_t dims[1] = {(hsize_t)n}, chunk[1] = {(hsize_t)(n < (1 << 20) ? n : (1 << 20))};
    hid_t space = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dset = H5I_INVALID_HID;
    int ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, chunk) >= 0 &&
             H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0;
    if (ok)
        dset = H5Dcreate2(file, "/labels", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ok = ok && dset >= 0;
    if (dset >= 0 && H5Dclose(dset) < 0) ok = 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (!ok)
        return fkm_fail(err, FKM_ERUNTIME,
                        "output '%s': cannot create dataset '/labels' (HDF5: %s)", path,
                        fkm_h5_detail(detail, sizeof detail));
    return FKM_OK;
}

int fkm_out_create(const char *tmp_path, const fkm_out_meta *m, const float *centroids,
                   const int64_t *counts, int64_t n_labels, fkm_error *err)
{
    fkm_error_clear(err);
    char detail[256];
    int st = FKM_OK;
    fkm_h5_quiet();
    if (!tmp_path || !m || !centroids || !counts || m->k < 1 || m->d < 1 || n_labels < 0)
        return fkm_fail(err, FKM_ERUNTIME, "fkm_out_create: bad arguments (k=%lld d=%lld)",
                        m ? (long long)m->k : -1LL, m ? (long long)m->d : -1LL);

    hid_t file = H5Fcreate(tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        return fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot create the file (HDF5: %s)",
                        tmp_path, fkm_h5_detail(detail, sizeof detail));

    hsize_t cdims[2] = {(hsize_t)m->k, (hsize_t)m->d}, kdims[1] = {(hsize_t)m->k};
    int64_t k = m->k, d = m->d, n = m->n;
    int32_t iterations = m->iterations, converged = m->converged;
    double inertia = m->inertia;
    uint64_t seed = m->seed;
    st = put_dataset(file, "/centroids", 2, cdims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, centroids,
                     tmp_path, err);
    if (!st)
        st = put_dataset(file, "/counts", 1, kdims, H5T_STD_I64LE, H5T_NATIVE_INT64, counts,
                         tmp_path, err);
    if (!st && m->weight_sums)
        st = put_dataset(file, "/weights", 1, kdims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                         m->weight_sums, tmp_path, err);
    if (!st && n_labels > 0) st = make_labels(file, n_labels, tmp_path, err);
    if (!st) st = put_attr(file, "k", H5T_STD_I64LE, H5T_NATIVE_INT64, &k, tmp_path, err);
    if (!st) st = put_attr(file, "d", H5T_STD_I64LE, H5T_NATIVE_INT64, &d, tmp_path, err);
    if (!st) st = put_attr(file, "n", H5T_STD_I64LE, H5T_NATIVE_INT64, &n, tmp_path, err);
    if (!st)
        st = put_attr(file, "iterations", H5T_STD_I32LE, H5T_NATIVE_INT32, &iterations, tmp_path,
                      err);
    if (!st)
        st = put_attr(file, "inertia", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &inertia, tmp_path, err);
    if (!st)
        st =
            put_attr(file, "converged", H5T_STD_I32LE, H5T_NATIVE_INT32, &converged, tmp_path, err);
    if (!st) st = put_attr(file, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &seed, tmp_path, err);
    if (!st) st = put_str_attr(file, "metric", m->metric ? m->metric : "l2", tmp_path, err);
    if (!st) st = put_str_attr(file, "init", m->init ? m->init : "random", tmp_path, err);
    if (!st) st = put_str_attr(file, "version", FKM_VERSION, tmp_path, err);
    if (!st && m->chunk_rows > 0) {
        int64_t chunk_rows = m->chunk_rows;
        st = put_attr(file, "chunk_rows", H5T_STD_I64LE, H5T_NATIVE_INT64, &chunk_rows, tmp_path, err);
    }
    if (!st && m->nranks > 0) {
        int32_t one = 1, nranks = m->nranks;
        st = put_attr(file, "checkpoint", H5T_STD_I32LE, H5T_NATIVE_INT32, &one, tmp_path, err);
        if (!st)
            st = put_attr(file, "nranks", H5T_STD_I32LE, H5T_NATIVE_INT32, &nranks, tmp_path, err);
    }

    if (H5Fclose(file) < 0 && !st) /* the close flushes: a full disk shows up here */
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': closing the file failed (HDF5: %s)",
                      tmp_path, fkm_h5_detail(detail, sizeof detail));
    if (st) remove(tmp_path); /* never leave a half-written file */
    return st;
}

int fkm_out_write_labels(const char *tmp_path, int64_t row0, int64_t n, const int32_t *labels,
                         fkm_error *err)
{
    fkm_error_clear(err);
    char detail[256];
    int st = FKM_OK;
    if (n == 0) return FKM_OK; /* a rank without rows has nothing to add */
    fkm_h5_quiet();
    if (!tmp_path || !labels || row0 < 0 || n < 0)
        return fkm_fail(err, FKM_ERUNTIME, "fkm_out_write_labels: bad arguments (row0=%lld n=%lld)",
                        (long long)row0, (long long)n);

    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID,
          mspace = H5I_INVALID_HID;
    hsize_t dims[1], start[1] = {(hsize_t)row0}, count[1] = {(hsize_t)n};
    file = H5Fopen(tmp_path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) {
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot open it to write labels (HDF5: %s)",
                      tmp_path, fkm_h5_detail(detail, sizeof detail));
        goto done;
    }
    dset = H5Dopen2(file, "/labels", H5P_DEFAULT);
    if (dset < 0 || (fspace = H5Dget_space(dset)) < 0 ||
        H5Sget_simple_extent_dims(fspace, dims, NULL) != 1) {
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': no 1-D dataset '/labels' (HDF5: %s)",
                      tmp_path, fkm_h5_detail(detail, sizeof detail));
        goto done;
    }
    if ((hsize_t)row0 > dims[0] || (hsize_t)n > dims[0] - (hsize_t)row0) {
        st =
            fkm_fail(err, FKM_ERUNTIME,
                     "output '%s': labels [%lld, %lld) are outside '/labels' of %llu rows",
                     tmp_path, (long long)row0, (long long)(row0 + n), (unsigned long long)dims[0]);
        goto done;
    }
    mspace = H5Screate_simple(1, count, NULL);
    if (mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(dset, H5T_NATIVE_INT32, mspace, fspace, H5P_DEFAULT, labels) < 0) {
        st = fkm_fail(err, FKM_ERUNTIME,
                      "output '%s': writing labels [%lld, %lld) failed (HDF5: %s)", tmp_path,
                      (long long)row0, (long long)(row0 + n), fkm_h5_detail(detail, sizeof detail));
        goto done;
    }
done:
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (dset >= 0) H5Dclose(dset);
    if (file >= 0 && H5Fclose(file) < 0 && !st)
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': closing after the labels failed (HDF5: %s)",
                      tmp_path, fkm_h5_detail(detail, sizeof detail));
    return st;
}

int fkm_out_write_f32(const char *tmp_path, const char *name, int64_t n_total, int64_t row0,
                      int64_t n, const float *values, fkm_error *err)
{
    fkm_error_clear(err);
    char detail[256];
    int st = FKM_OK;
    if (n == 0) return FKM_OK;
    fkm_h5_quiet();
    if (!tmp_path || !name || !values || row0 < 0 || n < 0 || row0 + n > n_total)
        return fkm_fail(err, FKM_ERUNTIME, "fkm_out_write_f32: bad arguments (row0=%lld n=%lld of %lld)",
                        (long long)row0, (long long)n, (long long)n_total);
    hid_t file = H5Fopen(tmp_path, H5F_ACC_RDWR, H5P_DEFAULT), dset = H5I_INVALID_HID,
          fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hsize_t dims[1] = {(hsize_t)n_total}, start[1] = {(hsize_t)row0}, count[1] = {(hsize_t)n};
    hsize_t chunk[1] = {(hsize_t)(n_total < (1 << 20) ? n_total : (1 << 20))};
    if (file < 0) {
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot open it to write '%s' (HDF5: %s)",
                      tmp_path, name, fkm_h5_detail(detail, sizeof detail));
        goto done;
    }
    if (H5Lexists(file, name, H5P_DEFAULT) > 0) {
        dset = H5Dopen2(file, name, H5P_DEFAULT);
        fspace = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID;
    } else {
        fspace = H5Screate_simple(1, dims, NULL);
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
        if (fspace >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 1, chunk) >= 0 &&
            H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0)
            dset = H5Dcreate2(file, name, H5T_IEEE_F32LE, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    }
    mspace = H5Screate_simple(1, count, NULL);
    if (dset < 0 || fspace < 0 || mspace < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, values) < 0)
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': writing '%s' rows [%lld, %lld) failed (HDF5: %s)",
                      tmp_path, name, (long long)row0, (long long)(row0 + n),
                      fkm_h5_detail(detail, sizeof detail));
done:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    if (dset >= 0) H5Dclose(dset);
    if (file >= 0 && H5Fclose(file) < 0 && !st)
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': closing after '%s' failed (HDF5: %s)", tmp_path,
                      name, fkm_h5_detail(detail, sizeof detail));
    return st;
}
