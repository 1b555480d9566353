"""The host's pip index settings, handed to a container build, so its pip looks where pip here looks.

`pip config list` (config files and PIP_* variables, the latter winning) says which indexes, find-links and
trusted hosts pip uses here. URLs pass through as build args (the Dockerfile declares PIP_INDEX_URL and friends);
local directories (file:// indexes, find-links folders) are invisible inside a build, so they are served
read-only on 127.0.0.1 while the build runs (builds use the host's network) and passed as http URLs. The CA bundle
pip trusts (`cert`) cannot be a build arg; base_images copies it into the local python base instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

# pip's option -> the build arg (environment variable) that sets it inside the build.
BUILD_ARGS = {
    "index-url": "PIP_INDEX_URL",
    "extra-index-url": "PIP_EXTRA_INDEX_URL",
    "find-links": "PIP_FIND_LINKS",
    "trusted-host": "PIP_TRUSTED_HOST",
}


def host_pip_config() -> dict[str, str]:
    """The options pip here runs with, by name; PIP_* variables over install-section over global config."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    rank = {"global": 0, "install": 1, ":env:": 2}
    found: dict[str, tuple[int, str]] = {}
    for section, name, value in re.findall(r"^([^.\s]+)\.([a-z-]+)='(.*)'$", listed, flags=re.MULTILINE):
        if section in rank and rank[section] >= found.get(name, (-1, ""))[0]:
            found[name] = (rank[section], value)
    return {name: value for name, (_, value) in found.items()}


def host_pip_cert() -> Path | None:
    cert = host_pip_config().get("cert")
    return Path(cert) if cert and Path(cert).is_file() else None


def _local_dir(location: str) -> Path | None:
    if location.startswith("file://"):
        path = Path(unquote(urlsplit(location).path))
    elif "://" in location:
        return None
    else:
        path = Path(location)
    return path if path.is_dir() else None


class _Directories(SimpleHTTPRequestHandler):
    """GET /<n>/<path> serves <path> from the n-th shared directory; nothing else."""

    def __init__(self, *args: Any, roots: list[Path], **kwargs: Any) -> None:
        self.roots = roots
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        first, _, rest = urlsplit(path).path.lstrip("/").partition("/")
        if not first.isdigit() or int(first) >= len(self.roots):
            return "/nonexistent"
        self.directory = str(self.roots[int(first)])
        return super().translate_path("/" + rest)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def pip_build_args() -> Iterator[dict[str, str]]:
    """Build args that give a build's pip the host's indexes, local ones served on loopback meanwhile."""
    config = host_pip_config()
    roots: list[Path] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Directories, roots=roots))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    args: dict[str, str] = {}
    for option, variable in BUILD_ARGS.items():
        values = []
        for value in config.get(option, "").split():
            local = _local_dir(value)
            if local is not None and option.endswith("index-url"):
                # A simple index's pages may link up and out of it (`../../files/...`): share its parent.
                roots.append(local.parent)
                value = f"{base}/{len(roots) - 1}/{local.name}/"
            elif local is not None:
                roots.append(local)
                value = f"{base}/{len(roots) - 1}/"
            values.append(value)
        if values:
            args[variable] = " ".join(values)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield args
    finally:
        server.shutdown()
        server.server_close()
