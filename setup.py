"""Builds social-listener, and compiles the rule engine with mypyc where it can (see listener/native.py).

Everything else about the package is in pyproject.toml. Compiling needs a C compiler and Python's
headers (Debian: gcc, python3-dev); without them, or with LISTENER_PURE_PYTHON=1, the package is
installed as pure Python, which does the same, more slowly. Either way `listener/compiled.json`
records what was built, and from which sources, so that a compiled module whose source is edited
afterwards is noticed (the pure source runs, and `./dev` compiles again).
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
native = runpy.run_path(str(ROOT / "listener" / "native.py"), run_name="listener_native")  # stdlib only


def why_not_compile() -> str | None:
    if os.environ.get(native["PURE_ENV"], "").strip().lower() not in ("", "0", "no", "false"):
        return f"{native['PURE_ENV']} is set"
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h; Debian: python3-dev)"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy)"
    return None


def remove_old_extensions() -> None:
    """An editable checkout keeps extensions beside the sources: a pure build must not leave them to shadow them."""
    for path in native["extensions"]():
        path.unlink()
    for path in (ROOT / "listener").glob(native["GROUP"].rsplit(".", 1)[1] + "__mypyc*"):
        path.unlink()


reason = why_not_compile()
ext_modules = []
if reason is None:
    from mypyc.build import mypycify

    paths = [str(native["source_path"](m).relative_to(ROOT)) for m in native["MODULES"]]
    ext_modules = mypycify(paths, group_name=native["GROUP"])
else:
    print(f"social-listener: installing the rule engine as pure Python: {reason}", file=sys.stderr)
    remove_old_extensions()
(ROOT / "listener" / native["RECORD"]).write_text(json.dumps(
    {"compiled": reason is None, "reason": reason, "sources": native["sources"]()}, indent=2) + "\n")

setup(ext_modules=ext_modules)
