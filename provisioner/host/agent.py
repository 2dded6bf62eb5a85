"""The agent: one python3 process per host for the whole run, spoken to in JSON lines.

It is started once over one SSH exec session (or locally as a subprocess) and answers
requests until its stdin closes: gather facts, run a module, put or get a file. Tasks
that need another user (`become`) are relayed to a child agent started with sudo on the
host itself, so a host costs one SSH session however many users its tasks run as.
When stdin closes (the controller stopped or was interrupted) the agent kills the
command it is running and exits: nothing is left behind on the host.
"""

from __future__ import annotations

import _thread  # the C module: `threading` imports warnings, weakref sets... (~1 ms of every host's CPU)
import binascii
import importlib
import os
import sys

from provisioner.host import proc, runtime, wire
from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import Host

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional

BOOT_MARKER = b"#provision-boot"
# A progress line travels on the same channel as the replies, before the reply to its request:
# {"_progress": {...}, "id": N}. The controller passes it to a callback and reads on.
PROGRESS_PREFIX = b'{"_progress"'


def _kill_children() -> None:
    """Every command still running, with its process group (each runs in a session of its own)."""
    for started in list(proc.RUNNING.values()):
        started.kill()


class SubAgent:
    """A child agent running as another user through sudo; requests are relayed to it."""

    def __init__(self, user: str, password: Optional[str], bundle_line: bytes) -> None:
        python = sys.executable or "python3"
        boot = BOOT_CODE
        if os.geteuid() == 0 and user == "root":
            argv = [python, "-I", "-S", "-c", boot]
        elif password:
            argv = ["sudo", "-H", "-S", "-p", "[provision-sudo]", "-u", user, "--", python, "-I", "-S", "-c", boot]
        else:
            argv = ["sudo", "-H", "-n", "-u", user, "--", python, "-I", "-S", "-c", boot]
        self.proc = proc.Proc(argv, os.environ, stdin_pipe=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self.stdin = os.fdopen(self.proc.stdin, "wb")
        self.stdout = os.fdopen(self.proc.stdout, "rb")
        self.stderr = os.fdopen(self.proc.stderr, "rb")
        self.proc.stdin = self.proc.stdout = self.proc.stderr = None  # the file objects own them now
        if password and argv[0] == "sudo":
            self.stdin.write(password.encode() + b"\n")
        self.stdin.write(BOOT_MARKER + b"\n" + bundle_line)
        self.facts_sent: Optional[Dict[str, Any]] = None   # the parent's facts this agent was given last
        self.stdin.flush()
        hello = self.call({"op": "hello"})
        if hello.get("failed"):
            raise RuntimeError(hello.get("msg"))

    def call(self, request: Dict[str, Any], relay: Optional[Callable[[bytes], None]] = None) -> Dict[str, Any]:
        """One request; the child's progress lines go to `relay` as they come (raw, to be forwarded)."""
        try:
            self.stdin.write(wire.dumps(request).encode() + b"\n")
            self.stdin.flush()
            line = self.stdout.readline()
            while line.startswith(PROGRESS_PREFIX):
                if relay is not None:
                    relay(line)
                line = self.stdout.readline()
        except (BrokenPipeError, ValueError):  # ValueError: the pipes were closed (the controller left)
            line = b""
        if not line:
            try:
                err = self.stderr.read().decode(errors="replace")
            except ValueError:
                err = ""
            err = err.replace("[provision-sudo]", "").strip()
            if "incorrect password" in err or "try again" in err:
                reason = "become password is wrong"
            elif "a password is required" in err or "no tty present" in err:
                reason = "become needs a password: set ansible_become_password or use -K"
            elif "not in the sudoers" in err or "not allowed" in err:
                reason = "the login user may not use sudo"
            else:
                reason = "could not start the become agent: " + (err[-300:] or "it exited")
            return {"failed": True, "msg": reason, "become_failed": True}
        return wire.loads(line.decode())  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            self.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.stdout, self.stderr):
            try:
                pipe.close()
            except OSError:
                pass


