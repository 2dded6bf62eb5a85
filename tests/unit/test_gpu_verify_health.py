"""GPU health, links, memory, burn-in and multi-GPU logic of verify.py, from captures of a real H200.

The captures (tests/data/h200-ubuntu2404, taken on the device box on 2026-12-04) show a healthy idle GPU.
Faults are made by editing copies of them (said at each place) or by synthetic log lines (named so).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy
import pytest
import yaml

from provisioner.gpu import verify
from provisioner.output.gpu_table import gpu_rows_from_results, render_gpu_text
from tests.unit.test_gpu_verify import fake_cupy

REPO = Path(__file__).resolve().parents[2]
H200 = REPO / "tests" / "data" / "h200-ubuntu2404"


def capture(name: str) -> str:
    """A capture without its '$ command' first line and 'rc=N' last line."""
    lines = (H200 / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("$ ", "rc="))) + "\n"


@pytest.fixture(scope="module")
def perf_table() -> dict[str, Any]:
    return yaml.safe_load((REPO / "provisioner" / "data" / "gpu_perf.yml").read_text())


@pytest.fixture()
def h200() -> dict[str, Any]:
    (gpu,) = verify.gpu_health_from_smi_q(capture("nvidia-smi-q.txt"))
    return gpu


# --- nvidia-smi -q -------------------------------------------------------------------------------------


def test_the_h200s_ids_link_clocks_and_memory_health_are_read(h200: dict[str, Any]) -> None:
    assert h200["bus_id"] == "0000:00:06.0" and h200["name"] == "NVIDIA H200"
    assert h200["uuid"] == "GPU-78f3a913-2b58-9467-2a00-1e1f0a4bdfa3" and h200["minor"] == 0
    assert h200["link"] == {"gen_current": 5, "gen_max": 5, "width_current": 16, "width_max": 16}
    assert (h200["clock_sm_mhz"], h200["clock_max_sm_mhz"]) == (345, 1980)
    assert h200["clock_events_active"] == ["Idle"]
    assert h200["ecc_mode"] == "Enabled"
    assert h200["ecc_volatile"]["dram_uncorrectable"] == 0 and h200["ecc_aggregate"]["sram_correctable"] == 0
    assert h200["remapped_rows"]["Pending"] == "No"
    assert (h200["temperature_c"], h200["power_limit_w"]) == (36, 700.0)


def test_a_healthy_idle_h200_passes_every_health_line(h200: dict[str, Any]) -> None:
    assert verify.ecc_check(0, h200)["ok"] is True
    assert verify.remap_check(0, h200)["ok"] is True
    clocks = verify.clocks_check(0, h200)
    assert clocks["ok"] is True and "SM 345 of 1980 MHz" in clocks["detail"] and "normal" in clocks["detail"]


def test_uncorrectable_ecc_and_pending_remaps_fail_with_their_fix() -> None:
    """Edited copy of the capture: 2 volatile DRAM uncorrectable errors, a row remap pending."""
    text = capture("nvidia-smi-q.txt")
    vol = text.index("Volatile")
    edited = text[:vol] + text[vol:].replace("DRAM Uncorrectable                         : 0",
                                             "DRAM Uncorrectable                         : 2", 1)
    edited = edited.replace("Pending                                        : No",
                            "Pending                                        : Yes")
    (gpu,) = verify.gpu_health_from_smi_q(edited)
    ecc = verify.ecc_check(3, gpu)
    assert ecc["ok"] is False and "uncorrectable 2 volatile / 0 aggregate" in ecc["detail"]
    assert "nvidia-smi -r" in ecc["fix"]
    remap = verify.remap_check(3, gpu)
    assert remap["ok"] is False and "pending Yes" in remap["detail"] and "reboot" in remap["fix"]


def test_a_thermal_slowdown_fails_the_clocks_line() -> None:
    """Edited copy of the capture: the GPU busy and HW Thermal Slowdown active."""
    text = capture("nvidia-smi-q.txt").replace(
        "Idle                                           : Active",
        "Idle                                           : Not Active").replace(
        "HW Thermal Slowdown                        : Not Active",
        "HW Thermal Slowdown                        : Active", 1)
    (gpu,) = verify.gpu_health_from_smi_q(text)
    clocks = verify.clocks_check(0, gpu)
    assert clocks["ok"] is False and "HW Thermal Slowdown" in clocks["detail"] and "airflow" in clocks["fix"]


def test_the_query_csv_with_link_and_throttle_fields() -> None:
    (row,) = verify.parse_nvidia_smi_query(capture("nvidia-smi-query-link.csv"))
    assert row["pcie_link_gen_current"] == 5 and row["pcie_link_width_max"] == 16
    assert verify.normalize_bus_id(row["pci_bus_id"]) == "0000:00:06.0"
    assert verify.throttle_names(row["clocks_event_reasons_active"]) == ["Idle"]
    assert verify.throttle_names("0x0000000000000044") == ["SW Power Cap", "HW Thermal Slowdown"]
    assert verify.throttle_names("garbage") == []


# --- PCIe link and memory bandwidth --------------------------------------------------------------------


def test_the_sysfs_link_of_the_h200(tmp_path: Path) -> None:
    """A sysfs tree holding the captured values for the H200's slot."""
    values = capture("sysfs-link.txt").splitlines()
    slot = tmp_path / Path(values[0]).name
    slot.mkdir()
    for name, value in zip(("class", "device", "current_link_speed", "current_link_width",
                            "max_link_speed", "max_link_width"), values[1:7]):
        (slot / name).write_text(value + "\n")
    link = verify.read_sysfs_link("0000:00:06.0", str(tmp_path))
    assert link == {"gen_current": 5, "gen_max": 5, "width_current": 16, "width_max": 16}
    assert verify.read_sysfs_link("0000:99:00.0", str(tmp_path))["gen_current"] is None


