"""Run a model-written Python program in a contained child process, for the `code` reward.

A local process sandbox that works with nothing installed, in the spirit of human-eval's `reliability_guard`, with the
holes it leaves closed by Python audit hooks (PEP 578), which cannot be removed once installed and fire inside C code
paths that monkeypatching misses (`io.FileIO`, `os.open`, `posix.fork`). Layers:

* time: a wall-clock timeout kills the process group, RLIMIT_CPU stops CPU-bound code; memory: RLIMIT_AS/DATA;
* processes: the hook refuses fork/exec/spawn/system, `subprocess`, `multiprocessing`, `ctypes`, `pty`, `resource`
  and subinterpreters (which would not carry the hook); RLIMIT_NPROC too, which the kernel ignores for root;
* files: writes only inside a fresh temporary directory, removed afterwards; RLIMIT_FSIZE, RLIMIT_NOFILE;
* network: every `socket.*` audit event is refused; environment: PATH only, `python -I -S -B`;
* output: read back from files outside the working directory, truncated to `max_output_bytes`.

This contains mistakes and reward hacking by a policy being trained; it is not a security boundary against a person
writing exploits for CPython. For untrusted public input, run the whole trainer inside a container as well.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from r1.errors import UserError

__all__ = ["SandboxResult", "run_python", "BLOCKED_MARKER"]

BLOCKED_MARKER = "r1-sandbox: blocked"

# Runs inside the child, before the user's program: limits, then the audit hook, then the program.
# Kept free of imports of anything the hook later denies.
_RUNNER = r"""
import sys


def _install(mem, cpu, fsize):
    import posix
    import resource

    limits = [(resource.RLIMIT_AS, mem), (resource.RLIMIT_DATA, mem), (resource.RLIMIT_FSIZE, fsize),
              (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, 64)]
    if posix.getuid() != 0:  # the kernel ignores RLIMIT_NPROC for root; for others: a few threads, no bombs
        n = 0
        for p in posix.listdir("/proc"):
            try:
                n += p.isdigit() and posix.stat("/proc/" + p).st_uid == posix.getuid()
            except OSError:
                pass
        limits.append((resource.RLIMIT_NPROC, n + 8))
    for what, value in limits:
        try:
            resource.setrlimit(what, (value, value))
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for m in ("resource", "subprocess", "_posixsubprocess", "multiprocessing", "ctypes", "_ctypes"):
        sys.modules.pop(m, None)  # already-imported modules would not raise the "import" audit event

    # Everything the hook uses is captured here, as C functions in closure cells: patching os or os.path from the
    # program cannot change what the hook sees. Paths are normalised as strings, which is exact because links
    # (the only way a path inside the work dir can lead outside) cannot be created.
    getcwd, fspath, write = posix.getcwd, posix.fspath, posix.write
    cwd = posix.getcwd()
    write_flags = posix.O_WRONLY | posix.O_RDWR | posix.O_APPEND | posix.O_CREAT | posix.O_TRUNC
    marker = b"\n" + "r1-sandbox: blocked".encode() + b" "
    deny_events = frozenset(("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
        "os.kill", "os.killpg", "os.putenv", "os.unsetenv", "subprocess.Popen", "pty.spawn", "os.chroot",
        "os.symlink", "os.link", "os.setuid", "os.setgid", "os.setreuid", "os.setregid", "os.setresuid",
        "os.setresgid", "resource.setrlimit", "resource.prlimit", "signal.pthread_kill", "gc.get_objects",
        "gc.get_referrers", "gc.get_referents", "sys.setprofile", "sys.settrace", "_posixsubprocess.fork_exec"))
    # subinterpreters would run without this (per-interpreter) hook; _testcapi can start them too
    blocked_imports = frozenset(("subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing", "ctypes",
        "_ctypes", "pty", "resource", "_xxsubinterpreters", "_xxinterpchannels", "_interpreters", "_testcapi",
        "_testinternalcapi", "_testmultiphase", "_testsinglephase"))
    path_events = {"os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.truncate": (0,), "os.chmod": (0,),
        "os.chown": (0,), "os.mkdir": (0,), "os.utime": (0,), "os.chflags": (0,), "os.lchflags": (0,),
        "os.lchmod": (0,), "os.mkfifo": (0,), "os.mknod": (0,), "shutil.rmtree": (0,), "os.setxattr": (0,),
        "os.removexattr": (0,)}

    def inside(path):
        if isinstance(path, int):
            return False
        try:
            p = fspath(path)
            if isinstance(p, bytes):
                p = p.decode("utf-8", "surrogateescape")
        except Exception:
            return False
        if not p.startswith("/"):
            p = getcwd() + "/" + p
        parts = []
        for part in p.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        p = "/" + "/".join(parts)
        return p == cwd or p.startswith(cwd + "/")

    def deny(what):
        try:
            write(2, marker + str(what).encode("utf-8", "replace")[:200] + b"\n")
        except OSError:
            pass
        raise PermissionError("r1 sandbox: %s is not allowed" % (what,))

    def hook(event, args):
        if event in deny_events or event.startswith(("socket.", "ctypes.")):
            deny(event)
        elif event == "import":
            if args[0].partition(".")[0] in blocked_imports:
                deny("import " + args[0])
        elif event == "open":
            path, mode, flags = args[0], args[1], args[2]
            writing = (flags or 0) & write_flags or (isinstance(mode, str) and any(c in mode for c in "wax+"))
            if writing and not inside(path):
                if not (isinstance(path, int) and path >= 0):  # an already open descriptor
                    deny("open %r for writing" % (path,))
        elif event in path_events:
            for i in path_events[event]:
                if i < len(args) and not inside(args[i]):
                    deny("%s %r" % (event, args[i]))
            if event != "shutil.rmtree" and isinstance(args[-1], int) and args[-1] >= 0:
                deny(event + " relative to a directory descriptor")

    sys.addaudithook(hook)


