"""The version matrix, and the GPU plan it allows for one host.

Controller side. `data/compat.yml` holds the facts (each section with its source); this
module validates it once, then turns a host's facts plus the role's request into a
`GpuPlan` (what to install, from where, under which package names) and the list of
`Refusal`s that explain, one line each, why a request cannot work on that host.

The request is the GPU role's variables (all optional; versions are strings, quote them in
YAML so that 12.10 stays 12.10):

    gpu_stack             "auto" (default: CUDA for NVIDIA GPUs, ROCm for AMD GPUs, nothing
                          otherwise) | "cuda" | "rocm" | "none"
    cuda_version          "12.4" (a pin: installed, and /usr/local/cuda points to it); "auto": keep
                          an installed toolkit the matrix accepts for this driver and GPU (the
                          newest), else install the newest the driver supports (the matrix's
                          default where no driver is loaded); None = no CUDA toolkit
    cuda_method           "nvidia_repo" (default; NVIDIA's apt/dnf repo) | "distro" (the
                          distribution's nvidia-cuda-toolkit)
    nvidia_driver_branch  "550"; None (default) = keep the installed driver
    cudnn_version         "9" | "8.9" | "8.7"; "auto": keep an installed cuDNN built for the
                          toolkit's CUDA major (packages, archive or wheel), else the newest built
                          for it; None = no cuDNN
    cudnn_method          "archive" (default; the tarball, as the chapter does) | "nvidia_repo" | "pip"
    rocm_version          "6.2"; None = no ROCm
    force                 true: plan CUDA/ROCm even on a host without such a GPU (build boxes)
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

MATRIX_PATH = Path(__file__).parent / "data" / "compat.yml"

Version = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)*$")]
OsKey = Annotated[str, StringConstraints(pattern=r"^(ubuntu\d{4}|debian\d+|rhel\d+|fedora\d+|wsl-ubuntu)$")]
Source = Annotated[str, StringConstraints(min_length=10)]
Branch = Annotated[str, StringConstraints(pattern=r"^\d{3}$")]
PciId = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{4}$")]
Gfx = Annotated[str, StringConstraints(pattern=r"^gfx[0-9a-f]+$")]
RHEL_LIKE = ("rhel", "rocky", "almalinux", "centos", "ol")


class MatrixError(ValueError):
    """compat.yml is unreadable or malformed; the message names the file and each bad field."""


class RequestError(ValueError):
    """The GPU role's variables are malformed (unknown key, bad version string, bad method)."""


