"""Build hook: the wheel carries the notebooks of notebooks/ as package data
(invia_data/notebooks), so `invia-data demo` and `invia-data notebooks DIR` work from an installed
wheel in any folder. All other metadata is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithNotebooks(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads notebooks/ of the checkout
        source = Path(__file__).resolve().parent / "notebooks"
        target = Path(self.build_lib) / "invia_data" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for notebook in sorted(source.glob("*.ipynb")):
            shutil.copy2(notebook, target / notebook.name)


setup(cmdclass={"build_py": BuildWithNotebooks})
