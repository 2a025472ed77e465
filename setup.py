"""The package layout, computed: each top-level stage folder is ``impeccable.<stage>`` (DESIGN §1).

Everything else lives in pyproject.toml. pyproject alone cannot express "find every subpackage below a folder
that is mapped to another name" (setuptools' finder does not read ``package-dir``), and a hand-written list
once left ``impeccable.runtime.engines`` out of the wheel: here the finder walks each stage folder and the
names get the stage's prefix, so a new subpackage is in the next wheel without an edit.
"""

from setuptools import find_namespace_packages, setup

STAGES = ("core", "data", "models", "train", "export", "runtime", "benchmarks")
# Folders below a stage that hold data or caches, not code.
NOT_CODE = ("__pycache__", "__pycache__.*", "*.__pycache__", "*.__pycache__.*", "results", "results.*")

# ``impeccable`` itself is a regular package (its folder holds only __init__.py: the ``denoise`` entry point);
# the stages stay mapped one by one, which editable installs (a finder mapping each name) and wheels both honour.
setup(
    package_dir={"impeccable": "impeccable", **{f"impeccable.{stage}": stage for stage in STAGES}},
    packages=["impeccable"] + [f"impeccable.{stage}" for stage in STAGES] + [
        f"impeccable.{stage}.{sub}" for stage in STAGES for sub in find_namespace_packages(stage, exclude=NOT_CODE)],
)
