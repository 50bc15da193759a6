/* `fkm gen`: a reproducible Gaussian mixture written as a chunked float32/float16 dataset.
 * Every value is a pure function of (seed, row, column) (src/rng.h), so the output does not
 * depend on the block size or the number of threads. */
#include "half.h"
#include "io_internal.h"
#include "rng.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GEN_CHUNK_BYTES (1 << 20) /* HDF5 chunk: about 1 MiB of rows */
#define GEN_BLOCK_BYTES (64LL << 20) /* generated in blocks of about 64 MiB */

/* Rows [row0, row0+rows) into buf (float or IEEE half bits). */
static void gen_block(const fkm_gen_params *g, int64_t row0, int64_t rows, void *buf)
{
    const int64_t d = g->d;
    const uint64_t seed = g->seed, clusters = (uint64_t)g->clusters;
    const double spread = g->spread, sigma = g->sigma;
    float *f32 = buf;
    uint16_t *f16 = buf;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        uint64_t row = (uint64_t)(row0 + i);
        uint64_t c = fkm_rand_below(seed, FKM_STREAM_GEN_LABEL, row, clusters);
        for (int64_t j = 0; j < d; j++) {
            /* the centre is recomputed rather than stored: no memory for many clusters */
            double u = fkm_rand_unit(seed, FKM_STREAM_GEN_CENTER, c * (uint64_t)d + (uint64_t)j);
            double centre = spread * (2.0 * u - 1.0);
            double v = centre + sigma * fkm_rand_normal(seed, FKM_STREAM_GEN_NOISE,
                                                        row * (uint64_t)d + (uint64_t)j);
            if (g->dtype == FKM_IO_F16)
                f16[i * d + j] = fkm_float_to_half((float)v);
            else
                f32[i * d + j] = (float)v;
        }
    }
}

