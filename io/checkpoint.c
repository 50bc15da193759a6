/* Reading a checkpoint back (writing is fkm_out_create with nranks > 0). */
#include "io_internal.h"
#include "reader_impl.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A numeric scalar attribute converted to the memory type; FKM_EINPUT when missing. */
static int get_attr(hid_t file, const char *name, hid_t mtype, void *out, const char *path,
                    fkm_error *err)
{
    if (H5Aexists(file, name) <= 0)
        return fkm_fail(err, FKM_EINPUT, "--resume '%s': attribute '%s' missing: not an fkm checkpoint",
                        path, name);
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, mtype, out) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok ? FKM_OK
              : fkm_fail(err, FKM_EINPUT, "--resume '%s': attribute '%s' unreadable", path, name);
}

int fkm_ckpt_read(const char *file, int64_t want_k, int64_t want_d, int64_t want_n,
                  uint64_t want_seed, const char *want_metric, fkm_out_meta *m, float **centroids,
                  fkm_error *err)
{
    fkm_error_clear(err);
    *centroids = NULL;
    hid_t f;
    int st = fkm_h5_open_ro("--resume", file, &f, err);
    if (st) return st;
    int32_t is_ckpt = 0, iters = 0, nranks = 0;
    m->metric = "l2";
    m->init = "checkpoint";
    m->converged = 0;
    st = get_attr(f, "checkpoint", H5T_NATIVE_INT32, &is_ckpt, file, err);
    if (!st) st = get_attr(f, "k", H5T_NATIVE_INT64, &m->k, file, err);
    if (!st) st = get_attr(f, "d", H5T_NATIVE_INT64, &m->d, file, err);
    if (!st) st = get_attr(f, "n", H5T_NATIVE_INT64, &m->n, file, err);
    if (!st) st = get_attr(f, "seed", H5T_NATIVE_UINT64, &m->seed, file, err);
    if (!st) st = get_attr(f, "iterations", H5T_NATIVE_INT32, &iters, file, err);
    if (!st) st = get_attr(f, "inertia", H5T_NATIVE_DOUBLE, &m->inertia, file, err);
    if (!st) st = get_attr(f, "nranks", H5T_NATIVE_INT32, &nranks, file, err);
    m->chunk_rows = 0;
    if (!st && H5Aexists(f, "chunk_rows") > 0)
        st = get_attr(f, "chunk_rows", H5T_NATIVE_INT64, &m->chunk_rows, file, err);
    char metric[32];
    if (fkm_h5_str_attr(f, "metric", metric, sizeof metric) != 1) metric[0] = '\0';
    H5Fclose(f);
    if (st) return st;
    m->iterations = iters;
    m->nranks = nranks;
    if (is_ckpt != 1) return fkm_fail(err, FKM_EINPUT, "--resume '%s': not an fkm checkpoint", file);
    if (m->k != want_k || m->d != want_d || m->n != want_n)
        return fkm_fail(err, FKM_EINPUT,
                        "--resume '%s': made for k=%lld d=%lld n=%lld, this run has k=%lld d=%lld n=%lld",
                        file, (long long)m->k, (long long)m->d, (long long)m->n, (long long)want_k,
                        (long long)want_d, (long long)want_n);
    if (want_metric && strcmp(metric[0] ? metric : "l2", want_metric) != 0)
        return fkm_fail(err, FKM_EINPUT, "--resume '%s': made with --metric %s, this run has --metric %s",
                        file, metric[0] ? metric : "l2", want_metric);
    m->metric = want_metric ? want_metric : "l2";
    if (m->seed != want_seed)
        return fkm_fail(err, FKM_EINPUT, "--resume '%s': made with --seed %llu, this run has --seed %llu",
                        file, (unsigned long long)m->seed, (unsigned long long)want_seed);
    return fkm_load_matrix(file, "/centroids", want_k, want_d, centroids, err);
}
