"""pdeflow.reporting: a Report is written all or none."""
import json
import os

import pytest

from pdeflow import reporting
from pdeflow.reporting import Report, jsonable, md_table, mean_std


def _report():
    rep = Report()
    rep.add_text("report.md", "# r\n")
    rep.add_json("results.json", {"a": [1.0, 2.0]})
    rep.add_csv("t.csv", ["k", "v"], [[1, 2]])
    return rep


def test_report_writes_every_file(tmp_path):
    paths = _report().write(tmp_path / "out")
    assert [p.name for p in paths] == ["report.md", "results.json", "t.csv"]
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == {"a": [1.0, 2.0]}
    assert (tmp_path / "out" / "t.csv").read_text().splitlines() == ["k,v", "1,2"]
    with pytest.raises(FileExistsError):
        _report().write(tmp_path / "out")
    _report().write(tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.md", "results.json", "t.csv"]


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    calls = []
    real = os.replace

    def replace(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(a, b)

    monkeypatch.setattr(reporting.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        _report().write(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_names_and_helpers():
    rep = Report()
    with pytest.raises(ValueError, match="plain names"):
        rep.add_text("../x.md", "")
    rep.add_text("x.md", "")
    with pytest.raises(ValueError, match="twice"):
        rep.add_text("x.md", "")
    assert md_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    assert mean_std([1.0, 3.0]) == [2.0, 1.0]
    assert jsonable({"x": float("inf"), "example": 1}) == {"x": "inf"}
