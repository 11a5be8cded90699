"""A synthetic SQuAD 2.0-style task: facts about one person, questions that are answerable or not.

Each context states two or three different facts about a person ("anna lives in new york. anna works as a bus
driver."); a question asks for one relation. It is unanswerable when the context does not state that relation,
while the other facts offer plausible spans, as in SQuAD 2.0's adversarial questions. Values have one or two
words of the bert-base-uncased vocabulary, so start and end pointers both matter. A tiny model learns this from
scratch in a minute or two, which makes it a test of labels, loss, head and post-processing working together.
"""

import random

NAMES = ["anna", "boris", "clara", "david", "elena", "frank", "greta", "hugo", "irene", "jonas"]
RELATIONS = {
    # relation: (fact template, question template, values)
    "city": ("{name} lives in {value}.", "where does {name} live?",
             ["paris", "london", "new york", "berlin", "san francisco", "rome", "hong kong", "oslo"]),
    "job": ("{name} works as a {value}.", "what does {name} work as?",
            ["doctor", "bus driver", "teacher", "police officer", "farmer", "pilot", "nurse", "baker"]),
    "pet": ("{name} owns a {value}.", "what pet does {name} own?",
            ["dog", "cat", "horse", "guinea pig", "parrot", "goat", "sea turtle", "rabbit"]),
    "food": ("{name} loves eating {value}.", "what does {name} love eating?",
             ["bread", "ice cream", "rice", "apple pie", "cheese", "fish", "hot dogs", "soup"]),
    "year": ("{name} was born in {value}.", "when was {name} born?",
             ["1950", "1962", "1975", "1988", "1991", "2003", "1847", "1920"]),
}


def make_example(rng: random.Random, index: int) -> tuple[str, dict]:
    """Return `(context, qa)` for one question in the nested SQuAD 2.0 layout."""
    name = rng.choice(NAMES)
    stated = rng.sample(list(RELATIONS), rng.randint(2, 3))
    values = {relation: rng.choice(RELATIONS[relation][2]) for relation in stated}
    context, starts = "", {}
    for relation in stated:
        sentence = RELATIONS[relation][0].format(name=name, value=values[relation])
        context += (" " if context else "") + sentence
        starts[relation] = len(context) - len(values[relation]) - 1  # the value ends just before the full stop
    asked = rng.choice(list(RELATIONS))
    qa = {"id": f"syn-{index:05d}", "question": RELATIONS[asked][1].format(name=name)}
    if asked in values:
        qa.update(answers=[{"text": values[asked], "answer_start": starts[asked]}], is_impossible=False)
    else:
        plausible = rng.choice(stated)
        qa.update(answers=[], is_impossible=True,
                  plausible_answers=[{"text": values[plausible], "answer_start": starts[plausible]}])
    return context, qa


def make_two_fact_example(rng: random.Random, index: int) -> tuple[str, dict]:
    """Return `(context, qa)`: exactly two facts about one person and a question about any relation.

    Every context has the same shape and every question the same form, so no length or wording tells the
    unanswerable questions (3 in 5) apart: only whether the context states the relation asked about decides.
    """
    name = rng.choice(NAMES)
    stated = rng.sample(list(RELATIONS), 2)
    context, qa = "", {"id": f"two-{index:05d}"}
    asked = rng.choice(list(RELATIONS))
    qa["question"] = RELATIONS[asked][1].format(name=name)
    plausible = []
    for relation in stated:
        value = rng.choice(RELATIONS[relation][2])
        context += (" " if context else "") + RELATIONS[relation][0].format(name=name, value=value)
        answer = [{"text": value, "answer_start": len(context) - len(value) - 1}]
        if relation == asked:
            qa.update(answers=answer, is_impossible=False)
        plausible = plausible or answer
    if "answers" not in qa:
        qa.update(answers=[], is_impossible=True, plausible_answers=plausible)
    return context, qa


def make_squad(num_questions: int, seed: int, make=make_example) -> dict:
    """Return a nested SQuAD 2.0 document of `num_questions` questions from `make`, one paragraph each."""
    rng = random.Random(seed)
    paragraphs = []
    for index in range(num_questions):
        context, qa = make(rng, index)
        paragraphs.append({"context": context, "qas": [qa]})
    return {"version": "v2.0", "data": [{"title": "synthetic", "paragraphs": paragraphs}]}
