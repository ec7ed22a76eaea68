#!/usr/bin/env python
"""The README's Python tour on a loaded machine: the time of each snippet and the total.

A second process spins on a core (``while True: pass``, killed at the end), so that on a 2-core
machine the tour has one core to itself at best (other jobs on the machine add to that, and the
load average is recorded). Then every Python snippet of README.md runs, as written and in order,
in one fresh Python process (a reader pasting them into ``python``: nothing imported before the
first snippet, torch's default thread count, ``OMP_NUM_THREADS``/``OMP_WAIT_POLICY`` unset unless
``--keep-env``). The snippets are extracted by ``tests/test_readme.py`` (``prepared_snippets``,
the code the README test runs): the only changes are the stand-ins a reader brings, the shipped
TVflowNET for a trained run directory, and a small network and batch for the IEL snippet (made
before that snippet, not timed).

Writes ``tour.md`` (table), ``tour.json`` and ``tour.png`` (seconds per snippet) to ``--out``::

    python experiments/readme_tour.py                                      # a fresh runs/benchmarks/ folder
    python experiments/readme_tour.py --out benchmarks/results/readme_tour  # the committed result

Historical. It timed the README's tour on a loaded machine. Its results are kept for the record; it is not
expected to run against today's API. It still imported and parsed its options against today's API when it was
marked.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _results import add_output_args, open_out, save_figure, write_file  # experiments/_results.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_readme import README, STANDINS, prepared_snippets, snippets  # noqa: E402  (the README test's extraction)

LIMIT = 180.0   # seconds: the goal, the tour in under 3 minutes on a loaded 2-core machine

CHILD = r"""
import json, sys, time
snippets, standins = json.load(open(sys.argv[1]))
ns = {}
for i, code in enumerate(snippets):
    if "my_unet" in code and "my_unet" not in ns:
        t0 = time.perf_counter()
        exec(standins, ns)
        print(json.dumps({"standins": time.perf_counter() - t0}), flush=True)
    t0 = time.perf_counter()
    exec(compile(code, f"README snippet {i}", "exec"), ns)
    print(json.dumps({"snippet": i, "seconds": time.perf_counter() - t0}), flush=True)
