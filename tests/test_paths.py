"""shared_dir(): PM_SHARED_DIR first, then <repo>/../shared, then /work/shared."""

from pathlib import Path

import pytest

from offchain import paths


def test_env_var_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("PM_SHARED_DIR", str(tmp_path))
    assert paths.shared_dir() == tmp_path.resolve()


def test_env_var_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("PM_SHARED_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="PM_SHARED_DIR=.*missing is not a directory"):
        paths.shared_dir()


def test_sibling_of_the_repo_then_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv("PM_SHARED_DIR", raising=False)
    repo = tmp_path / "wt" / "offchain"
    repo.mkdir(parents=True)
    fallback = tmp_path / "fallback"
    monkeypatch.setattr(paths, "_REPO", repo)
    monkeypatch.setattr(paths, "_FALLBACK", fallback)
    with pytest.raises(FileNotFoundError, match="set PM_SHARED_DIR"):
        paths.shared_dir()
    fallback.mkdir()
    assert paths.shared_dir() == fallback.resolve()
    (tmp_path / "wt" / "shared").mkdir()
    assert paths.shared_dir() == (tmp_path / "wt" / "shared").resolve()


def test_real_shared_dir_has_the_golden_files(monkeypatch):
    monkeypatch.delenv("PM_SHARED_DIR", raising=False)
    assert (paths.shared_dir() / "golden" / "black76.csv").is_file()
    assert isinstance(paths.shared_dir(), Path)