def test_what_a_link_carries() -> None:
    assert verify.pcie_gbs(5, 16) == 63.02
    assert verify.pcie_gbs(3, 4) == 3.94
    assert verify.pcie_gbs(2, 16) == 8.0
    assert verify.pcie_gbs(None, 16) is None
    assert verify.pcie_gen_from_speed("8.0 GT/s PCIe") == 3 and verify.pcie_gen_from_speed("Unknown") is None


GEN5X16 = {"gen_current": 5, "gen_max": 5, "width_current": 16, "width_max": 16}


def test_a_full_link_at_full_speed_passes() -> None:
    line = verify.link_check(0, {"h2d_gbs": 53.1, "d2h_gbs": 54.0}, GEN5X16)
    assert line["ok"] is True and "of 63.02 GB/s for Gen5 x16" in line["detail"]


def test_a_degraded_link_is_named() -> None:
    """Edited figures: the H200 as if it trained at Gen3 x4 in a wrong slot."""
    link = dict(GEN5X16, gen_current=3, width_current=4)
    line = verify.link_check(1, {"h2d_gbs": 3.2, "d2h_gbs": 3.3}, link)
    assert line["ok"] is False
    assert "Gen3 x4 where Gen5 x16 is possible" in line["detail"] and "3.94 GB/s of 63.02" in line["detail"]
    assert "x16 slot" in line["fix"]


def test_a_full_link_moving_too_little_points_elsewhere() -> None:
    line = verify.link_check(0, {"h2d_gbs": 12.0, "d2h_gbs": 11.0}, GEN5X16)
    assert line["ok"] is False and "NUMA" in line["fix"]
    assert verify.link_check(0, {"error": "x"}, {})["ok"] is None


def test_memory_copy_against_the_h200_figure(perf_table: dict[str, Any]) -> None:
    expected = verify.lookup_expected_perf("NVIDIA H200", perf_table)
    assert expected is not None and expected["memory_copy_gbs"] == 4320
    good = verify.memory_check(0, {"d2d_gbs": 4150.0}, expected)
    assert good["ok"] is True and "read+write" in good["detail"] and "band 3024-4968" in good["detail"]
    slow = verify.memory_check(0, {"d2d_gbs": 2100.0}, expected)
    assert slow["ok"] is False and "memory clocks" in slow["fix"]
    assert verify.memory_check(0, {"d2d_gbs": 900.0}, None)["ok"] is None
    assert verify.memory_check(0, {"error": "OutOfMemoryError"}, expected)["ok"] is None
    for row in perf_table["gpus"]:
        assert 0.8 * row["memory_gbs"] <= row["memory_copy_gbs"] <= row["memory_gbs"], row


