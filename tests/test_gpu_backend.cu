/* The CUDA backend end to end (fkm_backend_cuda_create → set_data → set_centroids → step →
 * stats_to_host → finalize → labels / get_centroids) against a direct fp64 reference of one
 * Lloyd step, for every precision, f32 and f16 input, a rank with no rows, determinism over
 * two steps, and the out-of-memory message.
 *
 * Checks per mode (rows: Gaussian blobs, fresh seed):
 *   labels   EXACT: equal to the fp64 argmin on every row whose best and second-best
 *            distances differ by > 1e-5 relative (the contract); other modes: ≥ 99% equal to
 *            the fp64 argmin over the stored (rounded) values
 *   stats    sums/counts of the backend's own labels from the stored values: sums within
 *            1e-12 · Σ|x|, counts exact; inertia within 1e-4 of the fp64 reference
 *            (1e-2 for f16/bf16)
 *   finalize centroids bitwise (float)(sum/count), empty ones unchanged; max shift and empty
 *            count as computed on the host
 *   times    step times filled (> 0) once stats_to_host returned
 * Residency (set_source): DEVICE, HOST and FILE (a source without resident rows, read
 * through its callback) with the same chunk_rows give bitwise equal labels, statistics and
 * centroids over two Lloyd iterations; the chunked statistics agree with the reference.
 * Exit 77 when no CUDA device is visible. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "backend.h"
#include "rowsrc.h"
#include "util.h"
extern "C" {
#include "test_util.h"
}

static const char *prec_name(fkm_precision p)
{
    switch (p) {
    case FKM_PREC_AUTO: return "auto";
    case FKM_PREC_EXACT: return "exact";
    case FKM_PREC_TF32: return "tf32";
    case FKM_PREC_FP16: return "fp16";
    case FKM_PREC_BF16: return "bf16";
    }
    return "?";
}

/* The value the backend stores for input value v under (prec, input type). */
static double stored(fkm_precision p, int f16_input, float v)
{
    if (f16_input) v = __half2float(__float2half_rn(v)); /* what the f16 file holds */
    if (p == FKM_PREC_FP16 || (p == FKM_PREC_AUTO && f16_input)) return (double)__half2float(__float2half_rn(v));
    if (p == FKM_PREC_BF16) return (double)__bfloat162float(__float2bfloat16_rn(v));
    return (double)v;
}

struct Run {
    std::vector<double> stats;
    std::vector<float> cent;
    std::vector<int32_t> labels;
    double shift;
    int64_t empty;
};

#include "test_cuda.h"

