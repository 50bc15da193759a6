/* fkm_fit: the Lloyd driver, the one place where the iteration lives. Every rank runs
 * this; it talks to the hardware only through the backend table and to other ranks only
 * through the communicator. */
#include "backend.h"
#include "chunkplan.h"
#include "comm.h"
#include "init.h"
#include "kmeanspp.h"
#include "rng.h"
#include "io.h"
#include "log.h"
#include "output.h"
#include "rowsrc.h"
#include "util.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

typedef struct run {
    fkm_comm comm;
    fkm_backend be;
    int have_be;
    int use_nccl;       /* statistics reduced in device memory by NCCL */
    int device;         /* CUDA device of this rank, when the backend is cuda */
    double *host_stats; /* fkm_stats_len(k, d) */
    int64_t k, d, n;
    FILE *json;
    fkm_reader *reader; /* the input, open for the whole run (the file residency reads it) */
    fkm_rowsrc src;     /* this rank's rows, read from the reader */
    fkm_filesrc fsrc;
    int64_t row0;       /* this rank's first global row */
    int64_t *bad, nbad; /* rows left out for non-finite values (--skip-nonfinite) */
    fkm_rowsrc ssrc;    /* src without them */
    fkm_skipsrc skip;
    const fkm_rowsrc *use; /* the rows the fit uses: &src or &ssrc */
    int64_t n_used, row0_used; /* their global count, and this rank's first in that count */
    fkm_rowsrc nsrc;    /* --metric cosine: the used rows scaled to unit length */
    fkm_rowsrc tsrc;    /* --max-points-per-centroid: the sampled rows of the used rows */
    fkm_subsrc tsub;
    int64_t *tidx;      /* ... their indices among this rank's used rows */
    const fkm_rowsrc *full; /* all used rows (the final pass), and their n_used, row0_used */
    int64_t n_full, row0_full;
    float *w_used;      /* --weights: the weights of this rank's used rows (R->full's), or NULL */
    float *w_train;     /* ... of the training sample's rows, or NULL */
    const float *w_cur; /* the weights of R->use's rows (one of the two), or NULL */
    double w_total;     /* Σ w_cur over every rank (the reported mean's divisor) */
    fkm_step_times t;   /* the last step's times */
    int64_t chunk;      /* rows per statistics chunk, the same on every rank */
    int64_t resume_chunk; /* the checkpoint's chunk_rows (0: none) */
    fkm_stream_rates rates; /* the backend's last probe_stream, for (rates_dt, rates_res) */
    int have_rates, rates_dt, rates_res; /* so that the final pass over all rows probes no more */
    int start_iter;     /* first iteration to run (after a resume, the checkpoint's + 1) */
    double start_prev;  /* the stop test's previous inertia at start_iter (NaN when fresh) */
} run;

/* Set by SIGTERM / SIGUSR1 when a checkpoint file is given; read once per iteration. */
static volatile sig_atomic_t g_stop_signal = 0;
static void on_stop_signal(int sig) { g_stop_signal = sig; }

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static const char *metric_name(fkm_metric m)
{
    return m == FKM_METRIC_COSINE ? "cosine" : m == FKM_METRIC_IP ? "ip" : "l2";
}

/* The reported inertia from the summed row distances of the used rows: the sum for L2, the
 * mean for cosine (1 − mean cosine) and ip (−mean inner product), weighted with --weights. */
static double reported_inertia(const run *R, const fkm_params *p, double sum)
{
    const double n = R->w_cur ? R->w_total : (double)R->n_used;
    return p->metric == FKM_METRIC_L2 || !(n > 0) ? sum : sum / n;
}

/* Rows per cluster from labels (this rank's n, −1 = left out), summed over ranks into counts
 * (k). Collective. */
static int row_counts(run *R, const int32_t *labels, int64_t n, int64_t *counts, fkm_error *err)
{
    double *h = fkm_calloc((size_t)R->k, sizeof(double), "cluster counts", err);
    int s = fkm_comm_agree(&R->comm, err);
    if (!s) {
        for (int64_t i = 0; i < n; i++)
            if (labels[i] >= 0) h[labels[i]] += 1;
        s = fkm_comm_allreduce_sum_f64(&R->comm, h, R->k, err);
    }
    for (int64_t j = 0; !s && j < R->k; j++) counts[j] = (int64_t)h[j];
    free(h);
    return s;
}

/* Cosine: centroids scaled to unit length on the host (fp64 norm, one rounding), where they
 * do not come from the backend's finalize: a fresh init, an empty-cluster split. */
static void normalize_centroids(const fkm_params *p, float *c, int64_t k, int64_t d)
{
    if (p->metric != FKM_METRIC_COSINE) return;
    for (int64_t j = 0; j < k; j++) {
        double n2 = 0;
        for (int64_t t = 0; t < d; t++) n2 += (double)c[j * d + t] * c[j * d + t];
        const double inv = n2 > 0 ? 1.0 / sqrt(n2) : 1.0;
        for (int64_t t = 0; t < d; t++) c[j * d + t] = (float)(c[j * d + t] * inv);
    }
}

/* Write the checkpoint after iteration `it` (collective; temporary file + rename). */
static int write_checkpoint(run *R, const fkm_params *p, int it, double inertia, fkm_error *err)
{
    const int64_t k = R->k, d = R->d;
    float *c = fkm_malloc((size_t)(k * d) * sizeof(float), "checkpoint centroids", err);
    int64_t *counts = c ? fkm_malloc((size_t)k * sizeof(int64_t), "checkpoint counts", err) : NULL;
    int32_t *lab = counts && R->w_cur ? fkm_malloc((size_t)(R->use->n > 0 ? R->use->n : 1) * sizeof(int32_t),
                                                   "checkpoint labels", err) : NULL;
    if (counts) {
        R->be.get_centroids(R->be.ctx, c, err);
        for (int64_t j = 0; j < k; j++) counts[j] = (int64_t)R->host_stats[k * d + j];
        if (lab && !err->status) R->be.labels(R->be.ctx, lab, err);
    }
    int s = fkm_comm_agree(&R->comm, err);
    if (!s && R->w_cur) s = row_counts(R, lab, R->use->n, counts, err); /* the stats hold weight sums */
    free(lab);
    if (!s) {
        fkm_out_meta m = {k, d, R->n, it, inertia, 0, p->seed, metric_name(p->metric), "checkpoint",
                          R->comm.size, R->chunk, R->w_cur ? R->host_stats + k * d : NULL};
        s = fkm_output_write(&R->comm, p->checkpoint, &m, c, counts, NULL, NULL, 0, 0, err);
    }
    free(c);
    free(counts);
    return s;
}

