#!/usr/bin/env bash
# NCCL between GPUs (label multigpu; skipped with fewer than two GPUs): one rank per GPU with
# --comm nccl gives the one-rank result (labels but exact ties, centroids within 1e-6), picks
# the NCCL path by itself with --comm auto, agrees with --comm mpi bitwise on the labels, and
# a rank killed mid-run ends the job within 60 s.
source "$(dirname "$0")/lib.sh"
export NCCL_NVLS_ENABLE=0 NCCL_DEBUG=${NCCL_DEBUG:-WARN}
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU") || ngpu=0
if [ "$ngpu" -lt 2 ]; then echo "$ngpu GPU(s): needs 2 or more, skipped"; exit 77; fi
P=$ngpu; [ $P -gt 8 ] && P=8
"$FKM" gen --output "$T/x.h5" --n 400009 --d 64 --clusters 40 --seed 12 --dtype f16 || fail gen
common=(--input "$T/x.h5" --k 40 --iters 10 --tol 0 --seed 2 --backend cuda -q)
"$FKM" fit "${common[@]}" --output "$T/one.h5" --labels || fail "1 rank"
mpirun_n $P "$FKM" fit "${common[@]}" --comm nccl --output "$T/nccl.h5" --labels || fail "$P ranks nccl"
$CHECK close "$T/one.h5" "$T/nccl.h5" && ok "$P ranks over NCCL == 1 rank" || fail "nccl vs 1 rank"
mpirun_n $P "$FKM" fit "${common[@]}" --comm mpi --output "$T/mpi.h5" --labels || fail "$P ranks mpi"
$CHECK close "$T/nccl.h5" "$T/mpi.h5" && ok "NCCL == MPI path" || fail "nccl vs mpi"
mpirun_n $P "$FKM" fit --input "$T/x.h5" --k 40 --iters 1 --backend cuda --comm auto | grep -q "comm=nccl" \
  && ok "--comm auto picks NCCL with a GPU per rank" || fail "auto did not pick nccl"
# a rank lost mid-run ends the job
"$MPIEXEC" --oversubscribe -n $P "$FKM" fit "${common[@]}" --comm nccl --iters 100000 > "$T/kill.txt" 2>&1 &
pid=$!
sleep 8
victim=$(pgrep -P $pid -f "fkm fit" | tail -1)
[ -n "$victim" ] && kill -9 "$victim"
for _ in $(seq 1 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then fail "job alive 60 s after a rank died"; pkill -9 -P $pid; kill -9 $pid
else wait $pid; rc=$?; [ $rc -ne 0 ] && ok "rank killed: job ended, status $rc" || fail "status 0 after a kill"; fi
finish
