/* FlashAssign: small PTX helpers shared by the assign kernels (cp.async, ldmatrix, mma.sync,
 * wgmma, mbarrier, TMA, tf32 conversion) and the running (best, index) update. Device code only.
 *
 * The library is compiled for sm_90a and for a fallback target (sm_80). Hopper-only instructions
 * (wgmma, setmaxnreg: sm_90a; fence.proxy.async, mbarrier tx counts, TMA: sm_90) are emitted only
 * in the passes that have them (FKM_SM90A / FKM_SM90 below); elsewhere the helpers are empty and
 * the kernels built on them are never launched (assign.cu picks kernels by the device's compute
 * capability), so one source builds for both. */
#ifndef FKM_ASSIGN_COMMON_CUH
#define FKM_ASSIGN_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

/* FKM_SM90A: this device pass may use wgmma / setmaxnreg (sm_90a); FKM_SM90: TMA, mbarrier
 * transaction counts, fence.proxy.async (sm_90 and up). Both 0 in the host pass. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FKM_SM90A 1
#else
#define FKM_SM90A 0
#endif
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define FKM_SM90 1
#else
#define FKM_SM90 0
#endif

namespace fkm {

#define FKM_INF __int_as_float(0x7f800000)

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16-byte async copy global -> shared; src_bytes 0 writes zeros (src is not read). */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool valid)
{
    int sz = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(sz)
                 : "memory");
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void *src)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
/* Make generic-proxy writes to shared memory (cp.async, st.shared) visible to the async
 * proxy (wgmma operand reads). Each writing thread, before the barrier. */
__device__ __forceinline__ void fence_proxy_async()
{
#if FKM_SM90
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t &r0, uint32_t &r1, uint32_t &r2,
                                        uint32_t &r3)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

/* D += A*B, m16n8k16, fp32 accumulate. */
__device__ __forceinline__ void mma_f16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* D += A*B, m16n8k8 tf32 inputs, fp32 accumulate. */
__device__ __forceinline__ void mma_tf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Round a float to tf32 (nearest, ties away), returned as the fp32 bit pattern. */
__device__ __forceinline__ uint32_t to_tf32(float x)
{
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}
/* x = hi + lo (+ O(2^-22 |x|)), both tf32. */
__device__ __forceinline__ void split_tf32(uint32_t xb, uint32_t &hi, uint32_t &lo)
{
    float x = __uint_as_float(xb);
    hi = to_tf32(x);
    lo = to_tf32(x - __uint_as_float(hi));
}

/* Running best: strict '<' keeps the first (lowest) index among equal values, since every
 * thread visits its columns in increasing order. */
__device__ __forceinline__ void upd_best(float &best, int &idx, float d, int j)
{
    bool p = d < best;
    best = p ? d : best;
    idx = p ? j : idx;
}
/* Running best and second best (exact mode). */
__device__ __forceinline__ void upd_best2(float &best, int &idx, float &second, float d, int j)
{
    second = fminf(second, fmaxf(d, best));
    bool p = d < best;
    best = p ? d : best;
    idx = p ? j : idx;
}
/* Merge (b, i) with (ob, oi): lexicographic on (distance, index). Bitwise, not short-circuit:
 * ptxas made the || a divergent branch (BSSY/BSYNC), and v3's finalize (8 merges per thread at
 * each point-tile change) took ~1300-1550 cycles per consumer (ncu: its samples were branch
 * waits and instruction fetch after the branches; bench/NOTES.md, history 31). */
__device__ __forceinline__ void merge_best(float &b, int &i, float ob, int oi)
{
    const bool p = (ob < b) | ((ob == b) & (oi < i));
    b = p ? ob : b;
    i = p ? oi : i;
}
__device__ __forceinline__ void merge_best2(float &b, int &i, float &s, float ob, int oi, float os)
{
    bool p = ob < b || (ob == b && oi < i);
    float ns = p ? fminf(b, os) : fminf(s, ob);
    b = p ? ob : b;
    i = p ? oi : i;
    s = ns;
}

