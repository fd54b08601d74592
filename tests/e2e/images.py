"""The images docker-compose.yml names, built inside the end-to-end test's private Docker engine,
since no image registry is reachable there.

What takes long is built once and kept in a cache outside the repository (``E2E_CACHE_DIR``,
default ``~/.cache/llmwatch-e2e``): the root filesystems (a static busybox laid out like the
upstream images' busybox base; Debian with Python made by debootstrap), Docker Compose and the
socket proxy built from their Go modules, the pinned Prometheus, Alertmanager, node-exporter and
cAdvisor binaries (``scripts/build-pinned``), and the exporter image itself (``docker save``,
keyed by a hash of what goes into it). Each step's time is recorded in ``timings.json`` there,
cold (built) and warm (taken from the cache) apart.

- prom/prometheus, prom/alertmanager, prom/node-exporter, ghcr.io/google/cadvisor: the real
  binaries on busybox, with the upstream images' paths, user, entrypoint and default command.
- wollomatic/socket-proxy: its source (tests/e2e/third_party/socket-proxy, the pinned release)
  built with Go, on an empty image like upstream's.
- llmwatch-exporters: docker/Dockerfile as it is, on the Debian base (PYTHON_IMAGE).
- grafana/grafana, grafana/loki, grafana/alloy: stand-ins (tests/e2e/standins.py) on the Debian
  base. Grafana's and Loki's own servers are not built (Loki is AGPL). Alloy cannot be built from
  its Go module: its program is the nested module collector/ and it replaces its syntax module
  with ./syntax, and nested modules are not in a module's zip (and it requires some 1,100
  modules, more than a test run can compile on two cores).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "llmwatch-e2e")
COMPOSE_VERSION = "v2.40.3"
DEBIAN_SUITE = "trixie"  # Python 3.13
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Host CA bundle the base image trusts (pip inside builds uses it): the one pip uses on this host.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class BuildError(Exception):
    pass


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a build command; on failure raise with the end of its output."""
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise BuildError(f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
                         f"{(result.stdout + result.stderr)[-4000:]}")
    return result


class Timings:
    """Seconds per build step, cold and warm apart, kept in the cache's timings.json."""

    def __init__(self, path: Path = CACHE / "timings.json"):
        self.path = path
        self.this_run: dict[str, dict] = {}

    @contextlib.contextmanager
    def step(self, name: str, warm: bool):
        start = time.monotonic()
        yield
        seconds = round(time.monotonic() - start, 1)
        kind = "warm" if warm else "cold"
        self.this_run[name] = {kind: seconds}
        recorded = json.loads(self.path.read_text()) if self.path.exists() else {}
        recorded.setdefault(name, {})[kind] = seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")


