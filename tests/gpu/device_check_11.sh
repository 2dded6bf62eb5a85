#!/usr/bin/env bash
# Issue 11 on a real GPU host (the lead runs it once on the device box: one H200, no network, no systemd):
#   PYTHONPATH=<provision's deps> bash tests/gpu/device_check_11.sh
# 1. the gpu_verify role twice without burn-in (cold, then warm: the warm wall time is the figure, goal < 3 s),
# 2. once more with a 60 s burn-in, recording the history and writing the fleet page (apply --html),
# 3. `provision report` from that run's JSON, then prints per GPU: the row, bandwidths, health lines, burn-in.
# Into $OUT (at most 8 files, flat): report-cold.json, report-warm.json, report-burn.json, fleet.html,
# fleet-report.html, history.sqlite, device_check_11.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/device_check_11.out}
BURN=${BURN_SECONDS:-60}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/device-check-11.XXXXXX)
LOG="$OUT/device_check_11.log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PROVISION_HISTORY="$OUT/history.sqlite"
exec > >(tee -a "$LOG") 2>&1

echo "== device_check_11 $(date -u +%FT%TZ) on $(hostname); python: $(command -v "$PY") $("$PY" --version 2>&1)"
"$PY" -c 'import cupy, numpy, matplotlib; print("cupy", cupy.__version__, "numpy", numpy.__version__, "matplotlib", matplotlib.__version__)' \
  || echo "WARNING: cupy/numpy/matplotlib not all importable with $PY"
nvidia-smi --query-gpu=index,name,pci.bus_id,pcie.link.gen.current,pcie.link.width.current --format=csv || true

apply() {  # apply <name> [extra args...]: the role alone, this machine, the Python that has CuPy
  local name=$1; shift
  echo "== apply ($name): $*"
  local t0 rc; t0=$(date +%s%N)
  "$PY" -m provisioner.cli apply tests/gpu/verify_only.yml --tags verify \
    -e "gpu_verify_program_dir=$WORK/lib" -e "gpu_verify_python=$(command -v "$PY")" \
    -e gpu_verify_install_cupy=never --report "$OUT/report-$name.json" "$@"
  rc=$?
  echo "== apply ($name) rc=$rc, whole command $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

apply cold
apply warm
apply burn -e "gpu_verify_burn_seconds=$BURN" --html "$OUT/fleet.html"
echo "== provision report"
"$PY" -m provisioner.cli report --from "$OUT/report-burn.json" --history "$PROVISION_HISTORY" -o "$OUT/fleet-report.html"

echo "== summary"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
from provisioner.output.gpu_table import gpu_rows_from_result, render_gpu_text

out = Path(sys.argv[1])

def load(name):
    try:
        return json.loads((out / f"report-{name}.json").read_text())
    except (OSError, ValueError) as exc:
        print(f"{name}: no report ({exc})")
        return None

def verify_task(report):
    tasks = [r for r in report["results"] if r["action"].endswith("gpu_verify") and "gpu_verify" in r["result"]]
    return tasks[-1] if tasks else None

def role_s(report):
    return sum(r["duration_s"] for r in report["results"] if r["task"].startswith("gpu_verify : "))

for name in ("cold", "warm", "burn"):
    report = load(name)
    if not report:
        continue
    task = verify_task(report)
    res = task["result"]["gpu_verify"] if task else {}
    print(f"[{name}] role {role_s(report):.2f} s (tasks: " + ", ".join(
        f"{r['task'].split(' : ')[-1][:30]} {r['duration_s']:.2f}" for r in report["results"]
        if r["task"].startswith("gpu_verify : ")) + f"); verify.py timings {res.get('timings')}")
    if task:
        print(f"[{name}] {task['status']}: {task['msg']}")

report = load("burn") or load("warm")
task = verify_task(report) if report else None
if task:
    res = task["result"]["gpu_verify"]
    print()
    print(render_gpu_text(gpu_rows_from_result("localhost", res)))
    print()
    for dev in res.get("devices") or []:
        d = dev["device"]
        print(f"GPU {d['index']} {d['name']} bus {d.get('pci_bus_id')} uuid {d.get('uuid')}")
        print(f"  bandwidth: {dev.get('bandwidth')}")
        print(f"  link: {dev.get('link')}")
        print(f"  expected: memory_copy_gbs {(dev.get('expected') or {}).get('memory_copy_gbs')}")
        print(f"  perf: " + ", ".join(f"{p['kernel']}@{p['n']} {p['gflops']/1000:.1f} TFLOP/s" for p in dev["perf"]))
        print(f"  burn-in: {json.dumps(dev.get('burn_in'))}")
    print(f"multi-GPU: {res.get('multi_gpu')}")
    print(f"kernel log: {res.get('kernel_log')}; dcgm: {res.get('dcgm')}")
    for c in res["checks"]:
        mark = {True: "ok  ", False: "FAIL", None: "n/a "}[c["ok"]]
        print(f"[{mark}] {c['name']:<18} {c.get('gpu', ''):>2} {c['detail']}")
        if c.get("fix"):
            print(f"        fix: {c['fix']}")
    for w in res.get("warnings") or []:
        print(f"warning: {w}")
PYEOF
ls -la "$OUT"
rm -rf "$WORK"
