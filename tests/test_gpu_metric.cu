/* GPU FlashAssign with metric IP (the largest inner product; cosine is IP on unit rows), every
 * mode and kernel version, against an fp64 reference on the values as stored, and the CUDA
 * backend's cosine / ip steps and finalize against the CPU backend.
 *
 * Kernel checks, per run (outputs poisoned with 0xFF first): every label in [0, k), a second run
 * bitwise identical, and on every row, with s1/s2 the fp64 best/second-best −x·c, S = ‖x‖·max‖c‖
 * and sl = −x·c_label in fp64:
 *   exact:     label == the fp64 label wherever s2 − s1 > 1e-9 S (its bound re-decides every
 *              row within ~4e-4 S in fp64, so only exact ties may differ);
 *   fp16/bf16: sl − s1 <= 2 eps S, eps = (2d + 64) 2^-23 (exact products, fp32 sums);
 *   tf32:      the same with eps = 2^-9 + (2d + 64) 2^-23;
 *   all:       |min_dist − (offset + sl)| <= 2 eps S + 1e-6 (exact: eps = (8d + 64) 2^-23).
 * Backend checks: cuda (exact) cosine and ip steps give the CPU backend's labels but for
 * near-ties (gap ≤ 1e-6 S), counts equal, sums and inertia within 1e-9 relative of the CPU's
 * over the same labels, and finalize's centroids (unit length for cosine) within 1e-6.
 * FKM_TEST_SEED reproduces a run. Exit 77 without a CUDA device. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "test_util.h"
}
#include "assign_internal.h"
#include "backend.h"
#include "fkm_kernels.h"
extern "C" {
#include "rowsrc.h" /* C declarations without their own extern "C" */
}

#include "test_cuda.h"

struct Variant {
    const char *name;
    fkm_kmode mode;
    int force; /* fkm_k_assign_force_version: 0 automatic, 1 mma.sync, >= 2 a wgmma configuration */
    int dmax;
};
static const Variant VARIANTS[] = {
    {"f16/auto", FKM_K_F16, 0, 1 << 30}, {"f16/v1", FKM_K_F16, 1, 1 << 30}, {"f16/v10", FKM_K_F16, 10, 128},
    {"f16/v11", FKM_K_F16, 11, 128},     {"f16/v13", FKM_K_F16, 13, 128},   {"bf16/auto", FKM_K_BF16, 0, 1 << 30},
    {"tf32", FKM_K_TF32, 0, 1 << 30},    {"exact", FKM_K_EXACT, 0, 1 << 30},
};

