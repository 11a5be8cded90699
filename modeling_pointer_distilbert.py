"""Pointer-network DistilBERT for extractive question answering.

On transformers' own `DistilBertModel`, the answer-pointer head points at the start with a learned query and at the
end with a query that a GRU cell makes from what the start distribution attends to. Index 0 ([CLS]) is the no-answer
pointer, as in stock SQuAD 2.0 models; an optional answer verifier adds its no-answer logit to that pointer's score, so
every consumer of the logits reads one definition of the null odds.

This file imports only torch and transformers: `save_pretrained` copies it and the recipe's question-answering
pipeline (`ship_pipeline`) next to the weights, so `pipeline("question-answering", model=..., trust_remote_code=True)`
answers from the checkpoint alone.
"""

import importlib
import logging
import os

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    DistilBertConfig,
    DistilBertModel,
    DistilBertPreTrainedModel,
)
from transformers import initialization as init
from transformers.dynamic_module_utils import custom_object_save
from transformers.modeling_outputs import QuestionAnsweringModelOutput
from transformers.utils import can_return_tuple

logger = logging.getLogger(__name__)

QA_HEADS = ("pointer", "linear")
# Settings of checkpoints saved before they were retired, and the one value of each that still describes the model.
RETIRED_ARCHITECTURE = {"pointer_attention": "bilinear", "pointer_hidden_size": None}
RETIRED_TRAINING = ("verifier_loss_weight", "nonnull_loss_weight")
RETIRED_COMMIT = "e7becc9"


class PointerDistilBertConfig(DistilBertConfig):
    r"""
    Configuration of [`PointerDistilBertForQuestionAnswering`]: [`DistilBertConfig`] (whose `qa_dropout` is the
    head's dropout) plus the answer head's settings, with `run_qa.py`'s defaults.

    Args:
        qa_head (`str`, *optional*, defaults to `"pointer"`):
            The answer head: `"pointer"` ([`AnswerPointerHead`]) or `"linear"`, the stock one ([`LinearSpanHead`]).
        answer_verifier (`bool`, *optional*, defaults to `True`):
            Add an [`AnswerVerifier`], whose no-answer logit is added to the null score.
        verifier_standardization (`bool`, *optional*, defaults to `True`):
            Batch-normalise the verifier's features before its MLP.
        null_span_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the span loss on windows without an answer against 1 for the others (see `span_loss`).
        answer_similarity (`bool`, *optional*, defaults to `False`):
            Keep a frozen copy of the starting encoder as a [`SentenceMatcher`], whose question–sentence similarity
            lowers the null score as `qa_settings` weighs it (see `similarity_shift`).
        sentence_token_ids (`dict`, *optional*):
            The ids the matcher cuts windows with, `{"cls": id, "sep": id, "sentence_ends": [ids of ".", "?", "!"]}`;
            required with `answer_similarity`.
        qa_settings (`dict`, *optional*):
            How the model answers, written by `run_qa.py` after training and read by evaluation, prediction and the
            pipeline: window and answer settings (`max_seq_length`, `n_best_size`, ...), the null-odds threshold
            (`null_score_diff_threshold`) and the similarity's weight and centre; `None` leaves the consumers' defaults.

    Checkpoints saved with settings retired since (`drop_retired_settings`, `with_retired_similarity`) load as before.
    """

    model_type = "pointer_distilbert"

    def __init__(self, qa_head="pointer", answer_verifier=True, verifier_standardization=True,
                 null_span_loss_weight=1.0, answer_similarity=False, sentence_token_ids=None, qa_settings=None,
                 **kwargs):
        if qa_head not in QA_HEADS:
            raise ValueError(f"qa_head={qa_head!r} is not supported: set it to 'pointer' or 'linear'.")
        if not null_span_loss_weight >= 0:
            raise ValueError(f"null_span_loss_weight={null_span_loss_weight!r} must be a number >= 0.")
        if answer_similarity and not is_sentence_token_ids(sentence_token_ids):
            raise ValueError(f"sentence_token_ids={sentence_token_ids!r}: answer_similarity needs the tokenizer's ids "
                             'as {"cls": id, "sep": id, "sentence_ends": [ids of ".", "?", "!"]}')
        if qa_settings is not None and not isinstance(qa_settings, dict):
            raise ValueError(f"qa_settings={qa_settings!r} must be a dict of evaluation settings or None.")
        self.qa_head = qa_head
        self.answer_verifier = bool(answer_verifier)
        self.verifier_standardization = bool(verifier_standardization)
        self.null_span_loss_weight = float(null_span_loss_weight)
        self.answer_similarity = bool(answer_similarity)
        self.sentence_token_ids = sentence_token_ids
        self.qa_settings = with_retired_similarity(qa_settings, kwargs)
        drop_retired_settings(kwargs)
        # A DistilBERT config.json says model_type "distilbert"; the class's own type must stay the one in use.
        kwargs.pop("model_type", None)
        super().__init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """Builds the config from a saved dict. A pointer config saved before the verifier's settings existed has
        no verifier, or one without standardisation: absent from such a file, they are False, not the defaults."""
        if config_dict.get("model_type") == cls.model_type:
            config_dict = {"answer_verifier": False, "verifier_standardization": False, **config_dict}
        return super().from_dict(config_dict, **kwargs)


