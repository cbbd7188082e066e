"""`cnnc train --workers N`: start N ranks on this machine through the MPI runtime's own
launcher (mpiexec), and say in one line what happened to them.

The ranks run the same `cnnc train` command (without --workers) and find their world
in the launcher's environment (distributed.join). What the runtime needs on one
machine is passed: Open MPI refuses more ranks than cores and running as root unless
told; MPICH's Hydra allows both. Each rank leaves a status file in a folder of the
launch, so that a rank that died without a word (SIGKILL, the kernel's OOM killer) is
told apart from one that stopped with its own error: the runtime then stops the others
at once (Hydra and Open MPI both do), and this says which rank died and where the last
checkpoint stands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import CnncRuntimeError
from ..util import cores
from . import distributed

# What the runtimes print when they stop a job (Hydra on stdout): replaced by one line.
_RUNTIME_CHATTER = re.compile(
    r"^(=+|=  .*|YOUR APPLICATION TERMINATED.*|This typically refers to a problem.*|"
    r"Please see the FAQ page.*|-+|Primary job +terminated.*|mpiexec noticed that.*|"
    r"prterun noticed that.*|\[mpiexec@.*|\s*)$|.*(BAD TERMINATION|CLEANING UP|YOU CAN IGNORE)")


def mpiexec() -> tuple[str, list[str]]:
    """The launcher of the MPI runtime mpi4py uses, and the options it needs here."""
    distributed.require_mpi()
    here = str(Path(sys.executable).parent)
    path = shutil.which("mpiexec", path=here + os.pathsep + os.environ.get("PATH", ""))
    if path is None:
        raise CnncRuntimeError(f"--workers: no mpiexec found (next to {sys.executable} or "
                               f"on PATH): {distributed.INSTALL}")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CnncRuntimeError(f"--workers: {path} --version failed ({e})") from None
    options = []
    if "Open MPI" in version or "OpenRTE" in version or "PRRTE" in version:
        options.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            options.append("--allow-run-as-root")
    return path, options


def rank_argv(argv: list[str]) -> list[str]:
    """`argv` of `cnnc train ... --workers N ...` without --workers N."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def launch(argv: list[str], workers: int, run_dir: Path) -> int:
    """Run `cnnc argv` as `workers` ranks; their exit status, or 1 with one line saying
    which rank died."""
    command, options = mpiexec()
    env = dict(os.environ)
    threads = max(1, cores() // workers)
    env.setdefault("NUMBA_NUM_THREADS", str(threads))
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryDirectory(prefix="cnnc-launch-") as folder:
        env[distributed.STATUS_DIR] = folder
        cmd = [command, "-n", str(workers), *options, sys.executable, "-m", "cnnc",
               *rank_argv(argv)]
        chatter = []
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True,
                                    bufsize=1, errors="replace")
        except OSError as e:
            raise CnncRuntimeError(f"--workers: could not start {command} ({e})") from None
        # Ctrl-C reaches the ranks themselves (one process group): they stop together
        # at a step's end and rank 0 writes a checkpoint. SIGTERM is passed on.
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        try:
            for line in proc.stdout:
                if _RUNTIME_CHATTER.match(line.rstrip("\n")):
                    chatter.append(line)
                else:
                    sys.stdout.write(line)
            code = proc.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        statuses = {}
        for rank in range(workers):
            path = Path(folder) / f"rank-{rank}.json"
            try:
                statuses[rank] = json.loads(path.read_text())
            except (OSError, ValueError):
                statuses[rank] = {}
    reported = {rank: s["status"] for rank, s in statuses.items()
                if s.get("status") is not None}
    silent = [rank for rank in statuses if rank not in reported]
    if code == 0 and not silent:
        return 0
    failed = [status for _, status in sorted(reported.items()) if status]
    if failed:                                # a rank stopped with its own error
        return reported.get(0) or failed[0]
    if not silent:
        return code or 1
    print(f"cnnc: error: {_died(silent, statuses, workers, ''.join(chatter), code)}; "
          f"{_checkpoint_note(run_dir)}", file=sys.stderr)
    return 1


def _died(silent: list[int], statuses: dict, workers: int, chatter: str, code: int) -> str:
    """Which rank died without a word, and of what, as far as the runtime said."""
    pid = re.search(r"PID (\d+)", chatter)               # Hydra: the first to fail
    named = re.search(r"process rank (\d+)", chatter)    # Open MPI
    first = None
    if pid:
        first = next((r for r, s in statuses.items() if s.get("pid") == int(pid.group(1))),
                     None)
    elif named and int(named.group(1)) < workers:
        first = int(named.group(1))
    found = re.search(r"signal (\d+)", chatter) or re.search(r"EXIT CODE: (\d+)", chatter)
    how = ""
    if found:
        number = int(found.group(1))
        try:
            how = f" (killed by signal {number}, {signal.Signals(number).name})"
        except ValueError:
            how = f" (exit status {number})"
    elif code < 0:
        how = f" (signal {-code})"
    if first is not None:
        return f"rank {first} of {workers} died{how} and the MPI runtime stopped the others"
    if len(silent) == workers:
        return f"the {workers} ranks stopped without a word{how}"
    return f"rank {', '.join(map(str, silent))} of {workers} stopped without a word{how}"


def _checkpoint_note(run_dir: Path) -> str:
    from .fit import CHECKPOINT
    from .weights import read_npz
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return "no checkpoint was written yet"
    try:
        meta = json.loads(read_npz(path)["meta"].tobytes().decode("utf-8"))
        where = f"epoch {meta['epoch'] + 1}, batch {meta['batch']}"
    except Exception:                          # noqa: BLE001 - the note is a courtesy
        where = "unreadable"
    return f"the last checkpoint, {path} ({where}), is intact: continue with --resume " \
           f"{run_dir}"
