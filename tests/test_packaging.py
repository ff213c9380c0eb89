"""The distribution ships every package of the source tree, so an install works like a checkout."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_directory_is_in_the_distribution() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "catalog").rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    mapped = config["package-dir"]
    assert mapped["catalog.migrations"] == "migrations"
    assert {"catalog.migrations", "catalog.migrations.versions"} <= listed


def test_every_public_name_resolves_and_the_package_imports_lightly() -> None:
    """``import catalog`` loads names on first use, so it must not pull in the database layer."""
    code = (
        "import sys, catalog; heavy = {'sqlalchemy', 'alembic', 'ymmsl', 'numpy'} & "
        "{m.split('.')[0] for m in sys.modules}; "
        "[getattr(catalog, name) for name in catalog.__all__]; print(sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
