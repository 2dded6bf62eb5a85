#!/usr/bin/env bash
# Issue 17 on a real GPU box (the device: Ubuntu 24.04, one H200, driver 580, CUDA 13.0 in
# /usr/local/cuda-13.0, cuDNN 9.14 for CUDA 13 from NVIDIA's packages). Changes nothing:
#   1. `provision facts` of localhost (the cuDNN fact now names its CUDA major and origin);
#   2. `provision plan playbooks/lab.yml` must say `keep 13.0 (installed)` and keep the cuDNN;
#   3. `provision apply playbooks/lab.yml --check --diff` must plan no toolkit, cuDNN or driver
#      package and leave /usr/local/cuda as it is (the role's profile.d and ld.so.conf files may be
#      written: they are its state);
#   4. /usr/local/cuda and the package list are compared before and after.
# Run from the repository root:  OUT=/tmp/out bash tests/gpu/device_check_17.sh
# Everything it prints is also under $OUT; it exits 1 when a check fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} COLUMNS=200
PY=${PYTHON:-python3}
if ! $PY -c 'import pydantic, jinja2, yaml, rich, paramiko' 2>/dev/null; then
  $PY -m pip install -q -e . >"$OUT/pip.txt" 2>&1 || { echo "cannot install provision's dependencies: $OUT/pip.txt"; exit 2; }
fi
provision() { $PY -m provisioner.cli "$@"; }
fail=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi; }

readlink -f /usr/local/cuda >"$OUT/usr-local-cuda.before" 2>&1
ls -l /usr/local/ | grep cuda >"$OUT/usr-local-ls.before" 2>&1
dpkg-query -W -f '${Package} ${Version}\n' 2>/dev/null | sort >"$OUT/dpkg.before"

provision facts >"$OUT/facts.json" 2>"$OUT/facts.err"; echo "facts rc=$?" >"$OUT/rc.txt"
provision plan playbooks/lab.yml >"$OUT/plan.txt" 2>&1; echo "plan rc=$?" >>"$OUT/rc.txt"
provision apply playbooks/lab.yml --check --diff --report "$OUT/check-report.json" >"$OUT/check.txt" 2>&1
echo "check rc=$?" >>"$OUT/rc.txt"

readlink -f /usr/local/cuda >"$OUT/usr-local-cuda.after" 2>&1
ls -l /usr/local/ | grep cuda >"$OUT/usr-local-ls.after" 2>&1
dpkg-query -W -f '${Package} ${Version}\n' 2>/dev/null | sort >"$OUT/dpkg.after"

{
echo "== rc"; cat "$OUT/rc.txt"
echo "== plan"; cat "$OUT/plan.txt"
check "plan exits 0" 'grep -qx "plan rc=0" "$OUT/rc.txt"'
check "plan keeps CUDA 13.0" 'tr -s " \n" " " <"$OUT/plan.txt" | grep -q "cuda keep 13.0 (installed) why installed at /usr/local/cuda-13.0; driver 580"'
check "plan keeps cuDNN 9 for CUDA 13" 'tr -s " \n" " " <"$OUT/plan.txt" | grep -Eq "cudnn keep 9\.[0-9.]+ \(installed\) why installed \(NVIDIA packages libcudnn9-cuda-13\), for CUDA 13.x"'
check "plan: driver kept" 'tr -s " \n" " " <"$OUT/plan.txt" | grep -q "driver keep installed"'
echo "== gpu_kernel facts (modules, Secure Boot, kernels, nvidia module)"
$PY -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['localhost'].get('gpu_kernel'), indent=1))" "$OUT/facts.json" 2>&1
check "facts: cuDNN built for CUDA 13" '$PY -c "import json,sys; c=json.load(open(sys.argv[1]))[\"localhost\"][\"cudnn\"]; sys.exit(0 if 13 in c[\"cuda_majors\"] else 1)" "$OUT/facts.json" 2>/dev/null || grep -q "\"cuda_majors\": \[\s*13" "$OUT/facts.json"'
echo "== apply --check --diff (tail)"; tail -n 40 "$OUT/check.txt"
check "apply --check exits 0" 'grep -qx "check rc=0" "$OUT/rc.txt"'
$PY - "$OUT/check-report.json" >"$OUT/check-verdict.txt" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
bad = []
for r in report["results"]:
    role = r["task"].split(" : ")[0]
    if role not in ("nvidia_driver", "cuda_toolkit", "cudnn") or r["status"] != "changed":
        continue
    # the role's own state files (profile.d, ld.so.conf) and their ldconfig handler may change, and
    # nvidia-persistenced may be enabled (the default on a box without a display manager)
    if r["action"] in ("template", "copy") or (r["action"] == "command" and r.get("handler")):
        continue
    if r["action"] in ("service", "systemd") and r["task"].endswith("Enable and start nvidia-persistenced"):
        print(f'note: {r["task"]}: {r["msg"]}')
        continue
    bad.append(f'{r["task"]} [{r["action"]}]: {r["msg"]}')
print("\n".join(bad) or "no toolkit, cuDNN or driver change planned")
sys.exit(1 if bad else 0)
EOF
verdict=$?
cat "$OUT/check-verdict.txt"
check "apply --check plans no toolkit/cuDNN/driver change and no /usr/local/cuda repoint" '[ "$verdict" = 0 ]'
check "/usr/local/cuda unchanged" 'cmp -s "$OUT/usr-local-cuda.before" "$OUT/usr-local-cuda.after" && cmp -s "$OUT/usr-local-ls.before" "$OUT/usr-local-ls.after"'
check "no package changed" 'cmp -s "$OUT/dpkg.before" "$OUT/dpkg.after"'
} 2>&1 | tee "$OUT/summary.txt"
grep -q "^FAIL" "$OUT/summary.txt" && exit 1
exit 0
