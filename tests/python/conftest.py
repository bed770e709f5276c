"""Fixtures: a tmp migrations dir and a tmp database path."""
import pytest


@pytest.fixture
def mdir(tmp_path):
    return tmp_path / "migrations"


@pytest.fixture
def db(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d / "app.db"
