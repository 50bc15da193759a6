/* fkm_k_update (sort-inverse update) and fkm_k_finalize against fp64 CPU references.
 *
 * Fresh random rows in every storage type (f16, bf16, f32; values spread over 2^-6..2^6,
 * f16 subnormals included), stored with the contract's leading dimension and zero padding;
 * random labels with empty clusters, one giant cluster (every row in one label: the
 * large-segment split), and a skewed mix. Checks, for every shape:
 *   sums     |gpu − ref| ≤ 1e-12 · Σ|x| per element (ref in long double, from stored values)
 *   counts   exact
 *   inertia  |gpu − ref| ≤ 1e-12 · ref
 *   every output written (stats poisoned with NaN bytes, workspace with junk, before each call)
 *   determinism: a second call gives bitwise equal stats.
 * Finalize: new centroids bitwise equal to (float)(sum / count), shift within 1e-12, empty
 * count exact, deterministic.
 *
 * Env: FKM_TEST_SEED reproduces; FKM_TEST_SMALL=1 keeps the shapes small (for
 * compute-sanitizer); FKM_TIME_UPDATE=1 also times fkm_k_update at N=8M, K=1024, D=128 f16
 * (FKM_TIME_ONLY=1: only that). Exit 77 when no CUDA device is visible. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "fkm_kernels.h"
extern "C" {
#include "test_util.h"
}

#include "test_cuda.h"

static uint64_t rng_state;
static uint64_t rnd64(void)
{ /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double rnd_unit(void) { return (double)(rnd64() >> 11) * (1.0 / 9007199254740992.0); }

static const char *mode_name(fkm_kmode m)
{
    switch (m) {
    case FKM_K_EXACT: return "f32(exact)";
    case FKM_K_TF32: return "f32(tf32)";
    case FKM_K_F16: return "f16";
    case FKM_K_BF16: return "bf16";
    }
    return "?";
}
static int ebytes(fkm_kmode m) { return (m == FKM_K_F16 || m == FKM_K_BF16) ? 2 : 4; }
static int ld_of(fkm_kmode m, int d)
{ /* the contract: rows 16-byte aligned */
    int v = 16 / ebytes(m);
    return (d + v - 1) / v * v;
}

/* Stored matrix: n×ld elements of the mode's type (zero padding) and its decoded values. */
struct Stored {
    std::vector<uint8_t> raw;
    std::vector<double> val; /* n×d decoded stored values */
};

/* A float rounded to the 16-bit mode's stored bits (fp16 or bf16), and stored bits decoded. */
static uint16_t bits16(fkm_kmode m, float f)
{
    uint16_t b;
    if (m == FKM_K_F16) {
        const __half h = __float2half_rn(f);
        memcpy(&b, &h, 2);
    } else {
        const __nv_bfloat16 h = __float2bfloat16_rn(f);
        memcpy(&b, &h, 2);
    }
    return b;
}
static double value16(fkm_kmode m, uint16_t b)
{
    if (m == FKM_K_F16) {
        __half h;
        memcpy(&h, &b, 2);
        return (double)__half2float(h);
    }
    __nv_bfloat16 h;
    memcpy(&h, &b, 2);
    return (double)__bfloat162float(h);
}

static void make_rows(fkm_kmode m, int64_t n, int d, int ld, Stored *s)
{
    const int eb = ebytes(m);
    s->raw.assign((size_t)(n * ld) * eb, 0);
    s->val.resize((size_t)(n * d));
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < d; c++) {
            int ex = (int)(rnd64() % 13) - 6;
            float f = (float)ldexp(2.0 * rnd_unit() - 1.0, ex);
            double dv;
            size_t at = (size_t)(i * ld + c);
            if (m == FKM_K_F16 || m == FKM_K_BF16) {
                const uint16_t b = bits16(m, f);
                memcpy(&s->raw[at * 2], &b, 2);
                dv = value16(m, b);
            } else {
                memcpy(&s->raw[at * 4], &f, 4);
                dv = (double)f;
            }
            s->val[(size_t)(i * d + c)] = dv;
        }
}

