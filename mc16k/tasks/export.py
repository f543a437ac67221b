"""Merge a trained adapter into its base model (bf16) so any serving engine can load the result.

    python -m mc16k.models.export <run_dir>/adapter [--out <dir>] [--dtype bfloat16]

The base is loaded unquantized (merging into 4-bit weights would re-quantize them) from the model config
the adapter dir carries in ``mc16k_run.json``; the tokenizer is copied alongside.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from omegaconf import OmegaConf

from mc16k.dtypes import DType
from mc16k.models.config import QuantConfig
from mc16k.models.loading import load_for_inference
from mc16k.runs.layout import read_run_info
from mc16k.schema import ModelConfig

log = logging.getLogger(__name__)


def export_merged(
    adapter_dir: str | Path, out_dir: str | Path | None = None, dtype: DType | str = DType.bfloat16,
    cache_dir: str | Path | None = None,
) -> Path:  # fmt: skip
    """Write ``<adapter_dir>/../merged`` (or ``out_dir``): base + adapter folded into plain weights."""
    adapter_dir = Path(adapter_dir)
    info = read_run_info(adapter_dir)
    model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), info["model"])
    model_cfg.dtype = DType(dtype)
    no_quant = OmegaConf.structured(QuantConfig(enabled=False))
    merged = load_for_inference(model_cfg, no_quant, adapter_dir=adapter_dir, merge=True, cache_dir=cache_dir)
    out = Path(out_dir) if out_dir is not None else adapter_dir.parent / "merged"
    merged.save_pretrained(str(out))
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(str(out))
    log.info("merged %s into %s (%s) -> %s", adapter_dir, model_cfg.name_or_path, model_cfg.dtype.value, out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter_dir", help="a run's adapter dir (<run_dir>/adapter)")
    parser.add_argument("--out", default=None, help="output dir (default: <run_dir>/merged)")
    parser.add_argument("--dtype", default=DType.bfloat16.value, choices=[d.value for d in DType if d != DType.uint8])
    parser.add_argument("--cache-dir", default=None, help="where GGUF bases are unpacked (default: <repo>/.cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(export_merged(args.adapter_dir, args.out, args.dtype, args.cache_dir))


if __name__ == "__main__":
    main()
