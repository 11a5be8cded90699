"""Data in: SQuAD files and Hub datasets read into one schema, every record checked.

Every failure is a `DataFormatError` naming the file, the record and the field, so one line tells the user what to fix.
"""

import csv
import json
import logging
from pathlib import Path

import datasets
import pyarrow.parquet as pq

from squad._shared import _column

logger = logging.getLogger(__name__)

_STRING = datasets.Value("string")
_ANSWERS = datasets.Sequence({"text": _STRING, "answer_start": datasets.Value("int32")})
SQUAD_FEATURES = datasets.Features(
    {"id": _STRING, "title": _STRING, "context": _STRING, "question": _STRING, "answers": _ANSWERS}
)


class DataFormatError(ValueError):
    """Input data that cannot be read as SQuAD; the message names the file, the record and the field, and the fix."""


def load_squad_file(path: str | Path) -> datasets.Dataset:
    """Return the questions of one local file as a `Dataset` with `SQUAD_FEATURES`, after strict validation.

    Layouts are told apart by content: the official nested SQuAD JSON (v1.1 or v2.0), or rows with `id`, `title`
    (optional), `context`, `question` and the answers as `answers` (`{"text": [...], "answer_start": [...]}`, a list
    of `{"text", "answer_start"}`, or that JSON as text, as a CSV cell holds it) or as one `answer_text` and
    `answer_start` (empty `answer_text`: no answer), in a `.json` list or `{"data": [rows]}`, `.jsonl` (also saved
    as `.json`), `.csv` (UTF-8, header row) or `.parquet`. SQuAD 2.0's `plausible_answers` are not answers and are
    not read; integer ids become strings.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; check the path")
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        rows = _rows_from_json_text(path, _read_text(path), json_lines=suffix == ".jsonl")
    elif suffix in (".csv", ".parquet"):
        rows = _validated_flat_rows(path, _csv_records(path) if suffix == ".csv" else _parquet_records(path))
    else:
        raise DataFormatError(f"{path}: unsupported file type '{suffix}'; use .json (official SQuAD or rows), .jsonl, "
                              ".csv or .parquet")
    if not rows:
        raise DataFormatError(f"{path}: holds no questions; check that it is the right file")
    _check_unique_ids(path, rows)
    columns = {name: [row[name] for row, _ in rows] for name in SQUAD_FEATURES}
    dataset = datasets.Dataset.from_dict(columns, features=SQUAD_FEATURES)
    unanswerable = sum(1 for answers in columns["answers"] if not answers["text"])
    logger.info("%s: %d questions, %d without answers", path, len(dataset), unanswerable)
    return dataset


def load_qa_datasets(dataset_name: str | None = None, dataset_config_name: str | None = None,
                     train_file: str | Path | None = None, validation_file: str | Path | None = None,
                     test_file: str | Path | None = None, cache_dir: str | None = None,
                     token: str | bool | None = None) -> datasets.DatasetDict:
    """Return the splits (among "train", "validation", "test") from the Hub and/or local files, in one schema. A
    local file replaces the Hub split of the same name; Hub splits are trusted as published and only conformed to
    `SQUAD_FEATURES`, local files are validated."""
    splits = {}
    if dataset_name is not None:
        splits.update(_load_hub_splits(dataset_name, dataset_config_name, cache_dir, token))
    for split, path in (("train", train_file), ("validation", validation_file), ("test", test_file)):
        if path is not None:
            splits[split] = load_squad_file(path)
    if not splits:
        raise ValueError("no data given: pass dataset_name or at least one of train_file, validation_file, test_file")
    return datasets.DatasetDict(splits)


def has_unanswerable(dataset: datasets.Dataset) -> bool:
    """True when any example has no answer, i.e. the data is SQuAD 2.0 style (or unlabelled)."""
    answers = dataset.with_format("arrow")["answers"].combine_chunks()
    answer_counts = answers.field("text").value_lengths().to_numpy(zero_copy_only=False)  # (num_examples,)
    return bool((answer_counts == 0).any())


def references_from_dataset(dataset: datasets.Dataset) -> dict[str, list[str]]:
    """Return `{id: gold answer texts}`, an empty list for unanswerable questions: what the metric scores against."""
    ids, answers = _column(dataset, "id"), _column(dataset, "answers")
    return {question_id: example_answers["text"] for question_id, example_answers in zip(ids, answers)}


def _load_hub_splits(name, config_name, cache_dir, token) -> dict[str, datasets.Dataset]:
    """Return the Hub dataset's train/validation/test splits conformed to `SQUAD_FEATURES`."""
    try:
        loaded = datasets.load_dataset(name, config_name, cache_dir=cache_dir, token=token)
    except Exception as error:  # the Hub client raises many types; the user needs one actionable line
        raise DataFormatError(
            f"could not load dataset '{name}' (config {config_name!r}) from the Hugging Face Hub: "
            f"{type(error).__name__}: {error}. Without internet, pass local files instead "
            "(--train_file / --validation_file / --test_file)"
        ) from None
    wanted = [split for split in loaded if split in ("train", "validation", "test")]
    return {split: _conform_hub_split(loaded[split], name, split) for split in wanted}


