"""mmloom: build MMIE-style interleaved image-text benchmarks with Apache Beam.

This is the real install of the project, and also what Dataflow workers install when a
pipeline is launched with ``--setup_file ./setup.py``: Beam builds an sdist from this file,
stages it, and pip-installs it on every worker. Everything a worker needs must therefore be
a package listed by ``find_packages()`` or declared as package data (the JSON schemas and
the per-source YAML tables).

    pip install -e '.[dev]'          # local development (the Makefile does this in .venv)
    mmloom build --config configs/sample.yaml --output out
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "pipelines" / "__init__.py").read_text(), re.M
).group(1)

INSTALL_REQUIRES = [
    "apache-beam[gcp]>=2.77,<2.78",
    "datasets>=3.0,<6",
    "pillow>=11,<13",
    "imagehash>=4.3,<5",
    "open_clip_torch>=3.0,<4",
    "jsonschema>=4.20,<5",
    "pyarrow>=17,<26",
    "pyyaml>=6,<7",
    "numpy>=1.26,<3",
    # the release card's and report's templates (pipelines/publish/templates)
    "jinja2>=3.1,<4",
    # the blind-answerability audit's text-only language model (pipelines/audit), CPU or GPU
    "transformers>=4.46,<6",
]

# What Dataflow workers never need: the annotation round (Argilla client, agreement) and the
# release report's plots. `pip install .` (what --setup_file installs on workers) leaves
# them out; `mmloom annotate` and `mmloom publish` say which extra to install when missing.
ANNOTATE = ["argilla>=2.8,<2.9", "krippendorff>=0.8,<1"]
REPORT = ["matplotlib>=3.8,<4"]

EXTRAS = {
    "annotate": ANNOTATE,
    "report": REPORT,
    # real photographs (bundled in these wheels) for bench/phash_draft.py and image_hashing.py
    "bench": ["scikit-image>=0.22", "scikit-learn>=1.4"],
    "dev": [
        "pytest>=8,<10",
        "pytest-timeout>=2.3,<3",
        "ruff>=0.6",
        "build>=1.2",
        # browser tests drive Debian's /usr/bin/chromium (no browser download)
        "playwright>=1.45,<2",
        # CI runs the suite once in random order (make test)
        "pytest-randomly>=3.15,<5",
        # tests/test_fuzz.py: property-based fuzzing of every reader and stage
        "hypothesis>=6.100,<7",
        *ANNOTATE,
        *REPORT,
    ],
}

setup(
    name="mmloom",
    version=VERSION,
    description="Build MMIE-style interleaved multimodal benchmarks with Apache Beam.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["pipelines*", "schemas*", "sources*", "annotation*"]),
    package_data={
        "schemas": ["*.json", "*.yaml", "CHANGELOG.md"],
        # every source folder's data files (sources/spec.py): card.yaml and fields.yaml,
        # config.schema.json, checksums.tsv, CITATION.bib, README.md
        "sources": [
            "*/*.yaml",
            "*/config.schema.json",
            "*/README.md",
            "*/CITATION.bib",
            "*/checksums.tsv",
        ],
        "annotation": ["rubric.yaml"],
        "pipelines": ["publish/templates/*.j2"],
    },
    include_package_data=False,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["mmloom = pipelines.cli:main"]},
)
