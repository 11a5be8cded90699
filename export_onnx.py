"""Export a model trained by run_qa.py to ONNX, for answering on CPUs with ONNX Runtime (optionally in int8).

Usage: `python export_onnx.py MODEL_FOLDER EXPORT_FOLDER [--int8]`. EXPORT_FOLDER gets `model.onnx`, the span logits
of `input_ids` and `attention_mask` (batch and sequence axes dynamic); for a model whose null odds use the sentence
matcher, `sentence_matcher.onnx`, the matcher's unit-length segment embeddings (no exporter turns the matcher's Python
split of a window into graph operators, so `onnx_backend.py` splits and adds the similarity); with `--int8`, both
graphs quantized as `QUANTIZATION` says (`model_int8.onnx`, ...); the tokenizer, `config.json`, `onnx_export.json`
(the export's settings) and the code that answers from the folder, as a checkpoint carries it.

The exporter is TorchScript's (`dynamo=False`), which needs nothing beyond torch and onnx (dynamo needs onnxscript).
"""

import argparse
import inspect
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

import modeling_pointer_distilbert
import onnx_backend
from cli_errors import UserError, run_command
from modeling_pointer_distilbert import PointerDistilBertConfig, SentenceMatcher, ship_pipeline, similarity_settings
from onnx_backend import EXPORT_SETTINGS, MATCHER_GRAPHS, SPAN_GRAPHS, OnnxExportConfig, OnnxQuestionAnsweringModel

OPSET = 17  # the first with LayerNormalization, which keeps each layer norm one operator
TOKEN_AXES = {0: "batch", 1: "sequence"}  # the dynamic axes of token ids, masks and span logits
# How the int8 graphs are quantized (chosen in bench/results/onnx_serving.md): fused by ONNX Runtime's transformer
# optimizer first, then int8 weights, one scale per output channel, except in the span head and the verifier's
# classifier, whose products are the logits themselves; the sentence matcher's graph alike.
QUANTIZATION = {"optimize": True, "op_types_to_quantize": ["MatMul", "Attention", "EmbedLayerNormalization", "Gather"],
                "per_channel": True, "reduce_range": False, "float32_scopes": ["qa_outputs", "verifier/classifier"],
                "sentence_matcher": True}


class SpanLogits(nn.Module):
    """The model's span logits as a graph, with the null logits as the span head and verifier leave them (`export`
    sets the sentence matcher aside)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return output.start_logits, output.end_logits  # 2 x (batch, seq_len), float32


class SegmentEmbeddings(nn.Module):
    """The sentence matcher's encoder as a graph: `SentenceMatcher.unit_embeddings` of padded segments."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    forward = SentenceMatcher.unit_embeddings


def load_model(model_folder: Path) -> nn.Module:
    """Return the recipe model saved in `model_folder`, float32 and in eval mode, or a UserError saying why not."""
    config_path = model_folder / "config.json"
    if not model_folder.is_dir():
        raise UserError(f"{model_folder}: no such folder; give an output folder of run_qa.py")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, ValueError):
        model_type = None
    if model_type != PointerDistilBertConfig.model_type:
        raise UserError(f"{model_folder} holds no model of this recipe ({config_path} does not say model_type "
                        f"{PointerDistilBertConfig.model_type!r}); give an output folder of run_qa.py")
    # Eager attention: its matrix products and softmax are what ONNX Runtime's optimizer fuses into one operator.
    return AutoModelForQuestionAnswering.from_pretrained(model_folder, dtype=torch.float32,
                                                         attn_implementation="eager").eval()