class Agent:
    def __init__(self, bundle_line: Any, send: Optional[Callable[[bytes], None]] = None) -> None:
        self._bundle_line = bundle_line  # the line, or a function that makes it (the host kept the bundle)
        self.send = send  # writes one line to the controller (progress lines; None: nobody listens)
        self.request_id: Any = None
        self.facts: Dict[str, Any] = {}
        self.subagents: Dict[str, SubAgent] = {}
        self.user = _current_user()

    def handle(self, req: Dict[str, Any]) -> Dict[str, Any]:
        become = req.pop("become", None)
        if become and become.get("user", "root") != self.user:
            user = become.get("user", "root")
            sub = self.subagents.get(user)
            if sub is None or sub.proc.poll() is not None:
                try:
                    sub = SubAgent(user, become.get("password"), self.bundle_line())
                except Exception as exc:  # the reason was already turned into a sentence
                    return {"failed": True, "msg": str(exc), "become_failed": True}
                self.subagents[user] = sub
            if self.facts and sub.facts_sent is not self.facts:  # new, or kept from an earlier run (--persist)
                sub.call({"op": "set_facts", "facts": self.facts})
                sub.facts_sent = self.facts
            return sub.call(req, relay=self.send)
        op = req.get("op")
        if op == "hello":
            hello = {"python": sys.version.split()[0], "executable": sys.executable, "user": self.user,
                     "pid": os.getpid()}
            if req.get("modules"):  # what this agent has imported so far (tests keep the host's start cheap)
                hello["modules"] = sorted(sys.modules)
            return hello
        if op == "facts":
            from provisioner.host import facts
            self.facts = facts.gather(Host())
            return {"facts": self.facts}
        if op == "set_facts":
            self.facts = req["facts"]
            return {}
        if op == "run":
            return self.run_module(req)
        if op == "put":
            host = Host()
            mode = req.get("mode")
            host.write_atomic(req["path"], binascii.a2b_base64(req["data"]),
                              mode=runtime.parse_mode(mode) if mode is not None else None)
            return {"path": req["path"]}
        if op == "get":
            data = Host().read_bytes(req["path"])
            if data is None:
                return {"failed": True, "msg": "no such file: %s" % req["path"]}
            return {"data": binascii.b2a_base64(data, newline=False).decode()}
        return {"failed": True, "msg": "unknown request %r" % op}

    def bundle_line(self) -> bytes:
        """The bundle as the boot line reads it, for a become agent (made once, if it was kept)."""
        if callable(self._bundle_line):
            self._bundle_line = self._bundle_line()
        return self._bundle_line  # type: ignore[no-any-return]

    def run_module(self, req: Dict[str, Any]) -> Dict[str, Any]:
        module = importlib.import_module("provisioner.modules." + req["module"])
        args = module.Args(**req.get("args", {}))
        host = Host(facts=self.facts, check_mode=bool(req.get("check")), diff_mode=bool(req.get("diff")),
                    env=req.get("env") or {}, progress=self.progress if self.send is not None else None)
        return execute_module(module, args, host)


    def progress(self, info: Dict[str, Any]) -> None:
        if self.send is not None:
            self.send(wire.dumps({"_progress": info, "id": self.request_id}).encode() + b"\n")


def _current_user() -> str:
    import pwd
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


