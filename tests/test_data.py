"""Loading SQuAD files into one schema, strict validation of bad input, and answer alignment."""

import csv
import json
import logging

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from utils_qa import (
    SQUAD_FEATURES,
    DataFormatError,
    align_answers,
    aligned_answer_start,
    has_unanswerable,
    load_qa_datasets,
    load_squad_file,
)

CONTEXT_NORSE = "The Normans were descended from Norse raiders. Rollo swore fealty to Charles III."
CONTEXT_CAFE = "Café Müller opened in Zürich in 1925, serving crème brûlée."
NO_ANSWERS = {"text": [], "answer_start": []}

ROWS = [
    {
        "id": "q1",
        "title": "Normans",
        "context": CONTEXT_NORSE,
        "question": "Who did the Normans descend from?",
        "answers": {"text": ["Norse raiders", "Norse"], "answer_start": [32, 32]},
    },
    {
        "id": "q2",
        "title": "Normans",
        "context": CONTEXT_NORSE,
        "question": "Whom did Rollo swear fealty to?",
        "answers": {"text": ["Charles III"], "answer_start": [69]},
    },
    {
        "id": "q3",
        "title": "Café",
        "context": CONTEXT_CAFE,
        "question": "Where did Café Müller open?",
        "answers": {"text": ["Zürich"], "answer_start": [22]},
    },
]
UNANSWERABLE = {
    "id": "q4",
    "title": "Café",
    "context": CONTEXT_CAFE,
    "question": "When did Café Müller close?",
    "answers": NO_ANSWERS,
}
# SQuAD 2.0 files give unanswerable questions plausible answers; they are not answers, and are not read.
PLAUSIBLE = {"plausible_answers": {"text": ["1925"], "answer_start": [32]}}


def nested_document(rows, version="1.1"):
    """Return rows in the official nested layout (one article per title, one paragraph per context)."""
    articles = {}
    for row in rows:
        paragraphs = articles.setdefault(row["title"], {})
        qas = paragraphs.setdefault(row["context"], [])
        qa = {
            "id": row["id"],
            "question": row["question"],
            "answers": [
                {"text": text, "answer_start": start}
                for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"])
            ],
        }
        if version == "2.0":
            qa["is_impossible"] = not qa["answers"]
            plausible = row.get("plausible_answers", NO_ANSWERS)
            if plausible["text"]:
                qa["plausible_answers"] = [
                    {"text": text, "answer_start": start}
                    for text, start in zip(plausible["text"], plausible["answer_start"])
                ]
        qas.append(qa)
    return {
        "version": version,
        "data": [
            {"title": title, "paragraphs": [{"context": context, "qas": qas} for context, qas in paragraphs.items()]}
            for title, paragraphs in articles.items()
        ],
    }


def write_json(path, content):
    path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


def write_csv(path, records, fieldnames):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(records)
    return path


def flat_files(tmp_path, rows):
    """Return the same rows written in every flat layout the loader accepts."""
    json_rows = write_json(tmp_path / "rows.json", rows)
    wrapped = write_json(tmp_path / "wrapped.json", {"data": rows})
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    jsonl_as_json = tmp_path / "lines.json"
    jsonl_as_json.write_text(jsonl.read_text(encoding="utf-8"), encoding="utf-8")
    csv_json_answers = write_csv(
        tmp_path / "answers_json.csv",
        [{**row, "answers": json.dumps(row["answers"], ensure_ascii=False)} for row in rows],
        ["id", "title", "context", "question", "answers"],
    )
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return [json_rows, wrapped, jsonl, jsonl_as_json, csv_json_answers, parquet]


def test_nested_v1_and_flat_files_load_to_the_same_dataset(tmp_path):
    expected = load_squad_file(write_json(tmp_path / "v1.json", nested_document(ROWS)))
    assert expected.features == SQUAD_FEATURES
    assert expected.to_list() == ROWS
    assert not has_unanswerable(expected)
    for path in flat_files(tmp_path, ROWS):
        loaded = load_squad_file(path)
        assert loaded.features == SQUAD_FEATURES, path.name
        assert loaded.to_list() == ROWS, path.name


def test_nested_v2_with_unanswerable_questions_loads_like_flat_rows(tmp_path):
    rows = ROWS + [UNANSWERABLE]
    document = nested_document(ROWS + [dict(UNANSWERABLE, **PLAUSIBLE)], version="2.0")
    loaded = load_squad_file(write_json(tmp_path / "v2.json", document))
    assert loaded.to_list() == rows
    assert has_unanswerable(loaded)
    for path in flat_files(tmp_path, rows):
        assert load_squad_file(path).to_list() == rows, path.name


