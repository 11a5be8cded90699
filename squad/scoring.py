"""Scoring prediction files: the official evaluation script's job, with the recipe's checks of what it reads."""

import json
import logging
import math
from pathlib import Path

from metrics.squad_v2.squad_metric import compute_squad_metrics
from squad._shared import _few
from squad.data import (
    DataFormatError,
    _json_error,
    _read_text,
    has_unanswerable,
    load_squad_file,
    references_from_dataset,
)

logger = logging.getLogger(__name__)


def score_files(
    data_file: str | Path,
    prediction_file: str | Path,
    null_odds_file: str | Path | None = None,
    null_odds_threshold: float = math.inf,
    squad_version: str = "auto",
) -> dict[str, float]:
    """Return the metrics of a predictions file against a SQuAD data file, like the official evaluation script.

    `squad_version` "auto" scores as SQuAD 2.0 when the data has unanswerable questions or null odds are given.
    The default `null_odds_threshold` blanks nothing, so the answers are scored as written: they already carry the
    threshold they were made with (a calibrated one can be above the official script's 1.0, meant for probabilities).
    """
    dataset = load_squad_file(data_file)
    references = references_from_dataset(dataset)
    predictions = read_id_map(Path(prediction_file), str, "an answer string", references, Path(data_file))
    null_odds = None
    if null_odds_file is not None:
        null_odds = read_id_map(Path(null_odds_file), (int, float), "a number", references, Path(data_file))
    detected = null_odds is not None or has_unanswerable(dataset)
    version_2 = squad_version == "2" or (squad_version == "auto" and detected)
    return compute_squad_metrics(references, predictions, null_odds, version_2, null_odds_threshold)


def read_id_map(path: Path, value_type, description: str, references: dict, data_file: Path) -> dict:
    """Return a JSON object mapping every question of `data_file` (`references`) to a value of `value_type`; raise
    naming the bad entry or the missing questions, and warn about ids the data file does not have."""
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file; check the path")
    try:
        content = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise _json_error(path, error) from None
    if not isinstance(content, dict):
        raise DataFormatError(f"{path}: expected a JSON object {{id: value}}, got a {type(content).__name__}")
    for question_id, value in content.items():
        if not isinstance(value, value_type) or isinstance(value, bool):
            raise DataFormatError(f"{path}: id '{question_id}': value must be {description}, got {value!r:.40}")
    missing = [question_id for question_id in references if question_id not in content]
    if missing:
        raise DataFormatError(
            f"{path}: no entry for {len(missing)} of {len(references)} questions of {data_file} "
            f'(e.g. {_few(missing)}); give one for every question ("" means no answer)'
        )
    extra = [question_id for question_id in content if question_id not in references]
    if extra:
        logger.warning(
            "%s: %d ids are not questions of %s and are ignored (e.g. %s)", path, len(extra), data_file, _few(extra)
        )
    return content
