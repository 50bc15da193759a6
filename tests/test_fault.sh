#!/usr/bin/env bash
# A rank lost mid-run (SIGKILL, or an exit without MPI_Finalize) ends the whole job within
# 60 s with a non-zero status and a message that names the lost rank; nothing hangs and no
# output file is left.
source "$(dirname "$0")/lib.sh"
"$FKM" gen --output "$T/x.h5" --n 300000 --d 32 --clusters 32 --seed 4 || fail gen
for sig in KILL TERM; do
  rm -f "$T/out.h5"
  start=$(date +%s)
  "$MPIEXEC" --oversubscribe -n 3 "$FKM" fit --input "$T/x.h5" --k 64 --iters 1000000 --tol 0 --backend cpu \
    --output "$T/out.h5" -q > "$T/log.txt" 2>&1 &
  mpipid=$!
  # wait until the ranks are iterating, then take one down
  victim=""
  for _ in $(seq 1 100); do
    victim=$(pgrep -P "$mpipid" -f "fkm fit" | sed -n 2p)
    [ -n "$victim" ] && break
    sleep 0.1
  done
  sleep 2
  if [ -z "$victim" ]; then fail "no rank process found"; kill -9 "$mpipid"; continue; fi
  kill -"$sig" "$victim"
  # the job must end by itself within 60 s
  for _ in $(seq 1 600); do kill -0 "$mpipid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$mpipid" 2>/dev/null; then
    fail "SIG$sig: job still running 60 s after a rank died"; pkill -9 -P "$mpipid"; kill -9 "$mpipid"
    continue
  fi
  wait "$mpipid"; rc=$?
  elapsed=$(( $(date +%s) - start ))
  [ $rc -ne 0 ] && ok "SIG$sig: job ended in ${elapsed}s with status $rc" || fail "SIG$sig: status 0"
  grep -Eq "rank [0-9]+" "$T/log.txt" && ok "SIG$sig: message names the rank: $(grep -Eo '[^.]*rank [0-9]+[^.]*' "$T/log.txt" | head -1)" \
    || fail "SIG$sig: no rank named in: $(head -c 600 "$T/log.txt")"
  ls "$T" | grep -q "out.h5" && fail "SIG$sig: output left behind" || ok "SIG$sig: no output file"
done
finish
