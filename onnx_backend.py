"""A model exported by `export_onnx.py`, answered by ONNX Runtime behind the recipe's question-answering pipeline.

`OnnxQuestionAnsweringModel` stands where the PyTorch model stands in `PointerQuestionAnsweringPipeline`: it returns
the span logits of the pipeline's padded batch, so windows, span search and the decision rule stay the pipeline's.
Use it through `qa_pipeline.load_pipeline(EXPORT_FOLDER)` or, with the folder alone (it carries this file, the model
file and the pipeline's), `pipeline("question-answering", model=EXPORT_FOLDER, trust_remote_code=True, device="cpu")`.
onnxruntime is needed only here; the PyTorch path and every saved checkpoint run without it.
"""

from pathlib import Path

import torch
from transformers import AutoConfig
from transformers.modeling_outputs import QuestionAnsweringModelOutput

try:  # the copy in an export folder, which transformers loads as remote code beside this file
    from .modeling_pointer_distilbert import (
        PointerDistilBertConfig,
        SentenceMatcher,
        add_to_null_logits,
        similarity_settings,
        similarity_shift,
    )
except ImportError:  # the recipe's own module
    from modeling_pointer_distilbert import (
        PointerDistilBertConfig,
        SentenceMatcher,
        add_to_null_logits,
        similarity_settings,
        similarity_shift,
    )

# The export folder's files: the span and the matcher's graph at each precision, and the export's settings.
SPAN_GRAPHS = {"float32": "model.onnx", "int8": "model_int8.onnx"}
MATCHER_GRAPHS = {"float32": "sentence_matcher.onnx", "int8": "sentence_matcher_int8.onnx"}
EXPORT_SETTINGS = "onnx_export.json"
PRECISIONS = tuple(SPAN_GRAPHS)


def is_export_folder(folder) -> bool:
    """True for a folder written by export_onnx.py (it holds the float32 span graph)."""
    return (Path(folder) / SPAN_GRAPHS["float32"]).is_file()


def chosen_precision(folder: Path, precision: str | None) -> str:
    """Return the precision to answer with: `precision`, or int8 when the folder has it, else float32; a ValueError
    names a precision that is unknown or not in the folder."""
    if precision is None:
        return "int8" if (folder / SPAN_GRAPHS["int8"]).is_file() else "float32"
    if precision not in SPAN_GRAPHS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    if not (folder / SPAN_GRAPHS[precision]).is_file():
        raise ValueError(f"{folder} has no {precision} model ({SPAN_GRAPHS[precision]}); export it with "
                         f"`python export_onnx.py MODEL_FOLDER {folder} --int8`, or ask for float32")
    return precision


def runtime_session(path: Path, threads: int):
    """Return an ONNX Runtime CPU session of the graph at `path`, running its operators on `threads` threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep rather than spin: a matcher model runs two sessions in turn, and the cores are often
    # shared; spinning threads then take the cores from the working ones (2-3x slower, onnx_serving.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxExportConfig(PointerDistilBertConfig):
    """An export folder's configuration: the model's own under a type of its own, so that transformers' Auto classes
    (and `pipeline(..., trust_remote_code=True)`) follow the folder's `auto_map` to `OnnxQuestionAnsweringModel`."""

    model_type = "pointer_distilbert_onnx"


class OnnxSentenceMatcher(SentenceMatcher):
    """The PyTorch matcher's segments and similarities, embedded by `encoder`, an ONNX Runtime session of its graph."""

    def unit_embeddings(self, token_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Returns the graph's unit-length embedding of each padded row, shape (rows, dim)."""
        inputs = {"input_ids": token_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return torch.from_numpy(self.encoder.run(None, inputs)[0])


class OnnxQuestionAnsweringModel:
    """An exported model as the question-answering pipeline uses one (`config`, `device`, `to`, `forward`), on the
    CPU, with as many ONNX Runtime threads as torch's (`torch.get_num_threads()`): one setting governs both backends."""

    device = torch.device("cpu")

    def __init__(self, folder, precision: str | None = None):
        folder = Path(folder)
        self.config = AutoConfig.from_pretrained(folder)
        self.precision = chosen_precision(folder, precision)
        threads = torch.get_num_threads()
        self.session = runtime_session(folder / SPAN_GRAPHS[self.precision], threads)
        self.matcher = None
        if similarity_settings(self.config):
            matcher_graph = folder / MATCHER_GRAPHS[self.precision]
            if not matcher_graph.is_file():  # an int8 span graph may come with a float32 matcher
                matcher_graph = folder / MATCHER_GRAPHS["float32"]
            self.matcher = OnnxSentenceMatcher(self.config, encoder=runtime_session(matcher_graph, threads))

    @classmethod
    def from_pretrained(cls, folder, *args, precision: str | None = None, **kwargs) -> "OnnxQuestionAnsweringModel":
        """Return the model of an export folder: the way in of `AutoModelForQuestionAnswering` and `pipeline` with
        `trust_remote_code=True`, whose loading arguments (dtype, revision, ...) do not apply to ONNX graphs."""
        return cls(folder, precision)

    @classmethod
    def register_for_auto_class(cls, auto_class: str = "AutoModelForQuestionAnswering") -> None:
        """Nothing to record: the export folder's config.json already names this class for the Auto class."""

    def to(self, device) -> "OnnxQuestionAnsweringModel":
        """Return the model, which stays on the CPU; any other device is a ValueError."""
        if torch.device(device).type != "cpu":
            raise ValueError(f"an ONNX export runs on the CPU, not {device}: pass device='cpu' (or -1)")
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> QuestionAnsweringModelOutput:
        """Return the span logits of right-padded windows, each (batch, seq_len) float32, as the PyTorch model's."""
        inputs = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        start_logits, end_logits = map(torch.from_numpy, self.session.run(None, inputs))  # 2 x (batch, seq_len)
        shift = similarity_shift(self.matcher, self.config, input_ids, attention_mask)  # (batch,) or None
        if shift is not None:
            start_logits, end_logits = add_to_null_logits(start_logits, end_logits, shift)
        return QuestionAnsweringModelOutput(start_logits=start_logits, end_logits=end_logits)

    __call__ = forward


# exist_ok: the module may be imported twice in one process (by the recipe, and as an export folder's remote code).
AutoConfig.register(OnnxExportConfig.model_type, OnnxExportConfig, exist_ok=True)
