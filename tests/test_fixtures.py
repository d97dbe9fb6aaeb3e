"""The suite's own rule for missing components: skip on a developer's machine, fail in CI."""

import pytest

from tests import conftest


def test_missing_component_skips_on_a_developer_machine(monkeypatch):
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not reachable"):
        conftest.skip_or_fail("PostgreSQL is not reachable")


def test_missing_component_fails_under_ci(monkeypatch):
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match=r"PostgreSQL is not reachable .*CI=true"):
        conftest.skip_or_fail("PostgreSQL is not reachable")


def test_chromium_on_path_elsewhere_is_not_the_one_launched(monkeypatch, tmp_path):
    elsewhere = tmp_path / "bin" / "chromium"
    elsewhere.parent.mkdir()
    elsewhere.write_text("#!/bin/sh\n")
    elsewhere.chmod(0o755)
    monkeypatch.setenv("PATH", str(elsewhere.parent))
    monkeypatch.setattr(conftest, "IN_CI", True)
    launched = tmp_path / "usr" / "lib" / "chromium" / "chromium"
    with pytest.raises(pytest.fail.Exception, match=f"Chromium is not installed at {launched}"):
        conftest.require_chromium(str(launched))