"""


def label(code: str, text: str) -> str:
    """The README heading above a snippet."""
    heads = re.findall(r"^#{2,4} (.+)$", text[: text.index(code)], flags=re.M)
    return heads[-1] if heads else "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-spinner", action="store_true", help="do not load a core")
    ap.add_argument("--keep-env", action="store_true",
                    help="keep OMP_NUM_THREADS / OMP_WAIT_POLICY / MKL_NUM_THREADS from this environment")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds before the tour is stopped")
    add_output_args(ap, "readme_tour", what="tour.md, tour.json, tour.png")
    args = ap.parse_args(argv)
    out = open_out(args, argv)

    text = README.read_text()
    codes = prepared_snippets()
    written = snippets()
    assert len(written) == len(codes), "prepared_snippets() left snippets out"
    labels = [label(c, text) for c in written]
    env = dict(os.environ)
    if not args.keep_env:
        for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT"):
            env.pop(k, None)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    with tempfile.TemporaryDirectory() as work:
        spec = Path(work) / "snippets.json"
        spec.write_text(json.dumps([codes, STANDINS]))
        spinner = None if args.no_spinner else subprocess.Popen([sys.executable, "-c", "while True: pass"])
        load_before = os.getloadavg()
        rows, standins_s, status = [], None, "finished"
        t_start = time.perf_counter()
        try:
            errfile = open(Path(work) / "stderr.txt", "w+")
            proc = subprocess.Popen([sys.executable, "-c", CHILD, str(spec)], cwd=work, env=env,
                                    stdout=subprocess.PIPE, stderr=errfile, text=True)
            watchdog = threading.Timer(args.timeout, proc.kill)
            watchdog.start()
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                if "standins" in r:
                    standins_s = r["standins"]
                    continue
                i = r["snippet"]
                rows.append({"snippet": i, "heading": labels[i], "first_line": codes[i].splitlines()[0],
                             "seconds": r["seconds"]})
                print(f"snippet {i} ({labels[i]}): {r['seconds']:.1f} s", flush=True)
            proc.wait()
            watchdog.cancel()
            errfile.seek(0)
            err = errfile.read()
            errfile.close()
            if time.perf_counter() - t_start >= args.timeout:
                status = f"stopped after {args.timeout:.0f} s, in snippet {len(rows)}"
            elif proc.returncode != 0:
                status = f"failed (exit {proc.returncode})"
                print(err[-3000:], file=sys.stderr)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        wall = time.perf_counter() - t_start
    load_after = os.getloadavg()
    total = sum(r["seconds"] for r in rows)
    if len(rows) < len(codes) and status == "finished":
        status = "incomplete"
    slowest = max(rows, key=lambda r: r["seconds"]) if rows else None
    cmd = "python experiments/readme_tour.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = ["# The README's Python tour on a loaded machine (`experiments/readme_tour.py`)", "",
          f"`{cmd.strip()}`, {time.strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} cores, "
          f"{'one spinning process on a core' if not args.no_spinner else 'no spinner'} plus whatever else ran "
          f"(1-minute load average {load_before[0]:.1f} before, {load_after[0]:.1f} after); "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; a fresh process, "
          f"{'this environment' if args.keep_env else 'OMP_NUM_THREADS / OMP_WAIT_POLICY unset (a reader)'}.", "",
          f"**Total {total:.1f} s** for {len(rows)} of {len(codes)} snippets ({status}); "
          f"{'within' if total <= LIMIT and status == 'finished' else 'over'} the {LIMIT:.0f} s goal (the tour in under 3 minutes on a loaded 2-core machine). "
          f"Process wall time {wall:.1f} s (Python start-up and the IEL stand-ins, "
          f"{(standins_s or 0):.1f} s, included).", "",
          "| # | README section | first line | seconds |", "|---|---|---|---|"]
    md += [f"| {r['snippet']} | {r['heading']} | `{r['first_line']}` | {r['seconds']:.1f} |" for r in rows]
    if slowest is not None:
        md += ["", f"Slowest: snippet {slowest['snippet']} ({slowest['heading']}), {slowest['seconds']:.1f} s."]
    text_md = "\n".join(md) + "\n"
    print(text_md)
    write_file(out / "tour.md", text_md)
    write_file(out / "tour.json", json.dumps({"command": cmd, "total_s": total, "wall_s": wall, "status": status,
                                              "limit_s": LIMIT, "standins_s": standins_s, "rows": rows,
                                              "load_before": load_before, "load_after": load_after,
                                              "spinner": not args.no_spinner, "cpus": os.cpu_count()}, indent=1))
    save_figure(figure(rows, total, status), out / "tour.png", dpi=110)
    return 0 if status == "finished" else 1


def figure(rows: list[dict], total: float, status: str):
    from pdeflow import viz

    fig = viz.figure(7.5, 0.5 + 0.42 * max(len(rows), 1))
    ax = fig.subplots()
    names = [f"{r['snippet']}: {r['heading'][:38]}" for r in rows][::-1]
    secs = [r["seconds"] for r in rows][::-1]
    bars = ax.barh(range(len(rows)), secs, color="tab:blue")
    ax.bar_label(bars, labels=[f"{s:.1f} s" for s in secs], fontsize=7, padding=2)
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.set_xlabel("seconds (one core loaded by a spinning process)")
    ax.set_xlim(0, max(secs + [1.0]) * 1.2)
    ax.set_title(f"README Python tour: total {total:.1f} s ({status}; limit {LIMIT:.0f} s)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return fig


if __name__ == "__main__":
    sys.exit(main())
