"""The `bentoml serve` process of a deployment, on loopback: start (and wait until ready), check, stop.

The server runs in its own session (process group), detached from `ml`: it outlives the command that
started it. Its pid is recorded in state and in ``server.pid``; its output goes to ``server.log`` in the
service folder. A start that does not reach ready (every worker acknowledged the control file and
``/readyz`` answers 200) within the timeout is killed: nothing is left half-started.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ml_framework.errors import MLError

from .control import wait_for_generation

__all__ = ["ServerError", "PortInUse", "Server", "start_server", "stop_server", "take_listener", "drain_and_stop", "is_running", "is_ready",
           "port_free", "who_listens", "log_tail", "url_for", "build_bento", "orphan_workers"]


class ServerError(MLError):
    """The service process could not be started or stopped."""


class PortInUse(ServerError):
    pass


@dataclass(frozen=True)
class Server:
    pid: int
    host: str
    port: int

    @property
    def url(self) -> str:
        return url_for(self.host, self.port)


def url_for(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def who_listens(port: int) -> str | None:
    """'pid 1234 (python)' of the process listening on `port`, when /proc tells (Linux), else None."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    try:
        pids = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return None
    for pid_dir in pids:
        if _socket_fd(pid_dir, inodes) is not None:
            try:
                name = (pid_dir / "comm").read_text().strip()
            except OSError:
                name = "?"
            return f"pid {pid_dir.name} ({name})"
    return None