/* One Lloyd step on the backend plus its checks. */
static void check_mode(fkm_precision p, int f16_input, int64_t n, int64_t k, int64_t d, uint64_t seed)
{
    char what[128];
    snprintf(what, sizeof what, "prec=%s input=%s n=%lld k=%lld d=%lld", prec_name(p),
             f16_input ? "f16" : "f32", (long long)n, (long long)k, (long long)d);
    float *x = t_blobs(n, d, (int)(k > 4 ? k / 2 : 2), seed);
    std::vector<uint16_t> xh((size_t)(n * d));
    for (int64_t i = 0; i < n * d; i++) {
        __half h = __float2half_rn(x[i]);
        memcpy(&xh[(size_t)i], &h, 2);
        if (f16_input) x[i] = __half2float(h);
    }
    std::vector<float> c0((size_t)(k * d));
    for (int64_t j = 0; j < k; j++) /* rows spread over the data, and one far away (empty) */
        for (int64_t t = 0; t < d; t++)
            c0[(size_t)(j * d + t)] = j == k - 1 ? 1e3f : x[(j * (n / k)) * d + t];

    fkm_backend b;
    fkm_error err;
    fkm_error_clear(&err);
    OK(fkm_backend_cuda_create(&b, k, d, p, FKM_METRIC_L2, 0, &err));
    CHECK(b.stats_on_device == 1 && strcmp(b.name, "cuda") == 0, "%s: table fields", what);
    OK(b.set_data(b.ctx, f16_input ? (const void *)xh.data() : (const void *)x,
                  f16_input ? FKM_DT_F16 : FKM_DT_F32, n, d, &err));
    OK(b.set_centroids(b.ctx, c0.data(), k, &err));
    fkm_step_times t = {0, 0};
    OK(b.step(b.ctx, &t, &err));
    const int64_t len = fkm_stats_len(k, d);
    std::vector<double> st((size_t)len);
    OK(b.stats_to_host(b.ctx, st.data(), &err));
    CHECK(t.ms_assign > 0 && t.ms_update > 0, "%s: step times not filled (%g, %g)", what,
          t.ms_assign, t.ms_update);
    std::vector<int32_t> lab((size_t)n);
    OK(b.labels(b.ctx, lab.data(), &err));

    /* the stored values the GPU works on, and the fp64 reference over them */
    std::vector<float> xs((size_t)(n * d)), cs((size_t)(k * d));
    for (int64_t i = 0; i < n * d; i++) xs[(size_t)i] = (float)stored(p, f16_input, x[i]);
    for (int64_t i = 0; i < k * d; i++) cs[(size_t)i] = (float)stored(p, 0, c0[(size_t)i]);
    std::vector<int32_t> rl((size_t)n);
    std::vector<double> d1((size_t)n), d2((size_t)n);
    t_ref_assign(xs.data(), n, d, cs.data(), k, rl.data(), d1.data(), d2.data());
    int64_t agree = 0, clear_bad = 0;
    long double ref_inertia = 0;
    for (int64_t i = 0; i < n; i++) {
        agree += lab[(size_t)i] == rl[(size_t)i];
        if (lab[(size_t)i] != rl[(size_t)i] && t_clear_gap(d1[(size_t)i], d2[(size_t)i], 1e-5)) clear_bad++;
        ref_inertia += d1[(size_t)i];
    }
    const int exact = p == FKM_PREC_EXACT || (p == FKM_PREC_AUTO && !f16_input);
    if (exact) CHECK(clear_bad == 0, "%s: %lld clear-gap labels differ from fp64", what, (long long)clear_bad);
    else CHECK(agree >= n * 99 / 100, "%s: only %lld of %lld labels agree with fp64", what, (long long)agree, (long long)n);

    /* stats from the backend's labels */
    std::vector<long double> rs((size_t)(k * d), 0), ra((size_t)(k * d), 0);
    std::vector<int64_t> rc((size_t)k, 0);
    int bad_lab = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t l = lab[(size_t)i];
        if (l < 0 || l >= k) {
            bad_lab++;
            continue;
        }
        rc[(size_t)l]++;
        for (int64_t c = 0; c < d; c++) {
            rs[(size_t)(l * d + c)] += xs[(size_t)(i * d + c)];
            ra[(size_t)(l * d + c)] += fabsl((long double)xs[(size_t)(i * d + c)]);
        }
    }
    CHECK(bad_lab == 0, "%s: %d labels out of range", what, bad_lab);
    int bad = 0;
    for (int64_t e = 0; e < k * d; e++)
        if (!(fabs(st[(size_t)e] - (double)rs[(size_t)e]) <= 1e-12 * (double)ra[(size_t)e])) bad++;
    CHECK(bad == 0, "%s: %d sums off", what, bad);
    bad = 0;
    for (int64_t j = 0; j < k; j++) bad += st[(size_t)(k * d + j)] != (double)rc[(size_t)j];
    CHECK(bad == 0, "%s: %d counts off", what, bad);
    const double itol = (p == FKM_PREC_FP16 || p == FKM_PREC_BF16 || (p == FKM_PREC_AUTO && f16_input))
                            ? 1e-2
                            : p == FKM_PREC_TF32 ? 2e-3 : 1e-4;
    CHECK(fabs(st[(size_t)(len - 1)] - (double)ref_inertia) <= itol * (double)ref_inertia + 1e-9,
          "%s: inertia %.17g, fp64 reference %.17g", what, st[(size_t)(len - 1)], (double)ref_inertia);

    /* finalize against the host formula on the same stats */
    std::vector<float> want = c0;
    double want_shift = 0;
    int64_t want_empty = 0;
    for (int64_t j = 0; j < k; j++) {
        double cnt = st[(size_t)(k * d + j)];
        if (cnt <= 0) {
            want_empty++;
            continue;
        }
        double acc = 0;
        for (int64_t c = 0; c < d; c++) {
            float v = (float)(st[(size_t)(j * d + c)] / cnt);
            double df = (double)v - (double)c0[(size_t)(j * d + c)];
            acc += df * df;
            want[(size_t)(j * d + c)] = v;
        }
        if (sqrt(acc) > want_shift) want_shift = sqrt(acc);
    }
    double shift = -1;
    int64_t empty = -1;
    OK(b.finalize(b.ctx, &shift, &empty, &err));
    std::vector<float> got((size_t)(k * d));
    OK(b.get_centroids(b.ctx, got.data(), &err));
    CHECK(memcmp(got.data(), want.data(), got.size() * 4) == 0, "%s: finalized centroids differ", what);
    CHECK(fabs(shift - want_shift) <= 1e-12 * want_shift, "%s: shift %.17g, want %.17g", what, shift, want_shift);
    CHECK(empty == want_empty && empty >= 1, "%s: empty %lld, want %lld", what, (long long)empty, (long long)want_empty);
    CHECK(b.peak_bytes(b.ctx) >= (size_t)(n * d * (exact ? 4 : 2)), "%s: peak bytes %zu", what, b.peak_bytes(b.ctx));
    CHECK(b.stream && b.stream(b.ctx) != NULL, "%s: stream", what);

    /* determinism: two more iterations, twice over, on fresh backends */
    std::vector<double> s2[2];
    std::vector<float> c2[2];
    for (int rep = 0; rep < 2; rep++) {
        fkm_backend b2;
        OK(fkm_backend_cuda_create(&b2, k, d, p, FKM_METRIC_L2, 0, &err));
        OK(b2.set_centroids(b2.ctx, c0.data(), k, &err)); /* before set_data: must work too */
        OK(b2.set_data(b2.ctx, f16_input ? (const void *)xh.data() : (const void *)x,
                       f16_input ? FKM_DT_F16 : FKM_DT_F32, n, d, &err));
        s2[rep].resize((size_t)len);
        for (int it = 0; it < 2; it++) {
            fkm_step_times t2;
            OK(b2.step(b2.ctx, &t2, &err));
            OK(b2.stats_to_host(b2.ctx, s2[rep].data(), &err));
            OK(b2.stats_from_host(b2.ctx, s2[rep].data(), &err));
            double sh;
            int64_t em;
            OK(b2.finalize(b2.ctx, &sh, &em, &err));
        }
        c2[rep].resize((size_t)(k * d));
        OK(b2.get_centroids(b2.ctx, c2[rep].data(), &err));
        b2.destroy(b2.ctx);
    }
    CHECK(memcmp(s2[0].data(), s2[1].data(), (size_t)len * 8) == 0 &&
              memcmp(c2[0].data(), c2[1].data(), c2[0].size() * 4) == 0,
          "%s: two runs of two iterations differ bitwise", what);
    b.destroy(b.ctx);
    free(x);
    printf("  %s: ok (labels agree %.4f%%, assign %.3f ms, update %.3f ms)\n", what,
           100.0 * agree / (double)n, t.ms_assign, t.ms_update);
}

