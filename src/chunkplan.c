#include "chunkplan.h"
#include "util.h"

#include <math.h>

double fkm_plan_time(double ms_copy, double ms_comp, double ms_fixed, int64_t nc, int carry)
{
    const double longer = ms_copy > ms_comp ? ms_copy : ms_comp;
    return longer + (carry ? 0.0 : (ms_copy + ms_comp) / (double)nc) + (double)nc * ms_fixed;
}

int fkm_plan_chunk(int64_t n, double row_bytes, const fkm_stream_rates *r, fkm_chunk_plan *plan,
                   fkm_error *err)
{
    if (n < 1 || !(row_bytes > 0) || !isfinite(row_bytes) || !(r->copy_gbs > 0) ||
        !isfinite(r->copy_gbs) || !(r->ms_per_row > 0) || !isfinite(r->ms_per_row) ||
        !(r->ms_fixed >= 0) || !isfinite(r->ms_fixed))
        return fkm_fail(err, FKM_EINPUT, "chunk plan: bad input (n %lld, row bytes %g, copy %g GB/s, "
                        "%g ms/row, %g ms/chunk)", (long long)n, row_bytes, r->copy_gbs,
                        r->ms_per_row, r->ms_fixed);
    const double ms_copy = (double)n * row_bytes / (r->copy_gbs * 1e6); /* GB/s = 1e6 bytes/ms */
    const double ms_comp = (double)n * r->ms_per_row;
    /* rows per chunk within the byte bounds (at least one row) */
    double max_rows = floor(FKM_PLAN_MAX_CHUNK_BYTES / row_bytes);
    double min_rows = ceil(FKM_PLAN_MIN_CHUNK_BYTES / row_bytes);
    if (max_rows < 1) max_rows = 1;
    if (min_rows > max_rows) min_rows = max_rows;
    /* the fewest chunks: 2, and enough that none exceeds max_rows */
    int64_t lo = 2;
    while (lo < n && ceil((double)n / (double)lo) > max_rows) lo *= 2;
    /* the most: chunks of at least min_rows (never below lo) and at least one row each */
    int64_t hi = lo;
    while (hi * 2 <= n && ceil((double)n / (double)(hi * 2)) >= min_rows) hi *= 2;
    int64_t best = lo;
    double tbest = fkm_plan_time(ms_copy, ms_comp, r->ms_fixed, lo, r->carry);
    for (int64_t nc = lo * 2; nc <= hi; nc *= 2) {
        const double t = fkm_plan_time(ms_copy, ms_comp, r->ms_fixed, nc, r->carry);
        if (t < tbest) { /* strictly better: ties keep fewer chunks */
            tbest = t;
            best = nc;
        }
    }
    int64_t chunk = (n + best - 1) / best;
    if (chunk < 1) chunk = 1;
    plan->chunk = chunk;
    plan->nchunks = (n + chunk - 1) / chunk; /* = best, or fewer when n < best */
    plan->ms_copy = ms_copy;
    plan->ms_comp = ms_comp;
    plan->ms_pred = fkm_plan_time(ms_copy, ms_comp, r->ms_fixed, plan->nchunks, r->carry);
    const double longer = ms_copy > ms_comp ? ms_copy : ms_comp;
    plan->ratio = longer > 0 ? plan->ms_pred / longer : 1.0;
    return FKM_OK;
}

int64_t fkm_plan_fit_memory(int64_t chunk, double dev_row_bytes, double free_bytes)
{
    if (!(free_bytes > 0) || !(dev_row_bytes > 0)) return chunk;
    const double fit = floor(0.25 * free_bytes / dev_row_bytes);
    if ((double)chunk > fit) chunk = fit < 1 ? 1 : (int64_t)fit;
    return chunk;
}