/* Ranks of a node share its cores (OpenMP threads of the CPU backend and of the host init),
 * unless the launcher already bound them apart. */
static void share_cores(run *R)
{
    if (!getenv("OMP_NUM_THREADS") && R->comm.local_size > 1) {
        int t = omp_get_num_procs() / R->comm.local_size;
        omp_set_num_threads(t > 0 && t < omp_get_num_procs() ? t : 1);
    }
}

/* Pick and create the backend: cuda when built with it and a GPU is visible (auto), with
 * ranks of a node spread over its GPUs. */
static int make_backend(run *R, const fkm_params *p, fkm_error *err)
{
    int ngpu = fkm_cuda_device_count();
    fkm_backend_kind kind = p->backend;
    if (kind == FKM_BACKEND_AUTO) kind = ngpu > 0 ? FKM_BACKEND_CUDA : FKM_BACKEND_CPU;
    if (kind == FKM_BACKEND_CUDA) {
#ifdef FKM_HAVE_CUDA
        if (ngpu <= 0)
            return fkm_fail(err, FKM_EINPUT, "--backend cuda: no CUDA device is visible on %s",
                            R->comm.host);
        R->device = p->device >= 0 ? p->device : R->comm.local_rank % ngpu;
        if (R->device >= ngpu)
            return fkm_fail(err, FKM_EINPUT, "--device %d: %s has only %d CUDA devices", R->device,
                            R->comm.host, ngpu);
        return fkm_backend_cuda_create(&R->be, R->k, R->d, p->precision, p->metric, R->device, err);
#else
        return fkm_fail(err, FKM_EINPUT, "--backend cuda: this fkm was built without CUDA");
#endif
    }
    return fkm_backend_cpu_create(&R->be, R->k, R->d, p->precision, p->metric, err);
}

/* NCCL or MPI for the statistics (see fkm_comm_kind). Collective. */
static int choose_comm(run *R, const fkm_params *p, fkm_error *err)
{
    int ngpu = fkm_cuda_device_count();
    int cuda = R->be.stats_on_device && R->be.stream != NULL;
    /* NCCL needs a GPU per rank: no two ranks of a node on one device */
    double shared = (R->comm.local_size > ngpu) ? 1.0 : 0.0, why[2] = {shared, cuda ? 0.0 : 1.0};
    int s = fkm_comm_allreduce_max_f64(&R->comm, why, 2, err);
    if (s) return s;
    if (p->comm == FKM_COMM_MPI || (p->comm == FKM_COMM_AUTO && (R->comm.size == 1 || why[0] > 0 ||
                                                                  why[1] > 0 || !fkm_comm_nccl_built())))
        return FKM_OK;
    if (why[1] > 0)
        return fkm_fail(err, FKM_EINPUT, "--comm nccl needs --backend cuda on every rank");
    if (why[0] > 0)
        return fkm_fail(err, FKM_EINPUT,
                        "--comm nccl: %d ranks on %s share %d GPU(s); NCCL needs one GPU per rank "
                        "(start fewer ranks per node, or use --comm mpi)",
                        R->comm.local_size, R->comm.host, ngpu);
    if (fkm_comm_nccl_init(&R->comm, R->device, err)) return err->status;
    R->use_nccl = 1;
    return FKM_OK;
}

/* One assignment pass over the local shard, merged over ranks; host_stats holds the
 * global statistics afterwards (and the backend's stats buffer too). */
static int pass(run *R, fkm_iter_stats *st, fkm_error *err)
{
    /* the times land at the backend's next wait (finalize, usually): R->t outlives this call */
    memset(&R->t, 0, sizeof R->t);
    R->be.step(R->be.ctx, &R->t, err);
    /* Agree before the all-reduce, so a failed rank never leaves the others inside it. */
    int s = fkm_comm_agree(&R->comm, err);
    if (s) return s;
    double t0 = fkm_now_ms();
    const int64_t len = fkm_stats_len(R->k, R->d), tail = R->k + 1;
    if (R->comm.size == 1 && !R->use_nccl && R->be.stats_tail_to_host) {
        /* nothing to merge: only counts and inertia come to the host (an explicit
         * --comm nccl still reduces through NCCL, which tests that path on one GPU) */
        s = R->be.stats_tail_to_host(R->be.ctx, R->host_stats, tail, err);
    } else if (R->use_nccl) {
        void *stream = R->be.stream(R->be.ctx);
        if ((s = fkm_comm_nccl_allreduce_sum_f64(&R->comm, R->be.stats(R->be.ctx), len, stream, err)) == FKM_OK &&
            (s = fkm_comm_nccl_wait(&R->comm, stream, err)) == FKM_OK)
            s = R->be.stats_tail_to_host(R->be.ctx, R->host_stats, tail, err);
    } else if ((s = R->be.stats_to_host(R->be.ctx, R->host_stats, err)) == FKM_OK &&
               (s = fkm_comm_allreduce_sum_f64(&R->comm, R->host_stats, len, err)) == FKM_OK) {
        s = R->be.stats_from_host(R->be.ctx, R->host_stats, err);
    }
    if (st) {
        st->ms_comm = fkm_now_ms() - t0; /* the inertia and the step's times: after finalize */
    }
    return fkm_comm_agree(&R->comm, err);
}

