"""Base images for a machine that reaches no container registry: Debian rootfs made by debootstrap, then imported.

Two bases: `python` (python3 and venv, `python` on the PATH, and the CA bundle pip trusts on this host, which a
TLS-inspecting proxy may need) for the Dockerfile's PYTHON_IMAGE, and `redis` (Debian's redis-server and
redis-cli). Each rootfs is cached as a tarball named by a hash of everything that goes into it (suite, apt mirror,
packages, CA bundle, this recipe's version) in `cache_dir()`, outside any checkout, so only a machine's first run
pays for debootstrap (about 40 s a base); an import takes about 2 s. Delete the cache to take newer packages.
`python -m devkit.base_images` (root) imports both into the engine at DOCKER_HOST and prints their tags.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devkit.docker_engine import Engine, EngineError, running_engine, tail
from devkit.pip_index import host_pip_cert

RECIPE_VERSION = 1  # bump when what goes into a rootfs changes in a way the key does not see
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# An imported rootfs has no environment; these are what the python and redis images set.
IMAGE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")


class BaseImageError(RuntimeError):
    """debootstrap or the import failed; the message has its exit code and output."""


@dataclass(frozen=True)
class Base:
    name: str
    packages: tuple[str, ...]
    ca_bundle: Path | None = None  # replaces the image's own bundle

    def key(self, mirror: str) -> str:
        ca = hashlib.sha256(self.ca_bundle.read_bytes()).hexdigest() if self.ca_bundle else None
        recipe = [RECIPE_VERSION, SUITE, mirror, self.name, self.packages, ca]
        return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]

    def tag(self, mirror: str) -> str:
        return f"customer-account-bff-base/{self.name}:{self.key(mirror)}"


def python_base(ca_bundle: Path | None) -> Base:
    return Base("python", ("python3", "python3-venv", "ca-certificates"), ca_bundle)


def trusted_ca_bundle() -> Path | None:
    """The CA bundle pip trusts here: its `cert` setting, else the system's (Debian's path)."""
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    return host_pip_cert() or (system if system.is_file() else None)


REDIS = Base("redis", ("redis-server",))


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt uses for SUITE (it is reachable from here), else deb.debian.org."""
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, flags=re.MULTILINE))
            if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                uri: str = fields["URIs"].split()[0]
                return uri
    one_line = etc_apt / "sources.list"
    if one_line.exists():
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", one_line.read_text(), flags=re.MULTILINE):
            if match.group(2) == SUITE:
                return match.group(1)
    return DEFAULT_MIRROR


def cache_dir() -> Path:
    if configured := os.environ.get("BFF_IMAGE_CACHE"):
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/customer-account-bff")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "customer-account-bff"


def cached(base: Base, mirror: str) -> Path:
    return cache_dir() / f"{base.name}-{base.key(mirror)}.tar"


def rootfs_tarball(base: Base, mirror: str) -> Path:
    """The cached rootfs tarball of `base`, built first if missing (one builder at a time per base)."""
    target = cached(base, mirror)
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f"{base.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _build(base, mirror, target)
    return target


def _build(base: Base, mirror: str, target: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is not installed (apt-get install debootstrap)")
    work = Path(tempfile.mkdtemp(prefix=f"build-{base.name}-", dir=target.parent))
    try:
        rootfs = work / "rootfs"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(base.packages)}", SUITE, str(rootfs)]
        done = subprocess.run(  # noqa: S603 - our own tool and arguments
            [*command, mirror], capture_output=True, text=True, timeout=900, check=False
        )
        if done.returncode != 0:
            raise BaseImageError(f"debootstrap {base.name} from {mirror} failed (exit {done.returncode}):\n"
                                 f"{tail(done.stdout + done.stderr)}")  # fmt: skip
        if base.ca_bundle is not None:
            shutil.copyfile(base.ca_bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")
        if (rootfs / "usr/bin/python3").exists():
            (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        # apt's package lists and downloaded .debs are half of a minbase rootfs and nothing in the image reads them.
        for leftover in [*rootfs.glob("var/cache/apt/*.bin"), *rootfs.glob("var/cache/apt/archives/*.deb")]:
            leftover.unlink()
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        partial = work / "rootfs.tar"
        tar = ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."]
        subprocess.run(tar, check=True)  # noqa: S603 - our own arguments
        partial.rename(target)
        for stale in target.parent.glob(f"{base.name}-*.tar"):
            if stale != target:
                stale.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def import_base(engine: Engine, base: Base, mirror: str) -> str:
    """`base` as an image in `engine` (imported from the cached rootfs unless already there); its tag."""
    tag = base.tag(mirror)
    try:
        engine.docker("image", "inspect", tag, timeout=30)
    except EngineError:
        changes = [arg for env in IMAGE_ENV for arg in ("--change", f"ENV {env}")]
        engine.docker("import", *changes, str(rootfs_tarball(base, mirror)), tag, timeout=300)
    return tag


def main() -> None:
    """`python -m devkit.base_images`: both bases into the engine at DOCKER_HOST; prints their tags as variables."""
    engine = running_engine()
    if engine is None:
        sys.exit("no Docker engine answers at DOCKER_HOST (or /var/run/docker.sock)")
    mirror = apt_mirror()
    try:
        python = import_base(engine, python_base(trusted_ca_bundle()), mirror)
        redis = import_base(engine, REDIS, mirror)
    except (BaseImageError, EngineError) as error:
        sys.exit(str(error))
    print(f"PYTHON_IMAGE={python}\nREDIS_IMAGE={redis}")  # noqa: T201


if __name__ == "__main__":
    main()
