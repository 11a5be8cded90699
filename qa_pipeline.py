"""The `question-answering` pipeline for the recipe's models, and a plain function over it.

transformers 5.3 removed its extractive `question-answering` pipeline. Importing this module registers ours under
the same task name, so after `import qa_pipeline`:

    qa = pipeline("question-answering", model="out")
    qa(question="Who built the lighthouse?", context="...")  # {"answer", "score", "start", "end"}

Long contexts are cut into the same windows as evaluation and answered by the same post-processing, so the
pipeline and `run_qa.py --do_eval` give the same answers for the same inputs.
"""

import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForQuestionAnswering, pipeline
from transformers.pipelines import PIPELINE_REGISTRY, REMOVED_TASKS
from transformers.pipelines.base import ChunkPipeline

import modeling_pointer_distilbert  # noqa: F401  (registers the model with the Auto classes)
from cli_errors import UserError, run_command
from utils_qa import prepare_eval_features, select_answers, stack_logits

TASK = "question-answering"

__all__ = ["PointerQuestionAnsweringPipeline", "answer_questions", "register"]


def as_examples(args, kwargs) -> list[dict]:
    """Return the questions of a pipeline call as `{"id", "question", "context"}` dicts.

    Accepted like the former transformers pipeline: `question=..., context=...` (strings or equal-length lists),
    a `{"question", "context"}` dict, or a list of such dicts.
    """
    if args:
        items = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
    elif "question" in kwargs and "context" in kwargs:
        questions, contexts = kwargs.pop("question"), kwargs.pop("context")
        if isinstance(questions, str) != isinstance(contexts, str):
            raise ValueError("question and context must both be strings or both be lists")
        if isinstance(questions, str):
            questions, contexts = [questions], [contexts]
        if len(questions) != len(contexts):
            raise ValueError(f"got {len(questions)} questions for {len(contexts)} contexts; give one context each")
        items = [{"question": q, "context": c} for q, c in zip(questions, contexts)]
    else:
        raise ValueError("call the pipeline with question=..., context=... or with {'question': ..., 'context': ...}")
    examples = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(item.get(key), str) for key in ("question", "context")):
            raise ValueError(f"input {index}: expected a dict with string 'question' and 'context'")
        if not item["context"].strip():
            raise ValueError(f"input {index}: the context is empty")
        examples.append({"id": str(index), "question": item["question"], "context": item["context"]})
    return examples


class PointerQuestionAnsweringPipeline(ChunkPipeline):
    """Extractive QA: the answer span of the context (or "" for no answer), with its probability and offsets."""

    def __call__(self, *args, **kwargs):
        examples = as_examples(args, kwargs)
        results = super().__call__(examples, **kwargs)
        return results[0] if len(examples) == 1 else results

    def _sanitize_parameters(self, top_k=None, handle_impossible_answer=None, max_answer_len=None, doc_stride=None,
                             max_seq_len=None, max_question_len=None, n_best_size=None, null_score_diff_threshold=None):
        preprocess = dict(doc_stride=doc_stride, max_seq_len=max_seq_len, max_question_len=max_question_len)
        postprocess = dict(top_k=top_k, handle_impossible_answer=handle_impossible_answer,
                           max_answer_len=max_answer_len, n_best_size=n_best_size,
                           null_score_diff_threshold=null_score_diff_threshold)
        preprocess = {name: value for name, value in preprocess.items() if value is not None}
        postprocess = {name: value for name, value in postprocess.items() if value is not None}
        return preprocess, {}, postprocess

    def preprocess(self, example, doc_stride=128, max_seq_len=384, max_question_len=64):
        batch = {key: [value] for key, value in example.items()}
        features = prepare_eval_features(batch, self.tokenizer, max_seq_length=max_seq_len, doc_stride=doc_stride,
                                         max_query_length=max_question_len)
        windows = len(features["input_ids"])
        for index in range(windows):
            yield {
                "input_ids": torch.tensor([features["input_ids"][index]]),
                "attention_mask": torch.tensor([features["attention_mask"][index]]),
                "offset_mapping": features["offset_mapping"][index],
                "example": example,
                "is_last": index == windows - 1,
            }

    def _forward(self, inputs):
        offset_mapping, example, is_last = inputs.pop("offset_mapping"), inputs.pop("example"), inputs.pop("is_last")
        output = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return {"start_logits": output.start_logits.float(), "end_logits": output.end_logits.float(),
                "offset_mapping": offset_mapping, "example": example, "is_last": is_last}

    def postprocess(self, windows, top_k=1, handle_impossible_answer=False, max_answer_len=30, n_best_size=20,
                    null_score_diff_threshold=0.0):
        example = windows[0]["example"]
        features = {
            "example_id": [example["id"]] * len(windows),
            "offset_mapping": [window["offset_mapping"] for window in windows],
        }
        logits = stack_logits(
            [(window["start_logits"].numpy(), window["end_logits"].numpy()) for window in windows], len(windows)
        )
        result = select_answers(
            Dataset.from_list([example]), Dataset.from_dict(features), logits,
            version_2_with_negative=handle_impossible_answer, n_best_size=max(n_best_size, top_k),
            max_answer_length=max_answer_len, null_score_diff_threshold=null_score_diff_threshold,
        )
        answers = distinct_answers(result.nbest[example["id"]], top_k)
        if handle_impossible_answer and result.answers[example["id"]] == "":
            answers = sorted(answers, key=lambda answer: answer["answer"] != "")  # the decision puts "" first
        return answers[0] if top_k == 1 else answers


