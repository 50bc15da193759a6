/* The streamed chunk's choice model (src/chunkplan.c), a pure function, against an exhaustive
 * search written here: for fresh random shards and rates, the chosen number of chunks is a
 * power of two minimising T(nc) = max(copy, compute) + (copy + compute)/nc + nc·fixed (with
 * carry, half the cases: max(copy, compute) + nc·fixed) over every allowed power of two (ties
 * to fewer chunks), each chunk's source rows stay within
 * [8 MiB, 1 GiB] (the lower bound yielding only to the 2-chunk minimum of small shards), the
 * chunk covers the shard in nchunks chunks, and the predicted ratio is T / max(copy, compute).
 * Then the corners: an H100 measurement of README's table, no fixed cost (smallest chunks),
 * a huge fixed cost (fewest chunks the 1 GiB bound allows), a small shard, one row, rows past
 * 2^31, more fixed cost never asking for more chunks, and bad rates refused. */
#include "chunkplan.h"
#include "test_util.h"
#include "util.h"

#include <math.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)

/* The model, written out here independently of the library's fkm_plan_time (carry: no fill
 * or drain, the copies running on across passes). */
static double t_model(double copy, double comp, double fixed, int64_t nc, int carry)
{
    return fmax(copy, comp) + (carry ? 0.0 : (copy + comp) / (double)nc) + (double)nc * fixed;
}

/* The plan's promises for (n, rb, r), checked by brute force. */
static void check_plan(int64_t n, double rb, const fkm_stream_rates *r, const char *what)
{
    fkm_chunk_plan p;
    fkm_error err;
    fkm_error_clear(&err);
    int s = fkm_plan_chunk(n, rb, r, &p, &err);
    CHECK(s == FKM_OK, "%s: status %d (%s)", what, s, err.msg);
    if (s) return;
    const double copy = (double)n * rb / (r->copy_gbs * 1e6), comp = (double)n * r->ms_per_row;
    CHECK(fabs(p.ms_copy - copy) <= 1e-9 * copy && fabs(p.ms_comp - comp) <= 1e-9 * comp,
          "%s: copy %g comp %g, want %g %g", what, p.ms_copy, p.ms_comp, copy, comp);
    CHECK(p.chunk >= 1 && p.chunk <= n, "%s: chunk %lld of %lld rows", what, (long long)p.chunk,
          (long long)n);
    CHECK(p.nchunks == (n + p.chunk - 1) / p.chunk, "%s: nchunks %lld for chunk %lld", what,
          (long long)p.nchunks, (long long)p.chunk);
    if (n < 2) return;
    CHECK(p.nchunks >= 2, "%s: %lld chunks", what, (long long)p.nchunks);
    CHECK((double)p.chunk * rb <= FKM_PLAN_MAX_CHUNK_BYTES || p.chunk == 1,
          "%s: chunk of %.1f MiB", what, p.chunk * rb / MIB);
    /* the allowed numbers of chunks: powers of two from the fewest (at least 2) whose chunks
     * stay within 1 GiB (or one row), up to the most whose chunks stay at least 8 MiB and one
     * row (the fewest are allowed in any case); the best of them, searched here */
    int64_t lo = 2;
    while (lo < n && (double)((n + lo - 1) / lo) * rb > FKM_PLAN_MAX_CHUNK_BYTES && (n + lo - 1) / lo > 1)
        lo *= 2;
    int64_t best = lo;
    double tbest = t_model(copy, comp, r->ms_fixed, lo, r->carry);
    for (int64_t nc = 2 * lo; nc <= n; nc *= 2) {
        if ((double)((n + nc - 1) / nc) * rb < FKM_PLAN_MIN_CHUNK_BYTES) break;
        const double t = t_model(copy, comp, r->ms_fixed, nc, r->carry);
        if (t < tbest) {
            tbest = t;
            best = nc;
        }
    }
    const int64_t want_chunk = (n + best - 1) / best;
    CHECK(p.chunk == want_chunk, "%s: chunk %lld (%lld chunks), brute force %lld (%lld chunks)",
          what, (long long)p.chunk, (long long)p.nchunks, (long long)want_chunk, (long long)best);
    if ((double)n * rb >= 2 * FKM_PLAN_MIN_CHUNK_BYTES)
        CHECK((double)p.chunk * rb >= FKM_PLAN_MIN_CHUNK_BYTES, "%s: chunk of %.2f MiB below the bound",
              what, p.chunk * rb / MIB);
    const double longer = copy > comp ? copy : comp;
    CHECK(fabs(p.ms_pred - t_model(copy, comp, r->ms_fixed, p.nchunks, r->carry)) <= 1e-9 * p.ms_pred &&
              fabs(fkm_plan_time(copy, comp, r->ms_fixed, p.nchunks, r->carry) - p.ms_pred) <= 1e-9 * p.ms_pred &&
              fabs(p.ratio - p.ms_pred / longer) <= 1e-12 && p.ratio >= 1.0,
          "%s: predicted %g ms, ratio %g", what, p.ms_pred, p.ratio);
}

