"""The tree keeps issue 17's shape: ``scripts/measure_tree.py`` passes on ``parley/``
and fails, naming the place, on a package that breaks each rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "measure_tree.py"


def measure(package: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(SCRIPT), *([str(package)] if package else [])]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def write(package: Path, rel: str, text: str) -> None:
    path = package / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def small_package(tmp_path: Path) -> Path:
    package = tmp_path / "parley"
    write(package, "__init__.py", "")
    write(package, "brain/__init__.py", "")
    write(package, "brain/core.py", "from parley.brain.turn_stream import TurnStream\n")
    write(package, "brain/turn_stream.py", "class TurnStream:\n    pass\n")
    write(package, "testing/__init__.py", "")
    write(package, "testing/fakes.py", "from parley.testing import helpers\n")
    return package


def test_parley_has_the_shape() -> None:
    done = measure()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("ok")
    assert "measured" in done.stdout


def test_a_clean_package_passes(tmp_path: Path) -> None:
    done = measure(small_package(tmp_path))  # core -> turn_stream one way is no cycle
    assert done.returncode == 0, done.stdout
    assert "BROKEN" not in done.stdout


def test_a_long_module_is_named(tmp_path: Path) -> None:
    package = small_package(tmp_path)
    write(package, "long.py", "x = 1\n" * 500)  # exactly the limit: fine
    write(package, "longer.py", "x = 1\n" * 501)
    done = measure(package)
    assert done.returncode == 1
    assert "longer.py: 501 lines (max 500)" in done.stdout
    assert "long.py: 500" not in done.stdout


def test_a_class_with_too_many_methods_is_named(tmp_path: Path) -> None:
    package = small_package(tmp_path)
    many = "".join(f"    def m{i}(self) -> None:\n        pass\n" for i in range(26))
    some = "".join(f"    async def m{i}(self) -> None:\n        pass\n" for i in range(25))
    write(package, "big.py", f"class Big:\n{many}\n\nclass Fine:\n{some}")
    done = measure(package)
    assert done.returncode == 1
    assert "big.py:1: class Big has 26 methods (max 25)" in done.stdout
    assert "Fine" not in done.stdout


def test_production_code_importing_testing_is_named(tmp_path: Path) -> None:
    package = small_package(tmp_path)
    write(package, "app.py", "from parley.testing.fakes import Fake\n")
    write(package, "voice/__init__.py", "")
    write(package, "voice/engine.py", "from ..testing import fakes\n")  # relative too
    write(package, "server.py", "import parley.testingtools\n")  # another name: fine
    done = measure(package)
    assert done.returncode == 1
    assert "app.py: production code imports parley.testing" in done.stdout
    assert "engine.py: production code imports parley.testing" in done.stdout
    assert "server.py" not in done.stdout
    assert "fakes.py" not in done.stdout  # parley.testing may import itself


def test_the_core_turn_stream_cycle_is_named(tmp_path: Path) -> None:
    package = small_package(tmp_path)
    write(
        package,
        "brain/turn_stream.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .core import Brain\n",
    )
    done = measure(package)
    assert done.returncode == 1
    assert "core.py and " in done.stdout and "turn_stream.py import each other" in done.stdout
    assert done.stdout.strip().endswith("1 rule(s) broken")
