"""Where the product's own files live: the market history in ``<repo>/data``.

The checkout is self-contained: nothing outside it is read. ``PM_DATA_DIR`` points the loaders at
another folder with the same file names (a newer download, a test fixture).
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The market data folder: ``$PM_DATA_DIR`` if set (it must exist), else ``<repo>/data``.

    Raises:
        FileNotFoundError: if ``PM_DATA_DIR`` points nowhere.
    """
    env = os.environ.get("PM_DATA_DIR")
    if env:
        path = Path(env).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"PM_DATA_DIR={env} is not a directory")
        return path
    return _REPO / "data"