int main(void)
{
    uint64_t seed = t_seed(), st = seed | 1;
    char what[160];
    /* random shards (up to ~200 GB) and rates (1-100 GB/s, 0.01-1000 ns/row, 0-10 ms/chunk) */
    for (int i = 0; i < 3000; i++) {
        const double u1 = (double)(t_xs_next(&st) >> 11) / 9007199254740992.0;
        const double u2 = (double)(t_xs_next(&st) >> 11) / 9007199254740992.0;
        const double u3 = (double)(t_xs_next(&st) >> 11) / 9007199254740992.0;
        const double u4 = (double)(t_xs_next(&st) >> 11) / 9007199254740992.0;
        const int64_t n = 1 + (int64_t)pow(10.0, 9.3 * u1);
        const double rb = (double)(4 * (1 + t_xs_next(&st) % 1024));
        fkm_stream_rates r = {pow(10.0, 2.0 * u2), 1e-8 * pow(10.0, 5.0 * u3),
                              i % 10 == 0 ? 0.0 : 1e-3 * pow(10.0, 4.0 * u4), i % 2};
        snprintf(what, sizeof what, "random %d: n %lld rb %g copy %.3g GB/s %.3g ms/row %.3g ms/chunk",
                 i, (long long)n, rb, r.copy_gbs, r.ms_per_row, r.ms_fixed);
        check_plan(n, rb, &r, what);
    }

    fkm_chunk_plan p;
    fkm_error err;
    /* README's H100 row (K = 1024, fp16, D = 128, N = 8M): copy 40.67 ms, compute 10.43 ms;
     * with 0.05 ms per chunk the model asks for 32 chunks of 262144 rows */
    fkm_stream_rates h100 = {52.8, 10.43 / 8388608.0, 0.05};
    CHECK(fkm_plan_chunk(8388608, 256, &h100, &p, &err) == FKM_OK && p.nchunks == 32 &&
              p.chunk == 262144 && p.ratio > 1.0 && p.ratio < 1.1,
          "h100: %lld chunks of %lld, ratio %g", (long long)p.nchunks, (long long)p.chunk, p.ratio);
    /* no fixed cost: the smallest chunks the lower bound allows (8 MiB = 32768 rows of 256 B) */
    fkm_stream_rates free_chunks = {50, 1e-6, 0};
    CHECK(fkm_plan_chunk(8388608, 256, &free_chunks, &p, &err) == FKM_OK && p.chunk == 32768,
          "no fixed cost: chunk %lld", (long long)p.chunk);
    /* ... and not one row below it: 256 chunks would hold 32767 rows, so 128 of 65534 */
    CHECK(fkm_plan_chunk(32767 * 256, 256, &free_chunks, &p, &err) == FKM_OK && p.chunk == 65534,
          "no fixed cost, lower bound: chunk %lld", (long long)p.chunk);
    /* a huge fixed cost: as few chunks as the 1 GiB bound allows: 100 GiB in 128 chunks */
    fkm_stream_rates dear = {50, 1e-6, 1e6};
    const int64_t n100 = (int64_t)(100.0 * 1024 * MIB / 256);
    CHECK(fkm_plan_chunk(n100, 256, &dear, &p, &err) == FKM_OK && p.nchunks == 128 &&
              (double)p.chunk * 256 <= FKM_PLAN_MAX_CHUNK_BYTES,
          "dear chunks: %lld chunks of %.1f MiB", (long long)p.nchunks, p.chunk * 256 / MIB);
    CHECK(fkm_plan_chunk(8388608, 256, &dear, &p, &err) == FKM_OK && p.nchunks == 2,
          "dear chunks, 2 GiB: %lld chunks", (long long)p.nchunks);
    /* carry (HOST: the copies run on across passes, no fill or drain): the fewest chunks the
     * 1 GiB bound allows, here with the H200's K = 8192 rates (2 GiB of rows: 2 chunks),
     * whereas the same rates without carry want 16 */
    fkm_stream_rates h200 = {55.1, 46.0 / 8388608.0, 0.254, 1};
    CHECK(fkm_plan_chunk(8388608, 256, &h200, &p, &err) == FKM_OK && p.nchunks == 2 &&
              p.ratio < 1.02,
          "h200 carry: %lld chunks, ratio %g", (long long)p.nchunks, p.ratio);
    h200.carry = 0;
    CHECK(fkm_plan_chunk(8388608, 256, &h200, &p, &err) == FKM_OK && p.nchunks == 16,
          "h200 without carry: %lld chunks", (long long)p.nchunks);
    /* the device-memory cut: a quarter of the free bytes, at least a row, none when unknown */
    CHECK(fkm_plan_fit_memory(1 << 20, 1000, 1e9) == 250000, "memory cut: %lld",
          (long long)fkm_plan_fit_memory(1 << 20, 1000, 1e9));
    CHECK(fkm_plan_fit_memory(1000, 1000, 1e9) == 1000, "memory cut of a chunk that fits");
    CHECK(fkm_plan_fit_memory(1000, 1000, 100) == 1, "memory cut below one row");
    CHECK(fkm_plan_fit_memory(1000, 1000, 0) == 1000, "memory cut with the free memory unknown");
    /* a shard smaller than two 8 MiB chunks: two chunks anyway */
    CHECK(fkm_plan_chunk(10001, 512, &free_chunks, &p, &err) == FKM_OK && p.chunk == 5001 && p.nchunks == 2,
          "small shard: chunk %lld", (long long)p.chunk);
    CHECK(fkm_plan_chunk(1, 512, &h100, &p, &err) == FKM_OK && p.chunk == 1 && p.nchunks == 1,
          "one row: chunk %lld", (long long)p.chunk);
    CHECK(fkm_plan_chunk(3, 512, &h100, &p, &err) == FKM_OK && p.chunk == 2 && p.nchunks == 2,
          "three rows: chunk %lld", (long long)p.chunk);
    /* rows past 2^31 (64-bit row counts), wide rows: chunk within the bounds */
    const int64_t big = ((int64_t)1 << 31) + 12345;
    CHECK(fkm_plan_chunk(big, 64, &h100, &p, &err) == FKM_OK && p.chunk * 64.0 <= FKM_PLAN_MAX_CHUNK_BYTES &&
              p.chunk * 64.0 >= FKM_PLAN_MIN_CHUNK_BYTES && p.nchunks * p.chunk >= big,
          "2^31 rows: %lld chunks of %lld", (long long)p.nchunks, (long long)p.chunk);
    check_plan(big, 64, &h100, "2^31 rows");
    /* a dearer chunk never asks for more chunks */
    int64_t prev = INT64_MAX;
    for (double f = 0; f < 100; f = f * 2 + 1e-4) {
        fkm_stream_rates r = {25, 3e-6, f};
        if (fkm_plan_chunk(50000000, 512, &r, &p, &err) != FKM_OK) break;
        CHECK(p.nchunks <= prev, "fixed %g ms: %lld chunks after %lld", f, (long long)p.nchunks,
              (long long)prev);
        prev = p.nchunks;
    }
    /* bad rates: refused, the plan untouched */
    fkm_chunk_plan keep;
    memset(&keep, 0x5a, sizeof keep);
    const fkm_stream_rates bad[] = {{0, 1e-6, 0}, {NAN, 1e-6, 0}, {50, 0, 0}, {50, -1, 0},
                                    {50, 1e-6, -1}, {50, 1e-6, INFINITY}, {INFINITY, 1e-6, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fkm_chunk_plan q = keep;
        int s = fkm_plan_chunk(1000000, 256, &bad[i], &q, &err);
        CHECK(s == FKM_EINPUT && memcmp(&q, &keep, sizeof q) == 0 && strstr(err.msg, "chunk plan"),
              "bad rates %zu: status %d", i, s);
    }
    CHECK(fkm_plan_chunk(0, 256, &h100, &p, &err) == FKM_EINPUT, "n = 0 accepted");
    CHECK(fkm_plan_chunk(10, 0, &h100, &p, &err) == FKM_EINPUT, "row bytes 0 accepted");
    return t_finish("test_chunkplan");
}
