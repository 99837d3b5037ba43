"""A fresh clone's main job measures, and ends with this run against the earlier rows.

The rows a clone receives were measured by another checkout: they are compared with, never
skipped. A rerun in the same checkout skips what it measured itself.
"""
import shutil
import subprocess
import sys

import nbformat
import yaml

from shared import machine, results
from shared.report import reproduction
from shared.run import experiment, runbook
from shared.machine import REPO
from shared.machine import machine_label

HERE = machine.info()["machine"]
ISA = {"cpu_isa": machine.info()["cpu_isa"]}  # rows of this CPU say so (reproduction compares only those)


def committed(path, rows, checkout="0therc10"):
    """Rows as a clone receives them: this machine's label, another checkout (or none)."""
    for i, row in enumerate(rows):
        results.append(path, {"machine": HERE, "status": "ok", "run_id": f"old{i % 2}", **ISA,
                              **({"checkout": checkout} if checkout else {}), **row})


def test_rows_of_another_checkout_are_measured_again_and_a_rerun_skips_its_own(tmp_path):
    path = tmp_path / "t.jsonl"
    committed(path, [{"model": "a", "tok_s": 1.0}], checkout="0therc10")
    committed(path, [{"model": "b", "tok_s": 1.0}], checkout=None)  # rows from before checkout ids
    calls = []

    def measure(config):
        calls.append(config["model"])
        yield {"tok_s": 2.0}

    experiment.run(experiment.grid(model=["a", "b"]), measure, path, isolate=False)
    assert calls == ["a", "b"]  # on the same machine, yet measured: not this checkout's rows
    assert results.read(path)["checkout"].tolist()[-2:] == [machine.checkout_id()] * 2
    experiment.run(experiment.grid(model=["a", "b"]), measure, path, isolate=False)
    assert calls == ["a", "b"]  # the rerun skips what this checkout measured
    assert results.done_configs(path, ["model"], checkout="0therc10") == {("a",)}


def test_a_clone_has_its_own_checkout_id_and_keeps_it_out_of_git(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True)
    shutil.copytree(REPO / "shared", clone / "shared", dirs_exist_ok=True)  # this tree's code,
    shutil.copy(REPO / ".gitignore", clone / ".gitignore")                   # committed or not
    code = "from shared import machine; print(machine.checkout_id()); print(machine.checkout_id())"
    out = subprocess.run([sys.executable, "-c", code], cwd=clone, env={"PYTHONPATH": str(clone)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1] != machine.checkout_id()  # kept once made, and not this checkout's
    assert (clone / machine.CHECKOUT_FILE).read_text().strip() == out[0]
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=clone,
                            capture_output=True, text=True).stdout.splitlines()
    assert f"!! {machine.CHECKOUT_FILE}" in status  # ignored: never committed, never shared


def test_the_comparison_flags_a_value_outside_the_spread_of_the_earlier_rows(tmp_path):
    path = tmp_path / "speed.jsonl"
    committed(path, [{"model": m, "tok_s": v, "scs": s}
                     for m, v, s in [("in", 10, .2), ("in", 12, .4), ("out", 10, .3), ("out", 11, .3)]])
    results.append(path, {"machine": "NVIDIA H200", "status": "ok", "run_id": "gpu", "model": "in",
                          "tok_s": 900.0, "scs": .9})  # another machine label: never compared
    headlines = [reproduction.Headline(path, ("model",), {"tok/s": "tok_s"}),
                 reproduction.Headline(path, ("model",), {"SCS": "scs"}, per="run")]
    before = reproduction.snapshot(headlines)
    for model, values in [("in", [11.0, 11.4]), ("out", [13.0, 14.0]), ("new", [5.0])]:
        for v in values:
            results.append(path, {"machine": HERE, "status": "ok", "run_id": "now", "model": model,
                                  "tok_s": v, "scs": .3, **ISA})
    table = reproduction.compare(headlines, before).set_index(["configuration", "metric"])
    assert table.loc[("in", "tok/s"), "before"] == 11 and table.loc[("in", "tok/s"), "this_run"] == 11.2
    assert table.loc[("in", "tok/s"), "spread"] == "0.91-1.09x" and table.loc[("in", "tok/s"), "flag"] == ""
    assert table.loc[("out", "tok/s"), "ratio"] == 13.5 / 10.5 and table.loc[("out", "tok/s"), "flag"] == "outside"
    assert table.loc[("new", "tok/s"), "flag"] == "no earlier rows"
    # per run: one SCS per earlier run (0.2 and 0.4 for "in"), so 0.3 is inside
    assert table.loc[("in", "SCS"), "before_n"] == 2 and table.loc[("in", "SCS"), "flag"] == ""
    text = reproduction.markdown(table.reset_index())
    assert f"earlier rows of {machine_label(HERE)}" in text and "1 of 6 outside" in text


