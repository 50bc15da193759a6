/* The backend boundary: the Lloyd driver (src/lloyd.c) talks to the CPU and the GPU
 * only through this table, and does not know which one it has.
 *
 * Statistics of one assignment pass live in one contiguous buffer of doubles owned by
 * the backend, laid out as  [ sums: k×d | counts: k | inertia: 1 ]  (fkm_stats_len()).
 * Counts are exact in a double up to 2^53 rows. One all-reduce of that buffer merges the
 * ranks. The buffer is on the device when stats_on_device is set (NCCL reduces it in
 * place); otherwise, or when the communicator needs host memory, stats_to_host /
 * stats_from_host move it. */
#ifndef FKM_BACKEND_H
#define FKM_BACKEND_H

#include "fkm.h"
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline int64_t fkm_stats_len(int64_t k, int64_t d) { return k * d + k + 1; }

/* Element type of the rows handed to set_data. */
typedef enum { FKM_DT_F32 = 0, FKM_DT_F16 = 1 } fkm_dtype;

typedef struct fkm_step_times {
    double ms_assign; /* distances + argmin */
    double ms_update; /* per-cluster sums and counts */
    double ms_io;     /* waiting for rows (file reads, host-to-device copies not hidden) */
} fkm_step_times;

struct fkm_rowsrc;

/* What a streamed step costs on this hardware (probe_stream): the chunk size follows from it
 * (chunkplan.h). */
typedef struct fkm_stream_rates {
    double copy_gbs;   /* host-to-device copy rate from pinned memory, GB/s (1e9 bytes/s) */
    double ms_per_row; /* compute of one row in a chunk (convert, norms, assign, update) */
    double ms_fixed;   /* fixed cost of one chunk whatever its rows (launches, the sort's
                          passes, writing and adding the chunk's k×d statistics) */
    int carry;         /* 1: the first chunk of a pass is copied during the previous pass
                          (the HOST residency: the rows do not change), so a pass has no
                          pipeline fill or drain */
} fkm_stream_rates;

