"""The matcher-variants benchmark: its other sentence split keeps abbreviations, initials and decimals inside a
sentence, which the matcher's own split cuts."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
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
    values, counts, _ = matcher_variants.similarities(record, tokenizer, matcher, matcher_variants.Embeddings(matcher))
    window = tokenizer(record["question"], record["context"], return_tensors="pt")
    assert values[matcher_variants.SHIPPED] == pytest.approx(float(matcher(window["input_ids"])[0]), abs=1e-6)
    assert counts == {"every mark": 4, "abbreviations kept together": 2}
    assert values["closest sentence or pair"] >= values[matcher_variants.SHIPPED]


def probe_data(seed: int, articles: int = 10, per_article: int = 60):
    """Balanced labels in every article; titles in article order."""
    rng = np.random.default_rng(seed)
    titles = np.repeat([f"article {index}" for index in range(articles)], per_article)
    unanswerable = np.tile(np.arange(per_article) % 2 == 0, articles)
    return rng, titles, unanswerable


def test_a_probe_scores_each_article_with_weights_fitted_on_other_articles_only():
    rng, titles, unanswerable = probe_data(0)
    # column k gives article k's labels away and is zero elsewhere: only a probe that saw the article can use it
    leaks = np.stack([np.where(titles == title, unanswerable, 0.0) for title in dict.fromkeys(titles)], axis=1)
    features = np.c_[rng.normal(size=len(titles)), leaks]
    aucs = matcher_variants.probe_aucs(features, unanswerable, titles, folds=5)
    assert list(aucs) == sorted(aucs, key=lambda title: (int(title.split()[1]) % 5, int(title.split()[1])))
    assert max(aucs.values()) < 0.8


def test_a_probe_learns_what_transfers_between_articles():
    rng, titles, unanswerable = probe_data(1)
    features = np.c_[unanswerable + rng.normal(scale=0.2, size=len(titles)), rng.normal(size=(len(titles), 3))]
    aucs = matcher_variants.probe_aucs(features, unanswerable, titles, folds=5)
    assert len(aucs) == 10 and min(aucs.values()) > 0.95


def test_the_probe_features_start_with_the_similarity_summaries():
    rng = np.random.default_rng(2)
    question, sentences = rng.normal(size=4), rng.normal(size=(3, 4))
    features = matcher_variants.probe_features(question, sentences)
    similarity = sentences @ question
    closest = sentences[similarity.argmax()]
    assert features[:matcher_variants.SUMMARIES].tolist() == pytest.approx(
        [similarity.max(), np.sort(similarity)[-2], similarity.mean(), 3])
    assert features[matcher_variants.SUMMARIES:].tolist() == pytest.approx(
        [*(question * closest), *np.abs(question - closest)])
