"""The matcher-variants benchmark: its other sentence split keeps abbreviations, initials and decimals inside a
sentence, which the matcher's own split cuts."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import matcher_variants  # noqa: E402

from conftest import save_tiny_pointer_model  # noqa: E402
from modeling_pointer_distilbert import PointerDistilBertForQuestionAnswering  # noqa: E402
from run_qa import sentence_token_ids  # noqa: E402


def matcher_ids(tokenizer) -> SimpleNamespace:
    ids = sentence_token_ids(tokenizer)
    return SimpleNamespace(cls_id=ids["cls"], sep_id=ids["sep"], sentence_ends=set(ids["sentence_ends"]))


def test_abbreviations_initials_and_decimals_end_no_sentence_but_real_ends_do(tokenizer):
    context = "The U.S. economy grew 1.5 percent, e.g. in St. Paul. Then it fell! Did it recover? Yes."
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(context_ids)
    kept = matcher_variants.keeping_abbreviations(matcher_ids(tokenizer), context_ids, tokens)
    assert [tokenizer.decode(sentence) for sentence in kept] == [
        "the u. s. economy grew 1. 5 percent, e. g. in st. paul.", "then it fell!", "did it recover?", "yes."]
    cut = matcher_variants.every_mark(matcher_ids(tokenizer), context_ids)
    assert [tokenizer.decode(sentence) for sentence in cut][:3] == ["the u.", "s.", "economy grew 1."]
    assert sum(cut, []) == context_ids == sum(kept, [])  # both only cut, never drop or reorder tokens


def test_an_unfinished_last_sentence_is_kept(tokenizer):
    context_ids = tokenizer("It rose. Then it", add_special_tokens=False)["input_ids"]
    kept = matcher_variants.keeping_abbreviations(matcher_ids(tokenizer), context_ids,
                                                  tokenizer.convert_ids_to_tokens(context_ids))
    assert [tokenizer.decode(sentence) for sentence in kept] == ["it rose.", "then it"]


def test_what_ships_is_the_similarity_the_model_computes_for_a_window_of_the_whole_context(tmp_path, tokenizer):
    folder = save_tiny_pointer_model(tmp_path, tokenizer, answer_similarity=True,
                                     sentence_token_ids=sentence_token_ids(tokenizer))
    matcher = PointerDistilBertForQuestionAnswering.from_pretrained(folder).sentence_matcher
    record = {"question": "Where did the economy grow?", "context": "It fell in 1.5 cases. Then it grew in St. Paul!"}
    values, counts = matcher_variants.similarities(record, tokenizer, matcher, matcher_variants.Embeddings(matcher))
    window = tokenizer(record["question"], record["context"], return_tensors="pt")
    assert values[matcher_variants.SHIPPED] == pytest.approx(float(matcher(window["input_ids"])[0]), abs=1e-6)
    assert counts == {"every mark": 4, "abbreviations kept together": 2}
    assert values["closest sentence or pair"] >= values[matcher_variants.SHIPPED]
