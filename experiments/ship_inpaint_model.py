"""Copy an exported inpainting model (a mask network or the residual inpainter) into the package's weights.

    python experiments/ship_inpaint_model.py RUN/model.json masknet-05 --selection "best of ... by validation" \
        --out src/pdeflow/inpaint/weights --overwrite

writes ``NAME.safetensors`` + ``NAME.json`` to ``--out``: the weights unchanged (same checksum), the
JSON with its training provenance (command, steps, CPU seconds, validation numbers) plus
``provenance.shipped`` (source run, why this model was chosen, when). Shipping is explicit: without
``--out src/pdeflow/inpaint/weights`` (the package's weights) the pair goes to a fresh folder under
runs/benchmarks/ to look at first. The run's own files are not modified.

Historical. It copied the trained inpainting models into the package's weights. Its results are kept for the
record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
from pathlib import Path

from _results import add_output_args, open_out, write_file  # experiments/_results.py

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "pdeflow" / "inpaint" / "weights"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="RUN/model.json (its .safetensors beside it)")
    p.add_argument("name", help="shipped name, e.g. masknet-05 or residual-inpainter")
    p.add_argument("--selection", required=True, help="why this model: how it was chosen (validation numbers)")
    add_output_args(p, "ship_inpaint_model", what="NAME.safetensors, NAME.json; the package's weights: "
                    f"{WEIGHTS.relative_to(WEIGHTS.parents[3])}")
    a = p.parse_args(argv)
    out = open_out(a, argv, log=False)
    src = Path(a.model)
    meta = json.loads(src.read_text())
    weights = src.with_suffix(".safetensors")
    shutil.copyfile(weights, out / f"{a.name}.safetensors")
    meta["weights"]["file"] = f"{a.name}.safetensors"
    meta["provenance"]["shipped"] = {"source": str(src), "selection": a.selection,
                                     "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_file(out / f"{a.name}.json", json.dumps(meta, indent=1) + "\n")
    size = (out / f"{a.name}.safetensors").stat().st_size
    prov = meta["provenance"]
    print(f"{a.name}: {size / 1024:.0f} KiB, {prov.get('steps')} steps, {prov.get('cpu_time_s')} CPU s, "
          f"val {prov.get('val')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