enum { DIST_SPARSE = 0, DIST_GIANT = 1, DIST_SKEWED = 2 };
static const char *dist_name[] = {"sparse", "giant", "skewed"};

static void make_labels(int dist, int64_t n, int64_t k, std::vector<int32_t> *lab)
{
    lab->resize((size_t)n);
    int64_t big = (int64_t)(rnd64() % (uint64_t)k);
    for (int64_t i = 0; i < n; i++) {
        int64_t l;
        if (dist == DIST_GIANT) l = big;
        else if (dist == DIST_SKEWED && rnd_unit() < 0.7) l = big;
        else {
            l = (int64_t)(rnd64() % (uint64_t)k);
            if (dist == DIST_SPARSE && k > 1 && l % 4 == 1) l -= 1; /* clusters ≡ 1 mod 4 stay empty */
        }
        (*lab)[(size_t)i] = (int32_t)l;
    }
}

static int64_t n_cases = 0;

/* One shape: run twice with poisoned outputs, compare with the reference. With weights (w and
 * d_w non-NULL): sums of w·x, counts Σ w, inertia Σ w·md, all within 1e-12 of their magnitude. */
static void check_update(fkm_kmode m, int64_t n, int d, int ld, int64_t k, int dist,
                         const Stored &rows, const void *d_x, const float *d_md,
                         const std::vector<float> &md, const std::vector<float> *w = nullptr,
                         const float *d_w = nullptr, int shift = 0, int64_t ws_rows = 0)
{
    std::vector<int32_t> lab;
    make_labels(dist, n, k, &lab);
    /* reference */
    const int64_t len = k * d + k + 1;
    std::vector<long double> rs((size_t)(k * d), 0.0L), ra((size_t)(k * d), 0.0L);
    std::vector<long double> rc((size_t)k, 0);
    long double rin = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t l = lab[(size_t)i];
        const long double wi = w ? (long double)(*w)[(size_t)i] : 1.0L;
        rc[(size_t)l] += wi;
        const double *v = &rows.val[(size_t)(i * d)];
        long double *s = &rs[(size_t)(l * d)], *a = &ra[(size_t)(l * d)];
        for (int c = 0; c < d; c++) {
            s[c] += wi * v[c];
            a[c] += wi * fabs(v[c]);
        }
        rin += wi * md[(size_t)i];
    }

    int32_t *d_lab = NULL;
    double *d_stats = NULL;
    void *d_ws = NULL;
    size_t wsb = fkm_k_update_workspace(ws_rows > n ? ws_rows : n, k, d);
    CHECK(wsb != SIZE_MAX, "workspace query failed");
    if (n) CK(cudaMalloc(&d_lab, (size_t)(n + shift) * 4));
    CK(cudaMalloc(&d_stats, (size_t)len * 8));
    if (wsb) CK(cudaMalloc(&d_ws, wsb));
    if (n) CK(cudaMemcpy(d_lab + shift, lab.data(), (size_t)n * 4, cudaMemcpyHostToDevice));

    std::vector<double> out[2];
    for (int rep = 0; rep < 2; rep++) {
        CK(cudaMemset(d_stats, 0xFF, (size_t)len * 8)); /* NaN in every double */
        if (wsb) CK(cudaMemset(d_ws, rep ? 0x5A : 0xA5, wsb));
        CK(fkm_k_update(m, d_x, n, d, ld, d_lab + (n ? shift : 0), d_md, d_w, k, d_stats, d_ws, wsb, 0));
        CK(cudaDeviceSynchronize());
        out[rep].resize((size_t)len);
        CK(cudaMemcpy(out[rep].data(), d_stats, (size_t)len * 8, cudaMemcpyDeviceToHost));
    }
    const double *g = out[0].data();
    int bad_sum = 0, bad_cnt = 0;
    double worst = 0;
    for (int64_t e = 0; e < k * d; e++) {
        double ref = (double)rs[(size_t)e], tol = 1e-12 * (double)ra[(size_t)e];
        double err = fabs(g[e] - ref);
        if (!(err <= tol)) {
            if (bad_sum++ < 3)
                fprintf(stderr, "  sum[%lld][%lld] = %.17g, ref %.17g (tol %.3g)\n",
                        (long long)(e / d), (long long)(e % d), g[e], ref, tol);
        } else if (ra[(size_t)e] > 0 && err / (double)ra[(size_t)e] > worst) {
            worst = err / (double)ra[(size_t)e];
        }
    }
    for (int64_t j = 0; j < k; j++)
        if (w ? !(fabs(g[k * d + j] - (double)rc[(size_t)j]) <= 1e-12 * (double)rc[(size_t)j])
              : g[k * d + j] != (double)rc[(size_t)j]) {
            if (bad_cnt++ < 3)
                fprintf(stderr, "  count[%lld] = %.17g, ref %.17g\n", (long long)j, g[k * d + j],
                        (double)rc[(size_t)j]);
        }
    double gin = g[len - 1], ref_in = (double)rin;
    char what[160];
    snprintf(what, sizeof what, "%s n=%lld k=%lld d=%d ld=%d labels=%s%s%s%s", mode_name(m),
             (long long)n, (long long)k, d, ld, dist_name[dist], w ? " weighted" : "",
             shift ? " (labels, distances, weights 4 bytes off 16-byte alignment)" : "",
             ws_rows > n ? " (workspace sized for more rows)" : "");
    CHECK(bad_sum == 0, "%s: %d sums off", what, bad_sum);
    CHECK(bad_cnt == 0, "%s: %d counts off", what, bad_cnt);
    CHECK(fabs(gin - ref_in) <= 1e-12 * ref_in, "%s: inertia %.17g, ref %.17g", what, gin, ref_in);
    CHECK(memcmp(out[0].data(), out[1].data(), (size_t)len * 8) == 0,
          "%s: second call differs bitwise", what);
    if (getenv("FKM_TEST_VERBOSE"))
        printf("  ok %s (worst err/Σ|x| %.2e)\n", what, worst);
    n_cases++;
    cudaFree(d_lab);
    cudaFree(d_stats);
    cudaFree(d_ws);
}

