"""merge/'s face hands out each public name lazily; whatever was imported before, every name
is the object its home module defines (a function named like its module, such as `integrate`,
must not turn into the module)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, pkgutil, sys
import merge
for info in pkgutil.iter_modules(merge.__path__):
    importlib.import_module("merge." + info.name)
wrong = {name: type(getattr(merge, name)).__name__ for name in merge.__all__
         if getattr(merge, name) is not getattr(importlib.import_module(merge._HOMES.get(
             name, "merge." + name)), name, getattr(merge, name)) or
         (name in merge._HOMES and type(getattr(merge, name)).__name__ == "module")}
print(json.dumps(wrong))
"""


@pytest.mark.parametrize("first", ["", "from merge import words", "import merge.integrate",
                                   "from merge import run_git"])
def test_every_public_name_is_its_home_modules_object(first: str) -> None:
    done = subprocess.run([sys.executable, "-c", first + "\n" + PROBE], capture_output=True,
                          text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == {}
