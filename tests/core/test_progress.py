"""pdeflow.progress: a bar on a terminal, plain lines with an ETA elsewhere, nothing when disabled."""
import io
import sys

from pdeflow.progress import progress_bar


def test_plain_lines_with_eta_when_not_a_terminal(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    with progress_bar(total=40, enabled=True, desc="work", unit="step") as bar:
        for _ in range(40):
            bar.update(1)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in buf.getvalue()
    assert lines[0].startswith("work:  10% (4/40 step)") and "ETA" in lines[0]
    assert lines[-1].startswith("work: 100% (40/40 step)")


def test_disabled_is_silent(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    with progress_bar(total=10, enabled=False) as bar:
        bar.update(10)
    assert buf.getvalue() == ""