static void test_update(int small)
{
    std::vector<fkm_kmode> modes = {FKM_K_F16, FKM_K_BF16, FKM_K_EXACT};
    std::vector<int64_t> Ns = {0, 1, 1000, 100003, 3000017}; /* the last (733 tiles: look-back chains) at d = 1 only */
    std::vector<int> Ds = {1, 3, 130, 1024};
    if (small == 1) {
        Ns = {0, 1, 1000, 5003};
        Ds = {1, 3, 130};
    } else if (small >= 2) { /* racecheck: a handful of shapes (5003: the sweep's 12-bit ballots at K = 4096) */
        modes = {FKM_K_F16, FKM_K_EXACT};
        Ns = {1, 1000, 5003};
        Ds = {3, 130};
    }
    for (fkm_kmode m : modes)
        for (int64_t n : Ns)
            for (int d : Ds) {
                if (n > 1000000 && d != 1) continue;
                int ld = ld_of(m, d);
                Stored rows;
                make_rows(m, n, d, ld, &rows);
                std::vector<float> md((size_t)n);
                for (auto &v : md) v = (float)(100.0 * rnd_unit());
                void *d_x = NULL;
                float *d_md = NULL;
                if (n) {
                    CK(cudaMalloc(&d_x, rows.raw.size()));
                    CK(cudaMalloc(&d_md, (size_t)n * 4));
                    CK(cudaMemcpy(d_x, rows.raw.data(), rows.raw.size(), cudaMemcpyHostToDevice));
                    CK(cudaMemcpy(d_md, md.data(), (size_t)n * 4, cudaMemcpyHostToDevice));
                }
                std::vector<int64_t> Ks = {1, 7, 1000};
                if (n > 1 && n <= 1000) Ks.push_back(n); /* K = N */
                if (n >= 5000 && d <= 3) Ks.push_back(n);  /* K = N, many tiny clusters, 17-bit sort */
                if (n >= 5000 && d == 3) Ks.push_back(4096); /* 12 bits: the counting sort's largest k */
                if (n >= 5000 && d == 1) { /* 4097: 13 bits, the radix sort's smallest k; the sweep's 11- and
                                             * 12-bit ballots; 4096 by the radix sort at n = 3000017 (over
                                             * 8 MiB of tile counts), by the counting sort below */
                    Ks.push_back(4097);
                    Ks.push_back(2048);
                    Ks.push_back(2049);
                    Ks.push_back(4096);
                }
                std::sort(Ks.begin(), Ks.end());
                Ks.erase(std::unique(Ks.begin(), Ks.end()), Ks.end());
                /* weights in [0, 4) on a grid of 1/64, a fifth of them exactly 0 */
                std::vector<float> w((size_t)n);
                for (auto &v : w) v = rnd64() % 5 == 0 ? 0.0f : (float)(rnd64() % 256) / 64.0f;
                float *d_w = NULL;
                if (n) {
                    CK(cudaMalloc(&d_w, (size_t)n * 4));
                    CK(cudaMemcpy(d_w, w.data(), (size_t)n * 4, cudaMemcpyHostToDevice));
                }
                for (int64_t k : Ks)
                    for (int dist = 0; dist < 3; dist++) {
                        if (n == 0 && dist > 0) continue;
                        check_update(m, n, d, ld, k, dist, rows, d_x, d_md, md);
                        if (m == FKM_K_EXACT && k == 7 && dist == 0) /* tf32 shares the storage */
                            check_update(FKM_K_TF32, n, d, ld, k, dist, rows, d_x, d_md, md);
                        if (n > 0 && dist != DIST_SPARSE)
                            check_update(m, n, d, ld, k, dist, rows, d_x, d_md, md, &w, d_w);
                    }
                /* labels, distances and weights off 16-byte alignment: the sort's scalar loads */
                if (n >= 1000 && n < 1000000 && d == 3)
                    for (int64_t k : {(int64_t)7, (int64_t)1000, (int64_t)4097}) {
                        if (k > n) continue;
                        float *d_md1 = NULL, *d_w1 = NULL;
                        CK(cudaMalloc(&d_md1, (size_t)(n + 1) * 4));
                        CK(cudaMalloc(&d_w1, (size_t)(n + 1) * 4));
                        CK(cudaMemcpy(d_md1 + 1, md.data(), (size_t)n * 4, cudaMemcpyHostToDevice));
                        CK(cudaMemcpy(d_w1 + 1, w.data(), (size_t)n * 4, cudaMemcpyHostToDevice));
                        check_update(m, n, d, ld, k, DIST_SPARSE, rows, d_x, d_md1 + 1, md, nullptr, nullptr, 1);
                        check_update(m, n, d, ld, k, DIST_SKEWED, rows, d_x, d_md1 + 1, md, &w, d_w1 + 1, 1);
                        cudaFree(d_md1);
                        cudaFree(d_w1);
                    }
                /* a workspace sized for more rows than the call has (the streamed backend's
                 * last chunk): 1000 rows at k = 4 take the chunk reduce (mean segment <= 256),
                 * 1100 the piece reduce, whose workspace alone would be too small */
                if (n == 1000 && d == 3)
                    for (int64_t ws_rows : {(int64_t)1100, (int64_t)4000}) {
                        check_update(m, n, d, ld, 4, DIST_SKEWED, rows, d_x, d_md, md, nullptr, nullptr, 0, ws_rows);
                        check_update(m, n, d, ld, 4, DIST_SKEWED, rows, d_x, d_md, md, &w, d_w, 0, ws_rows);
                    }
                cudaFree(d_w);
                /* a leading dimension wider than the contract's minimum (still aligned),
                 * and a misaligned one (scalar fallback path) */
                if (n == 1000 && d == 130) {
                    for (int extra : {16 / ebytes(m), 1}) {
                        int ld2 = ld + extra;
                        Stored r2;
                        make_rows(m, n, d, ld2, &r2);
                        void *d_x2 = NULL;
                        CK(cudaMalloc(&d_x2, r2.raw.size()));
                        CK(cudaMemcpy(d_x2, r2.raw.data(), r2.raw.size(), cudaMemcpyHostToDevice));
                        check_update(m, n, d, ld2, 7, DIST_SKEWED, r2, d_x2, d_md, md);
                        cudaFree(d_x2);
                    }
                }
                cudaFree(d_x);
                cudaFree(d_md);
            }
}

