"""The main job goes on past a failing notebook, refreshes the report and exits non-zero."""
import nbformat
import yaml

from shared import runbook

BLOCKS = '''
from pathlib import Path
from shared import results

TABLE = Path(__file__).parent / "rows.jsonl"
BLOCKS = {"rows": lambda: f"{len(results.read(TABLE))} row(s) recorded"}
'''


def notebook(path, parameters: str, body: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def test_a_failing_notebook_does_not_stop_the_next_and_the_job_exits_non_zero(tmp_path, capsys):
    it = tmp_path / "99_tiny"
    (it / "params").mkdir(parents=True)
    notebook(it / "breaks.ipynb", "x = 1", "raise ValueError(f'boom {x}')")
    notebook(it / "dies.ipynb", "", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")  # kernel dies
    notebook(it / "records.ipynb", "table = ''",
             "from shared import results\nresults.append(table, {'status': 'ok'})")
    (it / "params" / "cpu.yaml").write_text(yaml.safe_dump({
        "notebooks": ["breaks", "dies", "records"], "breaks": {"x": 2},
        "records": {"table": str(it / "rows.jsonl")}}))
    (it / "README.md").write_text("# Tiny\n\n<!-- BEGIN rows -->\nstale\n<!-- END rows -->\n")
    (it / "report_blocks.py").write_text(BLOCKS)

    assert runbook.main([str(it), "--params", "cpu"]) == 1

    out = capsys.readouterr().out
    assert "1 row(s) recorded" in (it / "README.md").read_text()  # the last notebook ran, report refreshed
    assert (it / "executed" / "cpu" / "records.ipynb").exists()
    summary = out[out.index("summary:"):]
    assert "2 ok, 2 failed (breaks, dies)" in summary
    lines = summary.splitlines()
    assert "failed" in lines[1] and lines[1].endswith("ValueError: boom 2")
    assert "failed" in lines[2] and lines[2].endswith("DeadKernelError: Kernel died")
    assert "records" in lines[3] and " ok " in lines[3]
    assert str(it / "executed") in out  # paths outside the repository are printed as they are