/* A row source over host memory; `file` hides the memory so that rows come through read(). */
struct MemSrc {
    const char *base;
    size_t rb;
    int reads;
};
static int memsrc_read(void *ctx, int64_t r0, int64_t m, void *dst, fkm_error *err)
{
    MemSrc *ms = (MemSrc *)ctx;
    memcpy(dst, ms->base + (size_t)r0 * ms->rb, (size_t)m * ms->rb);
    ms->reads++;
    return FKM_OK;
}

static void check_residency(fkm_precision p, int f16_input, int64_t n, int64_t k, int64_t d,
                            int64_t chunk, uint64_t seed)
{
    char what[128];
    snprintf(what, sizeof what, "residency prec=%s input=%s n=%lld k=%lld d=%lld chunk=%lld",
             prec_name(p), f16_input ? "f16" : "f32", (long long)n, (long long)k, (long long)d,
             (long long)chunk);
    float *x = t_blobs(n, d, 8, seed);
    const std::vector<uint16_t> xh = t_to_f16(x, n * d);
    std::vector<float> c0((size_t)(k * d));
    for (int64_t j = 0; j < k; j++)
        for (int64_t t = 0; t < d; t++) c0[(size_t)(j * d + t)] = x[(j * (n / k)) * d + t];
    const int64_t len = fkm_stats_len(k, d);
    const fkm_residency res[3] = {FKM_RES_DEVICE, FKM_RES_HOST, FKM_RES_FILE};
    std::vector<double> st[3], st1[3];
    std::vector<float> cent[3];
    std::vector<int32_t> lab[3];
    fkm_error err;
    fkm_error_clear(&err);
    for (int r = 0; r < 3; r++) {
        MemSrc ms = {f16_input ? (const char *)xh.data() : (const char *)x,
                     (size_t)d * (f16_input ? 2 : 4), 0};
        fkm_rowsrc src;
        memset(&src, 0, sizeof src);
        src.n = n;
        src.d = d;
        src.dt = f16_input ? FKM_DT_F16 : FKM_DT_F32;
        src.resident = res[r] == FKM_RES_FILE ? NULL : ms.base;
        src.read = memsrc_read;
        src.ctx = &ms;
        fkm_backend b;
        OK(fkm_backend_cuda_create(&b, k, d, p, FKM_METRIC_L2, 0, &err));
        OK(b.set_source(b.ctx, &src, res[r], chunk, &err));
        OK(b.set_centroids(b.ctx, c0.data(), k, &err));
        st[r].resize((size_t)len);
        for (int it = 0; it < 2; it++) {
            fkm_step_times t = {0, 0};
            OK(b.step(b.ctx, &t, &err));
            OK(b.stats_to_host(b.ctx, st[r].data(), &err));
            CHECK(t.ms_assign > 0 && t.ms_update > 0, "%s: times not filled", what);
            if (it == 0) {
                st1[r] = st[r];
                lab[r].resize((size_t)n);
                OK(b.labels(b.ctx, lab[r].data(), &err));
            }
            double sh;
            int64_t em;
            OK(b.finalize(b.ctx, &sh, &em, &err));
        }
        cent[r].resize((size_t)(k * d));
        OK(b.get_centroids(b.ctx, cent[r].data(), &err));
        if (res[r] == FKM_RES_FILE)
            CHECK(ms.reads >= 2 * ((n + chunk - 1) / chunk), "%s: file source read %d times", what, ms.reads);
        b.destroy(b.ctx);
    }
    for (int r = 1; r < 3; r++)
        CHECK(memcmp(st[r].data(), st[0].data(), (size_t)len * 8) == 0 &&
                  memcmp(st1[r].data(), st1[0].data(), (size_t)len * 8) == 0 &&
                  memcmp(cent[r].data(), cent[0].data(), cent[0].size() * 4) == 0 &&
                  memcmp(lab[r].data(), lab[0].data(), (size_t)n * 4) == 0,
              "%s: residency %d differs bitwise from device", what, (int)res[r]);
    /* the first pass's chunked statistics against the reference of the labels */
    std::vector<long double> rs((size_t)(k * d), 0), ra((size_t)(k * d), 0);
    std::vector<int64_t> rc((size_t)k, 0);
    for (int64_t i = 0; i < n; i++) {
        int32_t l = lab[0][(size_t)i];
        if (l < 0 || l >= k) continue;
        rc[(size_t)l]++;
        for (int64_t c = 0; c < d; c++) {
            double v = stored(p, f16_input, f16_input ? __half2float(*(const __half *)&xh[(size_t)(i * d + c)])
                                                       : x[i * d + c]);
            rs[(size_t)(l * d + c)] += v;
            ra[(size_t)(l * d + c)] += fabsl((long double)v);
        }
    }
    int bad = 0;
    for (int64_t e = 0; e < k * d; e++)
        if (!(fabs(st1[0][(size_t)e] - (double)rs[(size_t)e]) <= 1e-12 * (double)ra[(size_t)e])) bad++;
    for (int64_t j = 0; j < k; j++) bad += st1[0][(size_t)(k * d + j)] != (double)rc[(size_t)j];
    CHECK(bad == 0, "%s: %d chunked statistics off", what, bad);
    free(x);
    printf("  %s: ok\n", what);
}