# --- the kernel log --------------------------------------------------------------------------------------

# SYNTHETIC lines, in the driver's format (NVIDIA's Xid documentation); no GPU here has logged them.
SYNTHETIC_XID = """\
[ 1042.118200] NVRM: Xid (PCI:0000:00:06): 79, pid=0, name=kworker, GPU has fallen off the bus.
[ 1050.000001] NVRM: Xid (PCI:0000:3b:00): 94, pid=4242, name=python3, Ch 00000008
[ 1051.000001] NVRM: Xid (PCI:0000:00:06): 48, pid=4242, name=python3, An uncorrectable double bit error
"""


def test_the_captured_kernel_log_has_no_xid() -> None:
    log = capture("dmesg-nvidia.txt")
    assert "NVRM" in log and verify.parse_xid(log) == []
    assert verify.kernel_log_readable(0, log, "")
    line = verify.xid_check("0000:00:06.0", 0, [])
    assert line["ok"] is True and "since boot" in line["detail"]


def test_synthetic_xid_lines_are_charged_to_their_gpu() -> None:
    xids = verify.parse_xid(SYNTHETIC_XID)
    assert [(x["bus_id"], x["xid"]) for x in xids] == [("0000:00:06.0", 79), ("0000:3b:00.0", 94),
                                                       ("0000:00:06.0", 48)]
    mine = verify.xid_check("0000:00:06.0", 0, xids)
    assert mine["ok"] is False and "2 Xid line(s)" in mine["detail"]
    assert "Xid 48: double-bit ECC error" in mine["detail"] and "fallen off the bus" in mine["detail"]
    assert "power cables" in mine["fix"] and "RMA" in mine["fix"]
    assert verify.xid_check("0000:86:00.0", 1, xids)["ok"] is True


def test_an_unreadable_kernel_log_is_said_so() -> None:
    assert not verify.kernel_log_readable(1, "", "dmesg: read kernel buffer failed: Operation not permitted")
    line = verify.xid_check("0000:00:06.0", 0, None)
    assert line["ok"] is None and "kernel log not readable" in line["detail"]


def test_dcgmi_verdict() -> None:
    """A SYNTHETIC `dcgmi diag -r 1` table (the device box has no DCGM), in the layout DCGM 3 prints."""
    text = ("+---------------------------+------------------------------------------------+\n"
            "| Diagnostic                | Result                                         |\n"
            "|-----  Deployment  --------+------------------------------------------------|\n"
            "| Denylist                  | Pass                                           |\n"
            "| NVML Library              | Pass                                           |\n"
            "| Persistence Mode          | Fail                                           |\n")
    parsed = verify.parse_dcgmi_diag(text)
    assert parsed["verdict"] == "Fail" and parsed["tests"]["Persistence Mode"] == "Fail"
    assert verify.parse_dcgmi_diag(text.replace("Fail", "Pass"))["verdict"] == "Pass"
    assert verify.parse_dcgmi_diag("dcgmi: command not found")["verdict"] is None


# --- burn-in ----------------------------------------------------------------------------------------------


def burn_lines(clocks: list[int], reasons: str = "0x0000000000000000", temp: int = 60) -> str:
    """Sampler output in the format of the captured query (bus id, clocks, 700 W limit), figures edited."""
    return "".join(f"0, 00000000:00:06.0, {c}, 1980, {temp}, 650.1, 700.00, {reasons}\n" for c in clocks)


def test_a_steady_burn_in_passes() -> None:
    samples = verify.parse_burn_samples(burn_lines([1980] * 20))["0000:00:06.0"]
    burn = verify.analyse_burn(samples, 20.0, 50.1, 49.8, 49.9)
    assert burn["problems"] == [] and burn["clock_sm_median_mhz"] == 1980 and burn["tflops"] == 49.9
    line = verify.burn_check(0, burn)
    assert line["ok"] is True and "49.9 TFLOP/s sustained" in line["detail"] and "up to 60 C" in line["detail"]


