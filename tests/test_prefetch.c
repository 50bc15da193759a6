/* The read-ahead (src/prefetch.c) that both backends' file residency reads through, on its
 * own: passes hand out every chunk in order with the source's rows (last chunk short, one-row
 * chunks, three buffers with an allocator callback, reads on the reader thread); a failed read
 * is the consumer's error with the source's message and the rows, the pass ends there (no read
 * starts after it), a new pass starts over and succeeds, and destroy joins the reader after
 * an error and in the middle of a pass (a watchdog ends the test instead of a hang). */
#include "prefetch.h"
#include "test_util.h"
#include "util.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

typedef struct src_ctx {
    const float *rows;
    int64_t d;
    pthread_t caller;
    int reads, on_caller, fail_on, reads_at_fail; /* fail the fail_on-th read (0: never) */
} src_ctx;

static int src_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    src_ctx *s = ctx;
    s->reads++;
    if (pthread_equal(pthread_self(), s->caller)) s->on_caller++;
    if (s->reads == s->fail_on) {
        s->reads_at_fail = s->reads;
        return fkm_fail(err, FKM_ERUNTIME, "test source: bad sector");
    }
    memcpy(dst, s->rows + r0 * s->d, (size_t)(m * s->d) * sizeof(float));
    return FKM_OK;
}

static int allocs, frees;
static void *counting_alloc(size_t bytes, void *user)
{
    (void)user;
    allocs++;
    return malloc(bytes);
}
static void counting_free(void *p, void *user)
{
    (void)user;
    frees++;
    free(p);
}

/* One pass: every chunk in order, equal to the rows. Returns the status of the first failure. */
static int one_pass(fkm_prefetch *pf, const float *x, int64_t n, int64_t d, int64_t chunk, int *chunks,
                    fkm_error *err)
{
    fkm_prefetch_begin(pf);
    *chunks = 0;
    for (int64_t want = 0;; want += chunk) {
        const void *rows;
        int64_t r0 = -1, m = -1;
        int s = fkm_prefetch_next(pf, &rows, &r0, &m, NULL, err);
        if (s) return s;
        if (m == 0) {
            CHECK(want >= n, "pass ended at row %lld of %lld", (long long)want, (long long)n);
            return FKM_OK;
        }
        const int64_t wm = n - want < chunk ? n - want : chunk;
        CHECK(r0 == want && m == wm && memcmp(rows, x + r0 * d, (size_t)(m * d) * sizeof(float)) == 0,
              "chunk [%lld, +%lld), want [%lld, +%lld)", (long long)r0, (long long)m, (long long)want,
              (long long)wm);
        fkm_prefetch_release(pf);
        (*chunks)++;
    }
}

int main(void)
{
    alarm(120);
    uint64_t seed = t_seed();
    const int64_t n = 10007, d = 5;
    float *x = t_uniform(n, d, seed);
    fkm_error err;
    fkm_error_clear(&err);
    fkm_rowsrc src;
    fkm_rowsrc_memory(&src, x, FKM_DT_F32, n, d);
    src.resident = NULL; /* reads through the callback */
    const int64_t chunks[] = {1000, 1, 10007, 20000};
    for (int i = 0; i < 4; i++) {
        src_ctx sc = {x, d, pthread_self(), 0, 0, 0, 0};
        src.read = src_read;
        src.ctx = &sc;
        fkm_prefetch *pf;
        allocs = frees = 0;
        CHECK(fkm_prefetch_create(&pf, &src, chunks[i], 3, counting_alloc, counting_free, NULL, &err) == FKM_OK,
              "create: %s", err.msg);
        const int64_t c = chunks[i] < n ? chunks[i] : n, nc = (n + c - 1) / c;
        int got = 0;
        for (int pass = 0; pass < 2; pass++)
            CHECK(one_pass(pf, x, n, d, c, &got, &err) == FKM_OK && got == nc, "chunk %lld pass %d: %d chunks, %s",
                  (long long)chunks[i], pass, got, err.msg);
        fkm_prefetch_destroy(pf);
        CHECK(allocs == 3 && frees == 3, "chunk %lld: %d buffers allocated, %d freed", (long long)chunks[i],
              allocs, frees);
        CHECK(sc.reads == 2 * nc && sc.on_caller == 0, "chunk %lld: %d reads (%d on the caller's thread), want %lld",
              (long long)chunks[i], sc.reads, sc.on_caller, (long long)(2 * nc));
    }
    /* a failed read: the 6th read (rows [5000, 6000)) */
    src_ctx sc = {x, d, pthread_self(), 0, 0, 6, 0};
    src.ctx = &sc;
    fkm_prefetch *pf;
    CHECK(fkm_prefetch_create(&pf, &src, 1000, 3, NULL, NULL, NULL, &err) == FKM_OK, "create: %s", err.msg);
    int got = 0;
    int s = one_pass(pf, x, n, d, 1000, &got, &err);
    CHECK(s == FKM_ERUNTIME && got == 5 && strstr(err.msg, "test source: bad sector") &&
              strstr(err.msg, "rows [5000, 6000)"),
          "failed read: status %d after %d chunks, '%s'", s, got, err.msg);
    /* asked again, the same error (the chunk was not released); no read starts after it */
    const void *rows;
    int64_t r0, m;
    fkm_error e2;
    CHECK(fkm_prefetch_next(pf, &rows, &r0, &m, NULL, &e2) == FKM_ERUNTIME, "second next after the failure");
    usleep(100000);
    CHECK(sc.reads == sc.reads_at_fail, "%d reads after the failed one", sc.reads - sc.reads_at_fail);
    /* a new pass starts over and, the source healed, succeeds */
    s = one_pass(pf, x, n, d, 1000, &got, &err);
    CHECK(s == FKM_OK && got == 11, "pass after the failure: status %d, %d chunks", s, got);
    /* destroy in the middle of a pass (the reader ahead, buffers held) joins the reader */
    fkm_prefetch_begin(pf);
    CHECK(fkm_prefetch_next(pf, &rows, &r0, &m, NULL, &err) == FKM_OK && r0 == 0, "first chunk");
    fkm_prefetch_destroy(pf);
    /* and right after a failure */
    src_ctx sc2 = {x, d, pthread_self(), 0, 0, 1, 0};
    src.ctx = &sc2;
    CHECK(fkm_prefetch_create(&pf, &src, 999, 3, NULL, NULL, NULL, &err) == FKM_OK, "create: %s", err.msg);
    s = one_pass(pf, x, n, d, 999, &got, &err);
    CHECK(s == FKM_ERUNTIME && got == 0 && strstr(err.msg, "rows [0, 999)"), "first read failed: %d, '%s'", s,
          err.msg);
    fkm_prefetch_destroy(pf);
    free(x);
    return t_finish("test_prefetch");
}