def test_csv_with_one_answer_per_row_in_answer_text_and_answer_start_columns(tmp_path):
    rows = [ROWS[1], ROWS[2], UNANSWERABLE]
    records = [
        {
            "id": row["id"], "title": row["title"], "context": row["context"], "question": row["question"],
            "answer_text": (row["answers"]["text"] or [""])[0],
            "answer_start": ([str(start) for start in row["answers"]["answer_start"]] or [""])[0],
        }
        for row in rows
    ]
    path = write_csv(tmp_path / "columns.csv", records, list(records[0]))
    assert load_squad_file(path).to_list() == rows


def test_unlabelled_rows_without_answers_get_empty_answers_and_integer_ids_become_strings(tmp_path):
    rows = [{"id": 7, "context": CONTEXT_CAFE, "question": "Where?"}]
    loaded = load_squad_file(write_json(tmp_path / "test.json", rows))
    assert loaded.to_list() == [
        {"id": "7", "title": "", "context": CONTEXT_CAFE, "question": "Where?", "answers": NO_ANSWERS}
    ]


def test_load_qa_datasets_returns_the_requested_splits(tmp_path):
    train = write_json(tmp_path / "train.json", nested_document(ROWS))
    test = write_json(tmp_path / "test.json", [UNANSWERABLE])
    splits = load_qa_datasets(train_file=train, test_file=test)
    assert sorted(splits) == ["test", "train"]
    assert splits["train"].num_rows == 3
    assert splits["test"][0]["id"] == "q4"


def test_load_qa_datasets_without_any_source_says_what_to_pass():
    with pytest.raises(ValueError, match="dataset_name or at least one of train_file"):
        load_qa_datasets()


def test_hub_dataset_that_cannot_be_reached_gives_one_actionable_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataFormatError) as error:
        load_qa_datasets(dataset_name="squad_v2")
    message = str(error.value)
    assert "'squad_v2'" in message and "--train_file" in message


def test_hub_splits_are_conformed_to_the_schema_and_local_files_replace_them(monkeypatch, tmp_path):
    hub_rows = [{key: value for key, value in row.items() if key != "title"} | {"extra": 1} for row in ROWS]
    published = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(hub_rows), "validation": datasets.Dataset.from_list(hub_rows[:1]),
         "unsupervised": datasets.Dataset.from_list(hub_rows[:1])}
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config, **kwargs: published)
    splits = load_qa_datasets(dataset_name="squad", validation_file=write_json(tmp_path / "dev.json", [UNANSWERABLE]))
    assert sorted(splits) == ["train", "validation"]
    assert splits["train"].features == SQUAD_FEATURES
    assert splits["train"].to_list() == [dict(row, title="") for row in ROWS]
    assert splits["validation"]["id"][:] == ["q4"]

    published["train"] = published["train"].remove_columns("question")
    with pytest.raises(DataFormatError, match="dataset 'squad', split 'train': missing column\\(s\\) \\['question'\\]"):
        load_qa_datasets(dataset_name="squad")


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------


def load_error(path) -> str:
    with pytest.raises(DataFormatError) as error:
        load_squad_file(path)
    return str(error.value)


def test_malformed_json_names_the_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n  {"title": "x",\n   "paragraphs": [}\n]}', encoding="utf-8")
    message = load_error(path)
    assert str(path) in message
    assert "line 3, column 19" in message


def test_malformed_json_lines_name_the_file_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"id": "q2", "context": \n', encoding="utf-8")
    assert "line 2, column" in load_error(path)


@pytest.mark.parametrize("missing", ["context", "question", "id"])
def test_missing_field_names_the_record_and_the_field(tmp_path, missing):
    document = nested_document(ROWS)
    paragraph = document["data"][0]["paragraphs"][0]
    target = paragraph if missing == "context" else paragraph["qas"][1]
    del target[missing]
    message = load_error(write_json(tmp_path / "data.json", document))
    assert str(tmp_path / "data.json") in message
    assert "data[0].paragraphs[0]" in message
    assert f"field '{missing}'" in message and "missing" in message
    if missing == "question":
        assert "qas[1] (id 'q2')" in message


def test_non_string_question_names_the_question_and_its_id(tmp_path):
    document = nested_document(ROWS)
    document["data"][1]["paragraphs"][0]["qas"][0]["question"] = 42
    message = load_error(write_json(tmp_path / "data.json", document))
    assert "data[1].paragraphs[0].qas[0] (id 'q3')" in message
    assert "field 'question' must be a string, got int" in message


def test_answer_start_out_of_range_names_the_answer(tmp_path):
    rows = [dict(ROWS[2], answers={"text": ["Zürich"], "answer_start": [500]})]
    message = load_error(write_json(tmp_path / "rows.json", rows))
    assert "record 0 (id 'q3')" in message
    assert "field 'answers[0].answer_start' 500 is outside the context" in message


def test_plausible_answers_are_not_read_even_when_out_of_range(tmp_path):
    unanswerable = dict(UNANSWERABLE, plausible_answers={"text": ["1925"], "answer_start": [500]})
    loaded = load_squad_file(write_json(tmp_path / "data.json", nested_document([unanswerable], version="2.0")))
    assert loaded.to_list() == [UNANSWERABLE]