def _conform_hub_split(split_data: datasets.Dataset, name: str, split: str) -> datasets.Dataset:
    """Return a Hub split with exactly our columns and types, or say which column is missing."""
    missing = [column for column in ("id", "context", "question", "answers") if column not in split_data.column_names]
    if missing:
        raise DataFormatError(f"dataset '{name}', split '{split}': missing column(s) {missing}; a SQuAD-style dataset "
                              "needs id, context, question and answers {text, answer_start}")
    if "title" not in split_data.column_names:
        split_data = split_data.add_column("title", [""] * len(split_data))
    try:
        return split_data.select_columns(list(SQUAD_FEATURES)).cast(SQUAD_FEATURES)
    except (ValueError, TypeError) as error:
        raise DataFormatError(f"dataset '{name}', split '{split}': columns do not match the SQuAD schema ({error}); "
                              "answers must be {text: list of strings, answer_start: list of ints}") from None


def _read_text(path: Path) -> str:
    """Return the file's text, or a DataFormatError naming the byte that is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: tolerate the byte-order mark some editors write
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text (byte {error.start}); save the file as UTF-8") from None


def _rows_from_json_text(path: Path, text: str, json_lines: bool) -> list[tuple[dict, str]]:
    """Return validated rows from JSON text: official nested SQuAD, a list of rows, or JSON Lines."""
    if not json_lines:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            if error.msg != "Extra data" or not _first_line_is_object(text):
                raise _json_error(path, error) from None
            json_lines = True  # one object per line: JSON Lines saved as .json
    if json_lines:
        return _validated_flat_rows(path, _json_line_records(path, text))
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        entries = document["data"]
        if entries and isinstance(entries[0], dict) and "paragraphs" in entries[0]:
            return list(_nested_rows(path, entries))
        return _validated_flat_rows(path, ((row, f"data[{index}]") for index, row in enumerate(entries)))
    if isinstance(document, list):
        return _validated_flat_rows(path, ((row, f"record {index}") for index, row in enumerate(document)))
    raise DataFormatError(
        f"{path}: top level is a {type(document).__name__}; expected the official SQuAD layout "
        '{"data": [{"title", "paragraphs": [...]}]} or a list of rows with id, context, question, answers'
    )


def _first_line_is_object(text: str) -> bool:
    """True when the first non-blank line is a whole JSON object on its own, as in JSON Lines."""
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return isinstance(json.loads(first_line), dict)
    except json.JSONDecodeError:
        return False


def _json_error(path: Path, error: json.JSONDecodeError, line_offset: int = 0) -> DataFormatError:
    """Return a DataFormatError that points at the line and column where the JSON breaks."""
    return DataFormatError(f"{path}: malformed JSON at line {error.lineno + line_offset}, column {error.colno}: "
                           f"{error.msg}; fix the file there (a missing comma, quote or bracket is the usual cause)")


def _json_line_records(path: Path, text: str):
    """Yield `(record, where)` for each non-blank line of a JSON Lines text."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield json.loads(line), f"line {number}"
            except json.JSONDecodeError as error:
                raise _json_error(path, error, line_offset=number - 1) from None