/* threadIdx.x read through volatile asm: keeps the compiler from hoisting (and keeping live in
 * registers) address arithmetic derived from it out of the main loop. */
__device__ __forceinline__ int tid_volatile()
{
    int t;
    asm volatile("mov.u32 %0, %%tid.x;" : "=r"(t));
    return t;
}

/* Bits of b where m is set, of a elsewhere: one LOP3 (lut 0xD8 = m ? b : a). */
__device__ __forceinline__ uint32_t lop3_sel(uint32_t a, uint32_t b, uint32_t m)
{
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xD8;" : "=r"(d) : "r"(a), "r"(b), "r"(m));
    return d;
}
/* A constant the front end cannot fold (opaque asm), so that it reaches ptxas as a register
 * operand (EPI 11/12's lop3 mask) rather than as a second immediate. */
__device__ __forceinline__ uint32_t opaque_u32(uint32_t v)
{
    uint32_t d;
    asm("mov.b32 %0, %1;" : "=r"(d) : "r"(v));
    return d;
}

/* ---- wgmma (sm_90a; empty in other passes, whose kernels using them are never launched) ---- */
__device__ __forceinline__ void wgmma_fence()
{
#if FKM_SM90A
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit()
{
#if FKM_SM90A
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void wgmma_wait()
{
#if FKM_SM90A
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
__device__ __forceinline__ void reg_fence(float &x) { asm volatile("" : "+f"(x)::"memory"); }
/* A 16-byte shared-memory load that the compiler neither merges with another of the same
 * address nor moves across memory operations: each one fills its own registers (v3 EPI 17
 * loads the same start values into both m64 halves' accumulators, which one load and 4 moves
 * would do in 5 instructions instead of 1). */
__device__ __forceinline__ void lds_v4_each(uint32_t saddr, float &x, float &y, float &z, float &w)
{
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(x), "=f"(y), "=f"(z), "=f"(w) : "r"(saddr) : "memory");
}

/* Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart. */
__device__ __forceinline__ uint64_t sw128_desc(uint32_t saddr)
{
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
           ((uint64_t)1 << 62);
}

#define FKM_WG_D32(d)                                                                              \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),   \
        "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), \
        "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), \
        "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define FKM_WG_D32_STR                                                                             \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "  \
    "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"

/* d (64x64 fp32 per warpgroup) (+)= A (64x16, registers) * B (16x64, shared, K-major). */
template <bool BF16>
__device__ __forceinline__ void wgmma_m64n64k16_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc,
                                                   int scale_d)
{
#if !FKM_SM90A
    (void)d, (void)a, (void)desc, (void)scale_d;
#else
    if (BF16) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " FKM_WG_D32_STR
                     ", {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
                     : FKM_WG_D32(d)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
    } else {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " FKM_WG_D32_STR
                     ", {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
                     : FKM_WG_D32(d)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
    }
#endif
}

#define FKM_WG_D64(d)                                                                              \
    FKM_WG_D32(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]),   \
        "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), \
        "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), \
        "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), \
        "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define FKM_WG_D64_STR                                                                             \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "  \
    "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "    \
    "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "    \
    "%56, %57, %58, %59, %60, %61, %62, %63}"

/* d (64xBN fp32 per warpgroup) (+)= A (64x16, registers) * B (16xBN, shared, K-major),
 * BN = 64 or 128 (BN/2 accumulator registers per thread). */
template <bool BF16, int BN>
__device__ __forceinline__ void wgmma_rs(float (&d)[BN / 2], const uint32_t (&a)[4], uint64_t desc, int scale_d)
{
    if constexpr (BN == 128) {
#if !FKM_SM90A
        (void)d, (void)a, (void)desc, (void)scale_d;
#else
        if (BF16)
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                         "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " FKM_WG_D64_STR
                         ", {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                         : FKM_WG_D64(d)
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
        else
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                         "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " FKM_WG_D64_STR
                         ", {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                         : FKM_WG_D64(d)
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(scale_d));
#endif
    } else {
        static_assert(BN == 64, "BN");
        wgmma_m64n64k16_rs<BF16>(d, a, desc, scale_d);
    }
}