/* 1 when both paths name one existing file (however spelled). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Open the input, check it against the parameters, and make this rank's row source. */
static int open_input(run *R, const fkm_params *p, fkm_dsinfo *info, fkm_error *err)
{
    int s = fkm_reader_open(p->input, p->dataset, &R->reader, info, err);
    if ((s = fkm_comm_agree(&R->comm, err))) return s;
    if (p->k > info->n)
        fkm_fail(err, FKM_EINPUT, "--k %lld is larger than the %lld rows of '%s:%s'",
                 (long long)p->k, (long long)info->n, p->input, p->dataset);
    else if (p->output && R->comm.rank == 0 && fkm_out_check_path(p->output, err) == FKM_OK &&
             same_file(p->input, p->output))
        fkm_fail(err, FKM_EINPUT, "--output '%s' is the input file '%s'", p->output, p->input);
    else if (p->checkpoint && R->comm.rank == 0 && same_file(p->input, p->checkpoint))
        fkm_fail(err, FKM_EINPUT, "--checkpoint '%s' is the input file '%s'", p->checkpoint, p->input);
    if ((s = fkm_comm_agree(&R->comm, err))) return s;
    int64_t cnt;
    fkm_shard(info->n, R->comm.size, R->comm.rank, &R->row0, &cnt);
    fkm_rowsrc_file(&R->src, &R->fsrc, R->reader, info, R->row0, cnt);
    R->use = &R->src;
    R->n_used = info->n;
    R->row0_used = R->row0;

    /* Rows with NaN or infinity: an input error naming the first, or left out. */
    char what[1200];
    snprintf(what, sizeof what, "input '%s:%s'", p->input, p->dataset);
    fkm_scan_nonfinite(&R->src, R->row0, p->skip_nonfinite, what, &R->bad, &R->nbad, err);
    if ((s = fkm_comm_agree(&R->comm, err))) return s;
    /* every rank's count of used rows, for the global numbering of the used rows */
    double *cnts = fkm_calloc((size_t)R->comm.size, sizeof(double), "row counts", err);
    if (cnts) {
        cnts[R->comm.rank] = (double)(cnt - R->nbad);
        s = fkm_comm_allreduce_sum_f64(&R->comm, cnts, R->comm.size, err);
    }
    if (!(s = fkm_comm_agree(&R->comm, err))) {
        R->n_used = R->row0_used = 0;
        for (int r = 0; r < R->comm.size; r++) {
            if (r < R->comm.rank) R->row0_used += (int64_t)cnts[r];
            R->n_used += (int64_t)cnts[r];
        }
        if (R->n_used < info->n) {
            fkm_rowsrc_skip(&R->ssrc, &R->skip, &R->src, R->bad, R->nbad);
            R->use = &R->ssrc;
            if (R->comm.rank == 0 && p->verbose > 0)
                printf("skipping %lld rows with non-finite values (--skip-nonfinite)\n",
                       (long long)(info->n - R->n_used));
        }
        if (p->k > R->n_used)
            fkm_fail(err, FKM_EINPUT, "--k %lld is larger than the %lld finite rows of '%s:%s'",
                     (long long)p->k, (long long)R->n_used, p->input, p->dataset);
    }
    free(cnts);
    return fkm_comm_agree(&R->comm, err);
}

/* --weights FILE[:/dataset]: this rank's share of the row weights (one per input row, finite
 * and ≥ 0, not all 0), without the rows left out for non-finite values, into R->w_used. */