def test_a_throttling_burn_in_is_flagged() -> None:
    """Edited figures: the clock falls from 1980 to 1410 MHz with HW Thermal Slowdown (0x40) set."""
    text = burn_lines([1980] * 5) + burn_lines([1410] * 15, "0x0000000000000040", temp=91)
    samples = verify.parse_burn_samples(text)["0000:00:06.0"]
    burn = verify.analyse_burn(samples, 20.0, 50.0, 36.0, 39.0)
    joined = "; ".join(burn["problems"])
    assert "thermal throttling (HW Thermal Slowdown)" in joined
    assert "SM clock sags under load: 1980 MHz first, 1410 MHz later" in joined
    assert "throughput sags: 50.0 TFLOP/s first, 36.0 later" in joined
    line = verify.burn_check(0, burn)
    assert line["ok"] is False and "airflow" in line["fix"] and "up to 91 C" in line["detail"]


def test_idle_samples_before_the_load_are_not_counted() -> None:
    text = burn_lines([345], "0x0000000000000001") + burn_lines([1980] * 10)
    burn = verify.analyse_burn(verify.parse_burn_samples(text)["0000:00:06.0"], 11.0, 50.0, 50.0, 50.0)
    assert burn["problems"] == [] and burn["clock_sm_min_mhz"] == 1980 and burn["samples"] == 11


# --- devices and the multi-GPU paths ------------------------------------------------------------------------


def test_devices_are_every_visible_one_or_those_asked_for() -> None:
    assert verify.select_devices([], 4) == [0, 1, 2, 3]
    assert verify.select_devices([2, 0, 2], 4) == [2, 0]
    with pytest.raises(ValueError, match="not among the 1 visible"):
        verify.select_devices([1], 1)
    args = verify.parse_args(["--devices", "0,1", "--burn-seconds", "60"])
    assert args.devices == [0, 1] and args.burn_seconds == 60
    assert verify.parse_args(["--device", "3"]).devices == [3]


def test_on_one_gpu_the_peer_and_nccl_paths_skip_with_the_reason() -> None:
    assert verify.multi_gpu_skip_reason([0]) == "needs 2 or more GPUs; 1 visible to this run"
    multi = verify.run_multi_gpu(None, None, [0])  # returns before touching CuPy
    lines = verify.multi_gpu_checks(multi)
    assert [(c["name"], c["ok"]) for c in lines] == [("peer_access", None), ("nccl_all_reduce", None)]
    assert all("needs 2 or more GPUs" in c["detail"] for c in lines)


def test_two_gpu_results_become_checklist_lines() -> None:
    """What run_multi_gpu returns on two GPUs (figures made up: no 2-GPU host here), judged."""
    multi = {"devices": [0, 1], "peer_access": [[None, True], [True, None]],
             "peer_bandwidth": [{"src": 0, "dst": 1, "gbs": 370.2}, {"src": 1, "dst": 0, "gbs": 368.9}],
             "all_reduce": {"ranks": 2, "elements": 1048576, "expected": 3.0, "wrong_elements": 0, "ms": 0.9,
                            "nccl": "2.28.9"}}
    peer, reduce_ = verify.multi_gpu_checks(multi)
    assert peer["ok"] is True and "0->1 370.2 GB/s" in peer["detail"]
    assert reduce_["ok"] is True and "NCCL 2.28.9 all-reduce over 2 GPUs: 0 of 1048576" in reduce_["detail"]
    multi["peer_access"] = [[None, False], [True, None]]
    multi["all_reduce"] = {"error": "NcclError: NCCL_ERROR_UNHANDLED_CUDA_ERROR"}
    peer, reduce_ = verify.multi_gpu_checks(multi)
    assert peer["ok"] is False and "[(0, 1)]" in peer["detail"]
    assert reduce_["ok"] is False and "nvidia-nccl-cu13" in reduce_["fix"]
    assert verify._nccl_version(22809) == "2.28.9" and verify._nccl_version(2708) == "2.7.8"


def test_bus_ids_of_nvidia_smi_sysfs_and_the_kernel_log_compare_equal() -> None:
    assert verify.normalize_bus_id("00000000:3B:00.0") == "0000:3b:00.0"
    assert verify.normalize_bus_id("0000:3b:00.0") == "0000:3b:00.0"
    assert verify.normalize_bus_id(None) is None


# --- the whole program on the captured H200, CuPy faked (CI has no GPU) ---------------------------------------


