import json
import os

import pytest


@pytest.fixture(scope="session")
def fresh_interpreter(tmp_path_factory):
    """What one fresh interpreter imports at each step of tests/_fresh.py, run once per test session: under
    pytest-xdist the first worker to ask runs it and writes its answer where the other reads it."""
    import filelock

    from _fresh import run

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return run()
    path = tmp_path_factory.getbasetemp().parent / "fresh_interpreter.json"      # this session's, shared by workers
    with filelock.FileLock(f"{path}.lock"):
        if not path.is_file():
            path.write_text(json.dumps(run()))
        return json.loads(path.read_text())
