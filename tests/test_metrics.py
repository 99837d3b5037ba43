"""The SCS metric on the embedded encoder (all-MiniLM-L6-v2 here, sentence-t5-base where cached)."""
import numpy as np
import pytest

from shared.task import metrics
from shared.errors import LabError


@pytest.fixture(scope="module")
def encoder():
    return metrics.load_encoder()


def test_identical_strings_score_one(encoder):
    text = ["Rewrite this text as a sea shanty."] * 2
    assert np.allclose(metrics.scs(text, text, encoder), 1.0, atol=1e-5)


def test_scs_is_cube_of_cosine(encoder):
    preds = ["Make this text more formal.", "Turn the story into a poem."]
    truths = ["Rewrite this text in a formal tone.", "Convert this text into a bullet list."]
    a = encoder.model.encode(preds)
    b = encoder.model.encode(truths)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert np.allclose(metrics.scs(preds, truths, encoder), cos ** 3, atol=1e-5)


def test_paraphrase_beats_unrelated(encoder):
    truth = ["Rewrite this text as if it were spoken by a pirate."]
    paraphrase = metrics.scs(["Rewrite the text in the voice of a pirate."], truth, encoder)[0]
    unrelated = metrics.scs(["The quarterly tax rate rose by two percent."], truth, encoder)[0]
    assert unrelated < paraphrase


def test_blanks_are_replaced_and_counted():
    preds, n = metrics.clean_predictions(["Make it rhyme.", None, "", "   "])
    assert n == 3
    assert preds == ["Make it rhyme."] + [metrics.FALLBACK_PROMPT] * 3


def test_score_names_encoder(encoder):
    result = metrics.score(["Make it formal.", "Make it rhyme.", "Shorten it."],
                           ["Rewrite it formally.", "Turn it into a poem.", "Summarise it."], encoder)
    assert result["encoder"] == encoder.name in ("sentence-t5-base", "all-MiniLM-L6-v2")
    assert result["n"] == 3
    assert result["scs_ci_low"] <= result["scs_mean"] <= result["scs_ci_high"]


def test_unknown_encoder_path_raises(tmp_path):
    with pytest.raises(LabError, match="not a sentence-transformers folder"):
        metrics.load_encoder(str(tmp_path / "no-such-encoder"))


def test_summarize_counts_each_pair_once():
    import pandas as pd
    row = dict(strategy="direct", seconds=1.0, output_tokens=5, blank_replaced=False,
               truncated=False, error=None, encoder="all-MiniLM-L6-v2", template_hash="abc")
    df = pd.DataFrame([{**row, "pair": p, "scs": s} for p, s in [("a", 0.1), ("b", 0.3), ("c", 0.2)]] * 2)
    table = metrics.summarize(df)
    assert table["n"].tolist() == [3]
    assert table["scs_mean"].iloc[0] == pytest.approx(0.2)
