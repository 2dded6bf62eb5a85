"""git: a checkout of `repo` at `version` (branch, tag, commit or HEAD) in `dest`, cloned when missing
and moved only when the remote's commit differs; Ansible's before/after/remote_url_changed.

The plan asks the remote with one `git ls-remote` (read-only, also over SSH); apply fetches and
checks out. Local modifications fail the task unless `force`.
"""

from __future__ import annotations

import os
import re
import shlex

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError, text_diff

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

ALIASES = {"name": "repo"}
REFUSED = {"archive": "make the archive with a command task after the checkout",
           "separate_git_dir": "clone into dest itself", "gpg_allowlist": "verify_commit uses your keyring"}


class Args(ModuleArgs):
    repo: str
    dest: str
    version: str = "HEAD"
    update: bool = True
    force: bool = False
    depth: Optional[int] = None
    clone: bool = True
    bare: bool = False
    remote: str = "origin"
    refspec: Optional[str] = None
    reference: Optional[str] = None
    single_branch: bool = False
    recursive: bool = True
    accept_hostkey: bool = False
    accept_newhostkey: bool = False
    key_file: Optional[str] = None
    ssh_opts: Optional[str] = None
    umask: Any = None
    executable: Optional[str] = None
    verify_commit: bool = False
    archive: Optional[str] = None
    separate_git_dir: Optional[str] = None
    gpg_allowlist: Optional[List[str]] = None


class _Git:
    def __init__(self, args: Args, host: Host) -> None:
        found = args.executable or host.which("git")
        if not found:
            raise ModuleError("Failed to find required executable git in paths: %s" % os.environ.get("PATH", ""))
        self.bin: str = found
        self.host = host
        ssh = ["ssh"]
        if args.accept_hostkey:
            ssh += ["-o", "StrictHostKeyChecking=no"]
        elif args.accept_newhostkey:
            ssh += ["-o", "StrictHostKeyChecking=accept-new"]
        if args.key_file:
            ssh += ["-i", os.path.expanduser(args.key_file), "-o", "IdentitiesOnly=yes"]
        ssh += shlex.split(args.ssh_opts or "")
        # no terminal on the host: a question (password, host key) must fail, never hang
        self.env = {"GIT_SSH_COMMAND": " ".join(shlex.quote(a) for a in ssh + ["-o", "BatchMode=yes"]),
                    "GIT_TERMINAL_PROMPT": "0"}

    def __call__(self, *argv: str, cwd: Optional[str] = None, check: bool = True) -> str:
        res = self.host.run([self.bin, *argv], cwd=cwd, env=self.env)
        if check and res.rc != 0:
            raise ModuleError("Failed to run %s: %s" % (" ".join(["git", *argv]), (res.stderr or res.stdout).strip()),
                              rc=res.rc, stdout=res.stdout, stderr=res.stderr)
        return res.stdout.strip() if res.rc == 0 else ""


def _remote_refs(git: _Git, repo: str) -> Dict[str, str]:
    """ref name -> commit, tags peeled; "HEAD" -> the default branch's commit; "HEAD:branch"."""
    refs: Dict[str, str] = {}
    for line in git("ls-remote", "--symref", repo).splitlines():
        sha, _, name = line.partition("\t")
        if sha.startswith("ref: "):
            refs["HEAD:branch"] = sha[5:].rsplit("refs/heads/", 1)[-1]
        elif name.endswith("^{}"):
            refs[name[:-3]] = sha
        else:
            refs.setdefault(name, sha)
    return refs


def _target(args: Args, refs: Dict[str, str]) -> Dict[str, Any]:
    """What `version` means on the remote: kind (branch/tag/sha) and commit (None: unknown yet)."""
    v = args.version
    if v == "HEAD":
        return {"kind": "branch", "name": refs.get("HEAD:branch", "HEAD"), "sha": refs.get("HEAD")}
    if "refs/heads/" + v in refs:
        return {"kind": "branch", "name": v, "sha": refs["refs/heads/" + v]}
    if "refs/tags/" + v in refs:
        return {"kind": "tag", "name": v, "sha": refs["refs/tags/" + v]}
    if re.fullmatch(r"[0-9a-fA-F]{4,40}", v):
        return {"kind": "sha", "name": v, "sha": v.lower() if len(v) == 40 else None}
    raise ModuleError("Cannot find version %s in %s: not a branch, tag or commit id" % (v, args.repo))


