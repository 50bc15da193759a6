/* The MPI communicator: host buffers, used on the CPU backend, where ranks share a GPU,
 * and for the few collectives (agreement, broadcast, rank-ordered turns) every run needs. */
#include "comm.h"
#include "util.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* MPI failures carry the MPI error string, the rank and the host. */
static int mpi_fail(fkm_comm *c, fkm_error *err, int rc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return fkm_fail(err, FKM_ERUNTIME, "rank %d on %s: %s failed: %s", c->rank, c->host, what, s);
}
#define MPI_TRY(call, what)                                                                \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        if (rc_ != MPI_SUCCESS) return mpi_fail(c, err, rc_, what);                        \
    } while (0)

int fkm_comm_init(fkm_comm *c, fkm_error *err)
{
    memset(c, 0, sizeof *c);
    if (gethostname(c->host, sizeof c->host - 1) != 0) strcpy(c->host, "unknown-host");
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return fkm_fail(err, FKM_ERUNTIME, "on %s: MPI_Init failed", c->host);
        c->owns_mpi = 1;
    }
    /* Errors come back as codes, which we turn into messages and a collective decision. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank), "MPI_Comm_rank");
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &c->size), "MPI_Comm_size");
    MPI_Comm node;
    MPI_TRY(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
    MPI_TRY(MPI_Comm_rank(node, &c->local_rank), "MPI_Comm_rank(node)");
    MPI_TRY(MPI_Comm_size(node, &c->local_size), "MPI_Comm_size(node)");
    MPI_Comm_free(&node);
    return FKM_OK;
}

void fkm_comm_finalize(fkm_comm *c)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (c->owns_mpi && !fin) MPI_Finalize();
    c->owns_mpi = 0;
}

/* MPI counts are int: reduce large buffers in pieces. */
static int allreduce(fkm_comm *c, double *buf, int64_t n, MPI_Op op, fkm_error *err)
{
    const int64_t piece = (int64_t)1 << 28;
    for (int64_t off = 0; off < n; off += piece) {
        int cnt = (int)(n - off < piece ? n - off : piece);
        MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_DOUBLE, op, MPI_COMM_WORLD),
                "MPI_Allreduce");
    }
    return FKM_OK;
}

int fkm_comm_allreduce_sum_f64(fkm_comm *c, double *buf, int64_t n, fkm_error *err)
{
    return allreduce(c, buf, n, MPI_SUM, err);
}

int fkm_comm_allreduce_max_f64(fkm_comm *c, double *buf, int64_t n, fkm_error *err)
{
    return allreduce(c, buf, n, MPI_MAX, err);
}

int fkm_comm_bcast(fkm_comm *c, void *buf, size_t bytes, int root, fkm_error *err)
{
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += piece) {
        int cnt = (int)(bytes - off < piece ? bytes - off : piece);
        MPI_TRY(MPI_Bcast((char *)buf + off, cnt, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
    return FKM_OK;
}

int fkm_comm_barrier(fkm_comm *c, fkm_error *err)
{
    MPI_TRY(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
    return FKM_OK;
}

int fkm_comm_agree(fkm_comm *c, fkm_error *err)
{
    /* The lowest failing rank speaks for everyone: min over (failing ? rank : size). */
    int mine = err->status != FKM_OK ? c->rank : c->size, first = c->size;
    int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        char s[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, s, &len);
        fkm_comm_abort(c, 1, s); /* the communicator itself is broken: nothing to agree on */
    }
    if (first == c->size) {
        fkm_error_clear(err);
        return FKM_OK;
    }
    if (c->rank == first && c->size > 1 && err->status != FKM_EINPUT &&
        strncmp(err->msg, "rank ", 5) != 0) {
        /* Runtime failures name where they happened; input errors are the same on every rank. */
        char tmp[sizeof err->msg + sizeof c->host + 32];
        snprintf(tmp, sizeof tmp, "rank %d on %s: %s", c->rank, c->host, err->msg);
        memcpy(err->msg, tmp, sizeof err->msg - 1); /* truncation is fine for a message */
        err->msg[sizeof err->msg - 1] = '\0';
    }
    struct {
        int status;
        char msg[sizeof err->msg];
    } pkt;
    if (c->rank == first) {
        pkt.status = err->status;
        memcpy(pkt.msg, err->msg, sizeof pkt.msg);
    }
    rc = MPI_Bcast(&pkt, (int)sizeof pkt, MPI_BYTE, first, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) fkm_comm_abort(c, 1, err->msg);
    err->status = pkt.status;
    memcpy(err->msg, pkt.msg, sizeof err->msg);
    return err->status;
}

int fkm_comm_turn_wait(fkm_comm *c, fkm_error *err)
{
    int token = 0;
    if (c->rank > 0)
        MPI_TRY(MPI_Recv(&token, 1, MPI_INT, c->rank - 1, 77, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                "MPI_Recv(turn)");
    return FKM_OK;
}

int fkm_comm_turn_done(fkm_comm *c, fkm_error *err)
{
    int token = 1;
    if (c->rank + 1 < c->size)
        MPI_TRY(MPI_Send(&token, 1, MPI_INT, c->rank + 1, 77, MPI_COMM_WORLD), "MPI_Send(turn)");
    return FKM_OK;
}

void fkm_comm_abort(fkm_comm *c, int code, const char *msg)
{
    fprintf(stderr, "fkm: error: rank %d on %s: %s (aborting the job)\n", c->rank, c->host, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code); /* MPI_Abort does not return; this keeps the compiler and a broken MPI honest */
}

#ifndef FKM_HAVE_NCCL
/* Built without NCCL: the MPI path is the only one, and asking for NCCL is an input error. */
int fkm_comm_nccl_built(void) { return 0; }
int fkm_comm_nccl_init(fkm_comm *c, int device, fkm_error *err)
{
    return fkm_fail(err, FKM_EINPUT, "--comm nccl: this fkm was built without NCCL");
}
int fkm_comm_nccl_allreduce_sum_f64(fkm_comm *c, double *dev_buf, int64_t n, void *stream,
                                    fkm_error *err)
{
    return fkm_fail(err, FKM_ERUNTIME, "NCCL all-reduce without NCCL");
}
int fkm_comm_nccl_wait(fkm_comm *c, void *stream, fkm_error *err) { return FKM_OK; }
void fkm_comm_nccl_destroy(fkm_comm *c) {}
#endif