def _csv_records(path: Path):
    """Yield `(record, where)` for each data row of a CSV file with a header row."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                if None in row:
                    raise DataFormatError(
                        f"{path}: line {reader.line_num}: more cells than header columns; quote cells holding commas"
                    )
                yield row, f"line {reader.line_num}"
        except UnicodeDecodeError as error:
            raise DataFormatError(f"{path}: not UTF-8 text (byte {error.start}); save the file as UTF-8") from None
        except csv.Error as error:
            raise DataFormatError(f"{path}: line {reader.line_num}: malformed CSV ({error}); fix the quoting") from None


def _parquet_records(path: Path):
    """Yield `(record, where)` for each row of a Parquet file."""
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises ArrowInvalid/OSError variants for unreadable files
        raise DataFormatError(f"{path}: not a readable Parquet file ({error}); rewrite it with pandas or "
                              "pyarrow") from None
    for index, row in enumerate(table.to_pylist()):
        yield row, f"row {index}"


def _nested_rows(path: Path, articles: list):
    """Yield `(row, where)` for every question of the official nested SQuAD layout, validating as it goes."""
    for article_index, article in enumerate(articles):
        where_article = f"data[{article_index}]"
        paragraphs = _expect(path, where_article, article, "paragraphs", list)
        title = article.get("title", "")
        if not isinstance(title, str):
            raise _field_error(path, where_article, "title", f"must be a string, got {type(title).__name__}")
        for paragraph_index, paragraph in enumerate(paragraphs):
            where_paragraph = f"{where_article}.paragraphs[{paragraph_index}]"
            context = _expect(path, where_paragraph, paragraph, "context", str)
            qas = _expect(path, where_paragraph, paragraph, "qas", list)
            for question_index, qa in enumerate(qas):
                where = f"{where_paragraph}.qas[{question_index}]"
                if not isinstance(qa, dict):
                    raise _field_error(path, where, "qas", f"each question must be an object, got {type(qa).__name__}")
                record = {"id": qa.get("id"), "title": title, "context": context, "question": qa.get("question")}
                yield _validated_row(path, where, record, qa.get("answers", []), qa.get("is_impossible"), "id" in qa)


def _validated_flat_rows(path: Path, records) -> list[tuple[dict, str]]:
    """Return `(row, where)` for flat records, reading answers from `answers` or `answer_text`/`answer_start`."""
    rows = []
    for record, where in records:
        if not isinstance(record, dict):
            raise DataFormatError(f"{path}: {where}: expected an object with id, context, question; got "
                                  f"{type(record).__name__}")
        where = _where_with_id(where, record.get("id"))
        answers = _flat_answers(path, where, record)
        rows.append(_validated_row(path, where, record, answers, record.get("is_impossible"), "id" in record))
    return rows


def _flat_answers(path: Path, where: str, record: dict):
    """Return a flat record's answers in any accepted layout (the `answers` field may hold their JSON text), empty
    when it carries none."""
    if "answers" in record and "answer_text" in record:
        raise _field_error(path, where, "answers", "given twice (answers and answer_text); keep one of the two layouts")
    if "answer_text" in record:
        text, start = record.get("answer_text"), record.get("answer_start")
        if text is None or text == "":
            return []
        if isinstance(start, str):
            try:
                start = int(start)
            except ValueError:
                raise _field_error(path, where, "answer_start", f"must be an integer, got {start!r}") from None
        return [{"text": text, "answer_start": start}]
    answers = record.get("answers")
    if answers is None or answers == "":
        return []
    if isinstance(answers, str):
        try:
            answers = json.loads(answers)
        except json.JSONDecodeError as error:
            problem = f"is not valid JSON ({error.msg}, column {error.colno}); write it as a JSON object"
            raise _field_error(path, where, "answers", problem) from None
    return answers


def _validated_row(path: Path, where: str, record: dict, answers, is_impossible, has_id: bool) -> tuple[dict, str]:
    """Return a row in our schema and `where` with its id, or raise a DataFormatError naming the first bad field."""
    if not has_id:
        raise _field_error(path, where, "id", "is missing; give every question a unique id")
    question_id = record["id"]
    if isinstance(question_id, int) and not isinstance(question_id, bool):
        question_id = str(question_id)
    if not isinstance(question_id, str) or not question_id:
        raise _field_error(path, where, "id", f"must be a non-empty string, got {question_id!r}")
    where = _where_with_id(where, question_id)
    title = record.get("title") or ""
    if not isinstance(title, str):
        raise _field_error(path, where, "title", f"must be a string, got {type(title).__name__}")
    context = _required_text(path, where, record, "context")
    question = _required_text(path, where, record, "question")
    texts, starts = _validated_answers(path, where, answers, context)
    if is_impossible is True and texts:
        raise _field_error(path, where, "answers", "is_impossible is true but answers is not empty; set is_impossible "
                           "to false or move them to plausible_answers")
    answers = {"text": texts, "answer_start": starts}
    return {"id": question_id, "title": title, "context": context, "question": question, "answers": answers}, where


def _validated_answers(path: Path, where: str, answers, context: str) -> tuple[list[str], list[int]]:
    """Return `(texts, starts)` from either answer layout, with types and ranges checked."""
    if isinstance(answers, dict):
        texts, starts = answers.get("text"), answers.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list):
            raise _field_error(path, where, "answers", "must hold two lists, text and answer_start")
        if len(texts) != len(starts):
            problem = f"has {len(texts)} text(s) but {len(starts)} answer_start(s); give one start per answer text"
            raise _field_error(path, where, "answers", problem)
    elif isinstance(answers, list):
        if not all(isinstance(answer, dict) for answer in answers):
            raise _field_error(path, where, "answers", 'must be a list of {"text", "answer_start"} objects')
        texts = [answer.get("text") for answer in answers]
        starts = [answer.get("answer_start") for answer in answers]
    else:
        raise _field_error(path, where, "answers", f"must be a list or an object, got {type(answers).__name__}")
    for index, (text, start) in enumerate(zip(texts, starts)):
        answer_field = f"answers[{index}]"
        if not isinstance(text, str) or not text.strip():
            raise _field_error(path, where, f"{answer_field}.text", f"must be a non-empty string, got {text!r}; "
                               "unanswerable questions take an empty answers list")
        if not isinstance(start, int) or isinstance(start, bool):
            raise _field_error(path, where, f"{answer_field}.answer_start", f"must be an integer, got {start!r}")
        if not 0 <= start < len(context):
            raise _field_error(path, where, f"{answer_field}.answer_start", f"{start} is outside the context (length "
                               f"{len(context)}); give the answer's character offset")
    return list(texts), list(starts)


def _required_text(path: Path, where: str, record: dict, name: str) -> str:
    """Return `record[name]` when it is a non-blank string, else raise naming the field."""
    if name not in record:
        raise _field_error(path, where, name, f"is missing; every question needs a {name}")
    value = record[name]
    if not isinstance(value, str):
        raise _field_error(path, where, name, f"must be a string, got {type(value).__name__} {value!r:.40}")
    if not value.strip():
        raise _field_error(path, where, name, f"is empty; give the {name} text")
    return value


def _expect(path: Path, where: str, container, name: str, kind: type):
    """Return `container[name]` when it exists with type `kind`, else raise naming the field."""
    if not isinstance(container, dict) or name not in container:
        raise _field_error(path, where, name, "is missing; see the official SQuAD layout")
    value = container[name]
    if not isinstance(value, kind):
        raise _field_error(path, where, name, f"must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _check_unique_ids(path: Path, rows: list[tuple[dict, str]]) -> None:
    """Raise a DataFormatError naming both records when two questions share an id."""
    first_seen = {}
    for index, (row, where) in enumerate(rows):
        earlier = first_seen.setdefault(row["id"], index)
        if earlier != index:
            problem = f"duplicates the id of {rows[earlier][1]}; ids must be unique, rename one"
            raise _field_error(path, where, "id", problem)


def _where_with_id(where: str, question_id) -> str:
    """Return the record location with its id, once."""
    if not isinstance(question_id, (str, int)) or isinstance(question_id, bool) or "(id " in where:
        return where
    return f"{where} (id '{question_id}')"


def _field_error(path: Path, where: str, field_name: str, problem: str) -> DataFormatError:
    """Return the one error shape every validation failure uses: file, record, field, problem and fix."""
    return DataFormatError(f"{path}: {where}: field '{field_name}' {problem}")
