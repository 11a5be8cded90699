"""The sentence-split benchmark: its alternative keeps abbreviations, initials and decimals inside a sentence,
which the matcher's own split cuts."""

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import sentence_split  # noqa: E402

from run_qa import sentence_token_ids  # noqa: E402


def matcher_ids(tokenizer) -> SimpleNamespace:
    ids = sentence_token_ids(tokenizer)
    return SimpleNamespace(cls_id=ids["cls"], sep_id=ids["sep"], sentence_ends=set(ids["sentence_ends"]))


def test_abbreviations_initials_and_decimals_end_no_sentence_but_real_ends_do(tokenizer):
    context = "The U.S. economy grew 1.5 percent, e.g. in St. Paul. Then it fell! Did it recover? Yes."
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(context_ids)
    kept = sentence_split.keeping_abbreviations(matcher_ids(tokenizer), context_ids, tokens)
    assert [tokenizer.decode(sentence) for sentence in kept] == [
        "the u. s. economy grew 1. 5 percent, e. g. in st. paul.", "then it fell!", "did it recover?", "yes."]
    cut = sentence_split.every_mark(matcher_ids(tokenizer), context_ids)
    assert [tokenizer.decode(sentence) for sentence in cut][:3] == ["the u.", "s.", "economy grew 1."]
    assert sum(cut, []) == context_ids == sum(kept, [])  # both only cut, never drop or reorder tokens


def test_an_unfinished_last_sentence_is_kept(tokenizer):
    context_ids = tokenizer("It rose. Then it", add_special_tokens=False)["input_ids"]
    kept = sentence_split.keeping_abbreviations(matcher_ids(tokenizer), context_ids,
                                                tokenizer.convert_ids_to_tokens(context_ids))
    assert [tokenizer.decode(sentence) for sentence in kept] == ["it rose.", "then it"]
