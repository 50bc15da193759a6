/* The chunk of a streamed residency from measured rates (the backend's probe_stream): a pure
 * function, so that the driver, the benchmark and a unit test share one rule. */
#ifndef FKM_CHUNKPLAN_H
#define FKM_CHUNKPLAN_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds on one chunk's source rows (bytes as the source gives them). */
#define FKM_PLAN_MIN_CHUNK_BYTES (8.0 * 1024 * 1024)
#define FKM_PLAN_MAX_CHUNK_BYTES (1024.0 * 1024 * 1024)

typedef struct fkm_chunk_plan {
    int64_t chunk;    /* rows per chunk */
    int64_t nchunks;  /* chunks per shard (a power of two) */
    double ms_copy;   /* the shard's host-to-device copy, ms */
    double ms_comp;   /* the shard's compute, ms */
    double ms_pred;   /* the model's time of one streamed pass with this chunk, ms */
    double ratio;     /* ms_pred / max(ms_copy, ms_comp) */
} fkm_chunk_plan;

/* The model's time of one pass over a shard in nc chunks: copies overlap compute, so the
 * longer of the two sets the pace, the pipeline's fill and drain cost about one chunk of
 * both, and every chunk pays the fixed cost:
 *     T(nc) = max(Tcopy, Tcomp) + (Tcopy + Tcomp) / nc + nc · fixed;
 * with carry (fkm_stream_rates.carry: the copies run on across passes) there is no fill or
 * drain:  T(nc) = max(Tcopy, Tcomp) + nc · fixed. */
double fkm_plan_time(double ms_copy, double ms_comp, double ms_fixed, int64_t nc, int carry);

/* Choose the chunk for a shard of n rows of row_bytes bytes: the nc minimising T(nc) among
 * powers of two (so that small differences between measurements seldom change the choice,
 * and repeated runs on one machine pick the same chunk; ties go to fewer chunks), with each
 * chunk's source rows within [FKM_PLAN_MIN_CHUNK_BYTES, FKM_PLAN_MAX_CHUNK_BYTES] and at
 * least 2 chunks (the lower byte bound gives way when the shard is smaller than two such
 * chunks); chunk = ceil(n / nc). FKM_EINPUT when the rates are not positive and finite
 * (ms_fixed may be 0) or n < 1; *plan is then untouched. */
int fkm_plan_chunk(int64_t n, double row_bytes, const fkm_stream_rates *rates, fkm_chunk_plan *plan,
                   fkm_error *err);

/* chunk cut so that the streamed tier's buffers of one chunk (dev_row_bytes per row: the two
 * staging copies of the source rows, the rows in the compute type, their norms, labels,
 * distances and the sort's pairs) take at most a quarter of the device's free memory
 * (free_bytes; 0: unknown, no cut), leaving the rest to the centroids, the assign workspace,
 * the norm cache and other ranks on the same device; at least one row. */
int64_t fkm_plan_fit_memory(int64_t chunk, double dev_row_bytes, double free_bytes);

#ifdef __cplusplus
}
#endif
#endif