def distinct_answers(nbest: list[dict], top_k: int) -> list[dict]:
    """Return the first `top_k` n-best entries with distinct character spans, as pipeline answers.

    Overlapping windows can propose the same span twice; a user asking for three answers wants three spans.
    """
    answers, seen = [], set()
    for entry in nbest:
        span = (entry["start"], entry["end"])
        if span not in seen:
            seen.add(span)
            answers.append({"answer": entry["text"], "score": float(entry["probability"]),
                            "start": int(entry["start"]), "end": int(entry["end"])})
        if len(answers) == top_k:
            break
    return answers


def register() -> None:
    """Make `pipeline("question-answering")` build our pipeline (transformers 5.3+ lists the task as removed)."""
    REMOVED_TASKS.pop(TASK, None)
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=PointerQuestionAnsweringPipeline,
                                        pt_model=AutoModelForQuestionAnswering, type="text")


def answer_questions(model, questions, contexts, **kwargs) -> list[dict]:
    """Return one answer dict per (question, context) pair; `model` is an output folder, hub id or loaded pipeline."""
    qa = model if isinstance(model, PointerQuestionAnsweringPipeline) else pipeline(TASK, model=model)
    answers = qa(question=list(questions), context=list(contexts), **kwargs)
    return answers if isinstance(answers, list) else [answers]


def main(argv: list[str] | None = None) -> int:
    """Answer questions about one context from the command line, printing one JSON line per question.

    Returns the exit status: 2 with a one-line error for a missing context file or a model that cannot be loaded.
    """
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Answer questions with a model trained by run_qa.py.")
    parser.add_argument("model", help="output folder of run_qa.py, or a hub id")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", help="the passage to answer from")
    source.add_argument("--context-file", help="a UTF-8 text file holding the passage")
    parser.add_argument("--question", action="append", required=True, help="a question (repeat for several)")
    parser.add_argument("--handle-impossible-answer", action="store_true", help='allow "" (no answer)')
    parser.add_argument("--top-k", type=int, default=1, help="answers per question")
    parser.add_argument("--debug", action="store_true", help="show the traceback of input errors too")
    args = parser.parse_args(argv)

    def run() -> None:
        context = args.context if args.context is not None else read_context(Path(args.context_file))
        if not context.strip():
            raise UserError("the context is empty; give the passage to answer from (--context or --context-file)")
        answers = answer_questions(load_pipeline(args.model), args.question, [context] * len(args.question),
                                   handle_impossible_answer=args.handle_impossible_answer, top_k=args.top_k)
        for question, answer in zip(args.question, answers):
            print(json.dumps({"question": question, "answer": answer}, ensure_ascii=False))

    return run_command(run, debug=args.debug)


def read_context(path: Path) -> str:
    """Return the passage in a UTF-8 text file, or a UserError saying what is wrong with the file."""
    if not path.is_file():
        raise UserError(f"{path}: no such context file; check the path")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start}); save the file as UTF-8") from None


def load_pipeline(model: str) -> PointerQuestionAnsweringPipeline:
    """Return the pipeline of an output folder or Hub id, or a UserError saying what could not be read."""
    try:
        return pipeline(TASK, model=model)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load a question-answering model from {model!r} ({error}); give an output folder "
                        "of run_qa.py or a Hub id reachable from here") from None


register()

if __name__ == "__main__":
    sys.exit(main())
