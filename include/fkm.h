/* fkm — distributed k-means on CPUs and GPUs. The one public header.
 *
 * Typical use (every MPI rank calls the same thing; MPI may be initialised by the
 * caller or is initialised by fkm_fit itself):
 *
 *     fkm_params p; fkm_params_default(&p);
 *     p.input = "data.h5"; p.dataset = "/data"; p.k = 1024; p.output = "out.h5";
 *     fkm_error err; fkm_result res;
 *     if (fkm_fit(&p, &res, &err) != FKM_OK) { fprintf(stderr, "%s\n", err.msg); ... }
 *     fkm_result_free(&res);
 */
#ifndef FKM_H
#define FKM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FKM_VERSION "0.1.0"

/* Status codes. The CLI maps FKM_EINPUT to exit status 2 and every other
 * failure to exit status 1. */
typedef enum {
    FKM_OK = 0,
    FKM_EINPUT = 2,   /* bad input or usage: the message names the input and what is wrong */
    FKM_ERUNTIME = 1, /* a failure while running (I/O, device, communicator) */
    FKM_ENOMEM = 3,   /* out of host or device memory: the message says how much and what helps */
    FKM_EINTERRUPTED = 75, /* stopped by SIGTERM/SIGUSR1 after writing a checkpoint (exit 75) */
} fkm_status;

typedef struct fkm_error {
    int status;     /* an fkm_status */
    char msg[1024]; /* one line, no trailing newline; empty when status == FKM_OK */
} fkm_error;

/* RANDOM: k distinct rows. FILE: a given matrix. KMEANSPP: greedy k-means++ on a uniform
 * sample of the rows (init_sample). KMEANS_PAR: k-means|| (Bahmani et al.) over all rows. */
typedef enum {
    FKM_INIT_RANDOM = 0,
    FKM_INIT_FILE = 1,
    FKM_INIT_KMEANSPP = 2,
    FKM_INIT_KMEANS_PAR = 3
} fkm_init;
typedef enum { FKM_BACKEND_AUTO = 0, FKM_BACKEND_CPU = 1, FKM_BACKEND_CUDA = 2 } fkm_backend_kind;
typedef enum { FKM_EMPTY_SPLIT = 0, FKM_EMPTY_KEEP = 1 } fkm_empty;
/* Where a rank's rows live between iterations: DEVICE (the backend's memory: the GPU, or host
 * memory for the CPU backend), HOST (pinned host memory, streamed to the GPU in chunks every
 * iteration), FILE (re-read from the file in chunks every iteration). AUTO: the first that
 * fits in free memory. */
typedef enum { FKM_RES_AUTO = 0, FKM_RES_DEVICE = 1, FKM_RES_HOST = 2, FKM_RES_FILE = 3 } fkm_residency;
/* How ranks combine their statistics: AUTO picks NCCL when the backend is cuda, fkm was built
 * with NCCL and every rank of every node has a GPU of its own; MPI otherwise. */
typedef enum { FKM_COMM_AUTO = 0, FKM_COMM_NCCL = 1, FKM_COMM_MPI = 2 } fkm_comm_kind;
/* Arithmetic of the assignment step. AUTO: exact for float32 input, the input's own
 * 16-bit type for float16 input. EXACT: labels equal an fp64 reference on every row
 * whose best and second-best distances differ by more than 1e-5 relative. */
typedef enum {
    FKM_PREC_AUTO = 0,
    FKM_PREC_EXACT = 1,
    FKM_PREC_TF32 = 2,
    FKM_PREC_FP16 = 3,
    FKM_PREC_BF16 = 4
} fkm_precision;

/* What "nearest" means. L2: the smallest squared Euclidean distance; a row's distance is
 * ‖x − c‖². COSINE: spherical k-means: rows are scaled to unit length as they are read and the
 * centroids after every update, a row goes to the largest cosine, its distance is 1 − cos, and
 * the reported inertia is 1 − (mean cosine). IP: the largest inner product x·c (maximum inner
 * product assignment); centroids are plain means, a row's distance is −x·c, and the reported
 * inertia is −(mean inner product). */
typedef enum { FKM_METRIC_L2 = 0, FKM_METRIC_COSINE = 1, FKM_METRIC_IP = 2 } fkm_metric;

/* Parameters of one fit. fkm_params_default() sets every field to the default
 * written beside it; fkm_fit() validates them all before any work starts. */
