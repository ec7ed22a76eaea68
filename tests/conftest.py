import sys
from pathlib import Path

import pytest
import torch

# Tests live in one folder per subpackage (tests/tv, tests/inpaint, ...); the shared helpers (_contract.py,
# _dense_diffuse.py, ...) stay here, importable from every folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Two cores, two pytest workers: one torch thread each avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture
def torch_globals_restored():
    """One torch thread (as in the training subprocesses, so results compare bit for bit); deterministic mode and
    the thread count given back after the test (they are process-wide)."""
    det, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    if torch.are_deterministic_algorithms_enabled() != det:
        torch.use_deterministic_algorithms(det)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smooth_photos(tmp_path_factory):
    """``smooth_photos(n)``: a folder of n small noisy sinusoid PNGs (40x44), a stand-in photo pool for trainers."""
    import numpy as np

    from pdeflow.io import write_image

    def make(n: int):
        folder = tmp_path_factory.mktemp("photos")
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:40, 0:44] / 40.0
        for k in range(n):
            img = 0.5 + 0.3 * np.sin(2 * np.pi * (k + 1) * x) * np.cos(2 * np.pi * y * (k % 3 + 1))
            img += 0.05 * rng.standard_normal(img.shape)
            write_image(folder / f"img{k}.png", torch.from_numpy(np.clip(img, 0, 1))[None].float())
        return folder

    return make


@pytest.fixture
def dense(monkeypatch):
    """Diffusion inpainting by a dense direct solve (tests/_dense_diffuse.py) inside the trainers: every module
    that holds ``inpaint_diffusion`` (bound at its import) gets the dense solve; a test that never reaches it fails."""
    import importlib

    from _dense_diffuse import dense_diffuse
    from pdeflow.inpaint.operators.diffusion import inpaint_diffusion

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return dense_diffuse(*args, **kwargs)

    for name in ("pdeflow.inpaint.operators.diffusion", "pdeflow.inpaint.learned.residual",
                 "pdeflow.inpaint.training.masknet", "pdeflow.inpaint.training.residual",
                 "pdeflow.inpaint.training.wgan"):
        module = importlib.import_module(name)
        if getattr(module, "inpaint_diffusion", None) is inpaint_diffusion:
            monkeypatch.setattr(module, "inpaint_diffusion", counted)
    yield
    assert calls, ("the dense diffusion fixture was never called (a module binds inpaint_diffusion where it is not "
                   "patched)")


@pytest.fixture
def pydicom_file():
    """``name -> path`` of a DICOM test file shipped with pydicom (skips the test if it is not there)."""
    import importlib.util
    from pathlib import Path

    def find(name):
        spec = importlib.util.find_spec("pydicom")
        p = Path(list(spec.submodule_search_locations)[0]) / "data" / "test_files" / name
        if not p.is_file():
            pytest.skip(f"pydicom does not ship {name} locally")
        return p

    return find


@pytest.fixture(scope="session")
def fresh_interpreter(tmp_path_factory):
    """tests/_fresh.py's answer, once per session (the first xdist worker to ask writes it for the other)."""
    import json
    import os

    import filelock

    from _fresh import run

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return run()
    path = tmp_path_factory.getbasetemp().parent / "fresh_interpreter.json"
    with filelock.FileLock(f"{path}.lock"):
        if not path.is_file():
            path.write_text(json.dumps(run()))
        return json.loads(path.read_text())