static int load_weights(run *R, const fkm_params *p, const fkm_dsinfo *info, fkm_error *err)
{
    if (!p->weights) return FKM_OK;
    fkm_reader *wr = NULL;
    fkm_dsinfo wi;
    const int64_t cnt = R->src.n;
    fkm_reader_open_vector("--weights", p->weights, p->weights_dataset, &wr, &wi, err);
    if (!err->status && wi.n != info->n)
        fkm_fail(err, FKM_EINPUT, "--weights '%s': %lld values, the input '%s:%s' has %lld rows",
                 p->weights, (long long)wi.n, p->input, p->dataset, (long long)info->n);
    float *w = err->status ? NULL : fkm_malloc((size_t)(cnt > 0 ? cnt : 1) * sizeof(float), "the row weights", err);
    if (w && cnt > 0) fkm_reader_read_f32(wr, R->row0, cnt, w, err);
    fkm_reader_close(wr);
    double total = 0;
    for (int64_t i = 0, b = 0, o = 0; w && !err->status && i < cnt; i++) {
        if (!(w[i] >= 0) || isinf(w[i])) {
            fkm_fail(err, FKM_EINPUT, "--weights '%s': row %lld has weight %g; weights must be finite and >= 0",
                     p->weights, (long long)(R->row0 + i), (double)w[i]);
            break;
        }
        if (b < R->nbad && R->bad[b] == i) { /* a left-out row: its weight goes too */
            b++;
            continue;
        }
        total += w[i];
        w[o++] = w[i];
    }
    int s = fkm_comm_agree(&R->comm, err);
    if (!s) s = fkm_comm_allreduce_sum_f64(&R->comm, &total, 1, err);
    if (!s && !(total > 0))
        s = fkm_fail(err, FKM_EINPUT, "--weights '%s': every weight is 0", p->weights);
    if (s) {
        free(w);
        return s;
    }
    R->w_used = w;
    R->w_cur = w;
    return FKM_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

enum { KMPAR_ROUNDS = 5 }; /* k-means|| rounds; oversampling ell = 2k per round */

/* The starting centroids (every rank the same), for every init but a resume. */
static int initial_centroids_raw(run *R, const fkm_params *p, float *c, fkm_error *err);

static int initial_centroids(run *R, const fkm_params *p, float *c, fkm_error *err)
{
    int s = initial_centroids_raw(R, p, c, err);
    if (!s) normalize_centroids(p, c, R->k, R->d);
    return s;
}

static int initial_centroids_raw(run *R, const fkm_params *p, float *c, fkm_error *err)
{
    const int64_t k = R->k, d = R->d;
    if (p->init == FKM_INIT_FILE) {
        float *m = NULL;
        fkm_load_matrix(p->init_file, p->init_dataset, k, d, &m, err);
        int s = fkm_comm_agree(&R->comm, err);
        if (!s) memcpy(c, m, (size_t)(k * d) * sizeof(float));
        free(m);
        return s;
    }
    if (p->init == FKM_INIT_KMEANS_PAR) /* needs the backend: after it is made */
        return fkm_kmeans_par(&R->comm, &R->be, R->use, R->w_cur, R->row0_used, R->n_used, k,
                              p->seed, KMPAR_ROUNDS, 2.0 * (double)k, p->verbose, c, err);
    /* random: k rows drawn from the seed; kmeans++: a uniform sample of m rows */
    int64_t m = k;
    if (p->init == FKM_INIT_KMEANSPP) {
        m = p->init_sample > 0 ? p->init_sample
            : R->n_used <= 100000 ? R->n_used : (16 * k > 100000 ? 16 * k : 100000);
        if (m > R->n_used) m = R->n_used;
    }
    int64_t *ids = fkm_malloc((size_t)m * sizeof(int64_t), "the init sample", err);
    float *x = ids && p->init != FKM_INIT_RANDOM ? fkm_malloc((size_t)(m * d) * sizeof(float), "the init sample", err) : c;
    if (ids && x) {
        if (p->init == FKM_INIT_RANDOM) {
            fkm_sample_rows(R->n_used, k, p->seed, ids, err);
        } else if (fkm_sample_rows_stream(R->n_used, m, p->seed, FKM_STREAM_INIT_SAMPLE, ids, err) == FKM_OK) {
            qsort(ids, (size_t)m, sizeof(int64_t), cmp_i64); /* read in row order */
        }
    }
    int s = fkm_comm_agree(&R->comm, err);
    if (!s) s = fkm_gather_rows(&R->comm, R->use, R->row0_used, ids, m, x, err);
    float *wf = NULL;
    double *wd = NULL;
    if (!s && p->init == FKM_INIT_KMEANSPP && R->w_cur) {
        /* the sample's weights, gathered as the rows are (a one-column source over them) */
        fkm_rowsrc wsrc;
        fkm_rowsrc_memory(&wsrc, R->w_cur, FKM_DT_F32, R->use->n, 1);
        wf = fkm_malloc((size_t)m * sizeof(float), "the init sample's weights", err);
        wd = wf ? fkm_malloc((size_t)m * sizeof(double), "the init sample's weights", err) : NULL;
        if (!(s = fkm_comm_agree(&R->comm, err))) s = fkm_gather_rows(&R->comm, &wsrc, R->row0_used, ids, m, wf, err);
        for (int64_t i = 0; !s && i < m; i++) wd[i] = wf[i];
    }
    if (!s && p->init == FKM_INIT_KMEANSPP) {
        /* the same rows on every rank: every rank computes the same centroids */
        fkm_kmeanspp(x, wd, m, d, k, p->seed, 0, c, NULL, err);
        s = fkm_comm_agree(&R->comm, err);
    }
    free(wf);
    free(wd);
    free(ids);
    if (x && x != c) free(x);
    return s;
}

/* --max-points-per-centroid M: when there are more than k·M rows, train on k·M of them drawn
 * from the seed in the global numbering (the same rows for any number of ranks): R->use
 * becomes this rank's share of them. R->full keeps all rows for the final pass. Collective. */
static int train_sample(run *R, const fkm_params *p, fkm_error *err)
{
    R->full = R->use;
    R->n_full = R->n_used;
    R->row0_full = R->row0_used;
    const int64_t M = p->max_points_per_centroid;
    if (M <= 0 || M >= R->n_used / R->k + 1 || R->k * M >= R->n_used) return FKM_OK;
    const int64_t m = R->k * M, lo = R->row0_used, hi = R->row0_used + R->use->n;
    int64_t *ids = fkm_malloc((size_t)m * sizeof(int64_t), "the training sample", err);
    int64_t first = 0, nloc = 0;
    if (ids && fkm_sample_rows_stream(R->n_used, m, p->seed, FKM_STREAM_TRAIN_SAMPLE, ids, err) == FKM_OK) {
        qsort(ids, (size_t)m, sizeof(int64_t), cmp_i64);
        while (first < m && ids[first] < lo) first++;
        while (first + nloc < m && ids[first + nloc] < hi) nloc++;
        R->tidx = fkm_malloc((size_t)(nloc > 0 ? nloc : 1) * sizeof(int64_t), "the training sample", err);
        for (int64_t i = 0; R->tidx && i < nloc; i++) R->tidx[i] = ids[first + i] - lo;
    }
    free(ids);
    int s = fkm_comm_agree(&R->comm, err);
    if (s) return s;
    fkm_rowsrc_subset(&R->tsrc, &R->tsub, R->use, R->tidx, nloc);
    if (R->w_used) {
        R->w_train = fkm_malloc((size_t)(nloc > 0 ? nloc : 1) * sizeof(float), "the training sample's weights", err);
        for (int64_t i = 0; R->w_train && i < nloc; i++) R->w_train[i] = R->w_used[R->tidx[i]];
        if ((s = fkm_comm_agree(&R->comm, err))) return s;
        R->w_cur = R->w_train;
    }
    R->use = &R->tsrc;
    R->n_used = m;
    R->row0_used = first;
    if (R->comm.rank == 0 && p->verbose > 0)
        printf("training on %lld of %lld rows (--max-points-per-centroid %lld); labels from all rows\n",
               (long long)m, (long long)R->n_full, (long long)M);
    return FKM_OK;
}

/* The streamed chunk from the backend's measured copy and compute rates (chunkplan.h), or 0
 * when the backend cannot measure them (no probe_stream, or it failed: the caller then keeps
 * the fixed rule). Logs one line on rank 0: the rates, the choice and the predicted ratio of
 * a pass to max(copy, compute). */
static int64_t measured_chunk(run *R, const fkm_params *p, fkm_residency r, int64_t n_max)
{
    if (!R->be.probe_stream || n_max < 1) return 0;
    fkm_stream_rates rates;
    fkm_chunk_plan plan;
    fkm_error e;
    fkm_error_clear(&e);
    const double rb = (double)fkm_rowsrc_row_bytes(R->use);
    const double t0 = fkm_now_ms();
    if (R->have_rates && R->rates_dt == (int)R->use->dt && R->rates_res == (int)r) {
        rates = R->rates;
    } else {
        R->have_rates = 0;
        if (R->be.probe_stream(R->be.ctx, R->use->dt, r, &rates, &e) == FKM_OK) {
            R->rates = rates, R->have_rates = 1;
            R->rates_dt = (int)R->use->dt, R->rates_res = (int)r;
        }
    }
    if (!R->have_rates || fkm_plan_chunk(n_max, rb, &rates, &plan, &e) != FKM_OK) {
        if (R->comm.rank == 0 && p->verbose > 1)
            printf("chunk: no measured rates (%s); the fixed rule applies\n", e.msg);
        return 0;
    }
    if (R->comm.rank == 0 && p->verbose > 0)
        printf("chunk: measured H2D %.1f GB/s, compute %.3g ns/row + %.3f ms/chunk (in %.0f ms); "
               "shard of %lld rows: copy %.1f ms, compute %.1f ms -> %lld chunks of %lld rows "
               "(%.1f MiB), predicted %.3f x max(copy, compute)\n",
               rates.copy_gbs, rates.ms_per_row * 1e6, rates.ms_fixed, fkm_now_ms() - t0,
               (long long)n_max, plan.ms_copy, plan.ms_comp, (long long)plan.nchunks,
               (long long)plan.chunk, (double)plan.chunk * rb / (1 << 20), plan.ratio);
    return plan.chunk;
}

/* GPU bytes per row held on the device: the rows (compute type, padded, at most 4 bytes per
 * value), norms, labels, distances and the sort's pairs. */
static double dev_row_bytes(int64_t d) { return (double)((d + 7) / 8 * 8) * 4.0 + 4 + 4 + 4 + 32; }

/* Where this rank's rows live (see fkm_residency), and the chunk size. AUTO: in the
 * backend's memory when the rows fit there (the GPU's free memory with room for labels,
 * norms and the sort, or half of the host's free memory for the CPU backend), else pinned
 * host memory for the GPU when they fit in half of the host's free memory, else the file.
 * Default chunk (given the largest shard of any rank, n_max, so that it does not depend on
 * this rank's share; after a --resume, the checkpoint's): in memory, the whole shard (one sort
 * per pass); streamed, from the backend's measured copy and compute rates (measured_chunk)
 * when it can measure them, else 1/16 of the shard clamped to [32, 256] MiB of source rows: the copy/compute pipeline then loses
 * about one chunk in sixteen to its fill and drain (measured on an H100: 1.03-1.10 x
 * max(copy, compute) at 64-128 MiB chunks), while each chunk's copy (≥ 0.6 ms at
 * 53 GB/s) stays long next to its fixed cost of launches and a sort. A streamed default on the
 * GPU is then cut to fit a quarter of its free memory (fkm_plan_fit_memory). */
static int choose_residency(run *R, const fkm_params *p, int64_t n_max, fkm_residency *res,
                            int64_t *chunk, fkm_error *err)
{
    const int64_t n = R->use->n, d = R->d;
    const double src_rb = (double)fkm_rowsrc_row_bytes(R->use);
    const int cuda = R->be.stream != NULL;
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    const double host_free = pages > 0 && psz > 0 ? (double)pages * (double)psz : 0;
    size_t dfree = 0, dtotal = 0;
    if (cuda) fkm_cuda_mem_info(R->device, &dfree, &dtotal);
    fkm_residency r = p->residency;
    if (r == FKM_RES_AUTO) {
        const int host_fits = host_free == 0 || (double)n * src_rb < 0.5 * host_free;
        if (cuda) {
            double need = (double)n * dev_row_bytes(d) + (256 << 20);
            r = need < 0.9 * (double)dfree ? FKM_RES_DEVICE : host_fits ? FKM_RES_HOST : FKM_RES_FILE;
        } else {
            r = host_fits ? FKM_RES_DEVICE : FKM_RES_FILE;
        }
    }
    int64_t c = p->chunk_rows > 0 ? p->chunk_rows : R->resume_chunk;
    if (c <= 0) {
        if (r == FKM_RES_DEVICE) {
            c = n_max;
        } else if ((c = measured_chunk(R, p, r, n_max)) <= 0) {
            double bytes = (double)n_max * src_rb / 16;
            if (bytes < 32.0 * (1 << 20)) bytes = 32.0 * (1 << 20);
            if (bytes > 256.0 * (1 << 20)) bytes = 256.0 * (1 << 20);
            c = (int64_t)(bytes / src_rb);
        }
        if (cuda && r != FKM_RES_DEVICE) { /* a chunk's buffers within the free device memory */
            const int64_t want = c;
            c = fkm_plan_fit_memory(c, 2 * src_rb + dev_row_bytes(d), (double)dfree); /* + staging */
            if (c < want && R->comm.rank == 0 && p->verbose > 0)
                printf("chunk: %lld rows, cut from %lld to fit a quarter of the free device memory "
                       "(%.1f GiB)\n", (long long)c, (long long)want, (double)dfree / (1 << 30));
        }
        if (c < 1) c = 1;
    }
    *res = r;
    *chunk = c;
    return FKM_OK;
}

/* Make the backend for R->use, choose its residency and the chunk (the smallest any rank
 * chose, so that every rank adds its statistics in the same blocks whatever its residency),
 * give it the rows and, unless c is NULL, the centroids. Collective. */
static int setup_backend(run *R, const fkm_params *p, const float *c, fkm_residency *res,
                         fkm_error *err)
{
    double v[2] = {(double)R->use->n, 0};
    int s = fkm_comm_allreduce_max_f64(&R->comm, v, 1, err);
    if (s) return s;
    int64_t chunk = 1;
    if (make_backend(R, p, err) == FKM_OK) {
        R->have_be = 1;
        choose_residency(R, p, (int64_t)v[0], res, &chunk, err);
    }
    if ((s = fkm_comm_agree(&R->comm, err))) return s;
    v[1] = -(double)chunk;
    if ((s = fkm_comm_allreduce_max_f64(&R->comm, v + 1, 1, err))) return s;
    R->chunk = (int64_t)-v[1];
    if (R->be.set_source(R->be.ctx, R->use, *res, R->chunk, err) == FKM_OK && R->w_cur) {
        if (!R->be.set_weights)
            fkm_fail(err, FKM_EINPUT, "--weights: the %s backend does not take row weights", R->be.name);
        else
            R->be.set_weights(R->be.ctx, R->w_cur, err);
    }
    if (!err->status && c) R->be.set_centroids(R->be.ctx, c, R->k, err);
    if ((s = fkm_comm_agree(&R->comm, err)) || !R->w_cur) return s;
    R->w_total = 0;
    for (int64_t i = 0; i < R->use->n; i++) R->w_total += R->w_cur[i];
    return fkm_comm_allreduce_sum_f64(&R->comm, &R->w_total, 1, err);
}

static const char *residency_name(fkm_residency r)
{
    return r == FKM_RES_DEVICE ? "device" : r == FKM_RES_HOST ? "host" : r == FKM_RES_FILE ? "file" : "auto";
}

static void init_names(const fkm_params *p, char *buf, size_t len)
{
    if (p->init == FKM_INIT_FILE)
        snprintf(buf, len, "%s:%s", p->init_file, p->init_dataset);
    else
        snprintf(buf, len, "%s", p->init == FKM_INIT_KMEANSPP ? "kmeans++" :
                                 p->init == FKM_INIT_KMEANS_PAR ? "kmeans||" : "random");
}

/* The Lloyd iterations. On return the backend holds the final centroids. */
static int iterate(run *R, const fkm_params *p, fkm_result *res, fkm_error *err)
{
    const int64_t k = R->k, d = R->d;
    double prev = R->start_prev;
    FILE *human = (R->comm.rank == 0 && p->verbose > 0) ? stdout : NULL;
    snprintf(res->stop_reason, sizeof res->stop_reason, p->max_iter == 0 ? "no iterations: one "
             "assignment pass to the initial centroids" : "iteration cap %d reached", p->max_iter);
    res->iterations = R->start_iter - 1;
    /* --shift-tol's scale: the RMS norm of the starting centroids (the same on every rank) */
    double scale = 0;
    if (p->shift_tol >= 0) {
        float *c = fkm_malloc((size_t)(k * d) * sizeof(float), "centroids", err);
        if (c) R->be.get_centroids(R->be.ctx, c, err);
        int s = fkm_comm_agree(&R->comm, err);
        if (!s) {
            double acc = 0;
            for (int64_t i = 0; i < k * d; i++) acc += (double)c[i] * c[i];
            scale = sqrt(acc / (double)k);
        }
        free(c);
        if (s) return s;
    }
    if (p->reassign_tol >= 0 && !R->be.changed)
        return fkm_fail(err, FKM_EINPUT, "--reassign-tol: the %s backend does not track label changes",
                        R->be.name);
    for (int it = R->start_iter; it <= p->max_iter; it++) {
        fkm_iter_stats st;
        memset(&st, 0, sizeof st);
        st.iter = it;
        double t0 = fkm_now_ms();
        st.reassigned = NAN;
        int s = pass(R, &st, err);
        if (s) return s;
        if (p->reassign_tol >= 0) {
            /* labels that changed since the last iteration, summed over ranks (−1: no last) */
            int64_t cnt = 0;
            R->be.changed(R->be.ctx, &cnt, err);
            if ((s = fkm_comm_agree(&R->comm, err))) return s;
            double v[2] = {cnt < 0 ? 1.0 : 0.0, cnt < 0 ? 0.0 : (double)cnt};
            if ((s = fkm_comm_allreduce_sum_f64(&R->comm, v, 2, err))) return s;
            if (v[0] == 0 && R->n_used > 0) st.reassigned = v[1] / (double)R->n_used;
        }
        s = R->be.finalize(R->be.ctx, &st.max_shift, &st.empty, err);
        if (!s && st.empty > 0 && p->empty == FKM_EMPTY_SPLIT) {
            /* Rare: split on the host, identically on every rank (same stats, same seed). */
            float *c = fkm_malloc((size_t)(k * d) * sizeof(float), "centroids", err);
            if (!c) s = FKM_ENOMEM;
            if (!s) s = R->be.get_centroids(R->be.ctx, c, err);
            if (!s) fkm_split_empty(c, R->host_stats + k * d, k, d, p->seed, it);
            if (!s) normalize_centroids(p, c, k, d);
            if (!s) s = R->be.set_centroids(R->be.ctx, c, k, err);
            free(c);
        }
        if ((s = fkm_comm_agree(&R->comm, err))) return s;
        st.inertia = reported_inertia(R, p, R->host_stats[fkm_stats_len(k, d) - 1]); /* in place after finalize */
        /* the backend's own timings (CUDA events on the GPU): host time after pass() is
         * mostly waiting for them, which the total shows */
        st.ms_assign = R->t.ms_assign;
        st.ms_update = R->t.ms_update;
        st.ms_total = fkm_now_ms() - t0;
        st.rel_change = isnan(prev) ? NAN : fabs(prev - st.inertia) / (fabs(prev) > 0 ? fabs(prev) : 1.0);
        res->stats[res->nstats++] = st;
        res->iterations = it;
        fkm_log_iter(human, R->json, &st);
        prev = st.inertia;
        if (!isnan(st.rel_change) && st.rel_change <= p->tol) {
            res->converged = 1;
            snprintf(res->stop_reason, sizeof res->stop_reason,
                     "converged: relative inertia change %.3e <= tol %.3e", st.rel_change, p->tol);
            break;
        }
        if (p->shift_tol >= 0 && st.max_shift <= p->shift_tol * scale) {
            res->converged = 1;
            snprintf(res->stop_reason, sizeof res->stop_reason,
                     "converged: max centroid shift %.3e <= shift-tol %.3e x scale %.3e",
                     st.max_shift, p->shift_tol, scale);
            break;
        }
        if (p->reassign_tol >= 0 && !isnan(st.reassigned) && st.reassigned <= p->reassign_tol) {
            res->converged = 1;
            snprintf(res->stop_reason, sizeof res->stop_reason,
                     "converged: reassigned fraction %.3e <= reassign-tol %.3e", st.reassigned,
                     p->reassign_tol);
            break;
        }
        if (!p->checkpoint || it == p->max_iter) continue;
        /* Did any rank get a stop signal? Every rank must take the same decision. */
        double sig = g_stop_signal;
        if ((s = fkm_comm_allreduce_max_f64(&R->comm, &sig, 1, err))) return s;
        if (sig > 0 || it % p->checkpoint_every == 0) {
            if ((s = write_checkpoint(R, p, it, st.inertia, err))) return s;
            if (sig > 0)
                return fkm_fail(err, FKM_EINTERRUPTED,
                                "stopped by signal %d after iteration %d; checkpoint written to '%s' "
                                "(continue with --resume %s)",
                                (int)sig, it, p->checkpoint, p->checkpoint);
        }
    }
    return FKM_OK;
}

int fkm_fit(const fkm_params *p, fkm_result *res, fkm_error *err)
{
    run R;
    memset(&R, 0, sizeof R);
    memset(res, 0, sizeof *res);
    fkm_error_clear(err);
    fkm_dsinfo info;
    memset(&info, 0, sizeof info);
    double t_start = fkm_now_ms();

    /* handlers first: a stop signal during start-up must not kill the rank */
    if (p->checkpoint) catch_stop_signals();
    int s = fkm_comm_init(&R.comm, err);
    if (s) return s; /* without a communicator there is nobody to agree with */
    share_cores(&R);
    fkm_params_check(p, err);
    if ((s = fkm_comm_agree(&R.comm, err))) goto done;
    if ((s = open_input(&R, p, &info, err))) goto done;
    if ((s = load_weights(&R, p, &info, err))) goto done;
    R.k = p->k;
    R.d = info.d;
    if (p->metric == FKM_METRIC_COSINE) { /* every later read sees unit rows */
        fkm_rowsrc_normalize(&R.nsrc, R.use);
        R.use = &R.nsrc;
    }
    if ((s = train_sample(&R, p, err))) goto done;

    res->k = R.k;
    res->d = R.d;
    res->n = info.n;
    res->row0 = R.row0;
    res->nlocal = R.src.n;
    res->centroids = fkm_malloc((size_t)(R.k * R.d) * sizeof(float), "centroids", err);
    res->counts = res->centroids ? fkm_malloc((size_t)R.k * sizeof(int64_t), "counts", err) : NULL;
    res->labels = res->counts ? fkm_malloc((size_t)R.src.n * sizeof(int32_t), "labels", err) : NULL;
    res->stats = res->labels ? fkm_calloc((size_t)p->max_iter + 1, sizeof(fkm_iter_stats), "log", err) : NULL;
    R.host_stats = res->stats ? fkm_malloc((size_t)fkm_stats_len(R.k, R.d) * sizeof(double), "stats", err) : NULL;
    if (R.host_stats && R.comm.rank == 0 && p->log_json && !(R.json = fopen(p->log_json, "w")))
        fkm_fail(err, FKM_EINPUT, "--log-json '%s': cannot open for writing", p->log_json);
    if ((s = fkm_comm_agree(&R.comm, err))) goto done;

    R.n = info.n;
    R.start_iter = 1;
    R.start_prev = NAN;
    if (p->resume) {
        fkm_out_meta m;
        float *c = NULL;
        fkm_ckpt_read(p->resume, R.k, R.d, info.n, p->seed, metric_name(p->metric), &m, &c, err);
        if (!(s = fkm_comm_agree(&R.comm, err))) {
            memcpy(res->centroids, c, (size_t)(R.k * R.d) * sizeof(float));
            R.start_iter = m.iterations + 1;
            R.start_prev = m.inertia;
            R.resume_chunk = m.chunk_rows;
            if (R.comm.rank == 0 && p->verbose > 0)
                printf("resuming from '%s' after iteration %d%s\n", p->resume, m.iterations,
                       m.nranks != R.comm.size ? " (made with another number of ranks: the last "
                                                 "bits of the result may differ)" : "");
        }
        free(c);
        if (s) goto done;
    } else if (p->init != FKM_INIT_KMEANS_PAR && (s = initial_centroids(&R, p, res->centroids, err))) {
        goto done;
    }
    /* k-means|| needs the backend (distances of every row to the candidates) */
    const int late_init = p->init == FKM_INIT_KMEANS_PAR && !p->resume;
    fkm_residency residency = FKM_RES_DEVICE;
    if ((s = setup_backend(&R, p, late_init ? NULL : res->centroids, &residency, err))) goto done;
    if (late_init) {
        if ((s = initial_centroids(&R, p, res->centroids, err))) goto done;
        R.be.set_centroids(R.be.ctx, res->centroids, R.k, err);
        if ((s = fkm_comm_agree(&R.comm, err))) goto done;
    }
    choose_comm(&R, p, err);
    if ((s = fkm_comm_agree(&R.comm, err))) goto done;
    res->backend = R.be.name;

    if (R.comm.rank == 0 && p->verbose > 0) {
        char initname[512];
        init_names(p, initname, sizeof initname);
        printf("fkm %s: %s:%s  N=%lld D=%lld K=%lld  ranks=%d  backend=%s  metric=%s  init=%s  "
               "seed=%llu  comm=%s  residency=%s  chunk_rows=%lld  max_iter=%d tol=%g\n",
               FKM_VERSION, p->input, p->dataset, (long long)info.n, (long long)info.d,
               (long long)R.k, R.comm.size, R.be.name, metric_name(p->metric), initname,
               (unsigned long long)p->seed,
               R.use_nccl ? "nccl" : "mpi", residency_name(residency), (long long)R.chunk,
               p->max_iter, p->tol);
        fflush(stdout);
    }

    if ((s = iterate(&R, p, res, err))) goto done;

    if (R.use != R.full) {
        /* trained on a sample: the final pass over all rows, on a backend made for them */
        R.be.get_centroids(R.be.ctx, res->centroids, err);
        if ((s = fkm_comm_agree(&R.comm, err))) goto done;
        R.be.destroy(R.be.ctx);
        R.have_be = 0;
        R.use = R.full;
        R.n_used = R.n_full;
        R.row0_used = R.row0_full;
        R.w_cur = R.w_used;
        if ((s = setup_backend(&R, p, res->centroids, &residency, err))) goto done;
    }
    /* Final pass: labels, counts and inertia of the output centroids. */
    if ((s = pass(&R, NULL, err))) goto done;
    {
        const int64_t kd = R.k * R.d;
        R.be.get_centroids(R.be.ctx, res->centroids, err); /* waits: the tail is in place */
        res->inertia = reported_inertia(&R, p, R.host_stats[kd + R.k]);
        for (int64_t j = 0; j < R.k; j++) res->counts[j] = (int64_t)R.host_stats[kd + j];
        if (!err->status) R.be.labels(R.be.ctx, res->labels, err);
        if (!err->status && R.nbad) {
            /* back to the input's row numbering: left-out rows get label -1 */
            for (int64_t i = R.use->n - 1; i >= 0; i--)
                res->labels[fkm_skipsrc_base_row(&R.skip, i)] = res->labels[i];
            for (int64_t j = 0; j < R.nbad; j++) res->labels[R.bad[j]] = -1;
        }
        if (!err->status && R.w_cur && (res->weight_sums = fkm_malloc((size_t)R.k * sizeof(double), "weight sums", err)))
            memcpy(res->weight_sums, R.host_stats + kd, (size_t)R.k * sizeof(double));
        if ((s = fkm_comm_agree(&R.comm, err))) goto done;
        /* weighted: the statistics' counts are weight sums; the rows per cluster come from the labels */
        if (R.w_cur && (s = row_counts(&R, res->labels, res->nlocal, res->counts, err))) goto done;
    }
    if (p->write_distances) {
        /* squared distances to the output centroids (the backend's nearest(), exact on the CPU) */
        res->distances = fkm_malloc((size_t)(res->nlocal > 0 ? res->nlocal : 1) * sizeof(float), "distances", err);
        if (res->distances && !R.be.nearest)
            fkm_fail(err, FKM_EINPUT, "--distances: the %s backend cannot compute them", R.be.name);
        else if (res->distances && R.use->n > 0)
            R.be.nearest(R.be.ctx, res->centroids, R.k, res->distances, NULL, err);
        if (!err->status && R.nbad) {
            for (int64_t i = R.use->n - 1; i >= 0; i--)
                res->distances[fkm_skipsrc_base_row(&R.skip, i)] = res->distances[i];
            for (int64_t j = 0; j < R.nbad; j++) res->distances[R.bad[j]] = NAN;
        }
        if ((s = fkm_comm_agree(&R.comm, err))) goto done;
    }
    if (R.comm.rank == 0 && p->verbose > 0 && R.be.peak_bytes)
        printf("memory: %.1f MiB peak in the %s backend on rank 0\n",
               (double)R.be.peak_bytes(R.be.ctx) / (1 << 20), R.be.name);

    if (p->output) {
        char initname[512];
        init_names(p, initname, sizeof initname);
        fkm_out_meta m = {R.k, R.d, info.n, res->iterations, res->inertia, res->converged, p->seed,
                          metric_name(p->metric), initname, 0, R.chunk, res->weight_sums};
        if ((s = fkm_output_write(&R.comm, p->output, &m, res->centroids, res->counts,
                                  p->write_labels ? res->labels : NULL, res->distances, res->row0,
                                  res->nlocal, err)))
            goto done;
    }
    if (R.comm.rank == 0) fkm_log_summary(p->verbose > 0 ? stdout : NULL, R.json, res, fkm_now_ms() - t_start);

done:
    fkm_comm_nccl_destroy(&R.comm);
    if (R.have_be) R.be.destroy(R.be.ctx);
    fkm_reader_close(R.reader);
    free(R.bad);
    free(R.tidx);
    free(R.w_used);
    free(R.w_train);
    free(R.host_stats);
    if (R.json) fclose(R.json);
    if (s) {
        fkm_result_free(res);
        if (p->log_json && R.comm.rank == 0) remove(p->log_json);
    }
    return s;
}

void fkm_result_free(fkm_result *r)
{
    if (!r) return;
    free(r->centroids);
    free(r->counts);
    free(r->labels);
    free(r->distances);
    free(r->weight_sums);
    free(r->stats);
    memset(r, 0, sizeof *r);
}

#ifndef FKM_HAVE_CUDA
int fkm_cuda_device_count(void) { return 0; } /* built without CUDA: no device to use */
void fkm_cuda_mem_info(int device, size_t *free_bytes, size_t *total_bytes)
{
    *free_bytes = *total_bytes = 0;
}
#endif