def plan(args: Args, host: Host) -> Change:
    for name, hint in REFUSED.items():
        if getattr(args, name):
            raise ModuleError("git: %s is not supported by provision (%s)" % (name, hint))
    git = _Git(args, host)
    dest = os.path.abspath(os.path.expanduser(args.dest))
    git_dir = dest if args.bare else os.path.join(dest, ".git")
    data: Dict[str, Any] = {"before": None, "after": None, "remote_url_changed": False}
    refs = _remote_refs(git, args.repo)
    target = _target(args, refs)
    if not os.path.exists(os.path.join(git_dir, "HEAD")):
        if not args.clone:  # Ansible reports the remote's commit as a change, every time
            return Change(True, data=dict(data, after=target["sha"]), todo={"clone": False, "target": target,
                                                                            "moves": False, "read_only": True})
        if os.path.isdir(dest) and os.listdir(dest):
            raise ModuleError("Destination path '%s' already exists and is not an empty directory." % dest)
        return Change(True, "would clone %s" % args.repo if host.check_mode else "",
                      text_diff(dest, "", "%s\n" % target["sha"]), todo={"clone": True, "target": target},
                      data=dict(data, after=target["sha"]))
    before = git("rev-parse", "HEAD", cwd=dest, check=False) or None
    data["before"] = before
    url = git("config", "--get", "remote.%s.url" % args.remote, cwd=dest, check=False)
    data["remote_url_changed"] = url != args.repo
    dirty = not args.bare and bool(git("status", "--porcelain", "--untracked-files=no", cwd=dest))
    if dirty and not args.force and args.update:
        raise ModuleError("Local modifications exist in the destination: %s (force=no)." % dest, **data)
    want = target["sha"]
    if want is None and target["kind"] == "sha":  # an abbreviated id: known locally, or fetched in apply
        want = git("rev-parse", "--verify", "--quiet", args.version + "^{commit}", cwd=dest, check=False) or None
    moves = args.update and (want != before or dirty)
    if args.update and target["kind"] == "branch" and not args.bare and not moves:
        moves = git("symbolic-ref", "--short", "-q", "HEAD", cwd=dest, check=False) != target["name"]
    data["after"] = want if args.update else before
    if not moves and not data["remote_url_changed"]:
        return Change(False, data=data)
    diff = text_diff(dest, "%s\n" % before, "%s\n" % (data["after"] or args.version))
    return Change(True, "would update %s to %s" % (dest, args.version) if host.check_mode else "", diff,
                  todo={"clone": False, "target": target, "moves": moves, "dirty": dirty}, data=data)


def _checkout(git: _Git, args: Args, dest: str, target: Dict[str, Any]) -> None:
    if args.bare:
        return
    if target["kind"] == "branch":
        if target["name"] == "HEAD":
            return
        git("checkout", "--force", "-B", target["name"], "%s/%s" % (args.remote, target["name"]), cwd=dest)
    else:
        if git("rev-parse", "--verify", "--quiet", args.version + "^{commit}", cwd=dest, check=False) == "":
            git("fetch", args.remote, args.version, cwd=dest)  # a commit no branch or tag reaches
        git("checkout", "--force", "--detach", args.version, cwd=dest)
    if args.force:
        git("reset", "--hard", cwd=dest)
    if args.recursive and os.path.exists(os.path.join(dest, ".gitmodules")):
        git("submodule", "update", "--init", "--recursive", cwd=dest)


def _apply(args: Args, change: Change, git: _Git) -> Dict[str, Any]:
    todo = change.todo
    target = todo["target"]
    dest = os.path.abspath(os.path.expanduser(args.dest))
    if todo["clone"]:
        cmd = ["clone", "--origin", args.remote]
        if args.bare:
            cmd.append("--bare")
        if args.depth:
            cmd += ["--depth", str(args.depth)] + (["--branch", target["name"]] if target["kind"] != "sha" else [])
        if args.single_branch:
            cmd.append("--single-branch")
        if args.reference:
            cmd += ["--reference", args.reference]
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        git(*cmd, args.repo, dest)
        _checkout(git, args, dest, target)
    else:
        if change.data["remote_url_changed"]:
            git("remote", "set-url", args.remote, args.repo, cwd=dest)
        if todo["moves"]:
            heads = "+refs/heads/*:refs/heads/*" if args.bare else "+refs/heads/*:refs/remotes/%s/*" % args.remote
            cmd = ["fetch", "--force"] + (["--depth", str(args.depth)] if args.depth else [])
            git(*cmd, args.remote, heads, "+refs/tags/*:refs/tags/*", *([args.refspec] if args.refspec else []),
                cwd=dest)
            _checkout(git, args, dest, target)
    if args.verify_commit:
        git("verify-commit", "HEAD", cwd=dest)
    after = git("rev-parse", "HEAD", cwd=dest)
    # as Ansible: a branch switch onto the same commit is made but is no change
    return {"after": after, "changed": after != change.data["before"] or change.data["remote_url_changed"]
            or todo["clone"] or bool(todo.get("dirty"))}


def apply(args: Args, change: Change, host: Host) -> Dict[str, Any]:
    if change.todo.get("read_only"):
        return {"changed": True}
    git = _Git(args, host)
    if args.umask is None:
        return _apply(args, change, git)
    old = os.umask(int(str(args.umask), 8) if not isinstance(args.umask, int) else args.umask)
    try:
        return _apply(args, change, git)
    finally:
        os.umask(old)