def test_rows_of_a_cpu_with_other_vector_extensions_are_not_compared(tmp_path):
    """Two "AMD EPYC 2c" machines: one with AVX-512 (the rows committed on 2026-11-29, which
    predate the cpu_isa field: their llama.cpp build says AVX512 = 1) and one with AVX2 only."""
    path = tmp_path / "speed.jsonl"
    avx512 = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 |"
    committed(path, [{"model": "m", "tok_s": 20.0, "llama_cpp_build": avx512, "cpu_isa": None},
                     {"model": "m", "tok_s": 9.0, "cpu_isa": None},  # says nothing of its CPU
                     {"model": "m", "tok_s": 6.0, "cpu_isa": "AVX2"}])
    headlines = [reproduction.Headline(path, ("model",), {"tok/s": "tok_s"})]
    before = reproduction.snapshot(headlines)
    results.append(path, {"machine": HERE, "status": "ok", "run_id": "now", "model": "m", "tok_s": 6.0,
                          "cpu_isa": "AVX2"})
    line = reproduction.compare(headlines, before, isa="AVX2").iloc[0]
    assert line["before_n"] == 1 and line["before"] == 6.0 and line["flag"] == ""
    assert machine.row_isa({"llama_cpp_build": avx512}) == "AVX-512"
    assert machine.cpu_isa("fpu sse2 avx avx2 fma") == "AVX2"
    assert machine.cpu_isa("sse2 avx2 avx512f avx512bw") == "AVX-512"
    assert machine.cpu_isa("fp asimd") == ""


BLOCKS = '''
from pathlib import Path
from shared.report import reproduction
TABLE = Path(__file__).parent / "speed.jsonl"
BLOCKS = {}
HEADLINES = [reproduction.Headline(TABLE, ("model",), {"decode tok/s": "tok_s"})]
'''


def test_the_main_job_on_a_fresh_clone_measures_and_ends_with_the_reproduction_table(tmp_path, capsys):
    it = tmp_path / "96_clone"
    (it / "params").mkdir(parents=True)
    committed(it / "speed.jsonl", [{"model": "m", "tok_s": 100.0}, {"model": "m", "tok_s": 104.0}])
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell("table = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from shared.run import experiment\n"
                                          "measure = lambda config: iter([{'tok_s': 51.0}])\n"
                                          "experiment.run([{'model': 'm'}], measure, table)")]
    nbformat.write(nb, it / "speed.ipynb")
    (it / "params" / "cpu.yaml").write_text(yaml.safe_dump({"notebooks": ["speed"],
                                                            "speed": {"table": str(it / "speed.jsonl")}}))
    (it / "README.md").write_text("# Clone\n")
    (it / "report_blocks.py").write_text(BLOCKS)

    assert runbook.main([str(it)]) == 0
    out = capsys.readouterr().out
    assert len(results.read(it / "speed.jsonl")) == 3  # measured although this machine has rows
    table = out[out.index("reproduction:"):]
    assert "1 of 1 outside the spread" in table
    line = next(ln for ln in table.splitlines() if "decode tok/s" in ln)
    assert [c.strip() for c in line.strip("|").split("|")] == [
        "speed", "m", "decode tok/s", "102", "2", "0.98-1.02x", "51", "0.5", "outside"]

    assert runbook.main([str(it)]) == 0  # a rerun in the same checkout skips what it measured
    out = capsys.readouterr().out
    assert len(results.read(it / "speed.jsonl")) == 3
    assert "this run measured nothing new" in out and "REDO=1" in out