/* 16-bit rows of extreme stored values, one kind per column (c mod 6): the smallest
 * subnormal, random subnormals, the largest finite value, +0 and -0, random finite bit
 * patterns, random normal values; each with a random sign. A column of one kind has a
 * reference tolerance of its own magnitude, so a wrong subnormal, sign or exponent in the
 * reduce's conversion shows. Aligned rows (d = 8, 130) and per-element loads (ld one element
 * wider); weighted too. */
static void test_special_values(void)
{
    for (fkm_kmode m : {FKM_K_F16, FKM_K_BF16}) {
        const uint16_t emask = m == FKM_K_F16 ? 0x7c00 : 0x7f80, mmask = m == FKM_K_F16 ? 0x03ff : 0x007f;
        for (int d : {8, 130})
            for (int extra : {0, 1}) {
                const int64_t n = 5003;
                const int ld = ld_of(m, d) + extra;
                Stored rows;
                rows.raw.assign((size_t)(n * ld) * 2, 0);
                rows.val.resize((size_t)(n * d));
                for (int64_t i = 0; i < n; i++)
                    for (int c = 0; c < d; c++) {
                        const uint16_t sign = (rnd64() & 1) ? 0x8000 : 0;
                        uint16_t b = 0;
                        switch (c % 6) {
                        case 0: b = 1; break;
                        case 1: b = (uint16_t)(rnd64() & mmask); break;
                        case 2: b = (uint16_t)(emask - 1); break; /* all-ones mantissa below the top exponent */
                        case 3: b = 0; break;
                        case 4:
                            do b = (uint16_t)(rnd64() & 0x7fff);
                            while ((b & emask) == emask);
                            break;
                        default:
                            b = bits16(m, (float)ldexp(2.0 * rnd_unit() - 1.0, (int)(rnd64() % 13) - 6)) & 0x7fff;
                        }
                        b |= sign;
                        const size_t at = (size_t)(i * ld + c);
                        memcpy(&rows.raw[at * 2], &b, 2);
                        rows.val[(size_t)(i * d + c)] = value16(m, b);
                    }
                std::vector<float> md((size_t)n), w((size_t)n);
                for (auto &v : md) v = (float)(100.0 * rnd_unit());
                for (auto &v : w) v = (float)(rnd64() % 256) / 64.0f;
                void *d_x = NULL;
                float *d_md = NULL, *d_w = NULL;
                CK(cudaMalloc(&d_x, rows.raw.size()));
                CK(cudaMalloc(&d_md, (size_t)n * 4));
                CK(cudaMalloc(&d_w, (size_t)n * 4));
                CK(cudaMemcpy(d_x, rows.raw.data(), rows.raw.size(), cudaMemcpyHostToDevice));
                CK(cudaMemcpy(d_md, md.data(), (size_t)n * 4, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(d_w, w.data(), (size_t)n * 4, cudaMemcpyHostToDevice));
                for (int64_t k : {(int64_t)1, (int64_t)7, (int64_t)1000}) {
                    check_update(m, n, d, ld, k, DIST_SKEWED, rows, d_x, d_md, md);
                    check_update(m, n, d, ld, k, DIST_SKEWED, rows, d_x, d_md, md, &w, d_w);
                }
                cudaFree(d_x);
                cudaFree(d_md);
                cudaFree(d_w);
            }
    }
}

static void test_finalize(int small)
{
    std::vector<int64_t> Ks = {1, 7, 1000, 100003};
    std::vector<int> Ds = {1, 3, 130, 1024};
    if (small) {
        Ks = {1, 7, 1000};
        Ds = {1, 3, 130};
    }
    if (small >= 2) {
        Ks = {7, 1000};
        Ds = {3, 130};
    }
    for (int normalize = 0; normalize < 2; normalize++)
    for (int64_t k : Ks)
        for (int d : Ds) {
            if (k * d > 20000000) continue;
            const int64_t len = k * d + k + 1;
            std::vector<double> st((size_t)len);
            std::vector<float> c0((size_t)(k * d));
            for (auto &v : c0) v = (float)(20.0 * rnd_unit() - 10.0);
            int64_t ref_empty = 0;
            for (int64_t j = 0; j < k; j++) {
                double cnt = (rnd64() % 5 == 0) ? 0.0 : (double)(1 + rnd64() % 100000);
                if (j == 0) cnt = 3.0;
                st[(size_t)(k * d + j)] = cnt;
                if (cnt == 0) ref_empty++;
                for (int c = 0; c < d; c++)
                    st[(size_t)(j * d + c)] = cnt * (c0[(size_t)(j * d + c)] + (rnd_unit() - 0.5));
            }
            st[(size_t)(len - 1)] = 12345.0;
            /* reference */
            std::vector<float> rc = c0;
            double rshift = 0;
            for (int64_t j = 0; j < k; j++) {
                double cnt = st[(size_t)(k * d + j)];
                if (cnt <= 0) continue;
                double acc = 0, n2 = 0, scale = 1;
                for (int c = 0; c < d; c++) n2 += (st[(size_t)(j * d + c)] / cnt) * (st[(size_t)(j * d + c)] / cnt);
                if (normalize && n2 > 0) scale = 1.0 / sqrt(n2);
                for (int c = 0; c < d; c++) {
                    float v = (float)(st[(size_t)(j * d + c)] / cnt * scale);
                    double df = (double)v - (double)c0[(size_t)(j * d + c)];
                    acc += df * df;
                    rc[(size_t)(j * d + c)] = v;
                }
                if (sqrt(acc) > rshift) rshift = sqrt(acc);
            }
            double *d_st, *d_out;
            float *d_c, *d_cn, *d_cn2;
            void *d_cc, *d_cc2;
            /* rep 0 also writes the compute-type centroids and their norms (a mode per case),
             * rep 1 only c32: both must give the same c32 and out2 */
            static const fkm_kmode modes[] = {FKM_K_F16, FKM_K_BF16, FKM_K_TF32, FKM_K_EXACT};
            const fkm_kmode mode = modes[n_cases % 4];
            const int ldc = fkm_k_ld(mode, d);
            const size_t cc_bytes = (size_t)k * ldc * fkm_k_elem_bytes(mode);
            CK(cudaMalloc(&d_st, (size_t)len * 8));
            CK(cudaMalloc(&d_out, 16));
            CK(cudaMalloc(&d_c, (size_t)(k * d) * 4));
            CK(cudaMalloc(&d_cc, cc_bytes));
            CK(cudaMalloc(&d_cc2, cc_bytes));
            CK(cudaMalloc(&d_cn, (size_t)k * 4));
            CK(cudaMalloc(&d_cn2, (size_t)k * 4));
            CK(cudaMemset(d_cc, 0xFF, cc_bytes)); /* poisoned, padding included */
            CK(cudaMemset(d_cn, 0xFF, (size_t)k * 4));
            CK(cudaMemcpy(d_st, st.data(), (size_t)len * 8, cudaMemcpyHostToDevice));
            double o[2][2];
            std::vector<float> gc[2];
            for (int rep = 0; rep < 2; rep++) {
                CK(cudaMemcpy(d_c, c0.data(), (size_t)(k * d) * 4, cudaMemcpyHostToDevice));
                CK(cudaMemset(d_out, 0xFF, 16));
                if (rep == 0) CK(fkm_k_finalize(d_st, k, d, normalize, d_c, d_out, mode, d_cc, ldc, d_cn, 0));
                else CK(fkm_k_finalize(d_st, k, d, normalize, d_c, d_out, mode, nullptr, 0, nullptr, 0));
                CK(cudaDeviceSynchronize());
                CK(cudaMemcpy(o[rep], d_out, 16, cudaMemcpyDeviceToHost));
                gc[rep].resize((size_t)(k * d));
                CK(cudaMemcpy(gc[rep].data(), d_c, (size_t)(k * d) * 4, cudaMemcpyDeviceToHost));
            }
            /* the fused outputs against the conversion and norms kernels on the new c32 */
            CK(cudaMemset(d_cc2, 0xFF, cc_bytes));
            CK(fkm_k_convert_rows(mode, d_c, k, d, d_cc2, ldc, 0));
            CK(fkm_k_row_norms(mode, d_cc2, k, d, ldc, d_cn2, 0));
            CK(cudaDeviceSynchronize());
            {
                std::vector<unsigned char> h1(cc_bytes), h2(cc_bytes);
                std::vector<float> n1((size_t)k), n2((size_t)k);
                CK(cudaMemcpy(h1.data(), d_cc, cc_bytes, cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(h2.data(), d_cc2, cc_bytes, cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(n1.data(), d_cn, (size_t)k * 4, cudaMemcpyDeviceToHost));
                CK(cudaMemcpy(n2.data(), d_cn2, (size_t)k * 4, cudaMemcpyDeviceToHost));
                CHECK(memcmp(h1.data(), h2.data(), cc_bytes) == 0,
                      "finalize mode %d k=%lld d=%d: compute-type centroids differ from fkm_k_convert_rows", (int)mode,
                      (long long)k, d);
                CHECK(memcmp(n1.data(), n2.data(), (size_t)k * 4) == 0,
                      "finalize mode %d k=%lld d=%d: centroid norms differ from fkm_k_row_norms", (int)mode,
                      (long long)k, d);
            }
            if (!normalize) {
                CHECK(memcmp(gc[0].data(), rc.data(), (size_t)(k * d) * 4) == 0,
                      "finalize k=%lld d=%d: centroids differ from (float)(sum/count)", (long long)k, d);
                CHECK(fabs(o[0][0] - rshift) <= 1e-12 * rshift, "finalize k=%lld d=%d: shift %.17g, ref %.17g",
                      (long long)k, d, o[0][0], rshift);
            } else {
                /* the fp64 norm is summed in another order: one rounding of the float apart at most */
                double worst = 0, worst_unit = 0;
                for (int64_t j = 0; j < k; j++) {
                    double nn = 0;
                    for (int c = 0; c < d; c++) {
                        const float gv = gc[0][(size_t)(j * d + c)], rv = rc[(size_t)(j * d + c)];
                        worst = fmax(worst, fabs((double)gv - rv) / (fabs((double)rv) + 1e-30));
                        nn += (double)gv * gv;
                    }
                    if (st[(size_t)(k * d + j)] > 0) worst_unit = fmax(worst_unit, fabs(sqrt(nn) - 1.0));
                }
                CHECK(worst <= 1.2e-7, "finalize normalize k=%lld d=%d: centroid off by %.3g relative",
                      (long long)k, d, worst);
                CHECK(worst_unit <= 1e-6 * sqrt((double)d), "finalize normalize k=%lld d=%d: | ||c|| - 1 | = %.3g",
                      (long long)k, d, worst_unit);
                CHECK(fabs(o[0][0] - rshift) <= 1e-6 * (rshift + 1e-6), "finalize normalize k=%lld d=%d: shift %.17g, ref %.17g",
                      (long long)k, d, o[0][0], rshift);
            }
            CHECK(o[0][1] == (double)ref_empty, "finalize k=%lld d=%d: empty %.17g, ref %lld",
                  (long long)k, d, o[0][1], (long long)ref_empty);
            CHECK(memcmp(o[0], o[1], 16) == 0 &&
                      memcmp(gc[0].data(), gc[1].data(), (size_t)(k * d) * 4) == 0,
                  "finalize k=%lld d=%d: not deterministic", (long long)k, d);
            n_cases++;
            cudaFree(d_st);
            cudaFree(d_out);
            cudaFree(d_c);
            cudaFree(d_cc);
            cudaFree(d_cc2);
            cudaFree(d_cn);
            cudaFree(d_cn2);
        }
}

/* ---- timing (FKM_TIME_UPDATE=1) ---- */

__global__ void k_fill_rand(__half *x, int64_t n, int d, int ld, int32_t *lab, float *md, int64_t k,
                            int skew_pct, uint64_t seed)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint64_t z = seed ^ (uint64_t)i * 0x9e3779b97f4a7c15ULL;
    for (int c = 0; c < ld; c++) {
        z = z * 6364136223846793005ULL + 1442695040888963407ULL;
        float f = c < d ? (float)((int64_t)(z >> 40) - (1 << 23)) * (1.0f / (1 << 20)) : 0.0f;
        x[i * ld + c] = __float2half_rn(f);
    }
    z = z * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t h = z >> 33;
    lab[i] = (int32_t)((h % 100) < (uint64_t)skew_pct ? k / 3 : (int64_t)((h >> 7) % (uint64_t)k));
    md[i] = (float)(z >> 44) * (1.0f / 1048576.0f);
}

static void time_update(int64_t n, int64_t k, int d, int skew_pct, int iters)
{
    const fkm_kmode m = FKM_K_F16;
    const int ld = ld_of(m, d);
    __half *x;
    int32_t *lab;
    float *md;
    double *stats;
    void *ws;
    size_t wsb = fkm_k_update_workspace(n, k, d);
    CK(cudaMalloc(&x, (size_t)(n * ld) * 2));
    CK(cudaMalloc(&lab, (size_t)n * 4));
    CK(cudaMalloc(&md, (size_t)n * 4));
    CK(cudaMalloc(&stats, (size_t)(k * d + k + 1) * 8));
    CK(cudaMalloc(&ws, wsb));
    k_fill_rand<<<(unsigned)((n + 255) / 256), 256>>>(x, n, d, ld, lab, md, k, skew_pct, 0x1234567);
    CK(cudaGetLastError());
    cudaStream_t s;
    CK(cudaStreamCreate(&s));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const int warm = getenv("FKM_TIME_WARMUP") ? atoi(getenv("FKM_TIME_WARMUP")) : 3;
    for (int w = 0; w < warm; w++) CK(fkm_k_update(m, x, n, d, ld, lab, md, nullptr, k, stats, ws, wsb, (fkm_stream)s));
    std::vector<float> ms;
    for (int it = 0; it < iters; it++) {
        CK(cudaEventRecord(e0, s));
        CK(fkm_k_update(m, x, n, d, ld, lab, md, nullptr, k, stats, ws, wsb, (fkm_stream)s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        float t;
        CK(cudaEventElapsedTime(&t, e0, e1));
        ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    double med = ms[ms.size() / 2];
    double bytes = (double)n * d * 2;
    printf("time fkm_k_update f16 n=%lld k=%lld d=%d skew=%d%%: median %.3f ms, min %.3f ms, "
           "max %.3f ms over %d runs; rows %.2f GB -> %.0f GB/s of rows; workspace %.1f MiB\n",
           (long long)n, (long long)k, d, skew_pct, med, ms[0], ms.back(), iters, bytes / 1e9,
           bytes / 1e9 / (med * 1e-3), (double)wsb / (1 << 20));
    cudaFree(x);
    cudaFree(lab);
    cudaFree(md);
    cudaFree(stats);
    cudaFree(ws);
    cudaStreamDestroy(s);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

int main(void)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("test_gpu_update: no CUDA device visible, skipping\n");
        return SKIP_CODE;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    rng_state = t_seed();
    const int small = getenv("FKM_TEST_SMALL") ? atoi(getenv("FKM_TEST_SMALL")) : 0;
    const int time_only = getenv("FKM_TIME_ONLY") != NULL;
    if (!time_only) {
        test_update(small);
        test_special_values();
        test_finalize(small);
        printf("%lld cases\n", (long long)n_cases);
    }
    if (getenv("FKM_TIME_UPDATE") || time_only) {
        int iters = getenv("FKM_TIME_ITERS") ? atoi(getenv("FKM_TIME_ITERS")) : 20;
        time_update(8ll << 20, 1024, 128, 0, iters);
        time_update(8ll << 20, 1024, 128, 50, iters);
        time_update(1ll << 20, 1024, 1024, 0, iters);
    }
    return t_finish("test_gpu_update");
}
