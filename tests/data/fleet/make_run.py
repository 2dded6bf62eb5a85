"""Write run.json: a recorded-style `provision apply --report` of five lab hosts, for the fleet page tests.

Run from the repository root: python tests/data/fleet/make_run.py. What is real and what is edited:
- Every GPU host's ids, versions, ECC/remap/clock state come from the H200 captures in
  tests/data/h200-ubuntu2404 (device box, 2026-12-04), run through verify.py's own parsers and checks.
- Matmul figures are the H200's measured ones (shared/seed/SUMMARY.md: naive 5.3, tiled 8.7, cuBLAS
  51.4 TFLOP/s at 4096). Memory and PCIe bandwidth figures are NOT measured yet (the device run of
  tests/gpu/device_check_11.sh gives them): 4150 GB/s copy and 53-55 GB/s pinned are placeholders in the
  expected band.
- EDITED: lab-h200-02 throttles (HW Thermal Slowdown active, burn-in clock 1980 -> 1410 MHz at 91 C,
  cuBLAS 38 TFLOP/s); lab-h200-03 trained at Gen3 x4 (H2D 3.2 GB/s). lab-cpu-01 has no GPU (the
  program's real answer on this CI machine shape), lab-gone is unreachable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
from provisioner.gpu import verify  # noqa: E402

H200 = REPO / "tests" / "data" / "h200-ubuntu2404"


def capture(name: str) -> str:
    lines = (H200 / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("$ ", "rc="))) + "\n"


def gpu_result(host: str, smi_q: str, link: dict, bandwidth: dict, cublas: float, burn_lines: str | None,
               rates: tuple[float, float, float]) -> dict:
    table = yaml.safe_load((REPO / "provisioner" / "data" / "gpu_perf.yml").read_text())
    (health,) = verify.gpu_health_from_smi_q(smi_q)
    expected = verify.lookup_expected_perf(health["name"], table)
    perf = [verify._perf_row("naive", 1024, 0.42, 30), verify._perf_row("tiled", 1024, 0.24, 30),
            verify._perf_row("cublas", 1024, 0.057, 300), verify._perf_row("naive", 4096, 25.8, 3),
            verify._perf_row("tiled", 4096, 15.9, 4), verify._perf_row("cublas", 4096, 2 * 4096**3 / cublas / 1e6, 20)]
    device = {"device": {"index": 0, "name": health["name"], "compute_capability": "9.0", "pci_bus_id": health["bus_id"],
                         "uuid": health["uuid"], "memory_total_mib": 143771},
              "perf": perf, "bandwidth": dict(bandwidth, d2d_bytes_counted="read+write"), "link": link,
              "expected": expected,
              "correctness": {"exact_2048": True, "mismatches": 0, "tiled_mismatches": 0}}
    checks = [verify.check("gpu_present", True, f"1 NVIDIA GPU(s) on the PCI bus: {health['bus_id']} [10de:2335]"),
              verify.check("driver", True, "driver 580.159.04, CUDA 13.0 (nvidia-smi)"),
              verify.check("cupy", True, "CuPy 14.2.0 (cupy-cuda13x 14.2.0)"),
              verify.check("kernel_compile", True, "NVRTC compiled the naive and tiled kernels in 0.004 s"),
              verify.check("matmul_exact_2048", True, "1024x1024 ones x twos: 0 naive and 0 tiled elements differ"),
              verify.memory_check(0, bandwidth, expected), verify.link_check(0, bandwidth, link),
              verify.xid_check(health["bus_id"], 0, verify.parse_xid(capture("dmesg-nvidia.txt"))),
              verify.ecc_check(0, health), verify.remap_check(0, health), verify.clocks_check(0, health)]
    if burn_lines is not None:
        samples = verify.parse_burn_samples(burn_lines)[health["bus_id"]]
        device["burn_in"] = verify.analyse_burn(samples, 60.0, *rates)
        checks.append(verify.burn_check(0, device["burn_in"]))
    for c in checks[5:]:
        c["gpu"] = 0
    checks += verify.multi_gpu_checks({"skipped": verify.multi_gpu_skip_reason([0])})
    failed = [c for c in checks if c["ok"] is False]
    diagnosis = ({"code": failed[0]["name"] + "_failed", "reason": f"{failed[0]['name']}: {failed[0]['detail']}",
                  "fix": failed[0]["fix"]} if failed else None)
    return {"schema": 1, "ok": not failed, "exit_code": 1 if failed else 0,
            "host": {"hostname": host, "python": "3.12.3", "driver_version": "580.159.04",
                     "cuda_driver_version": "13.0", "nvcc_release": "13.0", "cupy": "14.2.0"},
            "gpus": [{"index": 0, "name": health["name"]}], "device": device["device"], "devices": [device],
            "multi_gpu": {"skipped": verify.multi_gpu_skip_reason([0])}, "checks": checks, "perf": perf,
            "expected": expected, "warnings": [], "diagnosis": diagnosis, "kernel_log": "dmesg"}


def burn(clocks: list[int], reasons: str, temp: int) -> str:
    return "".join(f"0, 00000000:00:06.0, {c}, 1980, {temp}, 655.0, 700.00, {reasons}\n" for c in clocks)


def main() -> None:
    smi_q = capture("nvidia-smi-q.txt")
    full = {"gen_current": 5, "gen_max": 5, "width_current": 16, "width_max": 16}
    good_bw = {"d2d_gbs": 4150.0, "h2d_gbs": 53.4, "d2h_gbs": 54.9}
    hot_q = smi_q.replace("Idle                                           : Active",
                          "Idle                                           : Not Active").replace(
        "HW Thermal Slowdown                        : Not Active",
        "HW Thermal Slowdown                        : Active", 1)
    hosts = {
        "lab-h200-01": gpu_result("lab-h200-01", smi_q, full, good_bw, 51400.0,
                                  burn([1980] * 60, "0x0000000000000000", 62), (51.3, 51.2, 51.2)),
        "lab-h200-02": gpu_result("lab-h200-02", hot_q, full, good_bw, 38000.0,
                                  burn([1980] * 12, "0x0000000000000000", 80)
                                  + burn([1410] * 48, "0x0000000000000040", 91), (50.8, 36.5, 39.1)),
        "lab-h200-03": gpu_result("lab-h200-03", smi_q, dict(full, gen_current=3, width_current=4),
                                  {"d2d_gbs": 4140.0, "h2d_gbs": 3.2, "d2h_gbs": 3.3}, 51300.0, None, (0, 0, 0)),
    }
    no_gpu = {"schema": 1, "ok": False, "exit_code": 2, "host": {"hostname": "lab-cpu-01"}, "gpus": [], "devices": [],
              "device": None, "checks": [verify.check("gpu_present", False, "0 NVIDIA GPU(s) on the PCI bus")],
              "perf": [], "warnings": [], "diagnosis": verify.diagnose("No NVIDIA GPU on this host: no PCI device "
                                                                        "with vendor 0x10de")}
    results = [{"host": h, "task": "gpu_verify : Verify the GPU", "action": "gpu_verify", "status": "ok",
                "result": {"gpu_verify": r, "gpu_ok": True}} for h, r in hosts.items()]
    results.append({"host": "lab-cpu-01", "task": "gpu_verify : Verify the GPU", "action": "gpu_verify",
                    "status": "failed", "result": {"gpu_verify": no_gpu, "gpu_ok": False}})
    recap = {h: {"ok": 3, "changed": 0, "failed": 0, "unreachable": 0} for h in hosts}
    recap["lab-cpu-01"] = {"ok": 2, "changed": 0, "failed": 1, "unreachable": 0}
    recap["lab-gone"] = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 1}
    run = {"tool": "provision", "version": "0.1.0", "playbook": "playbooks/lab.yml", "inventory": "lab.yml",
           "check_mode": False, "elapsed_s": 4.2, "interrupted": False, "recap": recap, "results": results}
    (Path(__file__).parent / "run.json").write_text(json.dumps(run, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
