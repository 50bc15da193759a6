#!/usr/bin/env bash
# Issue #7 features on --backend cuda (label gpu; skipped without a visible GPU), for the CUDA
# backend's nearest() and changed():
#  - --init kmeans|| picks input rows, 1 rank == 2 ranks sharing the GPU, and the device and
#    file residencies (same --chunk-rows) agree bitwise;
#  - --reassign-tol: logged fractions and the stop iteration equal an fp64 Lloyd in numpy;
#  - fkm assign --distances: labels and distances against numpy (distances to 1e-4 of the
#    expansion's scale).
source "$(dirname "$0")/lib.sh"
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then echo "no GPU: skipped"; exit 77; fi
CI="$PYTHON $(dirname "$0")/check_init.py"
"$FKM" gen --output "$T/x.h5" --n 60013 --d 33 --clusters 25 --spread 4 --seed 13 || fail gen
for n in 1 2; do
  mpirun_n $n "$FKM" fit --input "$T/x.h5" --k 25 --iters 0 --init 'kmeans||' --backend cuda --comm mpi \
    --chunk-rows 7919 --output "$T/par$n.h5" --labels -q || fail "kmeans|| -n $n"
done
"$FKM" fit --input "$T/x.h5" --k 25 --iters 0 --init 'kmeans||' --backend cuda --residency file \
  --chunk-rows 7919 --output "$T/parf.h5" --labels -q || fail "kmeans|| file"
$CI rows "$T/par1.h5" "$T/x.h5" /data && ok "kmeans|| on cuda: centroids are input rows" || fail "kmeans|| rows"
$CI same "$T/par1.h5" "$T/par2.h5" && ok "kmeans|| on cuda: 1 rank == 2 ranks" || fail "kmeans|| ranks"
$CI same "$T/par1.h5" "$T/parf.h5" && ok "kmeans|| on cuda: device == file residency" || fail "kmeans|| residency"
$CHECK initfile "$T/x.h5" /data 25 "$T/init.h5" || fail initfile
"$FKM" fit --input "$T/x.h5" --k 25 --iters 100 --tol 0 --init "$T/init.h5" --backend cuda --precision exact \
  --reassign-tol 0.001 --log-json "$T/re.json" -q || fail "reassign-tol cuda"
$CI reassign-stop "$T/x.h5" /data "$T/init.h5" "$T/re.json" 0.001 && ok "--reassign-tol on cuda" || fail "--reassign-tol cuda"
"$FKM" gen --output "$T/y.h5" --n 20011 --d 33 --clusters 7 --seed 99 || fail gen2
for tier in device file; do
  "$FKM" assign --centroids "$T/par1.h5" --input "$T/y.h5" --distances --backend cuda --precision exact \
    --residency $tier --chunk-rows 5000 --output "$T/a_$tier.h5" -q || fail "assign cuda $tier"
  $CI assign "$T/y.h5" /data "$T/par1.h5" "$T/a_$tier.h5" 1e-4 && ok "assign --distances on cuda ($tier)" \
    || fail "assign cuda $tier"
done
finish