def with_retired_similarity(qa_settings: dict | None, kwargs: dict) -> dict | None:
    """Return `qa_settings` with the similarity weight and centre that older checkpoints kept at the config's top
    level (taken out of `kwargs`), where `qa_settings` does not hold them already."""
    retired = {name: kwargs.pop(name) for name in ("answer_similarity_weight", "answer_similarity_center")
               if name in kwargs}
    if not retired.get("answer_similarity_weight"):
        return qa_settings
    return {**retired, **(qa_settings or {})}


def drop_retired_settings(kwargs: dict) -> None:
    """Take the retired settings out of `kwargs`; raise ValueError for a model built with a retired architecture."""
    for name, supported in RETIRED_ARCHITECTURE.items():
        value = kwargs.pop(name, supported)
        if value != supported and not (name == "pointer_hidden_size" and value == kwargs.get("dim", 768)):
            raise ValueError(f"{name}={value!r}: this model was built with a setting retired after commit "
                             f"{RETIRED_COMMIT}; load it with the code of that commit")
    for name in RETIRED_TRAINING:
        kwargs.pop(name, None)


def similarity_weighting(config: PointerDistilBertConfig) -> tuple[float, float]:
    """Returns the (weight, centre) of the question–sentence similarity in the null score; (0, 0) leaves it out."""
    settings = config.qa_settings or {}
    return settings.get("answer_similarity_weight", 0.0), settings.get("answer_similarity_center", 0.0)


def similarity_settings(config: PointerDistilBertConfig) -> tuple[float, float] | None:
    """Returns the `similarity_weighting`, or None where the null odds leave the similarity out (no matcher or no
    weight): what decides whether the ONNX export needs the matcher's graph."""
    weight, center = similarity_weighting(config)
    return (weight, center) if config.answer_similarity and weight else None


def is_sentence_token_ids(value) -> bool:
    """True for `{"cls": int, "sep": int, "sentence_ends": [int, ...]}`."""
    if not isinstance(value, dict) or not isinstance(value.get("sentence_ends"), list):
        return False
    return all(isinstance(token, int) for token in [value.get("cls"), value.get("sep"), *value["sentence_ends"]])


def mask_padding(logits: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Returns `logits` with padding positions (attention_mask == 0) set to the dtype's minimum: finite, unlike -inf,
    so half-precision arithmetic and the cross-entropy stay free of NaNs, while padding never wins an argmax."""
    if attention_mask is None:
        return logits
    return logits.masked_fill(attention_mask == 0, torch.finfo(logits.dtype).min)  # (batch, seq_len)


def without_null(logits: torch.Tensor) -> torch.Tensor:
    """Returns `logits` with the null position (index 0, [CLS]) at the dtype's minimum, so that what remains is a
    distribution over the non-null tokens."""
    masked = logits.clone()
    masked[:, 0] = torch.finfo(logits.dtype).min
    return masked


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Returns the mean of each row's token states over its unmasked tokens (a sentence encoder's pooling), shape
    (batch, dim); a row without any token gives zeros."""
    weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)  # (batch, seq_len, 1)
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