# What a host's python3 runs (`python3 -I -S -c BOOT_CODE [DIGEST]`): skip anything before the
# marker (a sudo password line that sudo did not ask for), then find the bundle and start it.
# With DIGEST (the controller's bundle hash), a host that kept that bundle from an earlier run
# (~/.cache/provision/bundle-DIGEST: the unpacked bundle, then "\n#end DIGEST" so that a cut file
# is not run; the agent's user's own, nobody else may write it) starts from it: the controller sent the marker and its first request, no bundle. A host that has
# not kept it says NEED_MARKER; the requests that came before the bundle are queued (_Q).
# Without DIGEST (a become agent, fed by its parent) the bundle follows the marker.
NEED_MARKER = b"#provision-need"
BOOT_CODE = (
    "import sys,os,zlib,binascii\n"
    "r=sys.stdin.buffer\n"
    "while r.readline().rstrip()!=b'#provision-boot':pass\n"
    "_Q=[]\n"
    "_K=_L=None\n"
    "def _u(l):\n"
    " d=zlib.decompress(binascii.a2b_base64(l));i=d.index(b'\\0');return d,i\n"
    "if len(sys.argv)>1:\n"
    " _K=os.path.join(os.path.expanduser('~'),'.cache','provision','bundle-'+sys.argv[1])\n"
    " try:\n"
    "  with open(_K,'rb') as f:\n"
    "   s=os.fstat(f.fileno())\n"
    "   if s.st_uid!=os.geteuid() or s.st_mode&18:raise OSError\n"
    "   _D=f.read()\n"
    "  t=b'\\n#end '+sys.argv[1].encode()\n"
    "  if not _D.endswith(t):raise OSError\n"
    "  _D=_D[:-len(t)];_i=_D.index(b'\\0')\n"
    "  if sys.argv[1].encode() not in _D[:_i]:raise OSError\n"
    "  _K=None\n"
    " except Exception:\n"
    "  sys.stdout.buffer.write(b'#provision-need\\n');sys.stdout.buffer.flush()\n"
    "  _L=r.readline()\n"
    "  while _L.startswith(b'{'):_Q.append(_L);_L=r.readline()\n"
    "  _D,_i=_u(_L)\n"
    "else:\n"
    " _L=r.readline();_D,_i=_u(_L)\n"
    "exec(_D[:_i])"
)


class _Lines:
    """The reader thread's lines, in order, for the one main loop (queue.Queue without its import)."""

    def __init__(self) -> None:
        self._items: List[Optional[bytes]] = []
        self._mutex = _thread.allocate_lock()
        self._waiter: Any = None   # a held lock the getter blocks on; put() releases it

    def put(self, item: Optional[bytes]) -> None:
        with self._mutex:
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.release()

    def get(self) -> Optional[bytes]:
        while True:
            with self._mutex:
                if self._items:
                    return self._items.pop(0)
                waiter = self._waiter = _thread.allocate_lock()
                waiter.acquire()
            waiter.acquire()  # until put() releases it


def serve(bundle_line: Any, at_exit: Optional[Callable[[], None]] = None,
          pending: Optional[List[bytes]] = None,
          after_first: Optional[Callable[[], None]] = None) -> None:
    """Read requests from stdin until it closes (`pending`: ones the boot code read already);
    answer each on stdout. `bundle_line`: the bundle's line, or a function that makes it.
    `after_first` runs once the first answer is sent (it keeps the bundle on the host; `at_exit`
    does it too, for a controller that left before it).

    `at_exit` runs once the controller is gone (it writes the host's code cache); then the
    process ends without the interpreter's teardown, which would cost the host a few ms.
    """
    stdin = sys.stdin.buffer
    out = sys.stdout.buffer
    requests = _Lines()
    closed: List[bool] = []     # not empty once the controller is gone
    write_lock = _thread.allocate_lock()

    def send(line: bytes) -> None:
        """One line to the controller: a reply, or a progress line from a module's reader thread."""
        with write_lock:
            out.write(line)
            out.flush()

    def send_progress(line: bytes) -> None:
        if not closed:
            try:
                send(line)
            except (BrokenPipeError, ValueError):
                pass

    agent = Agent(bundle_line, send=send_progress)

    def reader() -> None:
        while True:
            line = stdin.readline()
            if not line:
                closed.append(True)
                requests.put(None)
                _kill_children()
                for sub in list(agent.subagents.values()):
                    sub.close()
                return
            requests.put(line)

    for early in pending or ():
        requests.put(early)
    _thread.start_new_thread(reader, ())
    while True:
        line = requests.get()
        if line is None:
            break
        try:
            req = wire.loads(line.decode())
            rid = agent.request_id = req.get("id")
            resp = agent.handle(req)
        except Exception as exc:
            import traceback
            rid = None
            resp = {"failed": True, "msg": "agent error: %s: %s" % (type(exc).__name__, exc),
                    "exception": traceback.format_exc()}
        resp["id"] = rid
        if closed:
            break
        try:
            send(wire.dumps(resp).encode() + b"\n")
        except BrokenPipeError:
            break
        if after_first is not None:
            after_first()
            after_first = None
    _kill_children()
    if at_exit is not None:
        at_exit()
    try:
        out.flush()
    finally:
        os._exit(0)