/* ---- mbarrier, TMA, named barriers, setmaxnreg (v3; sm_90 / sm_90a, empty elsewhere) ---- */
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count)
{
#if FKM_SM90
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#endif
}
/* Make the initialised barriers visible to the other threads and to the async proxy (TMA
 * completes transactions on them) before anyone uses them; a __syncthreads follows. */
__device__ __forceinline__ void mbar_init_fence()
{
#if FKM_SM90
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
/* Arrive (release: this thread's earlier shared-memory reads and writes happen before). */
__device__ __forceinline__ void mbar_arrive(uint32_t bar)
{
#if FKM_SM90
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
#endif
}
/* Arrive and announce tx bytes that TMA copies will complete on this barrier's phase. */
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes)
{
#if FKM_SM90
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#endif
}
/* Whether the phase of `parity` has completed: try_wait may suspend the thread for a while
 * before it answers; test_wait (TEST) answers at once, and its result is awaited only where it
 * is used, so that its latency can pass under other work. */
template <bool TEST = false> __device__ __forceinline__ bool mbar_try_wait(uint32_t bar, uint32_t parity)
{
#if FKM_SM90
    uint32_t ok;
    if constexpr (TEST)
        asm volatile("{\n.reg .pred p;\nmbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
    else
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(ok) : "r"(bar), "r"(parity) : "memory");
    return ok != 0;
#else
    (void)bar, (void)parity;
    return true;
#endif
}
/* Wait until the phase of the given parity has completed (acquire). No watchdog (a clock64
 * timeout with a trap): ptxas then stops honouring setmaxnreg in the consumer code (it spilled
 * 264 bytes at any budget), so a pipeline bug shows as a hang, which the test scripts bound
 * with timeout(1). */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity)
{
    while (!mbar_try_wait(bar, parity)) {
    }
}
/* TMA tile loads global -> shared (the CTA's own shared memory), completing on bar. tmap is the
 * generic address of a __grid_constant__ CUtensorMap kernel parameter; c0 is the innermost
 * coordinate (elements), c1 the row. */
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const void *tmap, int c0, int c1, uint32_t bar)
{
#if FKM_SM90
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(dst), "l"(tmap), "r"(c0), "r"(c1), "r"(bar)
                 : "memory");
#endif
}
__device__ __forceinline__ void tma_load_1d(uint32_t dst, const void *tmap, int c0, uint32_t bar)
{
#if FKM_SM90
    asm volatile("cp.async.bulk.tensor.1d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2}], [%3];\n"
                 ::"r"(dst), "l"(tmap), "r"(c0), "r"(bar)
                 : "memory");
#endif
}
__device__ __forceinline__ void tma_prefetch_desc(const void *tmap)
{
#if FKM_SM90
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(tmap) : "memory");
#endif
}
/* Named barriers (ids 1..15; 0 is __syncthreads): sync waits for nthreads arrivals including its
 * own warp's; arrive only counts. */
__device__ __forceinline__ void named_bar_sync(int id, int nthreads)
{
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(nthreads) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int nthreads)
{
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(nthreads) : "memory");
}
/* Register budget of the executing warpgroup (sm_90a; the kernel needs a register cap at entry,
 * i.e. __launch_bounds__(threads, 1)). */
template <int R> __device__ __forceinline__ void setmaxnreg_inc()
{
#if FKM_SM90A
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R));
#endif
}
template <int R> __device__ __forceinline__ void setmaxnreg_dec()
{
#if FKM_SM90A
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R));
#endif
}

} // namespace fkm

#endif
