"""The source registry: ``get_source("vist")`` returns the registered :class:`sources.spec.Source`.

A source is one package: its ``__init__`` defines ``SOURCE`` (``Source.define``), and its
folder holds the data files ``Source.define`` reads (``card.yaml``, ``config.schema.json``,
``checksums.tsv``, ``CITATION.bib``; see :mod:`sources.spec`). The registry finds

* every subpackage of ``sources/`` (the bundled sources), and
* every package named in the environment variable ``MMLOOM_SOURCES`` (comma-separated module
  names, e.g. ``mypkg.sources.toy``; subprocesses and workers inherit it), or passed to
  :func:`register` in this process.

A source's name is its package's last component. Sources are listed in the order of their
category (SA, PBL, MSR, IF, then any other), then by name. Modules are imported on first use,
so that a worker only imports what its pipeline needs; :func:`names` and :func:`package_of`
import none.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import os
import pkgutil
from importlib import resources
from typing import Any

import yaml

from schemas import load_schema
from sources.spec import CARD_FILE, Source, package_config_block

ENV = "MMLOOM_SOURCES"
CATEGORY_ORDER = ("SA", "PBL", "MSR", "IF")
_registered: list[str] = []


def register(package: str) -> None:
    """Add source package ``package`` (a module name) to the registry of this process.
    Subprocesses do not see it: name the package in ``MMLOOM_SOURCES`` for them."""
    if package not in _registered:
        _registered.append(package)


def unregister(package: str) -> None:
    """Take a package added by :func:`register` out again (a no-op when it is not there)."""
    if package in _registered:
        _registered.remove(package)


def _packages() -> dict[str, str]:
    """name -> package of every source: the bundled ones, then the registered ones."""
    found = {m.name: f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.ispkg}
    extra = [p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip()]
    for package in (*extra, *_registered):
        found[package.rsplit(".", 1)[-1]] = package
    return found


@functools.cache
def _category(package: str) -> str:
    """The category in the package's ``card.yaml`` (read without importing the package)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise KeyError(f"source package {package!r} cannot be found; check {ENV}")
    card = resources.files(package).joinpath(CARD_FILE)
    data = yaml.safe_load(card.read_text("utf-8")) if card.is_file() else None
    return str(data.get("category", "")) if isinstance(data, dict) else ""


def _order(item: tuple[str, str]) -> tuple[int, str]:
    name, package = item
    category = _category(package)
    rank = CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER)
    return (rank, name)


def _sorted() -> dict[str, str]:
    return dict(sorted(_packages().items(), key=_order))


def names() -> list[str]:
    """Every registered source, in category order, then by name."""
    return list(_sorted())


def package_of(name: str) -> str:
    """The package of source ``name``; KeyError (listing the known ones) when unknown."""
    packages = _sorted()
    if name not in packages:
        raise KeyError(f"unknown source {name!r}; known sources: {', '.join(packages)}")
    return packages[name]


def get_source(name: str) -> Source:
    source = importlib.import_module(package_of(name)).SOURCE
    if source.name != name:
        raise KeyError(f"{package_of(name)}.SOURCE is named {source.name!r}, not {name!r}")
    return source


def config_schema() -> dict[str, Any]:
    """The full build config schema: ``schemas/config.schema.json`` with each registered
    source's ``config.schema.json`` as ``$defs.<name>`` and ``sources.properties.<name>``, and
    ``$defs.source_name`` (where the config names sources) the enum of the registered names."""
    schema = copy.deepcopy(load_schema("config"))
    props = schema["properties"]["sources"]["properties"]
    schema["$defs"]["source_name"] = {"enum": list(_sorted())}  # images.exempt_sources, ...
    for name, package in _sorted().items():
        schema["$defs"][name] = copy.deepcopy(package_config_block(package))
        props[name] = {"$ref": f"#/$defs/{name}"}
    return schema


__all__ = [
    "ENV",
    "Source",
    "config_schema",
    "get_source",
    "names",
    "package_of",
    "register",
    "unregister",
]