_install(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
with open(sys.argv[4], "rb") as _f:
    _code = compile(_f.read(), "solution.py", "exec")
del _install, _f
sys.argv = ["solution.py"]
exec(_code, {"__name__": "__main__", "__builtins__": __builtins__, "__file__": "solution.py"})
"""


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run produced. `ok` means: finished in time with exit status 0."""

    stdout: str
    stderr: str
    returncode: int | None
    timed_out: bool
    duration_s: float
    blocked: bool = False  # the guard refused an operation (fork, network, write outside the work directory...)
    truncated: bool = False  # stdout or stderr hit max_output_bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _read_capped(path: str, limit: int) -> tuple[str, bool]:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit


def run_python(
    code: str, stdin: str = "", timeout_s: float = 2.0, memory_mb: int = 256, max_output_bytes: int = 1 << 20
) -> SandboxResult:
    """Run `code` as `__main__` in a contained child Python, feeding `stdin`; see the module docstring for limits.

    Never raises for anything the program does (crash, timeout, denied operation); raises UserError for bad limits.
    """
    if not timeout_s > 0:
        raise UserError(f"run_python: timeout_s must be > 0, got {timeout_s}")
    if memory_mb < 32:
        raise UserError(f"run_python: memory_mb must be >= 32 (the interpreter itself needs ~20 MB), got {memory_mb}")
    if max_output_bytes < 1:
        raise UserError(f"run_python: max_output_bytes must be >= 1, got {max_output_bytes}")
    base = tempfile.mkdtemp(prefix="r1_sandbox_")
    try:
        work = os.path.join(base, "work")
        os.mkdir(work)
        program = os.path.join(base, "solution.py")  # outside the work dir: the program cannot rewrite itself
        with open(program, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(code)
        in_path, out_path, err_path = (os.path.join(base, n) for n in ("stdin", "stdout", "stderr"))
        with open(in_path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(stdin)
        cpu_s = math.ceil(timeout_s) + 1
        fsize = max_output_bytes + 1024
        argv = [sys.executable, "-I", "-S", "-B", "-c", _RUNNER, str(memory_mb << 20), str(cpu_s), str(fsize), program]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        start = time.perf_counter()
        with open(in_path, "rb") as fin, open(out_path, "wb") as fout, open(err_path, "wb") as ferr:
            proc = subprocess.Popen(
                argv, stdin=fin, stdout=fout, stderr=ferr, cwd=work, env=env, start_new_session=True, close_fds=True
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        duration = time.perf_counter() - start
        stdout, t1 = _read_capped(out_path, max_output_bytes)
        stderr, t2 = _read_capped(err_path, max_output_bytes)
        returncode = None if timed_out else proc.returncode
        if proc.returncode == -signal.SIGXCPU or proc.returncode == -signal.SIGKILL and duration >= timeout_s:
            timed_out = True
        return SandboxResult(
            stdout=stdout,
            stderr=stderr,
            returncode=returncode,
            timed_out=timed_out,
            duration_s=duration,
            blocked=BLOCKED_MARKER in stderr,
            truncated=t1 or t2,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child and anything left in its process group, then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()
