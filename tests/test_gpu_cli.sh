#!/usr/bin/env bash
# fkm fit --backend cuda end to end (label gpu; skipped without a visible GPU):
#  - exact mode gives the CPU backend's labels (but near-ties) and centroids within 1e-5;
#  - 1, 2 and 3 ranks sharing the one GPU through the MPI path agree (labels but exact ties,
#    centroids within 1e-6), and a rerun is bitwise equal;
#  - the device, host and file residencies are bitwise equal for the same --chunk-rows;
#  - fp16 data in fp16 mode lands close to the CPU result.
source "$(dirname "$0")/lib.sh"
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then echo "no GPU: skipped"; exit 77; fi
export FKM_HAS_GPU=1
"$FKM" gen --output "$T/x.h5" --n 100003 --d 37 --clusters 20 --seed 11 || fail gen
common=(--input "$T/x.h5" --k 20 --iters 10 --tol 0 --seed 4)
"$FKM" fit "${common[@]}" --backend cpu --output "$T/cpu.h5" --labels || fail "cpu fit"
"$FKM" fit "${common[@]}" --backend cuda --precision exact --output "$T/gpu.h5" --labels || fail "cuda fit"
$CHECK close "$T/cpu.h5" "$T/gpu.h5" && ok "cuda exact == cpu" || fail "cuda exact vs cpu"
for n in 2 3; do
  mpirun_n $n "$FKM" fit "${common[@]}" --backend cuda --comm mpi --output "$T/gpu$n.h5" --labels || fail "fit -n $n"
  $CHECK close "$T/gpu.h5" "$T/gpu$n.h5" && ok "$n ranks sharing the GPU == 1 rank" || fail "$n ranks vs 1"
done
mpirun_n 3 "$FKM" fit "${common[@]}" --backend cuda --comm mpi --output "$T/gpu3b.h5" --labels || fail "rerun"
$CHECK same "$T/gpu3.h5" "$T/gpu3b.h5" && ok "3 ranks rerun bitwise equal" || fail "rerun differs"
# the NCCL communicator on one GPU (one rank): init, all-reduce, polling, destroy
"$FKM" fit "${common[@]}" --backend cuda --comm nccl --output "$T/nccl1.h5" --labels > "$T/nccl1.txt" || fail "nccl 1 rank"
grep -q "comm=nccl" "$T/nccl1.txt" && $CHECK same "$T/gpu.h5" "$T/nccl1.h5" \
  && ok "--comm nccl on one rank == --comm mpi (bitwise)" || fail "nccl 1 rank differs: $(head -2 "$T/nccl1.txt")"
# NCCL needs a GPU per rank: asking for it with ranks sharing one is a clear error
mpirun_n 2 "$FKM" fit "${common[@]}" --backend cuda --comm nccl 2> "$T/err.txt" > /dev/null; rc=$?
[ $rc -ne 0 ] && grep -q "NCCL needs one GPU per rank" "$T/err.txt" && ok "--comm nccl with a shared GPU refused" \
  || fail "--comm nccl shared: rc $rc $(cat "$T/err.txt")"
for chunk in 7919 100000; do
  for tier in device host file; do
    mpirun_n 2 "$FKM" fit "${common[@]}" --backend cuda --residency $tier --chunk-rows $chunk \
      --output "$T/$tier.h5" --labels || fail "$tier"
  done
  $CHECK same "$T/device.h5" "$T/host.h5" && $CHECK same "$T/device.h5" "$T/file.h5" \
    && ok "chunk $chunk: device == host == file (bitwise)" || fail "chunk $chunk: tiers differ"
done
"$FKM" gen --output "$T/h.h5" --n 50000 --d 64 --clusters 10 --dtype f16 --seed 3 || fail gen16
"$FKM" fit --input "$T/h.h5" --k 10 --iters 8 --tol 0 -q --backend cpu --output "$T/hc.h5" --labels || fail "cpu f16"
"$FKM" fit --input "$T/h.h5" --k 10 --iters 8 --tol 0 -q --backend cuda --output "$T/hg.h5" --labels || fail "cuda f16"
$PYTHON - "$T/hc.h5" "$T/hg.h5" <<'PY' && ok "fp16 mode close to cpu" || fail "fp16 mode"
import h5py, numpy as np, sys
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
ca, cb = a["/centroids"][...], b["/centroids"][...]
rel = np.abs(ca - cb).max() / np.abs(ca).max()
agree = (a["/labels"][...] == b["/labels"][...]).mean()
print("fp16: centroid rel diff %.2e, label agreement %.5f" % (rel, agree))
assert rel < 1e-3 and agree > 0.999
PY
# the initialisations and stop rules of #7 on the GPU (nearest() and changed() of the cuda
# backend, in memory and streamed): they run, and land where the CPU lands (inertia within 1%)
for init in "kmeans++" "kmeans||"; do
  for tier in device host; do
    "$FKM" fit --input "$T/x.h5" --k 20 --iters 15 --seed 4 -q --init "$init" --backend cuda \
      --residency $tier --reassign-tol 0.0001 --log-json "$T/g.jsonl" --output "$T/gi.h5" || fail "cuda --init $init $tier"
    "$FKM" fit --input "$T/x.h5" --k 20 --iters 15 --seed 4 -q --init "$init" --backend cpu \
      --reassign-tol 0.0001 --output "$T/ci.h5" || fail "cpu --init $init"
    $PYTHON - "$T/gi.h5" "$T/ci.h5" "$T/g.jsonl" <<'PY' && ok "--init $init, --reassign-tol, $tier: cuda lands with cpu" || fail "--init $init $tier"
import h5py, json, sys
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
ia, ib = float(a.attrs["inertia"]), float(b.attrs["inertia"])
assert abs(ia - ib) <= 0.01 * ib, (ia, ib)
log = [json.loads(l) for l in open(sys.argv[3]) if '"iter"' in l]
assert any(l.get("reassigned") is not None for l in log), "no reassigned fraction in the log"
PY
  done
done
BACKEND=cuda TEST_TMP="$T/res" FKM="$FKM" bash "$(dirname "$0")/test_residency.sh" > "$T/res.log" 2>&1 \
  && ok "test_residency with the cuda backend" || { fail "test_residency (cuda)"; tail -5 "$T/res.log"; }
finish