typedef struct fkm_params {
    const char *input;       /* HDF5 file to cluster; required */
    const char *dataset;     /* 2-D dataset inside it, N×D, float32 or float16; "/data" */
    int64_t k;               /* number of clusters, 1 ≤ k ≤ N; required (0 = unset) */
    int max_iter;            /* Lloyd iterations at most; 25 */
    double tol;              /* stop when |ΔI|/I ≤ tol (I = inertia); 1e-4; 0 runs all iterations */
    uint64_t seed;           /* seed of the random init and of empty-cluster splits; 1234 */
    fkm_init init;           /* FKM_INIT_RANDOM: k distinct rows drawn from the seed */
    const char *init_file;   /* FKM_INIT_FILE: HDF5 file holding k×D initial centroids */
    const char *init_dataset;/* ... and the dataset inside it; "/centroids" */
    fkm_backend_kind backend;/* FKM_BACKEND_AUTO: cuda when built with it and a GPU is visible */
    fkm_precision precision; /* FKM_PREC_AUTO */
    fkm_comm_kind comm;      /* FKM_COMM_AUTO */
    int device;              /* CUDA device of this rank; -1 (default) = node-local rank mod GPUs */
    fkm_empty empty;         /* FKM_EMPTY_SPLIT: an empty cluster takes half of the largest one */
    fkm_residency residency; /* FKM_RES_AUTO */
    int64_t chunk_rows;      /* rows per streamed chunk (reads, transfers, and the blocks whose
                                sums are added in order: the same chunk_rows gives bitwise the
                                same result in every residency); 0 = chosen per residency */
    const char *output;      /* HDF5 file to write (temporary name, then renamed); NULL = none */
    int write_labels;        /* write /labels (N int32) into the output; 0 */
    int skip_nonfinite;      /* leave out rows holding NaN or ±inf (label -1) instead of
                                failing on the first; 0 */
    const char *log_json;    /* file for per-iteration JSON lines (rank 0); NULL = none */
    int verbose;             /* 0 quiet, 1 iteration log (default), 2 more */
    const char *checkpoint;  /* checkpoint file (written atomically); NULL = none. With it,
                                SIGTERM and SIGUSR1 make every rank stop after the current
                                iteration, write it, and return FKM_EINTERRUPTED */
    int checkpoint_every;    /* write the checkpoint every this many iterations; 10 */
    const char *resume;      /* continue from this checkpoint; NULL = start afresh */
    /* init and stop rules (issue #7) */
    int64_t init_sample;     /* FKM_INIT_KMEANSPP: rows of the uniform sample it runs on;
                                0 (default) = all rows when N ≤ 100000, else
                                min(N, max(16·k, 100000)) */
    double shift_tol;        /* stop when the largest centroid shift ≤ shift_tol × the RMS norm
                                of the starting centroids; < 0 (default −1) = off */
    double reassign_tol;     /* stop when the fraction of rows whose label changed since the
                                previous iteration ≤ reassign_tol; < 0 (default −1) = off */
    int64_t max_points_per_centroid; /* when N > k·this, train (init and iterations) on a
                                uniform sample of k·this rows drawn from the seed (the same for
                                any number of ranks), then one assignment pass over all rows gives
                                the labels, counts and inertia; 0 (default) = all rows */
    int write_distances;     /* also write /distances (N float32: each row's distance to its
                                output centroid under the metric, squared for L2; NaN for left-out
                                rows) and keep them in the result; needs write_labels; 0 */
    fkm_metric metric;       /* FKM_METRIC_L2 (default), COSINE or IP; see fkm_metric */
    const char *weights;     /* file of row weights (one per input row, finite, ≥ 0; any input
                                format, 1-D or one column); NULL (default) = all 1. The update
                                then uses Σ w·x / Σ w, the inertia Σ w·distance, k-means++ and
                                k-means|| draw ∝ w·D² (random init ignores the weights) */
    const char *weights_dataset; /* HDF5 dataset of the weights; "/weights" */
} fkm_params;

/* Per-iteration statistics, kept for the caller (as FAISS's ClusteringIterationStats). */
typedef struct fkm_iter_stats {
    int iter;            /* 1-based */
    double inertia;      /* sum of squared distances to the centroids the rows were assigned to */
    double rel_change;   /* |I_prev − I| / I_prev; NaN on the first iteration */
    double max_shift;    /* largest ‖c_new − c_old‖ */
    int64_t empty;       /* clusters that received no row */
    double reassigned;   /* fraction of rows whose label changed since the previous iteration;
                            NaN when not computed (needs reassign_tol ≥ 0; not on the first) */
    double ms_total, ms_assign, ms_update, ms_comm;
} fkm_iter_stats;

typedef struct fkm_result {
    int64_t k, d, n;        /* global shape */
    float *centroids;       /* k×d, row-major; identical on every rank */
    int64_t *counts;        /* k; rows per cluster for the output centroids */
    double *weight_sums;    /* k; with weights, the weight of each cluster's rows; else NULL */
    double inertia;         /* of the output centroids (final assignment pass) */
    int iterations;         /* Lloyd iterations run */
    int converged;          /* 1 when the tolerance stopped the loop */
    char stop_reason[128];  /* why the loop ended, in words */
    int64_t row0, nlocal;   /* this rank's shard: rows [row0, row0 + nlocal) */
    int32_t *labels;        /* nlocal labels of this rank's shard (output centroids) */
    float *distances;       /* nlocal squared distances to the output centroids when
                               write_distances, else NULL */
    fkm_iter_stats *stats;  /* one per iteration */
    int nstats;
    const char *backend;    /* "cpu" or "cuda" */
} fkm_result;

void fkm_params_default(fkm_params *p);
/* Validate p on its own (no file access). FKM_EINPUT with a message naming the field. */
int fkm_params_check(const fkm_params *p, fkm_error *err);
/* `fkm assign` is fkm_fit with init = FKM_INIT_FILE (the trained centroids), k = their count,
 * max_iter = 0 and write_labels = 1: one assignment pass, no iteration. */
/* Run the whole fit on every rank of MPI_COMM_WORLD. Collective: every rank returns
 * the same status and message. */
int fkm_fit(const fkm_params *p, fkm_result *res, fkm_error *err);
void fkm_result_free(fkm_result *res);

#ifdef __cplusplus
}
#endif
#endif
