"""--shard i/n and the merge by id (shared.task.shards): every row in exactly one shard, the merge
in input order, and the mistakes a multi-session run makes refused before anything is written."""
import pandas as pd
import pytest

from shared.task import dataio, shards
from shared.errors import LabError


def _test_csv(path, n=7):
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "original_text": [f"text {i}" for i in range(n)],
                       "rewritten_text": [f"rewrite {i}" for i in range(n)]})
    df.to_csv(path, index=False)
    return df


@pytest.mark.parametrize("n", [1, 2, 3, 7, 9])
def test_shards_cover_every_row_once_and_within_one_row_of_each_other(tmp_path, n):
    _test_csv(tmp_path / "t.csv")
    pairs = dataio.read_pairs(tmp_path / "t.csv")
    parts = [shards.select(pairs, f"{i}/{n}") for i in range(1, n + 1)]
    ids = [i for p in parts for i in p["id"]]
    assert sorted(ids) == sorted(pairs["id"]) and len(ids) == len(set(ids))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shards.select(pairs, None) is pairs


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1", "a/b", "1/0", "-1/2", "2/3/4"])
def test_a_malformed_shard_is_refused(bad):
    with pytest.raises(LabError, match="i/n"):
        shards.parse(bad)


def test_merge_writes_input_order_and_refuses_gaps_conflicts_and_strangers(tmp_path):
    test = tmp_path / "t.csv"
    pairs = _test_csv(test)
    out = tmp_path / "submission.csv"
    files = []
    for i in (1, 2, 3):
        part = shards.select(dataio.read_pairs(test), f"{i}/3")
        files.append(dataio.write_submission(part["id"], [f"answer {x}" for x in part["id"]], tmp_path / f"p{i}.csv"))
    assert shards.main([str(test), *map(str, reversed(files)), "--out", str(out)]) == 0
    merged = pd.read_csv(out)
    assert merged["id"].tolist() == pairs["id"].tolist()
    assert merged["rewrite_prompt"].tolist() == [f"answer {x}" for x in pairs["id"]]
    out.unlink()
    with pytest.raises(LabError, match="2 of 7 ids have no answer.*'r1' \\(row 2\\)"):
        shards.merge(test, files[::2], out)
    clash = dataio.write_submission(["r0"], ["something else"], tmp_path / "clash.csv")
    with pytest.raises(LabError, match="different answers"):
        shards.merge(test, [*files, clash], out)
    stranger = dataio.write_submission(["zz"], ["x"], tmp_path / "stranger.csv")
    with pytest.raises(LabError, match="not in"):
        shards.merge(test, [*files, stranger], out)
    assert not out.exists()  # nothing written by a refused merge
    same = dataio.write_submission(["r0"], ["answer r0"], tmp_path / "same.csv")
    assert shards.merge(test, [*files, same], out)["rows"] == 7  # a repeated identical answer is fine
