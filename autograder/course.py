"""The course's layout as the autograder sees it: where labs live and how nbgrader is configured."""
from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

import nbgrader.api
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from .sandbox import REPO

SOLUTIONS = REPO / "solutions"
LABS = REPO / "labs"
CONFIG_FILE = Path(__file__).resolve().parent / "nbgrader_config.py"

# nbgrader runs the `alembic` command to stamp each new gradebook; it must be found on PATH.
if shutil.which("alembic") is None:
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@functools.lru_cache(maxsize=None)
def _alembic_head() -> str:
    """nbgrader's gradebook schema version, read in-process once (nbgrader starts a subprocess each time)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR
    config = AlembicConfig()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


nbgrader.api.get_alembic_version = _alembic_head


def lab_names() -> list[str]:
    """Every lab with an instructor notebook ``solutions/<slug>/<slug>.ipynb``."""
    return sorted(folder.name for folder in SOLUTIONS.iterdir()
                  if (folder / f"{folder.name}.ipynb").is_file())


def source_notebook(lab: str) -> Path:
    return SOLUTIONS / lab / f"{lab}.ipynb"


def student_notebook(lab: str) -> Path:
    return LABS / lab / f"{lab}.ipynb"


def nbgrader_config(root: Path, **course_directory) -> Config:
    """The course's nbgrader config, rooted at ``root``, its gradebook at ``root/gradebook.db``."""
    config = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    for key, value in course_directory.items():
        setattr(config.CourseDirectory, key, value)
    config.TrustedExecute.solutions_directory = str(SOLUTIONS)
    return config