/* Scalar attribute on the dataset, so that a file says how it was made. */
static int gen_attr(hid_t dset, const char *name, hid_t ftype, hid_t mtype, const void *val)
{
    hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
    int ok = space >= 0;
    if (ok) attr = H5Acreate2(dset, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && attr >= 0 && H5Awrite(attr, mtype, val) >= 0;
    if (attr >= 0 && H5Aclose(attr) < 0) ok = 0;
    if (space >= 0) H5Sclose(space);
    return ok;
}

int fkm_gen_blocked(const fkm_gen_params *g, int64_t block_rows, fkm_error *err)
{
    fkm_error_clear(err);
    char detail[256];
    int st = FKM_OK;
    fkm_h5_quiet();

    /* ---- validate everything before touching the disk ---- */
    if (!g) return fkm_fail(err, FKM_EINPUT, "gen: no parameters");
    if (!g->output || !g->output[0]) return fkm_fail(err, FKM_EINPUT, "--output is required");
    const char *dataset = g->dataset && g->dataset[0] ? g->dataset : "/data";
    if (g->n < 1) return fkm_fail(err, FKM_EINPUT, "--n must be ≥ 1 (got %lld)", (long long)g->n);
    if (g->d < 1) return fkm_fail(err, FKM_EINPUT, "--d must be ≥ 1 (got %lld)", (long long)g->d);
    if (g->clusters < 1)
        return fkm_fail(err, FKM_EINPUT, "--clusters must be ≥ 1 (got %lld)",
                        (long long)g->clusters);
    if (g->dtype != FKM_IO_F32 && g->dtype != FKM_IO_F16)
        return fkm_fail(err, FKM_EINPUT, "--dtype must be float32 or float16");
    if (!(g->spread >= 0) || !isfinite(g->spread))
        return fkm_fail(err, FKM_EINPUT, "--spread must be finite and ≥ 0 (got %g)", g->spread);
    if (!(g->sigma >= 0) || !isfinite(g->sigma))
        return fkm_fail(err, FKM_EINPUT, "--sigma must be finite and ≥ 0 (got %g)", g->sigma);
    const int64_t esize = g->dtype == FKM_IO_F16 ? 2 : 4;
    const int64_t row_bytes = g->d * esize;
    if (g->d > (INT64_C(1) << 28)) /* one row must fit in an HDF5 chunk (< 4 GiB) */
        return fkm_fail(err, FKM_EINPUT, "--d must be ≤ %lld (got %lld)",
                        (long long)(INT64_C(1) << 28), (long long)g->d);
    if (g->n > INT64_MAX / row_bytes)
        return fkm_fail(err, FKM_EINPUT, "--n × --d is too large (%lld × %lld)", (long long)g->n,
                        (long long)g->d);
    st = fkm_out_check_path(g->output, err);
    if (st) return st;

    /* chunks of about 1 MiB; blocks a whole number of chunks (≈64 MiB), so that every
     * write covers whole chunks and HDF5 writes them straight through */
    int64_t chunk_rows = GEN_CHUNK_BYTES / row_bytes;
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > g->n) chunk_rows = g->n;
    if (block_rows <= 0) {
        block_rows = GEN_BLOCK_BYTES / row_bytes / chunk_rows * chunk_rows;
        if (block_rows < chunk_rows) block_rows = chunk_rows;
    }
    if (block_rows > g->n) block_rows = g->n;

    size_t tlen = strlen(g->output) + 32;
    char *tmp = fkm_malloc(tlen, "temporary file name", err);
    if (!tmp) return FKM_ENOMEM;
    snprintf(tmp, tlen, "%s.tmp.%ld", g->output, (long)getpid());

    void *buf = NULL;
    hid_t file = H5I_INVALID_HID, dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID;
    hid_t mspace = H5I_INVALID_HID, lcpl = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    hid_t ftype = H5I_INVALID_HID, mtype = H5I_INVALID_HID;
    int created = 0;

    buf = fkm_malloc((size_t)(block_rows * row_bytes), "gen block", err);
    if (!buf) {
        st = FKM_ENOMEM;
        goto done;
    }
    if (g->dtype == FKM_IO_F16) {
        ftype = fkm_h5_half_type(H5T_IEEE_F32LE); /* little-endian IEEE half on disk */
        mtype = fkm_h5_half_type(H5T_NATIVE_FLOAT);
    } else {
        ftype = H5Tcopy(H5T_IEEE_F32LE);
        mtype = H5Tcopy(H5T_NATIVE_FLOAT);
    }
    if (ftype < 0 || mtype < 0) {
        st = fkm_fail(err, FKM_ERUNTIME, "gen: cannot make the element type (HDF5: %s)",
                      fkm_h5_detail(detail, sizeof detail));
        goto done;
    }

    file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot create '%s' (HDF5: %s)", g->output,
                      tmp, fkm_h5_detail(detail, sizeof detail));
        goto done;
    }
    created = 1;

    hsize_t dims[2] = {(hsize_t)g->n, (hsize_t)g->d};
    hsize_t chunk[2] = {(hsize_t)chunk_rows, (hsize_t)g->d};
    fspace = H5Screate_simple(2, dims, NULL);
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (fspace < 0 || lcpl < 0 || dcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
        H5Pset_chunk(dcpl, 2, chunk) < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        (dset = H5Dcreate2(file, dataset, ftype, fspace, lcpl, dcpl, H5P_DEFAULT)) < 0) {
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot create dataset '%s' (HDF5: %s)",
                      g->output, dataset, fkm_h5_detail(detail, sizeof detail));
        goto done;
    }

    int64_t clusters = g->clusters;
    uint64_t seed = g->seed;
    double spread = g->spread, sigma = g->sigma;
    if (!gen_attr(dset, "clusters", H5T_STD_I64LE, H5T_NATIVE_INT64, &clusters) ||
        !gen_attr(dset, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &seed) ||
        !gen_attr(dset, "spread", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &spread) ||
        !gen_attr(dset, "sigma", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &sigma)) {
        st = fkm_fail(err, FKM_ERUNTIME,
                      "output '%s': cannot write the attributes of '%s' (HDF5: %s)", g->output,
                      dataset, fkm_h5_detail(detail, sizeof detail));
        goto done;
    }

    for (int64_t row0 = 0; row0 < g->n; row0 += block_rows) {
        int64_t rows = g->n - row0 < block_rows ? g->n - row0 : block_rows;
        gen_block(g, row0, rows, buf);
        hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)rows, (hsize_t)g->d};
        mspace = H5Screate_simple(2, count, NULL);
        if (mspace < 0 ||
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(dset, mtype, mspace, fspace, H5P_DEFAULT, buf) < 0) {
            st = fkm_fail(err, FKM_ERUNTIME,
                          "output '%s': writing rows [%lld, %lld) failed (HDF5: %s)", g->output,
                          (long long)row0, (long long)(row0 + rows),
                          fkm_h5_detail(detail, sizeof detail));
            goto done;
        }
        H5Sclose(mspace);
        mspace = H5I_INVALID_HID;
    }

done:
    if (mspace >= 0) H5Sclose(mspace);
    if (dset >= 0 && H5Dclose(dset) < 0 && !st)
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': closing dataset '%s' failed (HDF5: %s)",
                      g->output, dataset, fkm_h5_detail(detail, sizeof detail));
    if (dcpl >= 0) H5Pclose(dcpl);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (fspace >= 0) H5Sclose(fspace);
    if (ftype >= 0) H5Tclose(ftype);
    if (mtype >= 0) H5Tclose(mtype);
    if (file >= 0 && H5Fclose(file) < 0 && !st) /* flushes: a full disk shows up here */
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': closing '%s' failed (HDF5: %s)", g->output,
                      tmp, fkm_h5_detail(detail, sizeof detail));
    if (!st && rename(tmp, g->output) != 0)
        st = fkm_fail(err, FKM_ERUNTIME, "output '%s': cannot rename '%s' to it: %s", g->output,
                      tmp, strerror(errno));
    if (st && created) remove(tmp); /* no partial output left behind */
    free(buf);
    free(tmp);
    return st;
}

int fkm_gen(const fkm_gen_params *g, fkm_error *err) { return fkm_gen_blocked(g, 0, err); }
