"""`make lock`: refresh requirements/runtime.lock and requirements/dev.lock from pyproject.toml with uv.

Both are universal (one file for every Python the project admits and every platform, with markers where a
dependency is conditional) and carry a hash for every distribution file, so `pip install --require-hashes`
installs exactly these bytes. The image installs runtime.lock; `make` installs dev.lock, which is constrained
to runtime.lock's versions, so the tests run what the image ships. The build backend (pyproject's
build-system.requires) is in both: the image and `make` build the project without build isolation, so the
backend comes from the lock too instead of an unhashed download.

uv keeps the versions already pinned where they still fit; `--upgrade` (`make lock UPGRADE=1`) takes the newest.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = Path("requirements/runtime.lock")
DEV = Path("requirements/dev.lock")


def uv_binary() -> str:
    beside = Path(sys.executable).parent / "uv"  # the venv's own, pinned in dev.lock
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        sys.exit("uv is not installed: `make` installs it into .venv from requirements/dev.lock")
    return found


def compile_lock(output: Path, *extra: str, build_requires: list[str], python: str, upgrade: bool) -> None:
    command = [
        uv_binary(), "pip", "compile", "pyproject.toml", "-",  # "-": the build requirements, on stdin
        "--universal", "--python-version", python, "--generate-hashes",
        # A proxy's or a company's CA in the system store is trusted, as pip here trusts it.
        "--system-certs",
        "--custom-compile-command", "make lock", "--quiet", "-o", str(output), *extra,
    ]  # fmt: skip
    if upgrade:
        command.append("--upgrade")
    subprocess.run(command, cwd=ROOT, input="\n".join(build_requires) + "\n", text=True, check=True)  # noqa: S603


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devkit.lock", description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="take the newest versions pyproject.toml allows")
    args = parser.parse_args()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build_requires: list[str] = project["build-system"]["requires"]
    # The oldest Python requires-python admits (">=3.11"): a universal lock must hold for it and every newer one.
    python = project["project"]["requires-python"].removeprefix(">=")
    (ROOT / RUNTIME).parent.mkdir(exist_ok=True)
    try:
        for output, extra in ((RUNTIME, []), (DEV, ["--extra", "dev", "-c", str(RUNTIME)])):
            compile_lock(output, *extra, build_requires=build_requires, python=python, upgrade=args.upgrade)
    except subprocess.CalledProcessError as error:
        sys.exit(f"uv pip compile failed (exit {error.returncode}); its message is above")


if __name__ == "__main__":
    main()
