"""data_dir(): PM_DATA_DIR first, else the repo's own data/ (nothing outside the checkout)."""

from pathlib import Path

import pytest

from offchain import paths
from offchain.data import ASSET_FILES, BACKTEST_FILES

REPO = Path(__file__).resolve().parents[1]


def test_env_var_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("PM_DATA_DIR", str(tmp_path))
    assert paths.data_dir() == tmp_path.resolve()


def test_env_var_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("PM_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="PM_DATA_DIR=.*missing is not a directory"):
        paths.data_dir()


def test_default_is_the_repo_data_folder_with_every_file(monkeypatch):
    monkeypatch.delenv("PM_DATA_DIR", raising=False)
    folder = paths.data_dir()
    assert folder == REPO / "data"
    for name in {*ASSET_FILES.values(), *BACKTEST_FILES.values(), "SOURCES.md"}:
        assert (folder / name).is_file(), name


def test_golden_files_live_under_tests():
    for name in ("black76.csv", "backtest.csv", "README.md"):
        assert (REPO / "tests" / "golden" / name).is_file(), name