def _socket_fd(pid_dir: Path, inodes: set[str]) -> int | None:
    """The number of an fd of the process at ``pid_dir`` (``/proc/<pid>``) open on one of the socket
    ``inodes``, or None (also when /proc does not let us look)."""
    try:
        fds = list((pid_dir / "fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        try:  # an fd may close while we look: skip it, not the rest of the process's
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return int(fd.name)
    return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_running(pid: int | None, folder: Path | None = None) -> bool:
    """The process exists, is not a zombie, and (when /proc tells) is the server of this folder."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    except (OSError, IndexError):
        pass
    if folder is not None and Path("/proc").is_dir():
        line = _cmdline(int(pid))
        return bool(line) and "bentoml" in line and str(folder) in line
    return True


def is_ready(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def log_tail(folder: Path, lines: int = 15) -> str:
    try:
        text = (Path(folder) / "server.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    useful = [line for line in text.splitlines() if line.strip()]
    return "\n".join(useful[-lines:])


def _environment(folder: Path | None = None, project_dir: Path | None = None) -> dict[str, str]:
    """The environment of a `bentoml serve` process. Its BENTOML_HOME is the deployment's own folder
    (``<service folder>/bentoml``): BentoML wipes ``$BENTOML_HOME/prometheus_multiproc_dir`` at every start
    and counts every process sharing it, so one home per deployment keeps each ``/metrics`` to itself;
    its ``models`` is a link to the project's model store, where the versions it serves are."""
    env = dict(os.environ)
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    from ml_framework.plugins.models.artifacts import bentoml_home

    if folder is not None and project_dir is not None:
        env["BENTOML_HOME"] = str(deployment_home(folder, bentoml_home(project_dir)))
    else:
        env["BENTOML_HOME"] = str(bentoml_home(project_dir))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def deployment_home(folder: Path, store_home: Path) -> Path:
    """``<folder>/bentoml`` with ``models`` linking to ``store_home/models`` (made or repaired here)."""
    home = Path(folder) / "bentoml"
    home.mkdir(parents=True, exist_ok=True)
    models = Path(store_home) / "models"
    models.mkdir(parents=True, exist_ok=True)
    link = home / "models"
    if link.is_symlink() and Path(os.readlink(link)) == models:
        return home
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    tmp = home / f".models.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(models, target_is_directory=True)
    os.replace(tmp, link)
    return home


def take_listener(pid: int | None, port: int) -> int | None:
    """A duplicate, in this process, of the socket server ``pid`` listens with on ``port`` (Linux
    pidfd_getfd), or None when it cannot be had (another OS, no permission): the caller restarts the plain
    way. Handed to the next process of the same service, it keeps every queued connection."""
    if not pid or not hasattr(os, "pidfd_open") or not Path("/proc/net/tcp").is_file():
        return None
    found = _socket_fd(Path(f"/proc/{int(pid)}"), _listening_inodes(int(port)))
    if found is None:
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(int(pid))
    except OSError:
        return None
    try:
        fd = libc.syscall(438, pidfd, found, 0)  # pidfd_getfd: the same number on x86_64 and arm64
    finally:
        os.close(pidfd)
    return fd if fd >= 0 else None


def start_server(folder: Path, class_name: str, *, host: str, port: int, workers: int, generation: int,
                 timeout: float, progress=None, project_dir: Path | None = None, listener: int | None = None) -> Server:
    """Start `bentoml serve` for the service in `folder`; return once every worker is ready. ``listener``:
    the listening socket of this service's previous process (:func:`take_listener`), adopted instead of
    binding the port (:mod:`.serve_main`); the caller stops the previous process once this one is ready."""
    folder = Path(folder)
    deadline = time.monotonic() + 3.0
    while listener is None and not port_free(host, port) and not who_listens(port) and time.monotonic() < deadline:
        time.sleep(0.1)  # held, but nobody listens: a socket of a process that just died is being closed
    if listener is None and not port_free(host, port):
        holder = who_listens(port)
        raise PortInUse(f"port {port} on {host} is already in use" + (f" by {holder}" if holder else ""),
                        hint="stop what listens there, or choose another serving.port")
    log = open(folder / "server.log", "ab")
    command = [sys.executable, "-m", "ml_framework.plugins.bentoml.serve_main", "serve", f"service:{class_name}",
               "--host", host, "--port", str(port), "--working-dir", str(folder)]
    env = _environment(folder, project_dir)
    if listener is not None:
        env.update(ML_LISTEN_FD=str(listener), ML_LISTEN_PORT=str(port))
    try:
        process = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   pass_fds=(listener,) if listener is not None else ())
    finally:
        log.close()
        if listener is not None:
            os.close(listener)  # the new process holds it now
    (folder / "server.pid").write_text(str(process.pid))
    server = Server(process.pid, host, port)
    try:
        if progress:
            progress(f"started bentoml serve (pid {process.pid}) on {server.url}; waiting for /readyz")
        wait_for_generation(folder, generation, workers, timeout=timeout, alive=lambda: process.poll() is None,
                            server_pid=process.pid)
        deadline = time.monotonic() + max(5.0, timeout / 4)
        while not is_ready(server.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerError("the service did not answer /readyz")
            time.sleep(0.05)
    except BaseException as exc:
        stop_server(process.pid, folder, timeout=10)  # the server and any worker it started
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        (folder / "server.pid").unlink(missing_ok=True)
        if isinstance(exc, MLError):
            tail = log_tail(folder)
            if "Address already in use" in tail:
                raise PortInUse(f"port {port} on {host} is already in use") from None
            raise ServerError(f"the service did not start: {exc.message}" + (f"\n{tail}" if tail else ""),
                              hint=f"full log: {folder / 'server.log'}") from None
        raise
    return server


def _kill_group(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _group_alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child (started by this process)
    except ChildProcessError:
        pass
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def orphan_workers(folder: Path, server_pid: int | None) -> set[int]:
    """Workers of this deployment's server still alive after the server itself is gone (kill -9 of the
    parent leaves them answering on the port)."""
    if not server_pid:
        return set()
    folder_text = str(Path(folder).resolve())
    return {w for w in _worker_pids(Path(folder), int(server_pid)) if _alive(w) and _cwd(w) == folder_text}


def _worker_pids(folder: Path, server_pid: int) -> set[int]:
    """The workers of a server: named by their acknowledgement files, and its children now. BentoML
    (circus) starts each worker in a session of its own, so signalling the server's group misses them."""
    pids: set[int] = set()
    for path in (Path(folder) / "status").glob(f"{server_pid}-*.json"):
        try:
            pids.add(int(path.stem.split("-", 1)[1]))
        except ValueError:
            continue
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == server_pid:
                pids.add(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _terminate(pids: set[int], timeout: float) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
            break
        time.sleep(0.05)


def stop_server(pid: int | None, folder: Path | None = None, *, timeout: float = 15.0) -> bool:
    """Stop the server and its workers: SIGTERM (BentoML stops its workers gracefully), then SIGKILL after
    `timeout`; workers that outlived their server (it was killed) are stopped too. True if anything of it
    was running. Already gone is fine."""
    folder_text = str(Path(folder).resolve()) if folder is not None else None
    workers = _worker_pids(Path(folder), int(pid)) if (folder is not None and pid) else set()
    running = bool(pid) and is_running(pid, folder)
    if running:
        pid = int(pid)
        _kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _group_alive(pid):
            if time.monotonic() > deadline:
                _kill_group(pid, signal.SIGKILL)
                time.sleep(0.2)
                _group_alive(pid)
                break
            time.sleep(0.05)
    leftover = {w for w in workers if _alive(w) and _cwd(w) == folder_text}
    if leftover:
        _terminate(leftover, min(timeout, 10.0))
    if folder is not None:
        pid_file = Path(folder) / "server.pid"
        if pid_file.is_file() and pid_file.read_text().strip() == str(pid):
            pid_file.unlink(missing_ok=True)
        for status in (Path(folder) / "status").glob(f"{pid}-*.json"):
            status.unlink(missing_ok=True)
    return running or bool(leftover)


def drain_and_stop(pid: int | None, folder: Path, *, drain_s: float = 1.0) -> bool:
    """Stop a process whose successor already accepts from the same listening socket: its workers stop
    accepting first (``drain-<pid>`` beside the service, seen within 0.1 s), answer what they accepted,
    then it is stopped as usual."""
    marker = Path(folder) / f"drain-{pid}"
    try:
        marker.touch()
        time.sleep(drain_s)
        return stop_server(pid, folder)
    finally:
        marker.unlink(missing_ok=True)


def build_bento(folder: Path, *, timeout: float = 300.0, project_dir: Path | None = None) -> str:
    """`bentoml build` of the service folder (copied out of `.ml/`: BentoML refuses hidden paths);
    returns the Bento tag. The Bento runs where `ml`'s packages are installed (it imports them)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ml-bento-") as tmp:
        source = Path(tmp) / Path(folder).name
        shutil.copytree(folder, source, ignore=shutil.ignore_patterns("status", "server.*", "*.tmp", "bentoml"))
        proc = subprocess.run([sys.executable, "-m", "bentoml", "build", str(source), "--output", "tag"],
                              capture_output=True, text=True, env=_environment(project_dir=project_dir), cwd=source,
                              timeout=timeout)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise ServerError("bentoml build failed: " + (lines[-1] if lines else f"exit status {proc.returncode}"))
    found = [line for line in proc.stdout.splitlines() if line.startswith("__tag__:")]
    if not found:
        raise ServerError(f"bentoml build printed no tag: {proc.stdout[-200:]}")
    return found[-1].split(":", 1)[1].strip()
