/* The communicator: everything fkm needs from MPI (and, for GPU buffers, NCCL) behind
 * one small interface. */
#ifndef FKM_COMM_H
#define FKM_COMM_H

#include "fkm.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fkm_comm {
    int rank, size;
    int local_rank, local_size; /* within the node (shared-memory split) */
    char host[256];
    int owns_mpi;               /* 1 when fkm called MPI_Init and must finalise */
    void *nccl;                 /* the NCCL communicator when one was set up, else NULL */
    double timeout_s;           /* how long a device collective may take before the job ends */
} fkm_comm;

/* Initialise MPI when nobody has, and fill c. */
int fkm_comm_init(fkm_comm *c, fkm_error *err);
void fkm_comm_finalize(fkm_comm *c);

/* In-place sum over all ranks of a host buffer of doubles. */
int fkm_comm_allreduce_sum_f64(fkm_comm *c, double *buf, int64_t n, fkm_error *err);
int fkm_comm_allreduce_max_f64(fkm_comm *c, double *buf, int64_t n, fkm_error *err);
int fkm_comm_bcast(fkm_comm *c, void *buf, size_t bytes, int root, fkm_error *err);
int fkm_comm_barrier(fkm_comm *c, fkm_error *err);

/* Collective agreement on a local status: every rank passes its own err; on return every
 * rank's err holds the status and message of the lowest-numbered failing rank (the message
 * prefixed with that rank and host for runtime failures when size > 1), or FKM_OK. */
int fkm_comm_agree(fkm_comm *c, fkm_error *err);

/* Pass a token in rank order: wait for the previous rank, run, release the next. */
int fkm_comm_turn_wait(fkm_comm *c, fkm_error *err);
int fkm_comm_turn_done(fkm_comm *c, fkm_error *err);

/* NCCL (built with FKM_HAVE_NCCL): all-reduce of device buffers on a CUDA stream, for
 * ranks that each own a GPU. The unique id is made on rank 0 and broadcast over MPI. The
 * communicator is non-blocking: every wait polls ncclCommGetAsyncError and the timeout, and
 * on an error or a timeout aborts the communicator and then the whole job (MPI_Abort), with a
 * message naming the rank and host, so that no failure leaves ranks hanging. */
int fkm_comm_nccl_built(void);
int fkm_comm_nccl_init(fkm_comm *c, int device, fkm_error *err);
int fkm_comm_nccl_allreduce_sum_f64(fkm_comm *c, double *dev_buf, int64_t n, void *stream,
                                    fkm_error *err);
/* Wait for the stream's work (the all-reduce included), watching NCCL as above. */
int fkm_comm_nccl_wait(fkm_comm *c, void *stream, fkm_error *err);
void fkm_comm_nccl_destroy(fkm_comm *c);

/* End every rank of the job now (after printing msg on stderr with rank and host). */
void fkm_comm_abort(fkm_comm *c, int code, const char *msg);

#ifdef __cplusplus
}
#endif
#endif
