"""A model exported by `export_onnx.py`, answered by ONNX Runtime behind the recipe's question-answering pipeline.

`OnnxQuestionAnsweringModel` stands where the PyTorch model stands in `PointerQuestionAnsweringPipeline`: it takes
the pipeline's padded batch (`input_ids`, `attention_mask`) and returns the span logits, so windows, span search
and the decision rule stay the pipeline's own and only the forward pass changes. Use it through
`qa_pipeline.load_pipeline(EXPORT_FOLDER)`, or where only the export folder is at hand (it carries this file, the
model file and the pipeline's, as a checkpoint does), `pipeline("question-answering", model=EXPORT_FOLDER,
trust_remote_code=True, device="cpu")`.

A model with a sentence matcher is exported as two graphs (see `export_onnx.py`): the span graph gives the logits
without the question-sentence similarity, and the matcher graph embeds `[CLS] segment [SEP]` segments. The windows
are cut into the question and its sentences here, in Python, by the model file's own `window_segments`, and the
similarity shifts the null logits as the PyTorch model's forward does.

onnxruntime is needed only here; the PyTorch path and every saved checkpoint run without it.
"""

from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig
from transformers.modeling_outputs import QuestionAnsweringModelOutput

try:  # the copy in an export folder, which transformers loads as remote code beside this file
    from .modeling_pointer_distilbert import (
        PointerDistilBertConfig,
        SentenceMatcher,
        add_to_null_logits,
        closest_sentence,
        similarity_weighting,
    )
except ImportError:  # the recipe's own module
    from modeling_pointer_distilbert import (
        PointerDistilBertConfig,
        SentenceMatcher,
        add_to_null_logits,
        closest_sentence,
        similarity_weighting,
    )

# The export folder's files: the span graph and the matcher's graph at each precision (an int8 span graph may come
# with a float32 matcher, see export_onnx.QUANTIZATION) and the settings the export was made with.
SPAN_GRAPHS = {"float32": "model.onnx", "int8": "model_int8.onnx"}
MATCHER_GRAPHS = {"float32": "sentence_matcher.onnx", "int8": "sentence_matcher_int8.onnx"}
EXPORT_SETTINGS = "onnx_export.json"
PRECISIONS = tuple(SPAN_GRAPHS)
# Segments the matcher embeds per run, sorted by length: the PyTorch matcher's chunk, so each segment is padded
# exactly as there and the embeddings agree to float32 rounding.
MATCHER_CHUNK = 64


def is_export_folder(folder) -> bool:
    """True for a folder written by export_onnx.py (it holds the float32 span graph)."""
    return (Path(folder) / SPAN_GRAPHS["float32"]).is_file()


def similarity_settings(config) -> tuple[float, float] | None:
    """Return the (weight, centre) with which the question-sentence similarity lowers the null logits, or None
    when the model's null odds do not use it (no matcher, or a calibrated weight of 0)."""
    weight, center = similarity_weighting(config)
    if not getattr(config, "answer_similarity", False) or not weight:
        return None
    return weight, center


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
    """The configuration of an export folder: the model's own, under a model type of its own. The model file
    registers its type for the PyTorch model; with this one, transformers' `AutoModelForQuestionAnswering` (and so
    `pipeline(..., trust_remote_code=True)`) follows the folder's `auto_map` to `OnnxQuestionAnsweringModel`."""

    model_type = "pointer_distilbert_onnx"


class OnnxSentenceMatcher:
    """The sentence matcher of an exported model: `SentenceMatcher.forward`'s similarities, with the segments
    embedded by the matcher's ONNX graph."""

    def __init__(self, session, config):
        self.session = session
        token_ids = config.sentence_token_ids
        self.cls_id, self.sep_id = token_ids["cls"], token_ids["sep"]
        self.sentence_ends = set(token_ids["sentence_ends"])
        self.pad_id = config.pad_token_id or 0
        self.max_segment_length = config.max_position_embeddings - 2  # room for [CLS] and [SEP]

    # The attributes above are the PyTorch matcher's, so its `wrap` and `segments_of` cut segments here exactly as
    # there.
    wrap = SentenceMatcher.wrap
    segments_of = SentenceMatcher.segments_of

    def embed(self, segments: list[list[int]]) -> np.ndarray:
        """Return the unit-length embedding of each segment, shape (len(segments), dim), in length-sorted chunks."""
        texts = [self.wrap(segment) for segment in segments]
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        embeddings = [None] * len(texts)
        for first in range(0, len(order), MATCHER_CHUNK):
            rows = order[first : first + MATCHER_CHUNK]
            widths = np.array([len(texts[row]) for row in rows])  # (rows,)
            token_ids = np.full((len(rows), widths.max()), self.pad_id, dtype=np.int64)  # (rows, width)
            for line, row in enumerate(rows):
                token_ids[line, : widths[line]] = texts[row]
            mask = (np.arange(token_ids.shape[1]) < widths[:, None]).astype(np.int64)  # (rows, width)
            (chunk,) = self.session.run(None, {"input_ids": token_ids, "attention_mask": mask})  # (rows, dim)
            for line, row in enumerate(rows):
                embeddings[row] = chunk[line]
        return np.stack(embeddings)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Return each right-padded window's question-sentence similarity, shape (batch,); -1 without a sentence."""
        windows = self.segments_of(input_ids.tolist(), attention_mask.sum(axis=-1).tolist())
        embeddings = self.embed([segment for segments in windows for segment in segments])  # (segments, dim)
        return np.array(closest_sentence(windows, embeddings), dtype=np.float32)  # (batch,)


class OnnxQuestionAnsweringModel:
    """An exported model as the question-answering pipeline uses a model: `config`, `device`, `to` and a `forward`
    that returns the span logits of a padded batch.

    It runs on the CPU only. ONNX Runtime uses as many threads as torch (`torch.get_num_threads()`, which follows
    OMP_NUM_THREADS), so one setting governs both backends.
    """

    device = torch.device("cpu")

    def __init__(self, folder, precision: str | None = None):
        folder = Path(folder)
        self.config = AutoConfig.from_pretrained(folder)
        self.precision = chosen_precision(folder, precision)
        threads = torch.get_num_threads()
        self.session = runtime_session(folder / SPAN_GRAPHS[self.precision], threads)
        self.similarity = similarity_settings(self.config)
        self.matcher = None
        if self.similarity:
            matcher_graph = folder / MATCHER_GRAPHS[self.precision]
            if not matcher_graph.is_file():
                matcher_graph = folder / MATCHER_GRAPHS["float32"]
            self.matcher = OnnxSentenceMatcher(runtime_session(matcher_graph, threads), self.config)

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
        if self.matcher is not None:
            weight, center = self.similarity
            shift = -weight * (torch.from_numpy(self.matcher(**inputs)) - center)  # (batch,)
            start_logits, end_logits = add_to_null_logits(start_logits, end_logits, shift)
        return QuestionAnsweringModelOutput(start_logits=start_logits, end_logits=end_logits)

    __call__ = forward


# exist_ok: the module may be imported twice in one process (by the recipe, and as an export folder's remote code).
AutoConfig.register(OnnxExportConfig.model_type, OnnxExportConfig, exist_ok=True)
