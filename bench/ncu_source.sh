#!/usr/bin/env bash
# Where one kernel launch waits: Nsight Compute's warp-stall sampling per SASS instruction.
# Prints the kernel's stall reasons (sampled, all instructions) and the TOP instructions by
# samples with their reasons. Usage (GPU machine, repository root, after a build):
#   KERNEL=regex:assign_v3_kernelILb0ELi4ELi1ELb0ELi0EE bash bench/ncu_source.sh build/bench/bench_gpu --assign-only --versions 20 fp16-1M-8k
# env: KERNEL (ncu -k filter), SKIP (launches skipped), TOP (default 40), OUT (report dir)
set -u -o pipefail
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
rep="$OUT/stalls_$$"
ncu --clock-control none --kernel-name-base "${NAME_BASE:-mangled}" -k "${KERNEL:-regex:assign_v3}" --launch-skip "${SKIP:-0}" --launch-count 1 \
    --section SourceCounters --section WarpStateStats --import-source no -f -o "$rep" "$@" > "$rep.log" 2>&1 || { tail -20 "$rep.log"; exit 1; }
ncu -i "$rep.ncu-rep" --page source --csv --print-source sass > "$rep.csv" || exit 1
python3 - "$rep.csv" "${TOP:-40}" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
hdr_i = next(i for i, r in enumerate(rows) if any("Source" == c for c in r))
hdr, body = rows[hdr_i], [r for r in rows[hdr_i + 1:] if len(r) == len(rows[hdr_i])]
col = {h: i for i, h in enumerate(hdr)}
allc = next(h for h in hdr if h.startswith("Warp Stall Sampling (All"))
reasons = [h for h in hdr if h.startswith("stall_") or "pcsamp_warps_issue_stalled" in h]
num = lambda v: float(v.replace(",", "") or 0) if v.replace(",", "").replace(".", "").isdigit() else 0.0
tot = sum(num(r[col[allc]]) for r in body)
print("columns:", hdr)
print(f"{len(body)} SASS lines, {tot:.0f} samples")
if reasons:
    agg = sorted(((sum(num(r[col[h]]) for r in body), h) for h in reasons), reverse=True)
    print("stall reasons over the kernel:", ", ".join(f"{h.replace('stall_', '')} {100 * v / max(tot, 1):.1f}%" for v, h in agg if v > 0))
top = sorted(body, key=lambda r: -num(r[col[allc]]))[: int(sys.argv[2])]
for r in top:
    rs = sorted(((num(r[col[h]]), h) for h in reasons), reverse=True)[:3]
    print(f"{r[col['Address']] if 'Address' in col else '':>8} {100 * num(r[col[allc]]) / max(tot, 1):5.1f}%  {r[col['Source']][:70]:70}  " +
          " ".join(f"{h.replace('stall_', '')}={v:.0f}" for v, h in rs if v > 0))
PY