typedef struct fkm_backend {
    const char *name; /* "cpu", "cuda" */
    void *ctx;
    int stats_on_device;

    /* Take the local shard: n rows of d elements of type dt, row-major. The backend
     * copies what it needs; x may be freed after the call. n may be 0. */
    int (*set_data)(void *ctx, const void *x, fkm_dtype dt, int64_t n, int64_t d, fkm_error *err);
    /* Take the local rows from src (see rowsrc.h) with the given residency (never AUTO here).
     * Rows are processed chunk_rows at a time (≥ 1); the per-chunk statistics are added in
     * chunk order, so results depend on chunk_rows but not on the residency. src must outlive
     * the backend when the residency is FKM_RES_FILE. */
    int (*set_source)(void *ctx, const struct fkm_rowsrc *src, fkm_residency res,
                      int64_t chunk_rows, fkm_error *err);
    /* Replace the centroids (k×d float32, host). */
    int (*set_centroids)(void *ctx, const float *c, int64_t k, fkm_error *err);
    /* Copy the current centroids to host memory (k×d float32). */
    int (*get_centroids)(void *ctx, float *c, fkm_error *err);
    /* Assign every local row to its nearest centroid (under the backend's metric; ties to the
     * lowest index), keep the labels, and write the local statistics into the stats buffer.
     * A device backend need not wait for the device here: it may write *t (t may be NULL)
     * only in the next stats_to_host, stats_tail_to_host or finalize call, so *t must stay
     * valid until then. */
    int (*step)(void *ctx, fkm_step_times *t, fkm_error *err);
    /* The stats buffer (length fkm_stats_len(k, d)); device pointer when stats_on_device. */
    double *(*stats)(void *ctx);
    /* Copy the stats buffer to a host array, and back (after a host all-reduce). For a
     * host backend both are plain copies or no-ops when the pointers are equal. */
    int (*stats_to_host)(void *ctx, double *host, fkm_error *err);
    int (*stats_from_host)(void *ctx, const double *host, fkm_error *err);
    /* From the global statistics: new centroid = sums / count for every non-empty
     * cluster (empty ones keep the old centroid; COSINE: scaled to unit length); report the
     * largest centroid shift and the number of empty clusters. */
    int (*finalize)(void *ctx, double *max_shift, int64_t *n_empty, fkm_error *err);
    /* Labels of the last step (n int32, host). */
    int (*labels)(void *ctx, int32_t *out, fkm_error *err);
    /* Optional (NULL when absent): copy only the last `count` doubles of the stats buffer
     * (counts and inertia) to host[len-count .. len), when no host all-reduce is needed. The
     * copy may land only at the next call that waits for the backend (finalize,
     * get_centroids, labels, stats_to_host), so that an iteration waits once. */
    int (*stats_tail_to_host)(void *ctx, double *host, int64_t count, fkm_error *err);
    /* Optional: the CUDA stream the backend works on (for NCCL), NULL on the CPU. */
    void *(*stream)(void *ctx);
    /* Optional (NULL when absent): the distance (under the backend's metric; squared for L2)
     * of every local row to the nearest of the m host centroids c (m×d float32, row-major) into
     * dist (n floats, host), and that centroid's index (ties to the lowest) into labels (n
     * int32, host; may be NULL). Synchronous. Leaves the fit's centroids, labels and
     * statistics alone (k-means|| calls it before the fit). The CPU backend's distances are
     * exact (fp64, rounded once). */
    int (*nearest)(void *ctx, const float *c, int64_t m, float *dist, int32_t *labels,
                   fkm_error *err);
    /* Optional: *count = how many local labels of the last step differ from the labels of the
     * step at the previous call (−1 at the first call), then remember the current labels.
     * Synchronous; the stop rule --reassign-tol calls it once per iteration. */
    int (*changed)(void *ctx, int64_t *count, fkm_error *err);
    /* Optional (NULL when absent): the weights of the rows given to set_source (n floats ≥ 0,
     * in their order, host; copied), or NULL for all ones. Call after set_source; then step()
     * accumulates sums of w·x, counts Σ w and inertia Σ w·distance (nearest() ignores them). */
    int (*set_weights)(void *ctx, const float *w, fkm_error *err);
    /* Peak device (or host working) memory in bytes, for the log; 0 if unknown. */
    size_t (*peak_bytes)(void *ctx);
    void (*destroy)(void *ctx);
    /* Optional (NULL when absent): measure on this hardware, in well under a second, what a
     * step streamed in residency res (HOST or FILE) costs for rows of type dt: the pinned
     * host-to-device copy rate, the compute per row and per chunk, on synthetic random rows
     * against k random centroids of this backend's k and d (see fkm_stream_rates). Call it
     * before set_source and set_centroids: it runs the backend's own streamed step on those
     * rows, then leaves the backend as it was made. */
    int (*probe_stream)(void *ctx, fkm_dtype dt, fkm_residency res, fkm_stream_rates *rates,
                        fkm_error *err);
} fkm_backend;

/* Constructors. Each returns FKM_OK and fills *b, or an error. metric (see fkm_metric) sets
 * what "nearest" and a row's "distance" mean in step() and nearest(): L2 ‖x − c‖²; COSINE
 * the largest x·c with distance 1 − x·c, and finalize() scales each new centroid to unit
 * length (the rows are expected to be unit vectors already: the driver normalises them as
 * they are read); IP the largest x·c with distance −x·c. The inertia in the statistics is the
 * sum of the rows' distances. */
int fkm_backend_cpu_create(fkm_backend *b, int64_t k, int64_t d, fkm_precision prec,
                           fkm_metric metric, fkm_error *err);
/* Defined only when built with CUDA (FKM_HAVE_CUDA). device: CUDA ordinal to use. */
int fkm_backend_cuda_create(fkm_backend *b, int64_t k, int64_t d, fkm_precision prec,
                            fkm_metric metric, int device, fkm_error *err);
/* Number of visible CUDA devices (0 when built without CUDA or none is present). */
int fkm_cuda_device_count(void);
/* Free and total memory of a CUDA device in bytes (both 0 without CUDA). */
void fkm_cuda_mem_info(int device, size_t *free_bytes, size_t *total_bytes);

/* The empty-cluster policy shared by every backend (host arrays): each empty cluster
 * takes the centroid of the currently largest cluster moved by a small seeded
 * perturbation, and the largest moves the opposite way; the largest's count is halved
 * for the next choice. Deterministic from (seed, iteration). */
void fkm_split_empty(float *c, double *counts, int64_t k, int64_t d, uint64_t seed, int iter);

#ifdef __cplusplus
}
#endif
#endif
