"""Split a submission over several machines or Kaggle sessions, and merge the parts by id.

    python -m shared submit test.csv --strategy few_shot --shard 1/3 --out part1.csv   # machine 1
    python -m shared submit test.csv --strategy few_shot --shard 2/3 --out part2.csv   # machine 2 ...
    python -m shared shards test.csv part1.csv part2.csv part3.csv --out submission.csv

Shard i of n holds the rows at positions i-1, i-1+n, i-1+2n, ... of the input (round robin, so
long and short texts spread evenly and every shard is within one row of the others). The merge
writes `id,rewrite_prompt` for every id of the input, in its order, and refuses before writing
anything a part with an id the input lacks, an id found in two parts with different answers,
or an input id no part has (naming the shard it belongs to), and before reading the parts an
`--out` that is the input or one of the parts, or in a folder that cannot be written.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import pandas as pd

from shared.task import dataio
from shared.errors import LabError


def parse(shard: str | None) -> tuple[int, int] | None:
    """"i/n" as (i, n) with 1 <= i <= n; None for None. LabError for anything else."""
    if shard is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise LabError(f"--shard must be i/n with 1 <= i <= n (e.g. 2/3: the second of three parts), "
                       f"got {shard!r}")
    return int(m[1]), int(m[2])


def select(pairs: pd.DataFrame, shard: str | None) -> pd.DataFrame:
    """The rows of shard i/n (round robin by position), or all rows for None."""
    parsed = parse(shard)
    if parsed is None:
        return pairs
    i, n = parsed
    return pairs.iloc[i - 1::n]


def merge(test: str | os.PathLike, parts: list[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Write the submission for `test` from the part files; returns counts. LabError (nothing
    written) for ids a part has but the input lacks, conflicting answers, or missing ids."""
    if not parts:
        raise LabError("name the part files to merge (the --out files of each --shard run)")
    dataio.check_output(out, inputs=[test, *parts])
    ids = dataio.read_pairs(test, blanks=True)["id"].astype(str).tolist()  # only its ids matter
    known = set(ids)
    answers: dict[str, tuple[str, str]] = {}
    for part in parts:
        df = dataio.read_pairs(part, required=("id",))  # and rewrite_prompt, checked below
        if dataio.PROMPT not in df:
            raise LabError(f"{part}: no {dataio.PROMPT!r} column; a part is a submission (id,{dataio.PROMPT})")
        for id_, prompt in zip(df["id"].astype(str), df[dataio.PROMPT]):
            if id_ not in known:
                raise LabError(f"{part}: id {id_!r} is not in {test}; was it made from another file?")
            if id_ in answers and answers[id_][0] != prompt:
                raise LabError(f"id {id_!r} has different answers in {answers[id_][1]} and {part}")
            answers.setdefault(id_, (prompt, str(part)))
    missing = [(k, i) for k, i in enumerate(ids) if i not in answers]
    if missing:
        shown = ", ".join(f"{i!r} (row {k + 1})" for k, i in missing[:5])
        raise LabError(f"{len(missing)} of {len(ids)} ids have no answer in the parts: {shown}; "
                       "run the shard they belong to (row r is in shard ((r-1) mod n) + 1 of n)")
    dataio.write_submission(ids, [answers[i][0] for i in ids], out)
    return {"rows": len(ids), "parts": len(parts), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared shards",
                                     description="merge the submissions of --shard runs by id")
    parser.add_argument("test", help="the competition's CSV the shards were made from")
    parser.add_argument("parts", nargs="+", help="the part submissions (id,rewrite_prompt)")
    parser.add_argument("--out", default="submission.csv")
    args = parser.parse_args(argv)
    try:
        summary = merge(args.test, args.parts, args.out)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {summary['out']}: {summary['rows']} rows from {summary['parts']} parts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