static void check_empty_rank(void)
{
    const int64_t k = 5, d = 7;
    fkm_backend b;
    fkm_error err;
    fkm_error_clear(&err);
    OK(fkm_backend_cuda_create(&b, k, d, FKM_PREC_AUTO, FKM_METRIC_L2, 0, &err));
    OK(b.set_data(b.ctx, NULL, FKM_DT_F32, 0, d, &err));
    std::vector<float> c((size_t)(k * d));
    for (size_t i = 0; i < c.size(); i++) c[i] = (float)i;
    OK(b.set_centroids(b.ctx, c.data(), k, &err));
    fkm_step_times t;
    OK(b.step(b.ctx, &t, &err));
    std::vector<double> st((size_t)fkm_stats_len(k, d), 1.0);
    OK(b.stats_to_host(b.ctx, st.data(), &err));
    int nz = 0;
    for (double v : st) nz += v != 0.0;
    CHECK(nz == 0, "n=0: %d stats not zero", nz);
    double sh;
    int64_t em;
    OK(b.finalize(b.ctx, &sh, &em, &err));
    CHECK(sh == 0 && em == k, "n=0: finalize shift %g empty %lld", sh, (long long)em);
    std::vector<float> got((size_t)(k * d));
    OK(b.get_centroids(b.ctx, got.data(), &err));
    CHECK(memcmp(got.data(), c.data(), got.size() * 4) == 0, "n=0: centroids moved");
    OK(b.labels(b.ctx, NULL, &err));
    /* errors: wrong width, and an impossible allocation names sizes and the remedies */
    int s = b.set_data(b.ctx, c.data(), FKM_DT_F32, 1, d + 1, &err);
    CHECK(s == FKM_EINPUT, "set_data with the wrong d: status %d", s);
    s = b.set_data(b.ctx, c.data(), FKM_DT_F32, (int64_t)1 << 40, d, &err);
    CHECK(s == FKM_ENOMEM && strstr(err.msg, "MiB") && strstr(err.msg, "--residency host"),
          "huge set_data: status %d, message '%s'", s, err.msg);
    printf("  n=0 rank and error paths: ok (OOM message: %s)\n", err.msg);
    b.destroy(b.ctx);
}

