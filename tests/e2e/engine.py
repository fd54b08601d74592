"""A private Docker engine for the end-to-end test, and nothing of the machine's own.

Everything lives under one temporary folder and in namespaces of its own:

- a holder process (``unshare --net --mount``) owns a new network namespace and mount namespace;
  slirp4netns gives that network namespace a route out (user-mode networking, so the machine's
  own routes, iptables and sysctls are never touched); its resolv.conf is slirp's DNS forwarder;
- dockerd runs in those namespaces with its own ``--data-root``, ``--exec-root``, ``--pidfile``,
  ``--host unix://<tmp>/docker.sock``, its own containerd, cgroup parent and bridge addresses. Its
  bridges, veths, iptables chains and the containers' network namespaces exist only inside the
  holder's network namespace; its overlay and bind mounts only inside the holder's mount namespace.
  The "host" of the compose project (host.docker.internal, node-exporter's host network) is
  that network namespace;
- clients reach the engine through its socket file; code that must talk to published ports or
  serve on the "host" runs in the network namespace (``in_netns``, ``netns_popen``).

``close()`` stops everything and ``leftovers()`` says what would remain: processes in the
namespaces, mounts of the folder, the cgroups, a change to the machine's iptables or links.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
REQUIRED = ("dockerd", "containerd", "runc", "unshare", "nsenter", "slirp4netns", "ip", "iptables")


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED if not shutil.which(tool)]


def _iptables_snapshot() -> str:
    out = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            result = subprocess.run([tool], capture_output=True, text=True)
            out.append("\n".join(line for line in result.stdout.splitlines()
                                 if not line.startswith("#") and not line.startswith(":")
                                 or line.startswith(":") and "DOCKER" in line))
    return "\n".join(out)


def _links() -> set[str]:
    result = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True)
    return {line.split(":")[1].strip().split("@")[0] for line in result.stdout.splitlines()}


def _ns_inode(pid: int, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


class PrivateEngine:
    def __init__(self, base: Path | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix="llmwatch-e2e-", dir=base))
        self.name = self.tmp.name
        self.socket = self.tmp / "docker.sock"
        self.cgroup_parent = f"/{self.name}"
        self.log = self.tmp / "dockerd.log"
        self.holder: subprocess.Popen | None = None
        self.slirp: subprocess.Popen | None = None
        self.dockerd: subprocess.Popen | None = None
        self.netns_inode = self.mntns_inode = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._helpers: list[subprocess.Popen] = []
        self._before = {"iptables": _iptables_snapshot(), "links": _links()}

    # ---- start ----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> "PrivateEngine":
        # sleep as the holder: in the new namespaces from its first instruction (no --fork)
        self.holder = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "slave", "--",
                                        "sleep", "infinity"], start_new_session=True)
        deadline = time.monotonic() + 10
        while _ns_inode(self.holder.pid, "net") == _ns_inode(os.getpid(), "net"):
            if time.monotonic() > deadline:
                raise RuntimeError("unshare did not make a network namespace")
            time.sleep(0.05)
        self.netns_inode = _ns_inode(self.holder.pid, "net")
        self.mntns_inode = _ns_inode(self.holder.pid, "mnt")
        self.slirp = subprocess.Popen(["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                                       str(self.holder.pid), "tap0"],
                                      stdout=open(self.tmp / "slirp4netns.log", "w"), stderr=subprocess.STDOUT,
                                      start_new_session=True)
        resolv = self.tmp / "resolv.conf"
        resolv.write_text("nameserver 10.0.2.3\n")  # slirp4netns' DNS forwarder
        self.nsenter("sh", "-c",
                     f"until ip -o addr show tap0 | grep -q 'inet '; do sleep 0.1; done; "
                     f"mount --bind {resolv} /etc/resolv.conf; mount --make-rshared /", timeout=20)
        (self.tmp / "data").mkdir()
        (self.tmp / "exec").mkdir()
        argv = ["nsenter", f"--target={self.holder.pid}", "--net", "--mount", "--",
                "dockerd", f"--data-root={self.tmp / 'data'}", f"--exec-root={self.tmp / 'exec'}",
                f"--host=unix://{self.socket}", f"--pidfile={self.tmp / 'dockerd.pid'}",
                f"--cgroup-parent={self.cgroup_parent}", "--exec-opt=native.cgroupdriver=cgroupfs",
                "--bip=10.213.0.1/24", "--default-address-pool=base=10.214.0.0/16,size=24",
                "--storage-driver=overlay2", "--log-driver=json-file"]
        self.dockerd = subprocess.Popen(argv, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while subprocess.run(["docker", "version"], env=self.env(), capture_output=True).returncode != 0:
            if self.dockerd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)
        return self

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for docker and compose clients of this engine only (no user config)."""
        config = self.tmp / "docker-config"
        config.mkdir(exist_ok=True)
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        return {**keep, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(config),
                "DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false", **extra}

    def docker(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} exited {result.returncode}:\n"
                               f"{(result.stdout + result.stderr)[-4000:]}")
        return result

    def nsenter(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(["nsenter", f"--target={self.holder.pid}", "--net", "--mount", "--", *argv],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{argv} in the engine's namespaces: {result.stdout}{result.stderr}")
        return result

    def netns_popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """A helper process on the engine's "host" (its network namespace), stopped by close()."""
        process = subprocess.Popen(["nsenter", f"--net=/proc/{self.holder.pid}/ns/net", "--", *argv],
                                   start_new_session=True, **kwargs)
        self._helpers.append(process)
        return process

    def in_netns(self, function, *args, **kwargs):
        """Call ``function`` on a thread that lives in the engine's network namespace (sockets it
        opens are there: published ports on 127.0.0.1, the bridge gateway...)."""
        if self._executor is None:
            fd = os.open(f"/proc/{self.holder.pid}/ns/net", os.O_RDONLY)

            def enter():
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")

            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=enter)
        return self._executor.submit(function, *args, **kwargs).result()

    # ---- stop -----------------------------------------------------------------------------

    def _namespace_pids(self) -> list[int]:
        """Every process in the holder's mount or network namespace (containers, shims, dockerd)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                pid = int(entry)
                if self.mntns_inode and _ns_inode(pid, "mnt") == self.mntns_inode or \
                        self.netns_inode and _ns_inode(pid, "net") == self.netns_inode:
                    found.append(pid)
        return found

    def close(self) -> None:
        if self._executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for process in self._helpers:
            _stop(process)
        if self.dockerd and self.dockerd.poll() is None:
            try:  # containers first, so that dockerd removes their cgroups and mounts itself
                ids = self.docker("ps", "-aq", timeout=60, check=False).stdout.split()
                if ids:
                    self.docker("rm", "-f", "-v", *ids, timeout=120, check=False)
            except subprocess.TimeoutExpired:
                pass
            _stop(self.dockerd, timeout=30)
        # whatever is left in the namespaces (a hung shim, a container process)
        for _ in range(3):
            pids = [p for p in self._namespace_pids() if not self.holder or p != self.holder.pid]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        if self.slirp:
            _stop(self.slirp)
        if self.holder:
            _stop(self.holder)
        self._remove_cgroups()
        if self.tmp.exists() and not self._mounted():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _cgroup_dirs(self) -> list[Path]:
        root = Path("/sys/fs/cgroup")
        candidates = [root / self.name] + [d / self.name for d in root.iterdir() if d.is_dir()]
        return [c for c in candidates if c.is_dir()]

    def _remove_cgroups(self) -> None:
        for top in self._cgroup_dirs():
            for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                try:
                    folder.rmdir()
                except OSError:
                    pass
            try:
                top.rmdir()
            except OSError:
                pass

    def _mounted(self) -> list[str]:
        return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(self.tmp) in line]

    def leftovers(self) -> list[str]:
        """What this engine left behind; empty when close() cleaned up everything."""
        found = []
        for pid in self._namespace_pids():
            found.append(f"process {pid} in the engine's namespaces")
        for process in [self.holder, self.slirp, self.dockerd, *self._helpers]:
            if process and process.poll() is None:
                found.append(f"process {process.pid} ({process.args[0]}) still running")
        for line in self._mounted():
            found.append(f"mount: {line}")
        for folder in self._cgroup_dirs():
            found.append(f"cgroup {folder}")
        if _iptables_snapshot() != self._before["iptables"]:
            found.append("the machine's iptables rules changed")
        new_links = _links() - self._before["links"]
        if new_links:
            found.append(f"network links appeared: {sorted(new_links)}")
        holder_ns = [pid for pid in os.listdir("/proc") if pid.isdigit()
                     and _ns_inode(int(pid), "net") == self.netns_inode]
        if holder_ns:
            found.append(f"the engine's network namespace is still held by {holder_ns}")
        if self.tmp.exists():
            found.append(f"folder {self.tmp}")
        return found


def _stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)
