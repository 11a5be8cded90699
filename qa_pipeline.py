"""The recipe's question-answering pipeline for scripts and the command line.

Every checkpoint carries its pipeline (`squad/pipeline.py`) as remote code; here `load_pipeline` builds the same
pipeline without remote code, for any checkpoint (also one saved before checkpoints carried it) and for an export
folder of `export_onnx.py` (answered by ONNX Runtime on the CPU). It cuts windows and decides as evaluation does, so
it and `run_qa.py --do_eval` give the same answers for the same inputs and settings.
"""

import sys
from pathlib import Path

from transformers import AutoModelForQuestionAnswering, AutoTokenizer

import modeling_pointer_distilbert  # noqa: F401  (registers the model with the Auto classes)
from cli_errors import UserError, run_command
from onnx_backend import OnnxQuestionAnsweringModel, is_export_folder
from squad.pipeline import TASK, PointerQuestionAnsweringPipeline

__all__ = ["TASK", "PointerQuestionAnsweringPipeline", "answer_questions", "load_pipeline", "main"]


def load_pipeline(model: str, precision: str | None = None, **kwargs) -> PointerQuestionAnsweringPipeline:
    """Return the pipeline of an output folder, Hub id or ONNX export folder, or a UserError saying what could not
    be read. `precision` ("float32" or "int8") picks an export folder's graph, by default int8 where it has one;
    `kwargs` are pipeline arguments for every call (`handle_impossible_answer=True`, `device=0`, ...)."""
    if is_export_folder(model):
        return onnx_pipeline(model, precision, **kwargs)
    if precision is not None:
        raise UserError(f"precision={precision!r} applies to an ONNX export folder (export_onnx.py), and {model!r} "
                        "is not one; leave precision out for a PyTorch model")
    try:
        loaded = AutoModelForQuestionAnswering.from_pretrained(model)
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load a question-answering model from {model!r} ({error}); give an output folder "
                        "of run_qa.py or a Hub id reachable from here") from None
    return PointerQuestionAnsweringPipeline(model=loaded, tokenizer=tokenizer, task=TASK, **kwargs)


def onnx_pipeline(folder: str, precision: str | None, **kwargs) -> PointerQuestionAnsweringPipeline:
    """Return the pipeline of an export folder, its forward pass run by ONNX Runtime on the CPU."""
    try:
        loaded = OnnxQuestionAnsweringModel(folder, precision)
    except ImportError as error:  # onnxruntime, imported when the graph is opened
        raise UserError(f"{folder} is an ONNX export, answered with onnxruntime ({error}): "
                        "pip install -r requirements-onnx.txt") from None
    except ValueError as error:
        raise UserError(str(error)) from None
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return PointerQuestionAnsweringPipeline(model=loaded, tokenizer=tokenizer, task=TASK, **{"device": -1, **kwargs})


def answer_questions(model, questions, contexts, **kwargs) -> list[dict]:
    """Return one answer dict per (question, context) pair; `model` is an output folder, hub id or loaded pipeline."""
    qa = model if isinstance(model, PointerQuestionAnsweringPipeline) else load_pipeline(model)
    questions = list(questions)
    if not questions:
        return []
    answers = qa(question=questions, context=list(contexts), **kwargs)
    return answers if len(questions) > 1 else [answers]


def main(argv: list[str] | None = None) -> int:
    """Answer questions about one context from the command line, printing one JSON line per question; return the
    exit status, 2 with a one-line error for input that cannot be used (context file, model, question, setting)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Answer questions with a model trained by run_qa.py.")
    parser.add_argument("model", help="output folder of run_qa.py, a hub id, or an export folder of export_onnx.py")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", help="the passage to answer from")
    source.add_argument("--context-file", help="a UTF-8 text file holding the passage")
    parser.add_argument("--question", action="append", required=True, help="a question (repeat for several)")
    parser.add_argument("--handle-impossible-answer", action=argparse.BooleanOptionalAction,
                        help='allow "" (no answer); default: as the model was evaluated')
    parser.add_argument("--top-k", type=int, default=1, help="answers per question")
    parser.add_argument("--precision", choices=("float32", "int8"),
                        help="graph of an export folder to answer with; default: int8 where the folder has it")
    parser.add_argument("--debug", action="store_true", help="show the traceback of input errors too")
    args = parser.parse_args(argv)

    def run() -> None:
        context = args.context if args.context is not None else read_context(Path(args.context_file))
        if not context.strip():
            raise UserError("the context is empty; give the passage to answer from (--context or --context-file)")
        settings = {"top_k": args.top_k}
        if args.handle_impossible_answer is not None:
            settings["handle_impossible_answer"] = args.handle_impossible_answer
        try:
            qa = load_pipeline(args.model, args.precision)
            answers = answer_questions(qa, args.question, [context] * len(args.question), **settings)
        except ValueError as error:  # the pipeline's word on a question or a setting
            raise UserError(str(error)) from None
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


if __name__ == "__main__":
    sys.exit(main())
