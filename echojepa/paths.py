"""Where the project's own files live.

The Hydra configs ship inside the package (``echojepa/conf``, package data), so a non-editable install
from a wheel carries them; the repository's top-level ``conf/`` is a link to the same folder for
people who browse the tree.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# setuptools installs package data as plain files, so the resource folder is a real directory
CONF_DIR = Path(str(resources.files("echojepa") / "conf"))