def float32_linear(layer: nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
    """Returns `layer(inputs)` computed in float32, whatever the layer's dtype or an enclosing autocast: these
    products become the span logits and null odds, compared against a threshold that bf16 would move in steps."""
    with torch.autocast(inputs.device.type, enabled=False):
        bias = None if layer.bias is None else layer.bias.float()
        return nn.functional.linear(inputs.float(), layer.weight.float(), bias)


def attention_summary(logits: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
    """Returns sum_i softmax(logits)_i * h_i, the token state a pointer distribution expects; the softmax runs in
    float32, as half-precision exponentials summed over hundreds of tokens would round the weights."""
    weights = torch.softmax(logits.float(), dim=-1).to(hidden_states.dtype)  # (batch, seq_len)
    return torch.bmm(weights.unsqueeze(1), hidden_states).squeeze(1)  # (batch, dim)


class BilinearScorer(nn.Module):
    """Scores keys against a query with k_i . (W_q q + b), the bilinear ("general") form of Luong et al., 2015."""

    def __init__(self, pointer_dim: int):
        super().__init__()
        self.query_proj = nn.Linear(pointer_dim, pointer_dim)

    def forward(self, keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """Returns one score per key, shape (batch, seq_len), in float32 (see `float32_linear`)."""
        with torch.autocast(keys.device.type, enabled=False):
            projected_query = float32_linear(self.query_proj, query).unsqueeze(-1)  # (batch, pointer_dim, 1)
            return torch.bmm(keys.float(), projected_query).squeeze(-1)  # (batch, seq_len)


class AnswerPointerHead(nn.Module):
    """Answer pointer (Wang & Jiang, 2016): start and end distributions over one projection of the token states, each
    with its own scorer; the end query is a GRU cell step from the learned start query, reading the start summary."""

    def __init__(self, config: PointerDistilBertConfig):
        super().__init__()
        # No bias: a per-feature key offset adds the same amount to every position's score, so it would never train.
        self.key_proj = nn.Linear(config.dim, config.dim, bias=False)
        self.start_query = nn.Parameter(torch.empty(config.dim))
        self.start_scorer = BilinearScorer(config.dim)
        self.end_query_cell = nn.GRUCell(config.dim, config.dim)
        self.end_scorer = BilinearScorer(config.dim)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (start_logits, end_logits), each (batch, seq_len), padding set to the dtype's minimum."""
        keys = self.key_proj(hidden_states)  # (batch, seq_len, dim)
        start_query = self.start_query.expand(hidden_states.size(0), -1)  # (batch, dim)
        start_logits = mask_padding(self.start_scorer(keys, start_query), attention_mask)  # (batch, seq_len)
        start_summary = attention_summary(start_logits, hidden_states)  # (batch, dim)
        end_query = self.end_query_cell(start_summary, start_query)  # (batch, dim)
        end_logits = mask_padding(self.end_scorer(keys, end_query), attention_mask)  # (batch, seq_len)
        return start_logits, end_logits


class LinearSpanHead(nn.Linear):
    """Stock DistilBERT QA head, the ablation baseline: an `nn.Linear(dim, 2)` itself, so its weights are named like
    the stock model's `qa_outputs`, giving each token a start and an end score in float32 (see `float32_linear`)."""

    def __init__(self, config: PointerDistilBertConfig):
        super().__init__(config.dim, 2)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (start_logits, end_logits), each (batch, seq_len), padding set to the dtype's minimum."""
        logits = float32_linear(self, hidden_states)  # (batch, seq_len, 2)
        start_logits, end_logits = (mask_padding(half.contiguous(), attention_mask) for half in logits.unbind(dim=-1))
        return start_logits, end_logits  # 2 x (batch, seq_len)


SPAN_HEADS = {"pointer": AnswerPointerHead, "linear": LinearSpanHead}


class FeatureStandardizer(nn.BatchNorm1d):
    """Batch normalisation in float32 whatever the module's or the input's dtype (half-precision statistics would
    lose the small differences it brings out), on running statistics for a training batch of one row."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Returns the standardised, affinely rescaled features, shape (batch, num_features), in their own dtype."""
        use_batch_statistics = self.training and features.size(0) > 1
        # Copies, also of float32 buffers: batch_norm keeps them for its backward, which an update in place would spoil.
        running_mean, running_var = (self.running_mean.to(torch.float32, copy=True),
                                     self.running_var.to(torch.float32, copy=True))
        with torch.autocast(features.device.type, enabled=False):
            standardized = nn.functional.batch_norm(
                features.float(), running_mean, running_var, self.weight.float(), self.bias.float(),
                training=use_batch_statistics, momentum=self.momentum, eps=self.eps,
            )  # (batch, num_features)
        if use_batch_statistics:
            with torch.no_grad():
                self.running_mean.copy_(running_mean)
                self.running_var.copy_(running_var)
                self.num_batches_tracked.add_(1)
        return standardized.to(features.dtype)


class AnswerVerifier(nn.Module):
    """Has-answer classifier: one no-answer logit per window, from what the window says and how sure the pointers are.

    The span head abstains only by pointing at [CLS], whose logit learns as slowly as any of hundreds of token logits.
    The verifier has its own per-window binary loss (Read + Verify, Hu et al., 2019) and reads features with a signal
    early in training: the [CLS] and mean token states, the states the start and end pointers expect among the other
    tokens, and the log-probabilities of the best non-null and of the null start and end. The pointers are read
    without a gradient, so the binary loss reaches the encoder through the token states only; with
    `verifier_standardization` the features are batch-normalised first, which lets the MLP learn within a small budget.
    """

    num_confidences = 4

    def __init__(self, config: PointerDistilBertConfig):
        super().__init__()
        num_features = 4 * config.dim + self.num_confidences
        self.standardize = FeatureStandardizer(num_features) if config.verifier_standardization else nn.Identity()
        self.dense = nn.Linear(num_features, config.dim)
        self.activation = nn.GELU()
        self.classifier = nn.Linear(config.dim, 1)

    def forward(self, hidden_states: torch.Tensor, start_logits: torch.Tensor, end_logits: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Returns the no-answer logit of every window, shape (batch,), in float32 like the span logits it joins;
        logits arrive with padding masked."""
        summaries, confidences = [], []
        for logits in (start_logits, end_logits):
            pointer = logits.detach()
            summaries.append(attention_summary(without_null(pointer), hidden_states))  # (batch, dim)
            log_probabilities = torch.log_softmax(pointer.float(), dim=-1)  # (batch, seq_len)
            best_span = without_null(log_probabilities).amax(dim=-1)  # (batch,)
            confidences += [best_span, log_probabilities[:, 0]]
        if attention_mask is None:
            attention_mask = torch.ones_like(start_logits)
        mean_state = masked_mean(hidden_states, attention_mask)  # (batch, dim)
        confidence = torch.stack(confidences, dim=-1).to(hidden_states.dtype)  # (batch, 4)
        features = torch.cat([hidden_states[:, 0], mean_state, *summaries, confidence], dim=-1)  # (batch, 4 * dim + 4)
        features = self.standardize(features)
        hidden = self.activation(self.dense(features))  # (batch, dim)
        return float32_linear(self.classifier, hidden).squeeze(-1)  # (batch,), float32


def window_segments(token_ids: list[int], sep_id: int, sentence_ends: set[int]) -> list[list[int]]:
    """Returns the question's tokens, then each context sentence's, of one window `[CLS] question [SEP] context
    [SEP]` (padding dropped). A sentence ends after a token in `sentence_ends`; the context's last words form one
    whether or not a window edge cut it; a window without a context gives the question alone."""
    separators = [index for index, token in enumerate(token_ids) if token == sep_id]
    if not separators:
        return [token_ids[1:]]
    question_end = separators[0]
    context_end = separators[1] if len(separators) > 1 else len(token_ids)
    segments, sentence = [token_ids[1:question_end]], []
    for token in token_ids[question_end + 1:context_end]:
        sentence.append(token)
        if token in sentence_ends:
            segments.append(sentence)
            sentence = []
    if sentence:
        segments.append(sentence)
    return segments


class SentenceMatcher(nn.Module):
    """How close a window's question comes to its closest context sentence: the largest cosine similarity between
    the question's and a sentence's mean-pooled embedding, each encoded on its own as `[CLS] text [SEP]`.

    The encoder is a frozen copy of the starting checkpoint's (`copy_encoder`), as a sentence encoder keeps its
    embedding space only while fine-tuning leaves it alone; a subclass may give its own (the ONNX backend does).
    """

    def __init__(self, config: PointerDistilBertConfig, encoder=None):
        super().__init__()
        self.encoder = DistilBertModel(config) if encoder is None else encoder
        token_ids = config.sentence_token_ids
        self.cls_id, self.sep_id = token_ids["cls"], token_ids["sep"]
        self.sentence_ends = set(token_ids["sentence_ends"])
        self.pad_id = config.pad_token_id or 0
        self.max_segment_length = config.max_position_embeddings - 2  # room for [CLS] and [SEP]
        self.dim = config.dim
        self.requires_grad_(False)

    @torch.no_grad()
    def copy_encoder(self, encoder: DistilBertModel) -> None:
        """Make the matcher's encoder a copy of `encoder` (the starting checkpoint's, before any training)."""
        self.encoder.load_state_dict(encoder.state_dict())

    def train(self, mode: bool = True) -> "SentenceMatcher":
        """Stays in inference mode: the matcher's embeddings are the starting encoder's, dropout included."""
        return super().train(False)

    def unit_embeddings(self, token_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Returns the unit-length mean-pooled embedding of each padded row, shape (rows, dim), pooled in float32."""
        states = self.encoder(input_ids=token_ids, attention_mask=attention_mask).last_hidden_state  # (rows, L, dim)
        return nn.functional.normalize(masked_mean(states.float(), attention_mask), dim=-1)

    def embed(self, segments: list[list[int]], device: torch.device, chunk: int = 64) -> torch.Tensor:
        """Returns the `unit_embeddings` of each segment as `[CLS] segment [SEP]` (cut to fit the encoder), shape
        (len(segments), dim), encoded in chunks of similar lengths, each padded only to its own longest."""
        texts = [[self.cls_id, *segment[: self.max_segment_length], self.sep_id] for segment in segments]
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        embeddings = torch.empty(len(texts), self.dim, device=device)
        for first in range(0, len(order), chunk):
            rows = order[first : first + chunk]
            tokens = [torch.tensor(texts[row]) for row in rows]
            token_ids = nn.utils.rnn.pad_sequence(tokens, batch_first=True, padding_value=self.pad_id).to(device)
            widths = torch.tensor([len(text) for text in tokens], device=device)
            mask = (torch.arange(token_ids.size(1), device=device) < widths.unsqueeze(1)).long()
            embeddings[rows] = self.unit_embeddings(token_ids, mask)
        return embeddings

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Returns each window's question–sentence similarity, shape (batch,), float32 in [-1, 1]; -1 without a
        sentence. Windows are right-padded, as the recipe's collator and pipeline pad them."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        windows = [window_segments(ids[:length], self.sep_id, self.sentence_ends)
                   for ids, length in zip(input_ids.tolist(), attention_mask.sum(dim=-1).tolist())]
        embeddings = self.embed([segment for segments in windows for segment in segments], input_ids.device)
        similarities, row = [], 0
        # Float32 products: the weighed similarity moves the null odds, and a bf16 one would move them in steps.
        with torch.autocast(input_ids.device.type, enabled=False):
            for segments in windows:  # the question's embedding, then its sentences'
                question, sentences = embeddings[row], embeddings[row + 1 : row + len(segments)]  # (dim,), (n, dim)
                similarities.append(float((sentences @ question).max()) if len(sentences) else -1.0)
                row += len(segments)
        return torch.tensor(similarities, device=input_ids.device)  # (batch,)


def similarity_shift(matcher: SentenceMatcher | None, config: PointerDistilBertConfig, input_ids: torch.Tensor | None,
                     attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Returns -weight × (similarity − centre) per window, shape (batch,), what the question–sentence similarity
    adds to the null score; None without a matcher or with weight 0. The PyTorch model and the ONNX backend share it."""
    weight, center = similarity_weighting(config)
    if matcher is None or not weight:
        return None
    if input_ids is None:
        raise ValueError("this model's null score uses its question–sentence similarity, which reads input_ids: "
                         "pass input_ids, not inputs_embeds")
    return -weight * (matcher(input_ids, attention_mask) - center)


def add_to_null_logits(start_logits: torch.Tensor, end_logits: torch.Tensor, no_answer_logit: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns the span logits, in float32, with half of `no_answer_logit` added to each [CLS] (index 0) logit: the
    null score start[0] + end[0], which evaluation, prediction and the pipeline all read, grows by exactly the logit."""
    start_logits, end_logits = start_logits.float(), end_logits.float()
    shift = torch.zeros_like(start_logits)  # (batch, seq_len)
    shift[:, 0] = no_answer_logit.float() / 2
    return start_logits + shift, end_logits + shift


def verifier_loss(no_answer_logit: torch.Tensor, start_positions: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Returns the binary cross-entropy of "this window holds no answer" (start label 0), in float32; labels are
    clamped like the span loss's, and windows whose start label lies past the sequence are ignored."""
    start_positions = start_positions.reshape(-1).clamp(0, seq_len)  # (batch,)
    labelled = start_positions < seq_len  # (batch,)
    no_answer = (start_positions == 0).float()  # (batch,)
    losses = nn.functional.binary_cross_entropy_with_logits(no_answer_logit.float(), no_answer, reduction="none")
    return (losses * labelled).sum() / labelled.sum().clamp(min=1)


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor,
              end_positions: torch.Tensor, null_weight: float = 1.0) -> torch.Tensor:
    """Returns the mean of the start and end cross-entropies, each a mean over its labelled windows; as in the stock
    model, labels are clamped to seq_len, the ignored index. A window whose start label is the null (0) counts
    `null_weight` times, any other once, so weight 1 is the stock loss. The cross-entropy runs in float32, for
    half-precision logits too; a batch without any labelled window gives 0, not NaN."""
    ignored_index = start_logits.size(1)
    start_positions = start_positions.reshape(-1).clamp(0, ignored_index)  # (batch,)
    end_positions = end_positions.reshape(-1).clamp(0, ignored_index)  # (batch,)
    window_weight = torch.where(start_positions == 0, null_weight, 1.0)  # (batch,)
    total = 0.0
    for logits, positions in ((start_logits, start_positions), (end_logits, end_positions)):
        losses = nn.functional.cross_entropy(logits.float(), positions, ignore_index=ignored_index,
                                             reduction="none")  # (batch,), 0 where ignored
        weights = window_weight * (positions < ignored_index)
        total = total + (losses * weights).sum() / weights.sum().clamp(min=torch.finfo(torch.float32).tiny)
    return total / 2


class PointerDistilBertForQuestionAnswering(DistilBertPreTrainedModel):
    """DistilBERT with an answer-pointer (or, for ablation, linear) span head, outputs as
    `DistilBertForQuestionAnswering`'s. The encoder is stored as `distilbert`, so any DistilBERT checkpoint loads its
    encoder weights and only the heads start fresh."""

    config_class = PointerDistilBertConfig

    def __init__(self, config: PointerDistilBertConfig):
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        self.dropout = nn.Dropout(config.qa_dropout)
        self.qa_outputs = SPAN_HEADS[config.qa_head](config)
        self.verifier = AnswerVerifier(config) if config.answer_verifier else None
        self.sentence_matcher = SentenceMatcher(config) if config.answer_similarity else None
        self.post_init()

    def _init_weights(self, module: nn.Module):
        """Initialises the encoder as DistilBERT does and the pointer's own parameters like its linear layers."""
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, AnswerPointerHead):
            init.normal_(module.start_query, mean=0.0, std=std)
        elif isinstance(module, nn.GRUCell):
            # Small weights make the first end query close to a scaled start query, like the small linear-head logits.
            init.normal_(module.weight_ih, mean=0.0, std=std)
            init.normal_(module.weight_hh, mean=0.0, std=std)
            init.zeros_(module.bias_ih)
            init.zeros_(module.bias_hh)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Saves the model as transformers does, with the question-answering pipeline's code (see `ship_pipeline`)."""
        if kwargs.get("is_main_process", True):
            ship_pipeline(self.config, save_directory)
        super().save_pretrained(save_directory, *args, **kwargs)

    def get_position_embeddings(self) -> nn.Embedding:
        """Returns the encoder's position embeddings."""
        return self.distilbert.get_position_embeddings()

    def resize_position_embeddings(self, new_num_position_embeddings: int):
        """Resizes the encoder's position embeddings to `new_num_position_embeddings` rows."""
        self.distilbert.resize_position_embeddings(new_num_position_embeddings)

    @can_return_tuple
    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, start_positions: torch.Tensor | None = None,
                end_positions: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                **kwargs) -> QuestionAnsweringModelOutput | tuple[torch.Tensor, ...]:
        r"""Returns span logits (and the loss when both label tensors are given) as `DistilBertForQuestionAnswering`,
        whose arguments it takes (`kwargs` go to the encoder); the logits are float32 whatever the weights' dtype or
        an enclosing autocast, so the null odds are exact. A window's null score start_logits[:, 0] + end_logits[:, 0]
        is the span head's null pointer, plus the verifier's no-answer logit, minus the weighed answer similarity.
        """
        encoder_outputs = self.distilbert(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                          inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        hidden_states = self.dropout(encoder_outputs.last_hidden_state)  # (batch, seq_len, dim)
        start_logits, end_logits = self.qa_outputs(hidden_states, attention_mask)  # 2 x (batch, seq_len)
        no_answer_logit = None
        if self.verifier is not None:
            no_answer_logit = self.verifier(hidden_states, start_logits, end_logits, attention_mask)  # (batch,)
            start_logits, end_logits = add_to_null_logits(start_logits, end_logits, no_answer_logit)
        shift = similarity_shift(self.sentence_matcher, self.config, input_ids, attention_mask)  # (batch,) or None
        if shift is not None:
            start_logits, end_logits = add_to_null_logits(start_logits, end_logits, shift)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions,
                             self.config.null_span_loss_weight)
            if no_answer_logit is not None:  # the verifier's binary loss
                loss = loss + verifier_loss(no_answer_logit, start_positions, start_logits.size(1))
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                            hidden_states=encoder_outputs.hidden_states,
                                            attentions=encoder_outputs.attentions)