def test_a_host_like_the_captured_h200_gets_per_gpu_health_lines_and_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, perf_table: dict[str, Any]
) -> None:
    """The captured `nvidia-smi -q` and dmesg behind fake nvidia-smi/dmesg programs; FakeCupy for the GPU."""
    (tmp_path / "q.txt").write_text(capture("nvidia-smi-q.txt"))
    (tmp_path / "dmesg.txt").write_text(capture("dmesg-nvidia.txt"))
    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\ncase "$1" in --query-gpu=*) echo "0, NVIDIA H200, 0, 143771, 0, 36, 580.159.04";;\n'
                   f'  *) cat {tmp_path / "q.txt"};; esac\n')
    dmesg = tmp_path / "dmesg"
    dmesg.write_text(f"#!/bin/sh\ncat {tmp_path / 'dmesg.txt'}\n")
    for prog in (smi, dmesg):
        prog.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    cp = fake_cupy()
    cp.cuda.runtime.getDeviceProperties = lambda i: {"name": b"NVIDIA H200", "major": 9, "minor": 0}
    cp.cuda.runtime.getDeviceCount = lambda: 1
    cp.cuda.Device = lambda i: type("D", (), {"use": lambda self: None, "pci_bus_id": "0000:00:06.0"})()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "numpy", numpy)
    table = tmp_path / "gpu_perf.json"
    table.write_text(json.dumps(perf_table))

    result, _code = verify.verify(verify.parse_args(["--json", "--sizes", "64", "--no-rust",
                                                     "--perf-table", str(table)]))

    (device,) = result["devices"]
    assert device["device"]["pci_bus_id"] == "0000:00:06.0"
    assert device["device"]["uuid"] == "GPU-78f3a913-2b58-9467-2a00-1e1f0a4bdfa3"
    assert "error" in device["bandwidth"]  # FakeCupy has no copies: said, not invented
    assert result["kernel_log"] == "dmesg" and result["multi_gpu"]["skipped"].startswith("needs 2")
    lines = {(c["name"], c.get("gpu")): c for c in result["checks"]}
    for name in ("xid", "ecc", "remapped_rows", "clocks"):
        assert lines[(name, 0)]["ok"] is True, lines[(name, 0)]
    assert lines[("memory_bw", 0)]["ok"] is None and lines[("peer_access", None)]["ok"] is None
    assert result["expected"]["model"] == "H200"
    (row,) = gpu_rows_from_results([("h200", result)])
    assert (row.host, row.index, row.gpu, row.bus_id) == ("h200", 0, "NVIDIA H200", "0000:00:06.0")
    assert "0000:00:06.0" in render_gpu_text([row])
    json.dumps(result)


def test_two_gpus_of_a_host_are_two_rows_and_a_bad_link_warns_only_its_own() -> None:
    """A recorded-style result with two devices (made up from the H200 capture's ids, edited)."""
    def dev(i: int, bus: str) -> dict[str, Any]:
        return {"device": {"index": i, "name": "NVIDIA H200", "pci_bus_id": bus},
                "perf": [{"kernel": "cublas", "n": 4096, "ms": 2.67, "gflops": 51400.0 - i}]}
    result = {"ok": True, "exit_code": 0, "devices": [dev(0, "0000:00:06.0"), dev(1, "0000:00:07.0")],
              "checks": [{"name": "driver", "ok": True},
                         {"name": "pcie_link", "ok": True, "gpu": 0, "detail": "fine"},
                         {"name": "pcie_link", "ok": False, "gpu": 1, "detail": "Gen3 x4 where Gen5 x16 is possible",
                          "fix": "move it"}],
              "warnings": [], "diagnosis": None}
    first, second = gpu_rows_from_results([("box", result)])
    assert (first.index, first.status, first.checks_passed, first.cublas_gflops) == (0, "ok", 2, 51400.0)
    assert (second.index, second.status, second.bus_id) == (1, "warning", "0000:00:07.0")
    assert second.notes[0].startswith("pcie_link: Gen3 x4 where Gen5 x16 is possible")


