"""What ships: the wheel holds the service only, and the service imports nothing of the dev tooling."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

from tests.helpers import ROOT, python, run


def test_the_wheel_holds_app_only(tmp_path: Path) -> None:
    built = run(
        python("-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)), cwd=tmp_path, timeout=120
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("customer_account_bff-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"app"}
    assert "app/store/sessions.py" in names and "app/shopify/oauth.py" in names


def test_app_never_imports_the_stand_in_or_the_dev_kit() -> None:
    imported: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert not imported & {"mock_shopify", "devkit", "tests", "bench"}


def test_the_architecture_doc_names_every_module_of_the_service() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "app").rglob("*.py") if path.name != "__init__.py"}
    assert {m for m in modules if f"`{m}`" not in doc} == set()