PIPELINE_TASK = "question-answering"


def pipeline_class() -> type | None:
    """Returns the recipe's question-answering pipeline class (`squad.pipeline`, or the `pipeline` module beside this
    file as remote code), or None where its code is not at hand. importlib keeps transformers, which follows a
    file's `from .x import` lines, from asking for the pipeline where only the model is wanted."""
    package = __package__ or "squad"
    try:
        return importlib.import_module(f"{package}.pipeline").PointerQuestionAnsweringPipeline
    except (ImportError, AttributeError):
        return None


def ship_pipeline(config: PointerDistilBertConfig, save_directory) -> None:
    """Copies the question-answering pipeline's code (and the files it imports relatively) into `save_directory` and
    names it in `config.custom_pipelines`, where `pipeline(..., trust_remote_code=True)` finds it. Where the code is
    not at hand the entry is dropped, so a saved config never names a file the folder lacks."""
    pipeline = pipeline_class()
    if pipeline is None:
        if getattr(config, "custom_pipelines", None):
            logger.warning("the question-answering pipeline's code is not at hand: %s is saved without it",
                           save_directory)
            del config.custom_pipelines
        return
    os.makedirs(save_directory, exist_ok=True)
    custom_object_save(pipeline, save_directory)
    implementation = f"{pipeline.__module__.rsplit('.', 1)[-1]}.{pipeline.__name__}"
    config.custom_pipelines = {PIPELINE_TASK: {"impl": implementation, "pt": ["AutoModelForQuestionAnswering"],
                                               "type": "text"}}


# exist_ok: the module may be imported twice in one process (as __main__ and by name, or from a saved checkpoint).
AutoConfig.register(PointerDistilBertConfig.model_type, PointerDistilBertConfig, exist_ok=True)
AutoModelForQuestionAnswering.register(PointerDistilBertConfig, PointerDistilBertForQuestionAnswering, exist_ok=True)
PointerDistilBertConfig.register_for_auto_class()
PointerDistilBertForQuestionAnswering.register_for_auto_class("AutoModelForQuestionAnswering")
