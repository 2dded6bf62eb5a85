"""gpu_preflight: check the requested GPU stack against this host's facts before anything changes.

Controller side, no round trip: reads the GPU roles' variables (cuda_version, cudnn_method,
nvidia_driver_branch, rocm_version, gpu_stack, gpu_force...) and the host's gathered facts,
asks `provisioner.compat.plan_host` for the plan, and fails the host with one line per
refusal. The plan comes back as the task's data, so `register: gpu_plan` gives the roles
(and `provision plan`) the versions, methods, package names and URLs to use.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from provisioner import compat

if TYPE_CHECKING:
    from provisioner.executor.task import ActionContext

# The request keys compat.plan_host understands, and the role variable each one comes from.
REQUEST_VARS = {
    "gpu_stack": "gpu_stack",
    "cuda_method": "cuda_method",
    "nvidia_driver_branch": "nvidia_driver_branch",
    "cudnn_version": "cudnn_version",
    "cudnn_method": "cudnn_method",
    "rocm_version": "rocm_version",
    "force": "gpu_force",
}

# Where NVIDIA publishes each cuDNN release's archive names and sha256 sums.
REDIST_JSON = "https://developer.download.nvidia.com/compute/cudnn/redist/redistrib_{release}.json"


@dataclass
class ARGS:
    """Any request key given here overrides the variable of the same name (for one-off checks)."""

    gpu_stack: str | None = None
    cuda_version: Any = None
    cuda_versions: list[Any] | None = None
    cuda_method: str | None = None
    nvidia_driver_branch: Any = None
    cudnn_version: Any = None
    cudnn_method: str | None = None
    rocm_version: Any = None
    gpu_force: bool | None = None


def _text(value: Any) -> str | None:
    """A version as text: YAML reads an unquoted 12.4 as a float and 550 as an int."""
    if value is None or value == "" or value is False:
        return None
    return str(value)


def cuda_versions(variables: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(the default toolkit, every toolkit to install) from cuda_default_version/cuda_versions/cuda_version."""
    listed = variables.get("cuda_versions")
    versions = [v for v in (_text(x) for x in (listed or [])) if v]
    default = _text(variables.get("cuda_default_version")) or (versions[-1] if versions else None) \
        or _text(variables.get("cuda_version"))
    if default and default not in versions:
        versions.append(default)
    return default, versions


def build_request(variables: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The compat request for this host's variables, and every CUDA version it asks for."""
    default, versions = cuda_versions(variables)
    request: dict[str, Any] = {"cuda_version": default}
    for key, var in REQUEST_VARS.items():
        value = variables.get(var)
        if value is None or value == "":
            continue
        if key in ("nvidia_driver_branch", "cudnn_version", "rocm_version"):
            value = _text(value)
        request[key] = value
    return request, versions


def plan_for(facts: dict[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    """The whole GPU plan of one host as plain data: compat's plan for the default toolkit,
    one entry per toolkit in `cuda_toolkits`, and every refusal as "component: reason"."""
    request, versions = build_request(variables)
    plan, refusals = compat.plan_host(facts, request)
    out = asdict(plan)
    out["request"] = request
    toolkits: list[dict[str, Any]] = []
    reasons = [_reason(r) for r in refusals]
    if plan.cuda_version:
        # cuda_version auto: the planner chose (kept or picked) the toolkit
        versions = list(dict.fromkeys(plan.cuda_version if v == "auto" else v for v in versions))
        for version in versions:
            if version == plan.cuda_version:
                toolkits.append({"version": version, "packages": list(plan.cuda_packages)})
                continue
            other, more = compat.plan_host(facts, {**request, "cuda_version": version, "cudnn_version": None,
                                                   "rocm_version": None})
            toolkits.append({"version": version, "packages": list(other.cuda_packages)})
            reasons += [line for line in (_reason(r) for r in more if r.component == "cuda") if line not in reasons]
        # the default toolkit goes last, so its packages' alternatives win
        toolkits.sort(key=lambda t: t["version"] == plan.cuda_version)
    out["cuda_toolkits"] = toolkits
    if plan.cudnn_method == "archive" and plan.cudnn_archive_url and not variables.get("cudnn_archive_sha256"):
        release = ".".join((plan.cudnn_version or "").split(".")[:3])
        reasons.append(f"cudnn: cudnn_method archive needs cudnn_archive_sha256, the archive's sha256 from "
                       f"{REDIST_JSON.format(release=release)} (or use cudnn_method: nvidia_repo or pip)")
    out["refusals"] = reasons
    return out


def _reason(refusal: compat.Refusal) -> str:
    """"component: reason", naming the role variable where compat names its request key."""
    return f"{refusal.component}: {refusal.reason}".replace("set force: true", "set gpu_force: true")


def summary(plan: Mapping[str, Any]) -> str:
    """One line: what will be installed on this host."""
    parts = [str(plan.get("os_key") or "unknown OS")]
    if plan.get("cuda_action") == "keep":
        parts.append(f"CUDA {plan['cuda_version']} (keep installed)")
    elif plan.get("cuda_version"):
        versions = ", ".join(t["version"] for t in plan.get("cuda_toolkits") or []) or plan["cuda_version"]
        parts.append(f"CUDA {versions} ({plan.get('cuda_method')})")
    if plan.get("driver_branch"):
        parts.append(f"driver {plan['driver_branch']}")
    if plan.get("cudnn_version"):
        how = "keep installed" if plan.get("cudnn_action") == "keep" else plan.get("cudnn_method")
        parts.append(f"cuDNN {plan['cudnn_version']} ({how})")
    if plan.get("rocm_version"):
        parts.append(f"ROCm {plan['rocm_version']}")
    if len(parts) == 1:
        parts.append("no GPU stack")
    return ", ".join(parts)


def run(args: ARGS, ctx: ActionContext) -> dict[str, Any]:
    overrides = {k: v for k, v in asdict(args).items() if v is not None}
    if "cuda_version" in overrides:     # an explicit version here is the default toolkit, alone
        overrides.setdefault("cuda_default_version", overrides["cuda_version"])
        overrides.setdefault("cuda_versions", [])
    variables = ChainMap(overrides, ctx.vars)  # type: ignore[arg-type]  # only read: a Mapping will do
    try:
        plan = plan_for(dict(ctx.hr.facts), variables)
    except (compat.RequestError, compat.MatrixError) as exc:
        return {"failed": True, "changed": False, "msg": str(exc)}
    if plan["refusals"]:
        return {**plan, "failed": True, "changed": False, "msg": "\n".join(plan["refusals"])}
    return {**plan, "changed": False, "msg": summary(plan)}