int main(void)
{
    if (fkm_cuda_device_count() <= 0) {
        printf("test_gpu_backend: no CUDA device visible, skipping\n");
        return SKIP_CODE;
    }
    uint64_t seed = t_seed();
    const int64_t n = 20011, k = 37, d = 45;
    const fkm_precision precs[] = {FKM_PREC_AUTO, FKM_PREC_EXACT, FKM_PREC_TF32, FKM_PREC_FP16, FKM_PREC_BF16};
    for (fkm_precision p : precs) check_mode(p, 0, n, k, d, seed + (uint64_t)p);
    check_mode(FKM_PREC_AUTO, 1, n, k, d, seed + 11);
    check_mode(FKM_PREC_EXACT, 1, n, k, d, seed + 12);
    check_mode(FKM_PREC_AUTO, 0, 3001, 1000, 130, seed + 13); /* many clusters, wide rows */
    check_residency(FKM_PREC_AUTO, 0, 20011, 37, 45, 4999, seed + 21);
    check_residency(FKM_PREC_AUTO, 1, 20011, 37, 45, 7000, seed + 22);
    check_residency(FKM_PREC_BF16, 0, 9000, 5, 130, 9000, seed + 23); /* one chunk */
    check_empty_rank();
    return t_finish("test_gpu_backend");
}
