/* Parameter defaults and the one validation of them, before any work starts. */
#include "fkm.h"
#include "util.h"

#include <math.h>
#include <string.h>

void fkm_params_default(fkm_params *p)
{
    memset(p, 0, sizeof *p);
    p->dataset = "/data";
    p->k = 0;
    p->max_iter = 25;
    p->tol = 1e-4;
    p->seed = 1234;
    p->init = FKM_INIT_RANDOM;
    p->init_dataset = "/centroids";
    p->backend = FKM_BACKEND_AUTO;
    p->precision = FKM_PREC_AUTO;
    p->comm = FKM_COMM_AUTO;
    p->device = -1;
    p->empty = FKM_EMPTY_SPLIT;
    p->chunk_rows = 0;
    p->verbose = 1;
    p->checkpoint_every = 10;
    p->init_sample = 0;
    p->shift_tol = -1;
    p->reassign_tol = -1;
    p->weights_dataset = "/weights";
}

int fkm_params_check(const fkm_params *p, fkm_error *err)
{
    if (!p->input || !*p->input) return fkm_fail(err, FKM_EINPUT, "--input is required");
    if (!p->dataset || p->dataset[0] != '/')
        return fkm_fail(err, FKM_EINPUT, "--dataset '%s': must be an absolute path such as /data",
                        p->dataset ? p->dataset : "");
    if (p->k <= 0) return fkm_fail(err, FKM_EINPUT, "--k must be ≥ 1 (got %lld)", (long long)p->k);
    if (p->k > INT32_MAX)
        return fkm_fail(err, FKM_EINPUT, "--k %lld is too large (labels are int32)", (long long)p->k);
    if (p->max_iter < 0) return fkm_fail(err, FKM_EINPUT, "--iters must be ≥ 0 (got %d)", p->max_iter);
    if (!(p->tol >= 0) || isinf(p->tol))
        return fkm_fail(err, FKM_EINPUT, "--tol must be a finite number ≥ 0 (got %g)", p->tol);
    if (p->init == FKM_INIT_FILE && (!p->init_file || !*p->init_file))
        return fkm_fail(err, FKM_EINPUT, "--init FILE.h5:/dataset needs a file name");
    if (p->chunk_rows < 0)
        return fkm_fail(err, FKM_EINPUT, "--chunk-rows must be ≥ 1 (got %lld)", (long long)p->chunk_rows);
    if (p->output && p->input && strcmp(p->output, p->input) == 0)
        return fkm_fail(err, FKM_EINPUT, "--output '%s' is the input file", p->output);
    if (p->checkpoint_every < 1)
        return fkm_fail(err, FKM_EINPUT, "--checkpoint-every must be ≥ 1 (got %d)", p->checkpoint_every);
    if (p->checkpoint && p->input && strcmp(p->checkpoint, p->input) == 0)
        return fkm_fail(err, FKM_EINPUT, "--checkpoint '%s' is the input file", p->checkpoint);
    if (p->checkpoint && p->output && strcmp(p->checkpoint, p->output) == 0)
        return fkm_fail(err, FKM_EINPUT, "--checkpoint '%s' is also the --output file", p->checkpoint);
    if (p->init_sample < 0)
        return fkm_fail(err, FKM_EINPUT, "--init-sample must be ≥ 1 (got %lld)", (long long)p->init_sample);
    if (p->init_sample > 0 && p->init_sample < p->k)
        return fkm_fail(err, FKM_EINPUT, "--init-sample %lld is smaller than --k %lld",
                        (long long)p->init_sample, (long long)p->k);
    if (isnan(p->shift_tol) || isinf(p->shift_tol))
        return fkm_fail(err, FKM_EINPUT, "--shift-tol must be a finite number ≥ 0 (got %g)", p->shift_tol);
    if (isnan(p->reassign_tol) || p->reassign_tol > 1)
        return fkm_fail(err, FKM_EINPUT, "--reassign-tol must lie in [0, 1] (got %g)", p->reassign_tol);
    if (p->max_points_per_centroid < 0)
        return fkm_fail(err, FKM_EINPUT, "--max-points-per-centroid must be ≥ 1 (got %lld)",
                        (long long)p->max_points_per_centroid);
    if (p->write_distances && !p->write_labels)
        return fkm_fail(err, FKM_EINPUT, "--distances needs --labels and --output");
    if (p->metric != FKM_METRIC_L2 && p->metric != FKM_METRIC_COSINE && p->metric != FKM_METRIC_IP)
        return fkm_fail(err, FKM_EINPUT, "--metric: unknown metric %d", (int)p->metric);
    if (p->metric == FKM_METRIC_IP && p->init == FKM_INIT_KMEANS_PAR)
        return fkm_fail(err, FKM_EINPUT, "--init kmeans|| draws rows in proportion to a distance, "
                        "which --metric ip does not have (its -x.c can be negative): use --init "
                        "random, kmeans++ (L2 on the rows) or a FILE");
    if (p->weights && !*p->weights) return fkm_fail(err, FKM_EINPUT, "--weights needs a file name");
    if (p->weights && (!p->weights_dataset || p->weights_dataset[0] != '/'))
        return fkm_fail(err, FKM_EINPUT, "--weights '%s': the dataset must be an absolute path such as /weights",
                        p->weights);
    if (p->write_labels && !p->output)
        return fkm_fail(err, FKM_EINPUT, "--labels needs --output");
    return FKM_OK;
}