def example_inputs(batch: int = 2, length: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a traceable batch: token ids and a mask whose second row is padded, so the masking is traced too."""
    input_ids = torch.randint(1000, 2000, (batch, length))  # (batch, length)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, length // 2 :] = 0
    return input_ids, attention_mask


def export_graph(module: nn.Module, inputs: tuple, path: Path, output_axes: dict[str, dict]) -> None:
    """Write `module` as an ONNX graph of `input_ids` and `attention_mask` (batch and sequence axes dynamic) to
    the outputs `output_axes` names, with their dynamic axes."""
    axes = {"input_ids": TOKEN_AXES, "attention_mask": TOKEN_AXES, **output_axes}
    with torch.no_grad():
        torch.onnx.export(module, inputs, str(path), input_names=["input_ids", "attention_mask"],
                          output_names=list(output_axes), dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def export(model: nn.Module, export_folder: Path) -> None:
    """Write the span graph, and the matcher's graph for a model whose null odds use it, into `export_folder`."""
    inputs = example_inputs()
    matcher, model.sentence_matcher = model.sentence_matcher, None
    export_graph(SpanLogits(model), inputs, export_folder / SPAN_GRAPHS["float32"],
                 {"start_logits": TOKEN_AXES, "end_logits": TOKEN_AXES})
    model.sentence_matcher = matcher
    if similarity_settings(model.config) is not None:
        export_graph(SegmentEmbeddings(matcher.encoder), inputs, export_folder / MATCHER_GRAPHS["float32"],
                     {"embeddings": {0: "batch"}})


def float32_nodes(graph_path: Path, scopes: list[str]) -> list[str]:
    """Return the names of the graph's nodes exported from the modules `scopes` (e.g. the head), to keep float32;
    for a Gemm (a linear layer on 2-d inputs) also `<name>_MatMul`, the MatMul the quantizer turns it into first."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    kept = [node for node in graph.node if any(f"/{scope}/" in node.name for scope in scopes)]
    return [node.name for node in kept] + [f"{node.name}_MatMul" for node in kept if node.op_type == "Gemm"]


def quantize(config, source: Path, target: Path, settings: dict) -> None:
    """Write the graph `source` with int8 weights to `target`: fused first by ONNX Runtime's transformer optimizer
    when `settings["optimize"]`, then dynamically quantized as `settings` say."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    with tempfile.TemporaryDirectory() as work:
        if settings["optimize"]:
            fused = Path(work) / source.name
            optimize_model(str(source), model_type="bert", num_heads=config.n_heads, hidden_size=config.dim,
                           opt_level=1).save_model_to_file(str(fused))
            source = fused
        excluded = float32_nodes(source, settings["float32_scopes"])  # after fusion, which renames some nodes
        quantize_dynamic(source, target, op_types_to_quantize=settings["op_types_to_quantize"],
                         per_channel=settings["per_channel"], reduce_range=settings["reduce_range"],
                         weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def ship_code(config, export_folder: Path) -> None:
    """Write config.json and the code that answers from the folder with only transformers and onnxruntime
    installed: `onnx_backend.py` (named in `auto_map`), the model file it imports and the pipeline's files."""
    for module in (modeling_pointer_distilbert, onnx_backend):
        shutil.copy(inspect.getfile(module), export_folder)
    ship_pipeline(config, export_folder)
    config = OnnxExportConfig(**config.to_dict())
    config.auto_map = {"AutoConfig": f"onnx_backend.{OnnxExportConfig.__name__}",
                       "AutoModelForQuestionAnswering": f"onnx_backend.{OnnxQuestionAnsweringModel.__name__}"}
    config.to_json_file(export_folder / "config.json")  # save_pretrained would name its own class in auto_map


def export_folder_of(model_folder: Path, export_folder: Path, quantization: dict | None = None) -> dict:
    """Export the model of `model_folder` into `export_folder`, with an int8 span graph quantized as `quantization`
    says (`QUANTIZATION`) unless it is None; return what the export wrote into onnx_export.json."""
    started = time.perf_counter()
    if export_folder.resolve() == model_folder.resolve():
        raise UserError(f"{export_folder}: the export would overwrite the model's config.json; give another folder")
    model = load_model(model_folder)
    export_folder.mkdir(parents=True, exist_ok=True)
    export(model, export_folder)
    if quantization is not None:
        for graphs in (SPAN_GRAPHS, MATCHER_GRAPHS) if quantization["sentence_matcher"] else (SPAN_GRAPHS,):
            if (export_folder / graphs["float32"]).is_file():
                quantize(model.config, export_folder / graphs["float32"], export_folder / graphs["int8"], quantization)
    AutoTokenizer.from_pretrained(model_folder).save_pretrained(export_folder)
    ship_code(model.config, export_folder)
    settings = {"exporter": "torch.onnx.export(dynamo=False)", "opset": OPSET, "torch": torch.__version__,
                "quantization": quantization, "export_seconds": round(time.perf_counter() - started, 1)}
    (export_folder / EXPORT_SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
    return settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the command-line arguments."""
    parser = argparse.ArgumentParser(description="Export a model trained by run_qa.py to ONNX for CPU serving.")
    parser.add_argument("model_folder", type=Path, help="output folder of run_qa.py")
    parser.add_argument("export_folder", type=Path, help="folder to write the ONNX graphs, tokenizer and config to")
    parser.add_argument("--int8", action="store_true", help="also write the int8 graphs (model_int8.onnx, ...)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of input errors too")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Export MODEL_FOLDER into EXPORT_FOLDER; return the exit status (2 with one line for a bad folder)."""
    args = parse_args(argv)

    def run() -> None:
        settings = export_folder_of(args.model_folder, args.export_folder, QUANTIZATION if args.int8 else None)
        print(f"ONNX export written to {args.export_folder} in {settings['export_seconds']} s")

    return run_command(run, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