def test_answer_start_that_is_not_an_integer_is_refused(tmp_path):
    rows = [dict(ROWS[2], answers={"text": ["Zürich"], "answer_start": ["22"]})]
    assert "answer_start' must be an integer, got '22'" in load_error(write_json(tmp_path / "rows.json", rows))
    records = [
        {"id": "q3", "context": CONTEXT_CAFE, "question": "Where?", "answer_text": "Zürich", "answer_start": "x"}
    ]
    message = load_error(write_csv(tmp_path / "rows.csv", records, list(records[0])))
    assert "line 2 (id 'q3')" in message and "field 'answer_start' must be an integer, got 'x'" in message


def test_answers_with_more_texts_than_starts_are_refused(tmp_path):
    rows = [dict(ROWS[0], answers={"text": ["Norse raiders", "Norse"], "answer_start": [32]})]
    message = load_error(write_json(tmp_path / "rows.json", rows))
    assert "field 'answers' has 2 text(s) but 1 answer_start(s)" in message


def test_duplicate_ids_name_both_records(tmp_path):
    rows = [ROWS[0], dict(ROWS[1], id="q1")]
    message = load_error(write_json(tmp_path / "rows.json", rows))
    assert "record 1 (id 'q1')" in message and "duplicates the id of record 0" in message


def test_impossible_question_with_answers_is_refused(tmp_path):
    document = nested_document(ROWS, version="2.0")
    document["data"][0]["paragraphs"][0]["qas"][0]["is_impossible"] = True
    assert "is_impossible is true but answers is not empty" in load_error(write_json(tmp_path / "d.json", document))


def test_files_with_a_byte_order_mark_load_and_empty_files_are_refused(tmp_path):
    path = tmp_path / "bom.csv"
    write_csv(path, [{"id": "q3", "context": CONTEXT_CAFE, "question": "Where?", "answer_text": "Zürich",
                      "answer_start": "22"}], ["id", "context", "question", "answer_text", "answer_start"])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_squad_file(path)["id"][:] == ["q3"]
    assert "holds no questions" in load_error(write_json(tmp_path / "empty.json", {"version": "v2.0", "data": []}))


def test_unsupported_suffix_and_missing_file_are_reported(tmp_path):
    assert "unsupported file type '.txt'" in load_error(write_json(tmp_path / "rows.txt", ROWS))
    assert "no such file" in load_error(tmp_path / "absent.json")


# ----------------------------------------------------------------------------------------------------------------
# Answer alignment
# ----------------------------------------------------------------------------------------------------------------


def test_aligned_answer_start_finds_the_nearest_occurrence_within_the_shift():
    context = "one two one two one"
    assert aligned_answer_start(context, "two", 4, max_shift=3) == 4
    assert aligned_answer_start(context, "two", 5, max_shift=3) == 4
    assert aligned_answer_start(context, "two", 11, max_shift=3) == 12
    assert aligned_answer_start(context, "two", 8, max_shift=1) is None
    assert aligned_answer_start(context, "three", 0, max_shift=50) is None


def test_align_answers_realigns_shifted_answers_and_drops_unalignable_ones(caplog):
    rows = [
        dict(ROWS[0], answers={"text": ["Norse raiders", "Vikings"], "answer_start": [34, 32]}),  # shifted, absent
        dict(ROWS[1], answers={"text": ["Charles III"], "answer_start": [69]}),  # correct
        dict(ROWS[2], answers={"text": ["Paris"], "answer_start": [22]}),  # only answer unalignable
        UNANSWERABLE,
    ]
    dataset = datasets.Dataset.from_list(rows, features=SQUAD_FEATURES)
    with caplog.at_level(logging.WARNING, logger="squad"):
        aligned, report = align_answers(dataset, max_shift=4)
    assert (report.checked, report.realigned, report.unalignable) == (4, 1, 2)
    assert report.unalignable_ids == ["q1", "q3"]
    assert report.dropped_ids == ["q3"]
    assert aligned["id"][:] == ["q1", "q2", "q4"]
    assert aligned[0]["answers"] == {"text": ["Norse raiders"], "answer_start": [32]}
    assert aligned[2]["answers"] == NO_ANSWERS  # unanswerable stays, with no answers
    assert aligned.features == SQUAD_FEATURES
    assert "2 of 4 answers" in caplog.text and "'q1', 'q3'" in caplog.text


def test_align_answers_returns_the_dataset_itself_when_everything_is_aligned():
    dataset = datasets.Dataset.from_list(ROWS, features=SQUAD_FEATURES)
    aligned, report = align_answers(dataset)
    assert aligned is dataset
    assert (report.checked, report.realigned, report.unalignable) == (4, 0, 0)