def version_tuple(version: str) -> tuple[int, ...]:
    """"12.4" -> (12, 4); "580.65.06" -> (580, 65, 6): versions compare as numbers, not strings."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


# -- the matrix's shape --------------------------------------------------------------------

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CcRange(_Model):
    min: Version
    max: Version

    @model_validator(mode="after")
    def _ordered(self) -> CcRange:
        if version_tuple(self.min) > version_tuple(self.max):
            raise ValueError(f"compute capability range {self.min}-{self.max} is reversed")
        return self

    def contains(self, cc: str) -> bool:
        return version_tuple(self.min) <= version_tuple(cc) <= version_tuple(self.max)

    def __str__(self) -> str:
        return f"{self.min}-{self.max}"


class ChapterRow(_Model):
    cuda: Version
    cudnn: Version
    compute_capability: str
    pytorch: str


class ChapterTable(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    rows: list[ChapterRow] = Field(min_length=1)


class NvidiaRepo(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    url: str
    keyring_deb: str
    dnf_repo_file: str
    arch: dict[str, str]
    toolkit_package: str
    driver_package: str


class MinorVersionCompat(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    min_driver: dict[str, Version]


class CudaVersion(_Model):
    min_driver: Version
    compute_capability: CcRange
    nvidia_repo_os: list[OsKey]
    pytorch: str | None
    source: Source | None = None    # a row added after its section's source: where it comes from
    checked: datetime.date | None = None


class CudaSection(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    default: Version                # cuda_version auto on a host where no driver is loaded yet
    versions: dict[Version, CudaVersion] = Field(min_length=1)


class DriverBranch(_Model):
    max_cuda: Version
    compute_capability: CcRange


class DriverSection(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    branches: dict[Branch, DriverBranch] = Field(min_length=1)


class CudnnVersion(_Model):
    full: Version
    cuda_majors: list[int] = Field(min_length=1)
    apt: dict[str, list[str]]
    dnf: dict[str, list[str]]
    pip: dict[str, str]
    repo_missing_os: list[OsKey]

    @model_validator(mode="after")
    def _known_majors(self) -> CudnnVersion:
        majors = {str(m) for m in self.cuda_majors}
        for name in ("apt", "dnf", "pip"):
            extra = set(getattr(self, name)) - majors
            if extra:
                raise ValueError(f"{name} names CUDA majors {sorted(extra)} "
                                 f"not in cuda_majors {self.cuda_majors}")
        return self


class CudnnSection(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    archive_url: str
    arch: dict[str, str]
    versions: dict[Version, CudnnVersion] = Field(min_length=1)


class DistroCuda(_Model):
    version: Version
    package: str
    component: str


class DistroCudaSection(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    packages: dict[OsKey, DistroCuda]


class RocmVersion(_Model):
    build: Annotated[str, StringConstraints(pattern=r"^\d{5}$")]
    ubuntu: list[str]
    debian: dict[str, str]          # Debian codename -> the Ubuntu codename whose installer it uses
    rhel: list[Version]
    gfx: list[Gfx] = Field(min_length=1)
    source: Source | None = None    # a row added after its section's source: where it comes from
    checked: datetime.date | None = None


class RocmSection(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    deb_url: str
    rpm_url: str
    install_command: str
    versions: dict[Version, RocmVersion] = Field(min_length=1)


class AmdGpu(_Model):
    name: str
    gfx: Gfx
    gfx_override: Version | None = None   # HSA_OVERRIDE_GFX_VERSION a consumer card needs for ROCm


class AmdGpuSection(_Model):
    source: Source
    checked: datetime.date          # when the section was last read against its source
    devices: dict[PciId, AmdGpu]


class Matrix(_Model):
    """compat.yml, validated: every section carries a `source`."""

    schema_version: Literal[1] = Field(alias="schema")
    checked: datetime.date              # the whole file, last checked against its sources
    chapter_table: ChapterTable
    nvidia_repo: NvidiaRepo
    minor_version_compat: MinorVersionCompat
    cuda: CudaSection
    driver_branches: DriverSection
    cudnn: CudnnSection
    distro_cuda: DistroCudaSection
    rocm: RocmSection
    amd_gpus: AmdGpuSection

    @model_validator(mode="after")
    def _every_cuda_major_has_a_driver_floor(self) -> Matrix:
        if self.cuda.default not in self.cuda.versions:
            raise ValueError(f"cuda.default {self.cuda.default} is not one of cuda.versions")
        for version in self.cuda.versions:
            major = version.split(".")[0]
            if major not in self.minor_version_compat.min_driver:
                raise ValueError(f"cuda.versions.{version}: "
                                 f"no minor_version_compat.min_driver for CUDA {major}.x")
        return self

    def oldest_check(self) -> datetime.date:
        """The oldest `checked:` date in the file (the file's, a section's or a row's)."""
        dates = [self.checked, self.chapter_table.checked, self.nvidia_repo.checked,
                 self.minor_version_compat.checked, self.cuda.checked, self.driver_branches.checked,
                 self.cudnn.checked, self.distro_cuda.checked, self.rocm.checked, self.amd_gpus.checked]
        dates += [row.checked for row in self.cuda.versions.values() if row.checked is not None]
        dates += [row.checked for row in self.rocm.versions.values() if row.checked is not None]
        return min(dates)

    def repo_os_keys(self) -> set[str]:
        """Every OS key NVIDIA's CUDA repository serves for some toolkit in the matrix."""
        return {key for cv in self.cuda.versions.values() for key in cv.nvidia_repo_os}


def load_matrix(path: str | Path | None = None) -> Matrix:
    """The validated version matrix (compat.yml unless `path`), read once per path and cached."""
    return _load_matrix(str(Path(path) if path is not None else MATRIX_PATH))


@functools.lru_cache(maxsize=8)
def _load_matrix(path: str) -> Matrix:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MatrixError(f"{path}: cannot read the version matrix: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or exc
        raise MatrixError(f"{where}: the version matrix is not valid YAML: {problem}") from None
    try:
        return Matrix.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                    for err in exc.errors()]
        raise MatrixError(f"{path}: the version matrix is malformed:\n  " + "\n  ".join(problems)) from None


# -- request and plan ------------------------------------------------------------------------

class GpuRequest(BaseModel):
    """The GPU role's variables (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    gpu_stack: Literal["auto", "cuda", "rocm", "none"] = "auto"
    cuda_version: Version | Literal["auto"] | None = None
    cuda_method: Literal["nvidia_repo", "distro"] = "nvidia_repo"
    nvidia_driver_branch: Branch | None = None
    cudnn_version: Version | Literal["auto"] | None = None
    cudnn_method: Literal["archive", "nvidia_repo", "pip"] = "archive"
    rocm_version: Version | None = None
    force: bool = False

    @field_validator("cuda_version", "nvidia_driver_branch", "cudnn_version", "rocm_version", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        # YAML turns an unquoted 12.4 into a float and 550 into an int; take them back as text.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value


@dataclass(frozen=True)
class Refusal:
    """Why a requested component cannot go on this host: one line naming the host fact and the version."""

    component: str      # "cuda" | "driver" | "cudnn" | "rocm"
    reason: str


@dataclass(frozen=True)
class GpuPlan:
    """What the GPU roles install on one host, decided before anything runs (check mode shows this)."""

    os_key: str | None                      # NVIDIA's repo name for the OS: "ubuntu2404", "wsl-ubuntu"
    gpu_stack: str = "none"                 # "cuda" | "rocm" | "cuda+rocm" | "none"
    cuda_version: str | None = None
    cuda_action: str | None = None          # "keep" (installed, nothing to do) | "install"
    cuda_reason: str | None = None          # why this version: "installed at ...", "newest the driver 550 supports"
    cuda_pinned: bool = False               # the admin named the version: /usr/local/cuda points to it
    cuda_home: str | None = None            # keep: the kept toolkit's CUDA_HOME
    cuda_method: str | None = None
    cuda_packages: list[str] = field(default_factory=list)
    cuda_repo_url: str | None = None
    cuda_repo_setup_url: str | None = None  # the cuda-keyring .deb (apt) or the .repo file (dnf)
    driver_branch: str | None = None        # None: keep the installed driver
    driver_packages: list[str] = field(default_factory=list)
    cudnn_version: str | None = None        # the exact release, e.g. "9.14.0.64"
    cudnn_action: str | None = None         # "keep" | "install"
    cudnn_reason: str | None = None
    cudnn_method: str | None = None
    cudnn_packages: list[str] = field(default_factory=list)
    cudnn_archive_url: str | None = None
    rocm_version: str | None = None
    rocm_installer_url: str | None = None
    rocm_packages: list[str] = field(default_factory=list)
    rocm_gfx_override: str | None = None    # HSA_OVERRIDE_GFX_VERSION a consumer card of the host needs
    notes: list[str] = field(default_factory=list)


def os_key(facts: dict[str, Any]) -> str | None:
    """NVIDIA's repository name for the host's OS ("ubuntu2204", "debian12", "rhel9"; WSL: "wsl-ubuntu")."""
    if facts.get("is_wsl"):
        return "wsl-ubuntu"
    return distro_key(facts)


def distro_key(facts: dict[str, Any]) -> str | None:
    """The same naming for the distribution itself, WSL or not."""
    os_id = facts.get("os_id") or ""
    major = facts.get("distribution_major_version") or ""
    if os_id == "ubuntu":
        return "ubuntu" + (facts.get("os_version_id") or "").replace(".", "")
    if os_id in ("debian", "fedora") and major:
        return os_id + major
    if os_id in RHEL_LIKE and major:
        return "rhel" + major
    return None


def _nvidia_gpus(facts: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(name, compute capability) per distinct NVIDIA GPU; capability None when nvidia-smi gave none."""
    smi_gpus = (facts.get("nvidia") or {}).get("gpus") or []
    gpus = [(g.get("name") or "NVIDIA GPU", g.get("compute_cap")) for g in smi_gpus]
    if not gpus:
        gpus = [(g.get("model") or f"NVIDIA GPU {g.get('device_id')}", None)
                for g in facts.get("gpus") or [] if g.get("vendor") == "nvidia"]
    return list(dict.fromkeys(gpus))


def _amd_gpus(facts: dict[str, Any]) -> list[dict[str, Any]]:
    return [g for g in facts.get("gpus") or [] if g.get("vendor") == "amd"]


def _installed_cuda(facts: dict[str, Any]) -> str | None:
    """The CUDA a host already has: nvcc on PATH first, else the first toolkit found."""
    cuda = facts.get("cuda") or {}
    versions = [tk.get("version") for tk in cuda.get("toolkits") or [] if tk.get("version")]
    return cuda.get("nvcc_version") or (versions[0] if versions else None)


def _needs(floor: str, cv: CudaVersion) -> str:
    """What a CUDA version asks of the driver, for refusal messages."""
    if floor == cv.min_driver:
        return f"it needs >= {floor}"
    return f"it needs >= {floor} (minor-version compatibility), {cv.min_driver} for every feature"


def _override_target(override: str | None) -> str | None:
    """"10.3.0" -> "gfx1030": the LLVM target an HSA_OVERRIDE_GFX_VERSION makes a card run as."""
    if not override:
        return None
    major, minor, step = (override.split(".") + ["0", "0"])[:3]
    return f"gfx{major}{minor}{step}"


def _unknown(what: str, version: str, known: Any) -> str:
    return f"{what} {version} is not in the version matrix (known: {', '.join(known)})"


class _Planner:
    """One host's planning state: fills the plan fields, collects refusals and notes."""

    def __init__(self, facts: dict[str, Any], req: GpuRequest, matrix: Matrix) -> None:
        self.facts, self.req, self.m = facts, req, matrix
        self.os_key = os_key(facts)
        self.fields: dict[str, Any] = {"os_key": self.os_key}
        self.refusals: list[Refusal] = []
        self.notes: list[str] = []
        self.gpus = _nvidia_gpus(facts)
        self.driver = (facts.get("nvidia") or {}).get("driver_version")
        self.cuda_version: str | None = None   # the toolkit decided (pinned, kept or chosen)
        name = facts.get("distribution") or facts.get("os_id")
        self.os_name = f"{name} {facts.get('distribution_version') or ''}".strip()

    def refuse(self, component: str, reason: str) -> None:
        self.refusals.append(Refusal(component, reason))

    def suggest_branch(self, cuda: str) -> str | None:
        """The oldest branch that runs `cuda` at full features and drives every GPU of the host."""
        for branch, info in sorted(self.m.driver_branches.branches.items(), key=lambda kv: int(kv[0])):
            drives_all = all(cc is None or info.compute_capability.contains(cc) for _, cc in self.gpus)
            if version_tuple(info.max_cuda) >= version_tuple(cuda) and drives_all:
                return branch
        return None

    # -- CUDA toolkit ----------------------------------------------------------------------
    def cuda(self) -> CudaVersion | None:
        version = self.req.cuda_version
        if version == "auto":
            version = self.installed_toolkit()
            if version is not None:
                return self.m.cuda.versions.get(version)
            version = self.newest_installable()
        elif version:
            self.fields.update(cuda_action="install", cuda_pinned=True, cuda_reason="pinned (cuda_version)")
        if not version:
            return None
        cv = self.m.cuda.versions.get(version)
        if cv is None:
            self.refuse("cuda", _unknown("CUDA", version, self.m.cuda.versions))
            return None
        self.cuda_version = version
        self.fields.update(cuda_version=version, cuda_method=self.req.cuda_method)
        for name, cc in self.gpus:
            if cc is not None and not cv.compute_capability.contains(cc):
                self.refuse("cuda", f"CUDA {version} does not support compute capability {cc} ({name}); "
                                    f"it needs {cv.compute_capability}")
        if any(cc is None for _, cc in self.gpus):
            self.notes.append("compute capability unknown (nvidia-smi gave none): not checked against CUDA")
        if self.req.cuda_method == "nvidia_repo":
            self.cuda_from_repo(version, cv)
        else:
            self.cuda_from_distro(version)
        for tk in (self.facts.get("cuda") or {}).get("toolkits") or []:
            if tk.get("version") == version:
                self.notes.append(f"CUDA {version} is already installed at {tk.get('path')}")
        return cv

    def why_not_keep(self, version: str) -> str | None:
        """Why an installed toolkit cannot stay (cuda_version auto), or None when the matrix accepts it."""
        major = version.split(".")[0]
        floor = self.m.minor_version_compat.min_driver.get(major)
        if floor is None:
            return f"CUDA {major}.x is not in the version matrix"
        cv = self.m.cuda.versions.get(version)
        for name, cc in self.gpus:
            if cv is not None and cc is not None and not cv.compute_capability.contains(cc):
                return f"it does not support compute capability {cc} ({name}); it needs {cv.compute_capability}"
        branch = self.req.nvidia_driver_branch
        if branch and not self.facts.get("is_wsl"):
            if int(branch) < version_tuple(floor)[0]:
                return f"the requested driver branch {branch} is too old for it (it needs >= {floor})"
        elif self.driver and version_tuple(self.driver) < version_tuple(floor):
            return f"the loaded driver {self.driver} is too old for it (it needs >= {floor})"
        return None

    def installed_toolkit(self) -> str | None:
        """cuda_version auto: the newest installed toolkit the matrix accepts here, kept as it is."""
        accepted: list[tuple[str, dict[str, Any]]] = []
        for tk in (self.facts.get("cuda") or {}).get("toolkits") or []:
            match = re.match(r"^(\d+)\.(\d+)", tk.get("version") or "")
            if not match:
                continue
            version = match.group(0)
            why_not = self.why_not_keep(version)
            if why_not:
                self.notes.append(f"installed CUDA {version} at {tk.get('path')} not kept: {why_not}")
            else:
                accepted.append((version, tk))
        if not accepted:
            return None
        version, tk = max(accepted, key=lambda a: version_tuple(a[0]))
        path = str(tk.get("path") or "")
        cv = self.m.cuda.versions.get(version)
        why = [f"installed at {path}"]
        if len({v for v, _ in accepted}) > 1:
            why.append("the newest of " + ", ".join(sorted({v for v, _ in accepted}, key=version_tuple)))
        if self.driver:
            full = cv is not None and version_tuple(self.driver) >= version_tuple(cv.min_driver)
            why.append(f"driver {self.driver} runs it" + ("" if full else " (minor-version compatibility)"))
        elif self.gpus:
            why.append("no driver loaded to check it against")
        ccs = sorted({cc for _, cc in self.gpus if cc})
        if cv is not None and ccs:
            why.append(f"compute capability {', '.join(ccs)} within {cv.compute_capability}")
        if cv is None:
            why.append(f"not in the matrix: checked against CUDA {version.split('.')[0]}.x's driver floor only")
        default = (self.facts.get("cuda") or {}).get("default_path")
        home = "/usr/local/cuda" if default and path.startswith("/usr/local/") else path
        if default and default != path:
            self.notes.append(f"/usr/local/cuda points to {default}: left as it is (pin cuda_version to repoint it)")
        self.cuda_version = version
        self.fields.update(cuda_version=version, cuda_action="keep", cuda_reason="; ".join(why), cuda_home=home)
        return version

    def newest_installable(self) -> str | None:
        """cuda_version auto with no acceptable toolkit installed: the newest CUDA this host can take."""
        method = self.req.cuda_method
        distro = self.m.distro_cuda.packages.get(distro_key(self.facts) or "")
        fits = []
        for version, cv in self.m.cuda.versions.items():
            if any(cc is not None and not cv.compute_capability.contains(cc) for _, cc in self.gpus):
                continue
            if method == "nvidia_repo" and self.os_key not in cv.nvidia_repo_os:
                continue
            if method == "distro" and (distro is None or distro.version != version):
                continue
            fits.append(version)
        fits.sort(key=version_tuple)
        if not fits:
            where = "NVIDIA's repository" if method == "nvidia_repo" else "the distribution"
            self.refuse("cuda", f"cuda_version auto: no CUDA of the version matrix both runs this host's GPUs and "
                                f"is served by {where} for {self.os_key or self.os_name}; pin cuda_version")
            return None
        branch = None if self.facts.get("is_wsl") else self.req.nvidia_driver_branch
        info = self.m.driver_branches.branches.get(branch or "")
        if branch and info is not None:
            full = [v for v in fits if version_tuple(v) <= version_tuple(info.max_cuda)]
            version, why = (full[-1], f"newest the driver branch {branch} supports") if full else \
                (fits[0], f"the oldest for this host; driver branch {branch} supports up to {info.max_cuda}")
        elif self.driver:
            driver, shown = version_tuple(self.driver), self.driver.split(".")[0]
            full = [v for v in fits if driver >= version_tuple(self.m.cuda.versions[v].min_driver)]
            floors = self.m.minor_version_compat.min_driver
            compatible = [v for v in fits if driver >= version_tuple(floors[v.split(".")[0]])]
            if full:
                version, why = full[-1], f"newest the driver {shown} supports"
            elif compatible:
                version, why = compatible[-1], f"newest the driver {shown} runs (minor-version compatibility)"
            else:
                hint = self.suggest_branch(fits[-1])
                self.refuse("cuda", f"cuda_version auto: the loaded NVIDIA driver {self.driver} runs no CUDA that "
                                    f"{'NVIDIA' if method == 'nvidia_repo' else 'the distribution'} serves for "
                                    f"{self.os_key or self.os_name}"
                                    + (f"; set nvidia_driver_branch (e.g. \"{hint}\")" if hint else ""))
                return None
        elif self.m.cuda.default in fits:
            version, why = self.m.cuda.default, "the matrix default; no NVIDIA driver loaded"
        else:
            version, why = fits[-1], "newest for this GPU and OS; no NVIDIA driver loaded"
        self.fields.update(cuda_action="install", cuda_reason=why)
        return version

    def cuda_from_repo(self, version: str, cv: CudaVersion) -> None:
        if self.os_key is None or self.os_key not in cv.nvidia_repo_os:
            where = self.os_key or self.facts.get("os_id")
            self.refuse("cuda", f"NVIDIA's CUDA repository does not serve CUDA {version} for {where} "
                                f"({self.os_name}); it serves {', '.join(cv.nvidia_repo_os)}")
        elif self.repo():
            major, minor = version.split(".")[:2]
            package = self.m.nvidia_repo.toolkit_package.format(major=major, minor=minor)
            self.fields["cuda_packages"] = [package]

    def cuda_from_distro(self, version: str) -> None:
        distro = self.m.distro_cuda.packages.get(distro_key(self.facts) or "")
        if distro is None:
            self.refuse("cuda", f"cuda_method distro: {self.os_name} packages no CUDA toolkit; "
                                "use cuda_method: nvidia_repo")
        elif distro.version != version:
            self.refuse("cuda", f"cuda_method distro: {self.os_name} ships CUDA {distro.version} "
                                f"({distro.package}), not the requested {version}")
        else:
            self.fields["cuda_packages"] = [distro.package]
            self.notes.append(f"{distro.package} comes from the '{distro.component}' component, "
                              "which must be enabled in the apt sources")

    def repo(self) -> bool:
        """Fill the NVIDIA repository URLs for this host; False (with a refusal) on an unserved CPU."""
        machine = self.facts.get("architecture") or ""
        arch = self.m.nvidia_repo.arch.get(machine)
        if arch is None:
            self.refuse("cuda", f"NVIDIA's CUDA repository has no packages for {machine}")
            return False
        url = self.m.nvidia_repo.url.format(os_key=self.os_key, arch=arch)
        setup = (self.m.nvidia_repo.dnf_repo_file.format(os_key=self.os_key)
                 if self.facts.get("pkg_mgr") in ("dnf", "yum") else self.m.nvidia_repo.keyring_deb)
        self.fields.update(cuda_repo_url=url, cuda_repo_setup_url=url + setup)
        return True

    # -- driver ------------------------------------------------------------------------------
    def nvidia_driver(self, cv: CudaVersion | None) -> None:
        branch, version = self.req.nvidia_driver_branch, self.cuda_version
        if self.facts.get("is_wsl"):
            if branch:
                seen = self.driver or "not visible"
                self.refuse("driver", f"WSL2 uses the Windows host's NVIDIA driver ({seen}); "
                                      f"nvidia_driver_branch {branch} cannot be installed inside WSL: "
                                      "update the driver on Windows and leave it unset")
            branch = None
        if branch:
            self.requested_driver(branch, cv)
        elif cv is not None and version is not None:
            self.installed_driver(version, cv)

    def installed_driver(self, version: str, cv: CudaVersion) -> None:
        floor = self.m.minor_version_compat.min_driver[version.split(".")[0]]
        suggestion = self.suggest_branch(version)
        if self.facts.get("is_wsl"):
            fix = "update the driver on Windows"
        elif suggestion:
            fix = f"set nvidia_driver_branch (e.g. \"{suggestion}\")"
        else:
            fix = "no driver branch in the matrix runs it on this GPU"
        if not self.driver:
            if self.gpus:
                self.refuse("driver", "no NVIDIA driver found on this host and nvidia_driver_branch is "
                                      f"unset; CUDA {version} needs >= {cv.min_driver}: {fix}")
            else:
                self.notes.append(f"no NVIDIA driver: CUDA {version} can compile here but not run")
        elif version_tuple(self.driver) < version_tuple(floor):
            self.refuse("driver", f"installed NVIDIA driver {self.driver} is too old for CUDA {version}: "
                                  f"{_needs(floor, cv)}; {fix}")
        elif version_tuple(self.driver) < version_tuple(cv.min_driver):
            self.notes.append(f"installed driver {self.driver} runs CUDA {version} under minor-version "
                              f"compatibility (full features need >= {cv.min_driver})")
        else:
            self.notes.append(f"keeping the installed NVIDIA driver {self.driver}")

    def requested_driver(self, branch: str, cv: CudaVersion | None) -> None:
        branches = self.m.driver_branches.branches
        info = branches.get(branch)
        if info is None:
            self.refuse("driver", _unknown("NVIDIA driver branch", branch, branches))
            return
        for name, cc in self.gpus:
            if cc is not None and not info.compute_capability.contains(cc):
                able = [b for b, i in branches.items() if i.compute_capability.contains(cc)]
                self.refuse("driver", f"NVIDIA driver branch {branch} does not drive compute capability {cc} "
                                      f"({name}); it supports {info.compute_capability}"
                                      + (f"; branches that do: {', '.join(able)}" if able else ""))
        version = self.cuda_version
        if cv is not None and version is not None:
            floor = self.m.minor_version_compat.min_driver[version.split(".")[0]]
            if int(branch) < version_tuple(floor)[0]:
                self.refuse("driver", f"NVIDIA driver branch {branch} is too old for CUDA {version}: "
                                      f"{_needs(floor, cv)}")
            elif version_tuple(info.max_cuda) < version_tuple(version):
                self.notes.append(f"driver branch {branch} supports CUDA up to {info.max_cuda}; "
                                  f"CUDA {version} runs under minor-version compatibility "
                                  f"(full features need >= {cv.min_driver})")
        if self.os_key not in self.m.repo_os_keys():
            where = self.os_key or self.os_name
            self.refuse("driver", f"NVIDIA's repository has no driver packages for {where}")
            return
        if "cuda_repo_url" not in self.fields and not self.repo():
            return
        self.fields.update(driver_branch=branch,
                           driver_packages=[self.m.nvidia_repo.driver_package.format(branch=branch)])

    # -- cuDNN -------------------------------------------------------------------------------
    def cudnn(self) -> None:
        wanted = self.req.cudnn_version
        if not wanted:
            return
        cuda = self.cuda_version or _installed_cuda(self.facts)
        if wanted == "auto":
            if not cuda:
                self.notes.append("cudnn_version auto: no CUDA toolkit planned or installed, so no cuDNN")
                return
            major = int(cuda.split(".")[0])
            if self.installed_cudnn(major):
                return
            built = [k for k, e in self.m.cudnn.versions.items() if major in e.cuda_majors]
            if not built:
                self.refuse("cudnn", f"cudnn_version auto: no cuDNN of the version matrix is built for CUDA {major}.x")
                return
            wanted = max(built, key=version_tuple)
            self.fields.update(cudnn_action="install", cudnn_reason=f"newest cuDNN built for CUDA {major}.x")
        else:
            self.fields.update(cudnn_action="install", cudnn_reason="pinned (cudnn_version)")
        key = wanted if wanted in self.m.cudnn.versions else wanted.split(".")[0]
        entry = self.m.cudnn.versions.get(key)
        if entry is None:
            self.refuse("cudnn", _unknown("cuDNN", wanted, self.m.cudnn.versions))
            return
        if not cuda:
            self.refuse("cudnn", f"cuDNN {wanted} needs a CUDA toolkit: set cuda_version (none is installed)")
            return
        major = int(cuda.split(".")[0])
        if major not in entry.cuda_majors:
            others = [v for v, e in self.m.cudnn.versions.items() if major in e.cuda_majors]
            built_for = ", ".join(f"{m}.x" for m in entry.cuda_majors)
            hint = f"; for CUDA {major}.x use cuDNN {' or '.join(others)}" if others else ""
            self.refuse("cudnn", f"cuDNN {wanted} is not built for CUDA {major}.x (CUDA {cuda}); "
                                 f"it is built for CUDA {built_for}{hint}")
            return
        method = self.req.cudnn_method
        self.fields.update(cudnn_version=entry.full, cudnn_method=method)
        if method == "archive":
            arch = self.m.cudnn.arch.get(self.facts.get("architecture") or "")
            if arch is None:
                self.refuse("cudnn", f"no cuDNN archive for {self.facts.get('architecture')}")
                return
            self.fields["cudnn_archive_url"] = self.m.cudnn.archive_url.format(
                arch=arch, full=entry.full, cuda_major=major)
        elif method == "nvidia_repo":
            if self.os_key in entry.repo_missing_os or self.os_key not in self.m.repo_os_keys():
                self.refuse("cudnn", f"NVIDIA's repository for {self.os_key or self.os_name} has no cuDNN "
                                     f"{wanted} packages; use cudnn_method: archive or pip")
                return
            by_manager = entry.dnf if self.facts.get("pkg_mgr") in ("dnf", "yum") else entry.apt
            self.fields["cudnn_packages"] = list(by_manager[str(major)])
        else:
            wheel = entry.pip.get(str(major))
            if wheel is None:
                self.refuse("cudnn", f"no pip wheel of cuDNN {wanted} for CUDA {major}.x "
                                     "in the version matrix")
                return
            self.fields["cudnn_packages"] = [wheel]

    def installed_cudnn(self, major: int) -> bool:
        """cudnn_version auto: keep an installed cuDNN built for CUDA `major`, whatever installed it."""
        cudnn = self.facts.get("cudnn") or {}
        for found in cudnn.get("installs") or ([cudnn] if cudnn else []):
            version = found.get("version")
            if not version:
                continue
            majors = found.get("cuda_majors") or []
            series = self.m.cudnn.versions.get(version.split(".")[0])
            origin = found.get("origin") or found.get("header") or found.get("source")
            if majors and major not in majors:
                self.notes.append(f"installed cuDNN {version} ({origin}) is built for CUDA "
                                  f"{', '.join(f'{m}.x' for m in majors)}, not {major}.x: not kept")
                continue
            if not majors:
                # a cuDNN 9 may be built for CUDA 12 or 13: keeping an unknown one could leave the toolkit without
                if series is not None and major in series.cuda_majors:
                    self.notes.append(f"installed cuDNN {version} ({origin}): the CUDA major it is built for is "
                                      "unknown, so it is not kept")
                continue
            self.fields.update(cudnn_version=version, cudnn_action="keep",
                               cudnn_reason=f"installed ({origin}), for CUDA {major}.x")
            return True
        return False

    # -- ROCm --------------------------------------------------------------------------------
    def gfx_override(self) -> None:
        """HSA_OVERRIDE_GFX_VERSION for consumer cards whose own target ROCm does not build (matrix)."""
        needs: dict[str, str] = {}
        for gpu in _amd_gpus(self.facts):
            known = self.m.amd_gpus.devices.get(gpu.get("device_id") or "")
            if known is not None and known.gfx_override:
                needs[known.gfx_override] = f"{known.name} ({known.gfx})"
        if len(needs) == 1:
            value, card = next(iter(needs.items()))
            self.fields["rocm_gfx_override"] = value
            self.notes.append(f"{card} runs ROCm as {_override_target(value)}: HSA_OVERRIDE_GFX_VERSION={value}")
        elif needs:
            self.notes.append("AMD cards needing different HSA_OVERRIDE_GFX_VERSION values ("
                              + ", ".join(f"{c}: {v}" for v, c in needs.items()) + "): none set; set "
                              "rocm_gfx_override per host or HSA_OVERRIDE_GFX_VERSION_<n> per device")

    def rocm(self) -> None:
        self.gfx_override()
        version = self.req.rocm_version
        if not version:
            self.notes.append("AMD GPU present but no rocm_version requested: ROCm not planned")
            return
        rv = self.m.rocm.versions.get(version)
        if rv is None:
            self.refuse("rocm", _unknown("ROCm", version, self.m.rocm.versions))
            return
        f = self.facts
        if f.get("is_wsl"):
            self.refuse("rocm", f"ROCm {version} on WSL2 is not supported by this version matrix")
            return
        if f.get("architecture") != "x86_64":
            self.refuse("rocm", f"ROCm {version} is published for x86_64 only, not {f.get('architecture')}")
            return
        url = self.rocm_installer(version, rv)
        for gpu in _amd_gpus(f):
            known = self.m.amd_gpus.devices.get(gpu.get("device_id") or "")
            if known is None:
                self.notes.append(f"AMD GPU {gpu.get('device_id')} at {gpu.get('pci_slot')} is not in the "
                                  "matrix: its LLVM target was not checked")
            elif known.gfx not in rv.gfx and _override_target(known.gfx_override) in rv.gfx:
                self.notes.append(f"ROCm {version} does not build {known.gfx} ({known.name}); it runs as "
                                  f"{_override_target(known.gfx_override)} through HSA_OVERRIDE_GFX_VERSION")
            elif known.gfx not in rv.gfx:
                self.refuse("rocm", f"ROCm {version} does not support {known.gfx} ({known.name}, PCI "
                                    f"{gpu.get('device_id')}); it supports {', '.join(rv.gfx)}")
        if url is not None:
            self.fields.update(rocm_version=version, rocm_installer_url=url, rocm_packages=["amdgpu-install"])
            self.notes.append(f"then: {self.m.rocm.install_command}")
        rocm = f.get("rocm") or {}
        installed = rocm.get("version") or ""
        if installed == version or installed.startswith(version + "."):
            self.notes.append(f"ROCm {installed} is already installed at {rocm.get('path')}")

    def rocm_installer(self, version: str, rv: RocmVersion) -> str | None:
        """amdgpu-install's URL for this OS release, or None (with a refusal) when ROCm does not list it."""
        f, sec = self.facts, self.m.rocm
        os_id, release = f.get("os_id"), f.get("distribution_version")
        codename = f.get("distribution_release") or ""
        if os_id == "ubuntu" and codename in rv.ubuntu:
            return sec.deb_url.format(version=version, codename=codename, build=rv.build)
        if os_id == "debian" and codename in rv.debian:
            return sec.deb_url.format(version=version, codename=rv.debian[codename], build=rv.build)
        if os_id in RHEL_LIKE and release in rv.rhel:
            return sec.rpm_url.format(version=version, rhel_version=release, build=rv.build,
                                      rhel_major=release.split(".")[0])
        supported = [f"Ubuntu {', '.join(rv.ubuntu)}"]
        if rv.debian:
            supported.append(f"Debian {', '.join(rv.debian)}")
        supported.append(f"RHEL {', '.join(rv.rhel)}")
        shown = f"{self.os_name} ({codename})" if codename else self.os_name
        self.refuse("rocm", f"ROCm {version} does not support {shown}; it supports {'; '.join(supported)}")
        return None


def plan_host(facts: dict[str, Any], request: dict[str, Any]) -> tuple[GpuPlan, list[Refusal]]:
    """Decide the GPU stack for one host from its facts and the role's request, without touching it.

    Raises RequestError for a malformed request; everything the host cannot take comes back as
    Refusals (the plan still lists what could be decided, so check mode can show both).
    """
    try:
        req = GpuRequest.model_validate(request)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}"
                             for err in exc.errors())
        raise RequestError(f"GPU role variables: {problems}") from None
    planner = _Planner(facts, req, load_matrix())
    has_nvidia, has_amd = bool(planner.gpus), bool(_amd_gpus(facts))
    stack = req.gpu_stack
    want_cuda = stack == "cuda" or (stack == "auto" and has_nvidia)
    want_rocm = stack == "rocm" or (stack == "auto" and has_amd)
    if stack == "cuda" and not has_nvidia and not req.force:
        planner.refuse("cuda", "gpu_stack cuda, but this host has no NVIDIA GPU (no PCI vendor 0x10de, "
                               "no driver); set force: true to install CUDA anyway")
        want_cuda = False
    if stack == "rocm" and not has_amd and not req.force:
        planner.refuse("rocm", "gpu_stack rocm, but this host has no AMD GPU (no PCI vendor 0x1002); "
                               "set force: true to install ROCm anyway")
        want_rocm = False
    if want_cuda:
        planner.nvidia_driver(planner.cuda())
        planner.cudnn()
    if want_rocm:
        planner.rocm()
    if not want_cuda and not want_rocm and not planner.refusals:
        planner.notes.append("gpu_stack none: nothing to install" if stack == "none"
                             else "no NVIDIA or AMD GPU found (gpu_stack auto): nothing to install")
    stacks = [name for name, on in (("cuda", want_cuda), ("rocm", want_rocm)) if on]
    planner.fields["gpu_stack"] = "+".join(stacks) or "none"
    return GpuPlan(notes=planner.notes, **planner.fields), planner.refusals