static float host_round(fkm_kmode mode, float v)
{
    if (mode == FKM_K_F16) return __half2float(__float2half_rn(v));
    if (mode == FKM_K_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    return v;
}

/* n×d rows stored in the compute type on the device; returns the device pointer, fills the
 * host copy of the stored values. */
static void *upload(fkm_kmode mode, const std::vector<float> &h, int64_t n, int d, int ld, std::vector<float> &stored)
{
    float *f;
    void *dst;
    CK(cudaMalloc(&f, (size_t)(n * d) * 4 + 16));
    CK(cudaMalloc(&dst, (size_t)n * ld * fkm_k_elem_bytes(mode) + 16));
    CK(cudaMemcpy(f, h.data(), (size_t)(n * d) * 4, cudaMemcpyHostToDevice));
    CK((cudaError_t)fkm_k_convert_rows(mode, f, n, d, dst, ld, 0));
    CK(cudaDeviceSynchronize());
    cudaFree(f);
    stored.resize((size_t)(n * d));
    for (int64_t i = 0; i < n * d; i++) stored[(size_t)i] = host_round(mode, h[(size_t)i]);
    return dst;
}

static void run_kernel(const Variant &v, int64_t n, int64_t k, int d, float offset, uint64_t seed)
{
    float *xr = t_blobs(n, d, 9, seed), *cr = t_blobs(k, d, 9, seed + 1);
    std::vector<float> xh(xr, xr + n * d), ch(cr, cr + k * d), xs, cs;
    free(xr), free(cr);
    if (offset != 0) { /* cosine: unit rows and centroids */
        t_normalize_rows(xh.data(), n, d);
        t_normalize_rows(ch.data(), k, d);
    }
    const int ld = fkm_k_ld(v.mode, d);
    void *dx = upload(v.mode, xh, n, d, ld, xs), *dc = upload(v.mode, ch, k, d, ld, cs);
    int32_t *dl;
    float *dm;
    void *ws = nullptr;
    CK(cudaMalloc(&dl, (size_t)n * 4));
    CK(cudaMalloc(&dm, (size_t)n * 4));
    const size_t wsb = fkm_k_assign_workspace(v.mode, n, k, d);
    if (wsb) CK(cudaMalloc(&ws, wsb));
    fkm_assign_args a;
    memset(&a, 0, sizeof a);
    a.mode = v.mode;
    a.metric = FKM_KM_IP;
    a.ip_offset = offset;
    a.x = dx;
    a.n = n;
    a.d = d;
    a.ldx = ld;
    a.c = dc;
    a.k = k;
    a.ldc = ld;
    a.labels = dl;
    a.min_dist = dm;
    a.workspace = ws;
    std::vector<int32_t> lab[2];
    std::vector<float> md[2];
    const int old = fkm_k_assign_force_version(v.force);
    for (int rep = 0; rep < 2; rep++) {
        CK(cudaMemset(dl, 0xff, (size_t)n * 4));
        CK(cudaMemset(dm, 0xff, (size_t)n * 4));
        CK((cudaError_t)fkm_k_assign(&a, 0)); /* x_norm, c_norm NULL: IP must not read them */
        CK(cudaDeviceSynchronize());
        lab[rep].resize((size_t)n);
        md[rep].resize((size_t)n);
        CK(cudaMemcpy(lab[rep].data(), dl, (size_t)n * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(md[rep].data(), dm, (size_t)n * 4, cudaMemcpyDeviceToHost));
    }
    fkm_k_assign_force_version(old);
    CHECK(lab[0] == lab[1] && memcmp(md[0].data(), md[1].data(), (size_t)n * 4) == 0, "%s n=%lld k=%lld d=%d: not deterministic",
          v.name, (long long)n, (long long)k, d);
    std::vector<int32_t> ref((size_t)n);
    std::vector<double> s1((size_t)n), s2((size_t)n);
    t_ref_assign_ip(xs.data(), n, d, cs.data(), k, ref.data(), s1.data(), s2.data());
    const double cmax = t_max_row_norm(cs.data(), k, d);
    const double u = ldexp(1.0, -23);
    const double eps = v.mode == FKM_K_EXACT ? (8.0 * d + 64) * u
                       : v.mode == FKM_K_TF32 ? ldexp(1.0, -9) + (2.0 * d + 64) * u
                                              : (2.0 * d + 64) * u;
    int64_t bad_range = 0, bad_label = 0, bad_md = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t l = lab[0][(size_t)i];
        if (l < 0 || l >= k || !std::isfinite(md[0][(size_t)i])) {
            bad_range++;
            continue;
        }
        double xn = 0, dot = 0;
        for (int t = 0; t < d; t++) {
            xn += (double)xs[(size_t)(i * d + t)] * xs[(size_t)(i * d + t)];
            dot += (double)xs[(size_t)(i * d + t)] * cs[(size_t)(l * d + t)];
        }
        const double S = sqrt(xn) * cmax, sl = -dot;
        if (v.mode == FKM_K_EXACT) {
            if (s2[(size_t)i] - s1[(size_t)i] > 1e-9 * S && l != ref[(size_t)i]) bad_label++;
        } else if (sl - s1[(size_t)i] > 2 * eps * S) {
            bad_label++;
        }
        if (fabs((double)md[0][(size_t)i] - (offset + sl)) > 2 * eps * S + 1e-6) bad_md++;
    }
    CHECK(bad_range == 0 && bad_label == 0 && bad_md == 0,
          "%s ip offset %g n=%lld k=%lld d=%d: %lld out of range, %lld labels and %lld distances off the fp64 reference",
          v.name, offset, (long long)n, (long long)k, d, (long long)bad_range, (long long)bad_label, (long long)bad_md);
    cudaFree(dx), cudaFree(dc), cudaFree(dl), cudaFree(dm);
    if (ws) cudaFree(ws);
}

/* The CUDA backend (exact arithmetic) against the CPU backend, one step and a finalize. */
static void run_backend(fkm_metric metric, int64_t n, int64_t k, int64_t d, uint64_t seed)
{
    float *x = t_blobs(n, d, 7, seed), *c = t_blobs(k, d, 7, seed + 1);
    if (metric == FKM_METRIC_COSINE) {
        t_normalize_rows(x, n, d);
        t_normalize_rows(c, k, d);
    }
    fkm_backend be[2];
    fkm_error err;
    CHECK(fkm_backend_cpu_create(&be[0], k, d, FKM_PREC_EXACT, metric, &err) == 0, "cpu: %s", err.msg);
    CHECK(fkm_backend_cuda_create(&be[1], k, d, FKM_PREC_EXACT, metric, 0, &err) == 0, "cuda: %s", err.msg);
    fkm_rowsrc src;
    fkm_rowsrc_memory(&src, x, FKM_DT_F32, n, d);
    const int64_t len = fkm_stats_len(k, d);
    std::vector<int32_t> lab[2];
    std::vector<double> st[2];
    std::vector<float> cn[2];
    for (int b = 0; b < 2; b++) {
        CHECK(be[b].set_source(be[b].ctx, &src, FKM_RES_DEVICE, n, &err) == 0, "set_source: %s", err.msg);
        CHECK(be[b].set_centroids(be[b].ctx, c, k, &err) == 0, "set_centroids");
        CHECK(be[b].step(be[b].ctx, NULL, &err) == 0, "step: %s", err.msg);
        st[b].resize((size_t)len);
        CHECK(be[b].stats_to_host(be[b].ctx, st[b].data(), &err) == 0, "stats");
        lab[b].resize((size_t)n);
        CHECK(be[b].labels(be[b].ctx, lab[b].data(), &err) == 0, "labels");
        double shift;
        int64_t empty;
        CHECK(be[b].finalize(be[b].ctx, &shift, &empty, &err) == 0, "finalize: %s", err.msg);
        cn[b].resize((size_t)(k * d));
        CHECK(be[b].get_centroids(be[b].ctx, cn[b].data(), &err) == 0, "get_centroids");
    }
    std::vector<int32_t> ref((size_t)n);
    std::vector<double> s1((size_t)n), s2((size_t)n);
    t_ref_assign_ip(x, n, d, c, k, ref.data(), s1.data(), s2.data());
    const double cmax = t_max_row_norm(c, k, d);
    int64_t differ = 0, ties = 0;
    for (int64_t i = 0; i < n; i++) {
        double xn = 0;
        for (int64_t t = 0; t < d; t++) xn += (double)x[i * d + t] * x[i * d + t];
        if (s2[(size_t)i] - s1[(size_t)i] <= 1e-6 * sqrt(xn) * cmax) ties++;
        else if (lab[0][(size_t)i] != lab[1][(size_t)i]) differ++;
    }
    CHECK(differ == 0, "metric %d: %lld cuda labels differ from the cpu's (%lld near-ties skipped)", (int)metric,
          (long long)differ, (long long)ties);
    if (lab[0] == lab[1]) { /* the same labels: the statistics must agree */
        double worst = 0;
        for (int64_t i = 0; i < len; i++)
            worst = fmax(worst, fabs(st[1][(size_t)i] - st[0][(size_t)i]) / (fabs(st[0][(size_t)i]) + 1.0));
        CHECK(worst <= 1e-6, "metric %d: statistics differ by %.3g relative", (int)metric, worst);
        double cw = 0, unit = 0;
        for (int64_t j = 0; j < k; j++) {
            double q = 0;
            for (int64_t t = 0; t < d; t++) {
                cw = fmax(cw, fabs((double)cn[1][(size_t)(j * d + t)] - cn[0][(size_t)(j * d + t)]));
                q += (double)cn[1][(size_t)(j * d + t)] * cn[1][(size_t)(j * d + t)];
            }
            if (st[0][(size_t)(k * d + j)] > 0) unit = fmax(unit, fabs(sqrt(q) - 1));
        }
        CHECK(cw <= 1e-6 * (metric == FKM_METRIC_COSINE ? 1.0 : 10.0), "metric %d: centroids differ by %.3g", (int)metric, cw);
        if (metric == FKM_METRIC_COSINE) CHECK(unit <= 1e-6, "cosine centroids off unit length by %.3g", unit);
    }
    for (int b = 0; b < 2; b++) be[b].destroy(be[b].ctx);
    free(x), free(c);
}

int main()
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return SKIP_CODE;
    }
    uint64_t seed = t_seed();
    const int64_t shapes[][3] = {{1, 1, 8}, {1000, 3, 5}, {4099, 129, 64}, {3001, 1000, 128}, {2000, 257, 130}, {8011, 1024, 128}};
    int runs = 0;
    for (const Variant &v : VARIANTS)
        for (auto &s : shapes) {
            if (s[2] > v.dmax) continue;
            for (float off : {0.0f, 1.0f}) {
                run_kernel(v, s[0], s[1], (int)s[2], off, seed + (uint64_t)runs);
                runs++;
            }
        }
    for (fkm_metric m : {FKM_METRIC_COSINE, FKM_METRIC_IP}) {
        run_backend(m, 5003, 61, 24, seed + 1000 + (uint64_t)m);
        run_backend(m, 20000, 700, 128, seed + 2000 + (uint64_t)m);
    }
    printf("%d kernel runs, 4 backend comparisons\n", runs);
    return t_finish("test_gpu_metric");
}
