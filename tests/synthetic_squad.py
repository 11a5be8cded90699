"""A synthetic SQuAD 2.0-style task: facts about people, questions that are answerable or not.

Each context states two to four facts ("anna lives in paris."); a question asks for one relation of one person.
It is unanswerable when that person is not in the context, or when the context does not state that relation
for them (the adversarial case of SQuAD 2.0: the entity is there, the fact is not). Answers are single words of
the bert-base-uncased vocabulary, so the task tests labels, loss, head and post-processing, not tokenisation.
"""

import random

NAMES = ["anna", "boris", "clara", "david", "elena", "frank", "greta", "hugo", "irene", "jonas", "karl", "laura",
         "martin", "nina", "oscar", "paula", "rosa", "simon", "tina", "victor"]
RELATIONS = {
    # relation: (fact template, question template, values)
    "city": ("{name} lives in {value}.", "where does {name} live?",
             ["paris", "london", "berlin", "madrid", "rome", "vienna", "prague", "dublin", "oslo", "lisbon"]),
    "job": ("{name} works as a {value}.", "what does {name} work as?",
            ["doctor", "teacher", "farmer", "pilot", "lawyer", "baker", "nurse", "painter", "driver", "writer"]),
    "pet": ("{name} owns a {value}.", "what pet does {name} own?",
            ["dog", "cat", "horse", "rabbit", "parrot", "goat", "turtle", "snake", "mouse", "duck"]),
}


def make_example(rng: random.Random, index: int) -> tuple[str, dict]:
    """Return `(context, qa)` for one question in the nested SQuAD 2.0 layout."""
    people = rng.sample(NAMES, rng.randint(2, 4))
    facts = [(name, rng.choice(list(RELATIONS)), None) for name in people]
    facts = [(name, relation, rng.choice(RELATIONS[relation][2])) for name, relation, _ in facts]
    sentences = [RELATIONS[relation][0].format(name=name, value=value) for name, relation, value in facts]
    context = " ".join(sentences)
    kind = rng.random()
    if kind < 0.5:  # answerable
        name, relation, value = rng.choice(facts)
        question = RELATIONS[relation][1].format(name=name)
        start = sum(len(s) + 1 for s in sentences[: facts.index((name, relation, value))])
        start = context.index(value, start)
        qa = {"question": question, "answers": [{"text": value, "answer_start": start}], "is_impossible": False}
    elif kind < 0.75:  # a person who is not in the context
        name = rng.choice([n for n in NAMES if n not in people])
        question = RELATIONS[rng.choice(list(RELATIONS))][1].format(name=name)
        qa = {"question": question, "answers": [], "is_impossible": True}
    else:  # a person who is there, with a relation the context does not state for them
        name, relation, _ = rng.choice(facts)
        other = rng.choice([r for r in RELATIONS if r != relation])
        qa = {"question": RELATIONS[other][1].format(name=name), "answers": [], "is_impossible": True}
    qa["id"] = f"syn-{index:05d}"
    return context, qa


def make_squad(num_questions: int, seed: int) -> dict:
    """Return a nested SQuAD 2.0 document of `num_questions` synthetic questions, one paragraph each."""
    rng = random.Random(seed)
    paragraphs = []
    for index in range(num_questions):
        context, qa = make_example(rng, index)
        paragraphs.append({"context": context, "qas": [qa]})
    return {"version": "v2.0", "data": [{"title": "synthetic", "paragraphs": paragraphs}]}
