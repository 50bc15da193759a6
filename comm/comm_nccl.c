/* The NCCL communicator: per-centroid sums, counts and inertia reduced in device memory,
 * on the backend's stream. Built only with FKM_HAVE_NCCL. */
#include "comm.h"
#include "util.h"

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

int fkm_comm_nccl_built(void) { return 1; }

static int nccl_fail(fkm_comm *c, fkm_error *err, ncclResult_t r, const char *what)
{
    ncclComm_t comm = c->nccl;
    const char *last = comm ? ncclGetLastError(comm) : NULL;
    return fkm_fail(err, FKM_ERUNTIME, "rank %d on %s: %s failed: %s%s%s (NCCL_DEBUG=WARN shows more)",
                    c->rank, c->host, what, ncclGetErrorString(r), last && *last ? ": " : "",
                    last ? last : "");
}

/* End the job after a device-collective failure: abort NCCL first so that no kernel of
 * ours keeps waiting for a peer, then MPI, which takes every other rank down with us. */
static void die(fkm_comm *c, const char *msg)
{
    if (c->nccl) ncclCommAbort((ncclComm_t)c->nccl);
    c->nccl = NULL;
    fkm_comm_abort(c, 1, msg);
}

/* Poll a non-blocking NCCL operation to completion, with the timeout. */
static int settle(fkm_comm *c, const char *what, fkm_error *err)
{
    double t0 = fkm_now_ms();
    for (;;) {
        ncclResult_t st;
        ncclResult_t r = ncclCommGetAsyncError((ncclComm_t)c->nccl, &st);
        if (r != ncclSuccess) return nccl_fail(c, err, r, "ncclCommGetAsyncError");
        if (st == ncclSuccess) return FKM_OK;
        if (st != ncclInProgress) {
            nccl_fail(c, err, st, what);
            die(c, err->msg);
        }
        if (fkm_now_ms() - t0 > c->timeout_s * 1e3) {
            fkm_fail(err, FKM_ERUNTIME, "%s did not complete within %.0f s: a peer rank is probably gone",
                     what, c->timeout_s);
            die(c, err->msg);
        }
        sched_yield();
    }
}

int fkm_comm_nccl_init(fkm_comm *c, int device, fkm_error *err)
{
    if (c->timeout_s <= 0) c->timeout_s = 60;
    cudaError_t ce = cudaSetDevice(device);
    if (ce != cudaSuccess)
        return fkm_fail(err, FKM_ERUNTIME, "rank %d on %s: cudaSetDevice(%d): %s", c->rank, c->host,
                        device, cudaGetErrorString(ce));
    ncclUniqueId id;
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) nccl_fail(c, err, r, "ncclGetUniqueId");
    }
    /* rank 0's failure above reaches everyone through the agreement */
    int st = fkm_comm_agree(c, err);
    if (st) return st;
    if ((st = fkm_comm_bcast(c, &id, sizeof id, 0, err))) return st;
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRankConfig(&comm, c->size, id, c->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) return nccl_fail(c, err, r, "ncclCommInitRankConfig");
    c->nccl = comm;
    return settle(c, "ncclCommInitRankConfig", err);
}

int fkm_comm_nccl_allreduce_sum_f64(fkm_comm *c, double *dev_buf, int64_t n, void *stream,
                                    fkm_error *err)
{
    ncclResult_t r = ncclAllReduce(dev_buf, dev_buf, (size_t)n, ncclDouble, ncclSum,
                                   (ncclComm_t)c->nccl, (cudaStream_t)stream);
    if (r != ncclSuccess && r != ncclInProgress) return nccl_fail(c, err, r, "ncclAllReduce");
    return settle(c, "ncclAllReduce", err);
}

int fkm_comm_nccl_wait(fkm_comm *c, void *stream, fkm_error *err)
{
    double t0 = fkm_now_ms();
    for (;;) {
        cudaError_t q = cudaStreamQuery((cudaStream_t)stream);
        if (q == cudaSuccess) return FKM_OK;
        if (q != cudaErrorNotReady)
            return fkm_fail(err, FKM_ERUNTIME, "rank %d on %s: waiting for the all-reduce: %s",
                            c->rank, c->host, cudaGetErrorString(q));
        ncclResult_t st;
        if (ncclCommGetAsyncError((ncclComm_t)c->nccl, &st) == ncclSuccess && st != ncclSuccess &&
            st != ncclInProgress) {
            nccl_fail(c, err, st, "ncclAllReduce (asynchronous)");
            die(c, err->msg);
        }
        if (fkm_now_ms() - t0 > c->timeout_s * 1e3) {
            fkm_fail(err, FKM_ERUNTIME, "the all-reduce did not complete within %.0f s: a peer rank is probably gone",
                     c->timeout_s);
            die(c, err->msg);
        }
        sched_yield();
    }
}

void fkm_comm_nccl_destroy(fkm_comm *c)
{
    if (!c->nccl) return;
    ncclCommFinalize((ncclComm_t)c->nccl);
    fkm_error err;
    settle(c, "ncclCommFinalize", &err);
    ncclCommDestroy((ncclComm_t)c->nccl);
    c->nccl = NULL;
}