def _atomic_output(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.partial")


# ---- root filesystems ------------------------------------------------------------------------

def busybox_rootfs(timings: Timings) -> Path:
    """A tarball of a static busybox laid out like quay.io/prometheus/busybox: /bin/* applets,
    /etc/passwd with nobody (65534), /tmp."""
    out = CACHE / "rootfs" / "busybox.tar"
    busybox = shutil.which("busybox") or "/bin/busybox"
    if "not a dynamic" not in subprocess.run(["ldd", busybox], capture_output=True, text=True).stdout + \
            subprocess.run(["ldd", busybox], capture_output=True, text=True).stderr:
        raise BuildError(f"{busybox} is not static: apt-get install busybox-static")
    with timings.step("rootfs busybox", warm=out.exists()):
        if out.exists():
            return out
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for folder in ("bin", "etc", "tmp", "home", "var", "usr/share"):
                (root / folder).mkdir(parents=True, exist_ok=True)
            (root / "tmp").chmod(0o1777)
            shutil.copy2(busybox, root / "bin" / "busybox")
            applets = run([str(root / "bin" / "busybox"), "--list"]).stdout.split()
            for applet in applets:
                if applet != "busybox":
                    (root / "bin" / applet).symlink_to("busybox")
            (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                                 "nobody:x:65534:65534:nobody:/home:/bin/false\n")
            (root / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
            partial = _atomic_output(out)
            run(["tar", "-C", str(root), "--numeric-owner", "--owner=0", "--group=0", "-cf", str(partial), "."])
            partial.replace(out)
        return out


def debian_python_rootfs(timings: Timings) -> Path:
    """A tarball of Debian (debootstrap, minbase) with Python 3.13 as ``python`` and ``pip`` that
    installs system-wide, curl, bash, and this host's CA bundle for pip (like python:3.12-slim)."""
    out = CACHE / "rootfs" / f"debian-{DEBIAN_SUITE}-python.tar"
    with timings.step("rootfs debian-python (debootstrap)", warm=out.exists()):
        if out.exists():
            return out
        if not shutil.which("debootstrap"):
            raise BuildError("debootstrap is not installed (apt-get install debootstrap)")
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            root = Path(tmp) / "root"
            run(["debootstrap", "--variant=minbase", "--include=python3,python3-pip,ca-certificates,curl",
                 DEBIAN_SUITE, str(root), DEBIAN_MIRROR])
            for managed in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
                managed.unlink()
            for name, target in (("python", "python3"), ("pip", "pip3")):
                link = root / "usr" / "bin" / name
                if not link.exists():
                    link.symlink_to(target)
            if HOST_CA_BUNDLE.exists():
                shutil.copyfile(HOST_CA_BUNDLE, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
            (root / "etc" / "pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
                                                   "disable-pip-version-check = true\n")
            shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
            shutil.rmtree(root / "var" / "lib" / "apt" / "lists", ignore_errors=True)
            partial = _atomic_output(out)
            run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."])
            partial.replace(out)
        return out


# ---- Go binaries -----------------------------------------------------------------------------

def go_env() -> dict[str, str]:
    return {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}


def compose_binary(timings: Timings) -> Path:
    """Docker Compose v2 from its Go module (github.com/docker/compose/v2)."""
    out = CACHE / "bin" / f"docker-compose-{COMPOSE_VERSION}"
    with timings.step(f"docker compose {COMPOSE_VERSION} (Go)", warm=out.exists()):
        if out.exists():
            return out
        module = json.loads(run(["go", "mod", "download", "-json", f"github.com/docker/compose/v2@{COMPOSE_VERSION}"],
                                env=go_env(), cwd=CACHE).stdout)
        partial = _atomic_output(out)
        run(["go", "build", "-trimpath", "-ldflags",
             f"-s -w -X github.com/docker/compose/v2/internal.Version={COMPOSE_VERSION}",
             "-o", str(partial), "./cmd"], cwd=module["Dir"], env=go_env())
        partial.replace(out)
        return out


SOCKET_PROXY_SOURCE = HERE / "third_party" / "socket-proxy"


def socket_proxy_binaries(timings: Timings) -> dict[str, Path]:
    """wollomatic/socket-proxy's two programs, built from its module (the pinned release's source)."""
    digest = tree_digest([SOCKET_PROXY_SOURCE])
    out = CACHE / "bin" / f"socket-proxy-{digest}"
    paths = {"socket-proxy": out / "socket-proxy", "healthcheck": out / "healthcheck"}
    with timings.step("socket-proxy (Go)", warm=out.exists()):
        if out.exists():
            return paths
        partial = _atomic_output(out)
        shutil.rmtree(partial, ignore_errors=True)
        for name in paths:
            run(["go", "build", "-trimpath", "-tags=netgo", "-ldflags=-s -w", "-o", str(partial / name),
                 f"./cmd/{name}"], cwd=SOCKET_PROXY_SOURCE, env=go_env())
        partial.replace(out)
        return paths


def pinned_binaries(names: list[str], timings: Timings) -> dict[str, Path]:
    """The versions docker-compose.yml pins, built by scripts/build-pinned (which caches them).
    GOWORK=off: Prometheus' module ships a go.work naming folders its module zip lacks."""
    script = REPO / "scripts" / "build-pinned"
    if not script.exists():
        raise BuildError("scripts/build-pinned is missing")
    start = time.monotonic()
    result = subprocess.run([str(script), *names], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "GOWORK": "off"})
    if result.returncode != 0:
        raise BuildError(f"scripts/build-pinned exited {result.returncode}:\n{(result.stdout + result.stderr)[-4000:]}")
    found = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip() and " " in line.strip())
    paths = {name: Path(found[name].strip()) for name in names if name in found}
    missing = set(names) - set(paths)
    if missing:
        raise BuildError(f"scripts/build-pinned gave no path for {sorted(missing)}: {result.stdout[-2000:]}")
    seconds = round(time.monotonic() - start, 1)
    timings.this_run[f"pinned {' '.join(names)} (scripts/build-pinned)"] = {"seconds": seconds}
    return paths


def tree_digest(paths: list[Path], extra: str = "") -> str:
    """A short hash of files' contents (recursively for folders) and their relative names."""
    h = hashlib.sha256(extra.encode())
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and
                                                     "__pycache__" not in p.parts and not p.name.endswith(".pyc"))
        for f in files:
            h.update(str(f.relative_to(REPO if REPO in f.parents else root.parent)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


# ---- images in the private engine ------------------------------------------------------------

def compose_images() -> dict[str, str]:
    """Service -> image, as docker-compose.yml names them."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return {name: service["image"] for name, service in compose["services"].items()}


def docker_build(docker, context: Path, dockerfile: str, tag: str, build_args: dict[str, str] | None = None):
    (context / "Dockerfile.e2e").write_text(dockerfile)
    argv = ["build", "-q", "-f", str(context / "Dockerfile.e2e"), "-t", tag]
    for key, value in (build_args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    docker(*argv, str(context))


UPSTREAM_LAYOUTS = {
    # binaries (name -> path in the image), user, workdir, entrypoint, command, extra Dockerfile lines
    "prometheus": ({"prometheus": "/bin/prometheus", "promtool": "/bin/promtool"}, "nobody", "/prometheus",
                   ["/bin/prometheus"],
                   ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"],
                   ["RUN mkdir -p /etc/prometheus /prometheus && chown -R nobody:nobody /etc/prometheus /prometheus",
                    "VOLUME [\"/prometheus\"]", "EXPOSE 9090"]),
    "alertmanager": ({"alertmanager": "/bin/alertmanager", "amtool": "/bin/amtool"}, "nobody", "/alertmanager",
                     ["/bin/alertmanager"],
                     ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
                     ["RUN mkdir -p /etc/alertmanager /alertmanager && chown -R nobody:nobody /etc/alertmanager /alertmanager",
                      "VOLUME [\"/alertmanager\"]", "EXPOSE 9093"]),
    "node-exporter": ({"node_exporter": "/bin/node_exporter"}, "nobody", None, ["/bin/node_exporter"], [],
                      ["EXPOSE 9100"]),
    "cadvisor": ({"cadvisor": "/usr/bin/cadvisor"}, None, None, ["/usr/bin/cadvisor", "-logtostderr"], [],
                 ["EXPOSE 8080",
                  "HEALTHCHECK --interval=30s --timeout=3s CMD wget --quiet --tries=1 --spider http://localhost:8080/healthz || exit 1"]),
}
STANDINS = [("grafana", "grafana"), ("loki", "loki"), ("alloy", "alloy")]
PINNED_NAMES = {"prometheus": ["prometheus", "promtool"], "alertmanager": ["alertmanager", "amtool"],
                "node-exporter": ["node_exporter"], "cadvisor": ["cadvisor"]}


def build_all(docker, workdir: Path, timings: Timings) -> list[str]:
    """Every image of docker-compose.yml, into the engine ``docker`` (a callable running the docker
    CLI against it). Returns the services whose image is a stand-in."""
    images = compose_images()
    busybox = busybox_rootfs(timings)
    debian = debian_python_rootfs(timings)
    with timings.step("import base rootfs", warm=True):
        docker("import", str(busybox), "llmwatch-e2e/busybox:latest")
        docker("import", "--change", 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
               "--change", 'CMD ["python3"]', str(debian), "llmwatch-e2e/python:3")

    binaries = pinned_binaries([b for s, names in PINNED_NAMES.items() if s != "cadvisor" for b in names], timings)
    layouts, standins = dict(UPSTREAM_LAYOUTS), list(STANDINS)
    try:
        binaries.update(pinned_binaries(PINNED_NAMES["cadvisor"], timings))
    except BuildError as e:
        # its command module is not on the Go module proxy: it builds only from a clone of its
        # repository (PINNED_CADVISOR_GIT); without one, a stand-in, and the test says so
        print(f"e2e: cAdvisor cannot be built, a stand-in takes its place: {str(e)[-500:]}", flush=True)
        del layouts["cadvisor"]
        standins.append(("cadvisor", "cadvisor"))
    with timings.step("images prometheus, alertmanager, node-exporter, cadvisor", warm=True):
        for service, (files, user, workdir_in_image, entrypoint, command, extra) in layouts.items():
            context = workdir / f"ctx-{service}"
            context.mkdir(parents=True, exist_ok=True)
            lines = ["FROM llmwatch-e2e/busybox:latest"]
            for name, target in files.items():
                shutil.copy2(binaries[name], context / name)
                lines.append(f"COPY {name} {target}")
            lines += extra
            if user:
                lines.append(f"USER {user}")
            if workdir_in_image:
                lines.append(f"WORKDIR {workdir_in_image}")
            lines.append(f"ENTRYPOINT {json.dumps(entrypoint)}")
            if command:
                lines.append(f"CMD {json.dumps(command)}")
            docker_build(docker, context, "\n".join(lines) + "\n", images[service])

    proxy = socket_proxy_binaries(timings)
    with timings.step("image socket-proxy", warm=True):
        context = workdir / "ctx-socket-proxy"
        context.mkdir(parents=True, exist_ok=True)
        for name, path in proxy.items():
            shutil.copy2(path, context / name)
        docker("import", "--change", "USER 65534:65534", "--change", "EXPOSE 2375",
               "--change", 'ENTRYPOINT ["/socket-proxy"]',
               str(_tar_of(context, ["socket-proxy", "healthcheck"], workdir / "socket-proxy.tar")),
               images["docker-proxy"])

    exporter_image(docker, images["stack-config"], workdir, timings)

    with timings.step("stand-in images grafana, loki, alloy", warm=True):
        context = workdir / "ctx-standins"
        context.mkdir(parents=True, exist_ok=True)
        shutil.copy2(HERE / "standins.py", context / "standins.py")
        for service, role in standins:
            healthcheck = ("HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS http://localhost:8080/healthz\n"
                           if role == "cadvisor" else "")
            docker_build(docker, context,
                         "FROM llmwatch-e2e/python:3\nCOPY standins.py /standins.py\n" + healthcheck +
                         f'ENTRYPOINT ["python3", "/standins.py", "{role}"]\n', images[service])
    return [service for service, _ in standins]


def _tar_of(folder: Path, names: list[str], out: Path) -> Path:
    run(["tar", "-C", str(folder), "--numeric-owner", "--owner=0", "--group=0", "-cf", str(out), *names])
    return out


def exporter_image(docker, tag: str, workdir: Path, timings: Timings) -> None:
    """docker/Dockerfile unchanged but for its base (PYTHON_IMAGE), saved to the cache by the
    hash of what goes into it, so that an unchanged tree loads it in seconds."""
    debian = CACHE / "rootfs" / f"debian-{DEBIAN_SUITE}-python.tar"
    inputs = [REPO / "docker" / "Dockerfile", REPO / "pyproject.toml", REPO / "README.md",
              REPO / "config" / "settings.toml", REPO / "exporters" / "llmwatch"]
    key = tree_digest(inputs, extra=f"{debian.stat().st_size}:{debian.stat().st_mtime_ns}")
    saved = CACHE / "images" / f"llmwatch-exporters-{key}.tar"
    with timings.step("image llmwatch-exporters (docker/Dockerfile)", warm=saved.exists()):
        if saved.exists():
            docker("load", "-q", "-i", str(saved))
            return
        context = workdir / "ctx-exporters"
        files = run(["git", "ls-files", "-co", "--exclude-standard", "docker", "pyproject.toml", "README.md",
                     "config/settings.toml", "exporters"], cwd=REPO).stdout.split()
        for name in files:
            if (REPO / name).is_file():
                (context / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, context / name)
        docker("build", "-q", "-f", str(context / "docker" / "Dockerfile"), "--build-arg",
               "PYTHON_IMAGE=llmwatch-e2e/python:3", "-t", tag, str(context))
        for old in saved.parent.glob("llmwatch-exporters-*.tar"):
            old.unlink()
        partial = _atomic_output(saved)
        docker("save", "-o", str(partial), tag)
        partial.replace(saved)