def test_two_gpus_seen_by_cuda_are_each_proved_and_a_hidden_third_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FakeCupy with two devices; nvidia-smi -q edited to list three GPUs (the captured H200's section
    copied under two more bus ids), the third hidden from CUDA as CUDA_VISIBLE_DEVICES would hide it."""
    q = capture("nvidia-smi-q.txt")
    head, section = q.split("GPU 00000000:00:06.0\n", 1)
    three = head + "".join(f"GPU 00000000:00:{slot}.0\n" + section.replace(
        "GPU-78f3a913", f"GPU-{slot}f3a913") for slot in ("06", "07", "08"))
    (tmp_path / "q.txt").write_text(three)
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\ncase "$1" in --query-gpu=*) exit 0;; *) cat {tmp_path / "q.txt"};; esac\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    cp = fake_cupy()
    buses = {0: "0000:00:06.0", 1: "0000:00:07.0"}
    cp.cuda.runtime.getDeviceProperties = lambda i: {"name": b"NVIDIA H200", "major": 9, "minor": 0}
    cp.cuda.runtime.getDeviceCount = lambda: 2
    cp.cuda.runtime.deviceCanAccessPeer = lambda i, j: 1
    cp.cuda.Device = lambda i: type("D", (), {"use": lambda self: None, "pci_bus_id": buses[i]})()
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setitem(sys.modules, "cupy.cuda", None)  # no NCCL in FakeCupy: the all-reduce must say so

    result, _code = verify.verify(verify.parse_args(["--json", "--sizes", "64", "--no-rust"]))

    assert [d["device"]["pci_bus_id"] for d in result["devices"]] == ["0000:00:06.0", "0000:00:07.0"]
    assert [d["device"]["uuid"][:6] for d in result["devices"]] == ["GPU-06", "GPU-07"]
    ecc = [c["gpu"] for c in result["checks"] if c["name"] == "ecc"]
    assert ecc == [0, 1]  # 0000:00:08.0 is not CUDA's to test here
    multi = result["multi_gpu"]
    assert multi["peer_access"] == [[None, True], [True, None]]
    assert "error" in multi["peer_bandwidth"] and "error" in multi["all_reduce"]  # reported, not raised
    lines = {c["name"]: c for c in result["checks"] if c["name"] in ("peer_access", "nccl_all_reduce")}
    assert lines["peer_access"]["ok"] is True and lines["nccl_all_reduce"]["ok"] is False
    rows = gpu_rows_from_results([("box", result)])
    assert [(r.index, r.bus_id) for r in rows] == [(0, "0000:00:06.0"), (1, "0000:00:07.0")]


class _FakeDevice:
    """cupy.cuda.Device for FakeCupy: a context manager with the captured H200's bus id."""

    pci_bus_id = "0000:00:06.0"

    def __init__(self, index: int) -> None:
        self.index = index

    def use(self) -> None:
        pass

    def __enter__(self) -> _FakeDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_the_burn_in_loop_samples_and_judges_each_gpu(tmp_path: Path) -> None:
    """burn_in's plumbing on FakeCupy (NumPy matmuls on the CPU) with a fake `nvidia-smi -lms` printing
    lines in the captured query's format; the figures are the fake's, the verdict logic is the real one."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\nwhile true; do echo "0, 00000000:00:06.0, 1980, 1980, 61, 650.0, 700.00, '
                   '0x0000000000000000"; sleep 0.2; done\n')
    smi.chmod(0o755)
    cp = fake_cupy()
    cp.empty_like = numpy.empty_like
    cp.cuda.Device = _FakeDevice
    burns = verify.burn_in(cp, numpy, [0], 1.0, str(smi), n=512)
    burn = burns[0]
    assert burn["samples"] >= 2 and burn["clock_sm_median_mhz"] == 1980 and burn["temperature_max_c"] == 61
    assert burn["tflops"] > 0 and burn["seconds"] >= 1.0 and burn["reasons_seen"] == []
    # The fake's throughput is the loaded CPU's and may wobble; the clock samples are steady.
    assert not [p for p in burn["problems"] if "clock" in p or "throttling" in p]
    assert "TFLOP/s sustained, SM median 1980" in verify.burn_check(0, burn)["detail"]
    no_sampler = verify.burn_in(cp, numpy, [0], 0.2, None, n=512)[0]
    assert no_sampler["samples"] == 0 and no_sampler["clock_sm_median_mhz"] is None  # no nvidia-smi: no samples
    assert not [p for p in no_sampler["problems"] if "clock" in p or "throttling" in p]
