#!/usr/bin/env bash
# The command line: the happy path, the log, and every bad input of the contract — each gives
# one line "fkm: error: ..." naming the input, exit status 2, and no output file.
source "$(dirname "$0")/lib.sh"
"$FKM" gen --output "$T/x.h5" --n 3000 --d 8 --clusters 4 --seed 2 || fail gen
"$FKM" gen --output "$T/x2.h5" --n 3000 --d 8 --clusters 4 --seed 2 || fail gen2
cmp -s <($PYTHON -c "import h5py,sys; sys.stdout.buffer.write(h5py.File('$T/x.h5')['/data'][...].tobytes())") \
       <($PYTHON -c "import h5py,sys; sys.stdout.buffer.write(h5py.File('$T/x2.h5')['/data'][...].tobytes())") \
  && ok "gen is reproducible" || fail "gen not reproducible"
"$FKM" info "$T/x.h5" > "$T/info.txt" || fail info
grep -q "/data" "$T/info.txt" && grep -q "3000" "$T/info.txt" && grep -q "float32" "$T/info.txt" \
  && ok "info lists the dataset" || fail "info output: $(cat "$T/info.txt")"

# happy path with the log
"$FKM" fit --input "$T/x.h5" --k 4 --iters 50 --backend cpu --output "$T/o.h5" --labels \
  --log-json "$T/log.jsonl" > "$T/fit.txt" || fail "fit"
grep -q "^iter " "$T/fit.txt" && grep -q "^done: " "$T/fit.txt" && ok "iteration log and summary" \
  || fail "log: $(cat "$T/fit.txt")"
grep -q "converged" "$T/fit.txt" && ok "converges on separated blobs" || fail "did not converge"
$PYTHON - "$T/log.jsonl" <<'PY' && ok "json log parses" || fail "json log"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0]["iter"] == 1 and lines[0]["rel_change"] is None
assert all("inertia" in l and "ms_assign" in l for l in lines[:-1])
assert lines[-1]["done"] is True
PY
$CHECK layout "$T/o.h5" 3000 8 4 || fail layout
ls "$T" | grep -q "\.tmp\." && fail "temporary file left behind"
"$FKM" fit --input "$T/x.h5" --k 4 -q --backend cpu > "$T/quiet.txt" && [ ! -s "$T/quiet.txt" ] \
  && ok "-q is quiet" || fail "-q printed output"

# bad inputs: expect exit 2, message text, no output
printf 'not hdf5\n' > "$T/text.h5"
$PYTHON - "$T" <<'PY' || fail "making bad files"
import h5py, numpy as np, sys
t = sys.argv[1]
with h5py.File(t + "/bad.h5", "w") as f:
    f["/one"] = np.zeros(10, np.float32)
    f["/three"] = np.zeros((2, 3, 4), np.float32)
    f["/str"] = np.array([b"ab", b"cd"])
    f["/str2"] = np.array([[b"ab", b"cd"]])
    f["/empty"] = np.zeros((0, 4), np.float32)
    f["/ok"] = np.random.rand(10, 4).astype(np.float32)
    f["/c3"] = np.random.rand(3, 5).astype(np.float32)
PY
expect_bad() { # expect_bad "text in message" args...
  local want=$1; shift
  rm -f "$T/bad_out.h5"
  "$FKM" "$@" --output "$T/bad_out.h5" > "$T/stdout.txt" 2> "$T/stderr.txt"
  local rc=$?
  if [ $rc -ne 2 ]; then fail "'$*': exit $rc, want 2 ($(cat "$T/stderr.txt"))"; return; fi
  if ! grep -q "^fkm: error: .*$want" "$T/stderr.txt"; then fail "'$*': message '$(cat "$T/stderr.txt")' lacks '$want'"; return; fi
  if [ "$(wc -l < "$T/stderr.txt")" -ne 1 ]; then fail "'$*': more than one line on stderr"; return; fi
  if ls "$T" | grep -q "bad_out"; then fail "'$*': output file left behind"; return; fi
  ok "$want"
}
expect_bad "no such file" fit --input "$T/missing.h5" --k 2
expect_bad "not an HDF5 file" fit --input "$T/text.h5" --k 2
expect_bad "not found" fit --input "$T/bad.h5" --dataset /nope --k 2
expect_bad "1-D" fit --input "$T/bad.h5" --dataset /one --k 2
expect_bad "3-D" fit --input "$T/bad.h5" --dataset /three --k 2
expect_bad "string" fit --input "$T/bad.h5" --dataset /str2 --k 2
expect_bad "0 rows" fit --input "$T/bad.h5" --dataset /empty --k 2
expect_bad "--k must be" fit --input "$T/bad.h5" --dataset /ok --k 0
expect_bad "--k must be" fit --input "$T/bad.h5" --dataset /ok --k -3
expect_bad "larger than the 10 rows" fit --input "$T/bad.h5" --dataset /ok --k 11
expect_bad "columns" fit --input "$T/bad.h5" --dataset /ok --k 3 --init "$T/bad.h5:/c3"
expect_bad "unknown flag" fit --input "$T/bad.h5" --dataset /ok --k 3 --bogus
expect_bad "given twice" fit --input "$T/bad.h5" --dataset /ok --k 3 --k 3
expect_bad "not a whole number" fit --input "$T/bad.h5" --dataset /ok --k three
expect_bad "--backend" fit --input "$T/bad.h5" --dataset /ok --k 3 --backend tpu
expect_bad "is the input file" fit --input "$T/bad_out.h5" --k 3
# unwritable output directory
rm -f "$T/o2.h5"
"$FKM" fit --input "$T/x.h5" --k 2 --output "$T/no/such/dir/o.h5" 2> "$T/stderr.txt"; rc=$?
[ $rc -eq 2 ] && grep -q "no/such/dir" "$T/stderr.txt" && ok "unwritable output directory" || fail "unwritable dir: rc $rc $(cat "$T/stderr.txt")"
"$FKM" fit --input "$T/x.h5" --k 2 --output "$T" 2> "$T/stderr.txt"; rc=$?
[ $rc -eq 2 ] && ok "output is a directory" || fail "output directory: rc $rc $(cat "$T/stderr.txt")"
# N = 0 via gen, and usage errors
"$FKM" gen --output "$T/z.h5" --n 0 --d 3 2> "$T/stderr.txt"; rc=$?
[ $rc -eq 2 ] && [ ! -e "$T/z.h5" ] && ok "gen --n 0 refused" || fail "gen n=0: rc $rc"
"$FKM" frobnicate 2> /dev/null; [ $? -eq 2 ] && ok "unknown command" || fail "unknown command"
"$FKM" --help | grep -q "fkm fit\|fit " && ok "--help" || fail "--help"
# bad input under mpirun: one message, exit 2, no hang
mpirun_n 3 "$FKM" fit --input "$T/missing.h5" --k 2 > /dev/null 2> "$T/stderr.txt"; rc=$?
[ $rc -ne 0 ] && [ "$(grep -c 'fkm: error' "$T/stderr.txt")" -eq 1 ] && ok "mpirun: one error line, rc $rc" \
  || fail "mpirun bad input: rc $rc, $(cat "$T/stderr.txt")"
finish
