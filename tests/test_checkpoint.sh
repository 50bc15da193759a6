#!/usr/bin/env bash
# Checkpoints: a run resumed from a checkpoint (taken at several iterations, or on SIGUSR1 /
# SIGTERM under mpirun) ends bitwise equal to the uninterrupted run with the same seed and ranks.
source "$(dirname "$0")/lib.sh"
"$FKM" gen --output "$T/x.h5" --n 6007 --d 11 --clusters 9 --seed 8 || fail gen
common=(--input "$T/x.h5" --k 9 --iters 12 --tol 0 --seed 3 --backend cpu -q)
mpirun_n 2 "$FKM" fit "${common[@]}" --output "$T/full.h5" --labels || fail "uninterrupted run"
for every in 1 3 4 5; do
  # a full run leaves the checkpoint of the last multiple of $every before 12: exactly what a
  # run killed after that iteration leaves
  rm -f "$T/ck.h5"
  mpirun_n 2 "$FKM" fit "${common[@]}" --checkpoint "$T/ck.h5" --checkpoint-every $every \
    --output "$T/part.h5" || fail "run with --checkpoint-every $every"
  [ -e "$T/ck.h5" ] || { fail "no checkpoint with --checkpoint-every $every"; continue; }
  it=$($PYTHON -c "import h5py; print(int(h5py.File('$T/ck.h5').attrs['iterations']))")
  [ "$it" -eq $(( (11 / every) * every )) ] || fail "checkpoint after iteration $it with --checkpoint-every $every"
  mpirun_n 2 "$FKM" fit "${common[@]}" --resume "$T/ck.h5" --output "$T/resumed.h5" --labels || fail "resume"
  $CHECK same "$T/full.h5" "$T/resumed.h5" > /dev/null && ok "resume after iteration $it: bitwise equal" \
    || fail "resume after iteration $it differs"
done
# a checkpoint that does not fit the run is refused
"$FKM" fit --input "$T/x.h5" --k 8 --iters 3 --resume "$T/ck.h5" --backend cpu 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "k=9" "$T/err.txt" && ok "mismatched checkpoint refused" || fail "mismatch: rc $rc $(cat "$T/err.txt")"
"$FKM" fit --input "$T/x.h5" --k 9 --iters 3 --resume "$T/x.h5" --backend cpu 2> "$T/err.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "not an fkm checkpoint" "$T/err.txt" && ok "non-checkpoint refused" || fail "non-checkpoint: rc $rc $(cat "$T/err.txt")"

# signals: stop mid-run under mpirun, checkpoint, exit 75, resume to the same result
"$FKM" gen --output "$T/big.h5" --n 200000 --d 32 --clusters 16 --seed 2 || fail gen-big
long=(--input "$T/big.h5" --k 48 --iters 400 --tol 0 --seed 5 --backend cpu -q)
mpirun_n 2 "$FKM" fit "${long[@]}" --output "$T/long_full.h5" || fail "long uninterrupted"
for sig in USR1 TERM; do
  rm -f "$T/ck2.h5" "$T/long_res.h5"
  "$MPIEXEC" --oversubscribe -n 2 "$FKM" fit "${long[@]}" --checkpoint "$T/ck2.h5" --checkpoint-every 1000 \
    --output "$T/long_part.h5" --log-json "$T/sig.json" > "$T/sig.txt" 2>&1 &
  pid=$!
  # signal once a few iterations have run (a fixed sleep raced the run's end on a fast machine)
  for _ in $(seq 600); do [ "$(grep -c '"iter"' "$T/sig.json" 2>/dev/null)" -ge 5 ] && break; sleep 0.05; done
  kill -$sig $pid
  wait $pid; rc=$?
  # mpirun forwards SIGUSR1 and passes on the ranks' status 75; on SIGTERM it forwards the
  # signal too but then ends the job itself, with a status of its own
  if [ $sig = USR1 ] && [ $rc -ne 75 ]; then fail "SIGUSR1: exit $rc, want 75: $(tail -3 "$T/sig.txt")"; continue; fi
  if [ $rc -eq 0 ]; then fail "SIG$sig: exit 0: the run was not interrupted"; continue; fi
  grep -q "checkpoint written" "$T/sig.txt" || { fail "SIG$sig: no checkpoint message: $(tail -3 "$T/sig.txt")"; continue; }
  [ -e "$T/long_part.h5" ] && fail "SIG$sig: output written by an interrupted run"
  it=$($PYTHON -c "import h5py; print(int(h5py.File('$T/ck2.h5').attrs['iterations']))")
  mpirun_n 2 "$FKM" fit "${long[@]}" --resume "$T/ck2.h5" --output "$T/long_res.h5" || fail "SIG$sig resume"
  $CHECK same "$T/long_full.h5" "$T/long_res.h5" > /dev/null \
    && ok "SIG$sig after iteration $it, exit $rc, resumed: bitwise equal" || fail "SIG$sig: resumed result differs"
done
finish
