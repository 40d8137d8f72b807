"""`make bench`: throughput figures printed as tables (measures only; nothing is asserted)."""

from __future__ import annotations

import argparse
import json

import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR


def preset_module(model: str, objective: str, **model_overrides):
    """A pretraining LightningModule from the `conf/model` and `conf/objective` presets and the
    objective's mask (seed 0), composed as `echojepa-train model=... objective=...` composes them."""
    from hydra import compose, initialize_config_dir

    from echojepa.pretrain.build import build_module

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        full = compose("train", overrides=[f"model={model}", f"objective={objective}"])
    cfg = OmegaConf.create({"model": full.model, "objective": full.objective, "mask": full.mask, "seed": 0})
    for k, v in model_overrides.items():
        OmegaConf.update(cfg, f"model.{k}", v)
    return build_module(to_plain(cfg))


def _probe_preset(name: str) -> dict:
    """conf/probe/<name>.yaml over the probes it builds on, as echojepa-probe composes it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("evaluate", overrides=[f"probe={name}"]).probe)


def _sweep_cfg(world: str) -> dict:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(
            compose(
                "evaluate",
                overrides=[
                    "task=lvef",
                    "backbone=random_vit",
                    "backbone.model=cpu_small",
                    "probe=attentive_cpu",
                    "probe.epochs=5",
                    "probe.min_steps=0",
                    f"synth_root={world}",
                    "protocol.conditions=[internal]",
                    "num_workers=0",
                ],
            )
        )


def _loader_figures(world: str | None, step_clips_per_s: float) -> dict[str, dict]:
    """The pretraining loader on AVI (EchoNet-Dynamic layout) and DICOM (JPEG YBR, MIMIC layout) files
    at the demo's clip geometry, beside the demo model's step (cpu_tiny EchoJEPA, batch 8)."""
    import tempfile
    from pathlib import Path

    import echojepa.io as eio
    from echojepa.pretrain.bench import loader_throughput

    model = OmegaConf.load(CONF_DIR / "model" / "cpu_tiny.yaml")
    clip = OmegaConf.load(CONF_DIR / "data" / "synthetic.yaml").clip
    cache = OmegaConf.load(CONF_DIR / "data" / "synthetic.yaml").cache
    with tempfile.TemporaryDirectory(prefix="echojepa-bench-world-") as tmp:
        root = Path(world) if world else Path(tmp)
        if world is None:
            from echojepa.synth import generate

            generate(root, "tiny", seed=0, progress=False)
        avi = sorted((root / "echonet_dynamic" / "Videos").glob("*.avi"))
        dicom = [
            p
            for p in sorted((root / "mimic_iv_echo" / "files").rglob("*.dcm"))
            if (info := eio.video_info(p)).kind == "cine" and info.meta.get("photometric") == "YBR_FULL_422"
        ]
        out = {}
        for name, paths in (("avi", avi), ("dicom_jpeg_ybr", dicom)):
            figures = loader_throughput(
                paths,
                int(model.img_size),
                frames=int(model.num_frames),
                frame_step=int(clip.frame_step),
                short_side_scale=float(cache.short_side_scale),
                clips=32,
            )
            figures["model_step_clips_per_s"] = step_clips_per_s
            out[f"loader_{name}_16x{int(model.img_size)}_vs_cpu_tiny_jepa_step"] = figures
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="echojepa-bench", description=__doc__)
    ap.add_argument("--skip-vitl", action="store_true", help="skip the (slow on CPU) ViT-L step")
    ap.add_argument("--skip-synth", action="store_true")
    ap.add_argument("--skip-loader", action="store_true", help="skip the pretraining loader figures")
    ap.add_argument(
        "--loader-world",
        type=str,
        default=None,
        help="a synthetic world for the loader figures (default: the tiny preset, written to a temp folder)",
    )
    ap.add_argument(
        "--precision-rounds",
        type=int,
        default=3,
        help="alternating fp32/bf16 steps timed per model (medians)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--sweep-world",
        type=str,
        default=None,
        help="a synthetic world folder: time a probe sweep on cached vs recomputed features",
    )
    args = ap.parse_args(argv)
    console = Console()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from echojepa.precision import cpu_has_native_bf16

    results: dict[str, dict] = {
        "device": {
            "name": device,
            "threads": torch.get_num_threads(),
            "cpu_native_bf16": cpu_has_native_bf16(),
        }
    }

    if not args.skip_synth:
        from echojepa.synth.bench import benchmark as synth_benchmark

        results["synth"] = synth_benchmark()

    from echojepa.pretrain.bench import masked_vs_full, pretrain_step_throughput

    for objective in ("jepa", "mae"):
        m = preset_module("cpu_tiny", objective)
        results[f"cpu_tiny_{objective}"] = pretrain_step_throughput(m, batch_size=8, device=device)

    from echojepa.pretrain.bench import precision_step_times

    # float32 vs bf16 autocast, alternating steps: the demo presets and the reference step
    # (ViT-tiny, 16 x 112 px, batch 8, the reference two mask groups)
    for name, model, objective, size in (
        ("cpu_tiny_jepa_16x64_b8", "cpu_tiny", "jepa", None),
        ("cpu_tiny_mae_16x64_b8", "cpu_tiny", "mae", None),
        ("vitt_jepa_16x112_b8", "vitt", "jepa", 112),
    ):
        m = preset_module(model, objective, **({"img_size": size} if size else {}))
        results[f"fp32_vs_bf16_{name}"] = precision_step_times(
            m, batch_size=8, rounds=args.precision_rounds, device=device
        )

    from echojepa.pretrain.bench import attention_times

    # the kernel choice behind the bf16 steps above (echojepa/models/attention.py)
    results["attention_fwd_bwd_vitt_16x112_b8"] = attention_times()
    # the demo LVEF probe's self-attention: 2 lr heads x batch 32, 4 attention heads, 2 clips x 128 tokens
    results["attention_fwd_bwd_probe_lvef"] = attention_times(batch=64, heads=4, tokens=256, head_dim=32)

    if not args.skip_loader:
        results.update(_loader_figures(args.loader_world, results["cpu_tiny_jepa"]["clips_per_s"]))

    for model, batch, size in (("vits", 2, 112), ("vitb", 1, 224)):
        enc = preset_module(model, "jepa").encoder
        results[f"masked_vs_full_{model}_16x{size}_b{batch}"] = masked_vs_full(
            enc, batch, 16, size, keep_fraction=0.2, warmup=1, repeat=3, device=device
        )

    from echojepa.probe.bench import heads_per_backbone_pass

    small = preset_module("cpu_small", "jepa").encoder
    cpu_width = int(_probe_preset("attentive_cpu")["width"])  # as the demo probes
    for depth in (1, 2, 4):
        results[f"probe_12_heads_per_pass_cpu_small_16x112_depth{depth}"] = heads_per_backbone_pass(
            small, 16, 112, batch_size=8, num_heads=12, depth=depth, width=cpu_width
        )
    for kind in ("linear", "mlp"):
        results[f"probe_12_heads_per_pass_cpu_small_16x112_{kind}"] = heads_per_backbone_pass(
            small, 16, 112, batch_size=8, num_heads=12, kind=kind
        )
    from echojepa.probe.bench import attention_form_step_times, head_precision_step_times

    # the demo LVEF probe's training step in float32 vs bf16 autocast (probe.precision: auto)
    results["probe_head_fp32_vs_bf16_demo_lvef"] = head_precision_step_times(rounds=args.precision_rounds)
    # the same bf16 step with the attention form echojepa.models.attention chooses vs the explicit one
    rounds = args.precision_rounds
    results["probe_head_bf16_attention_form_demo_lvef"] = attention_form_step_times(rounds=rounds)
    from echojepa.probe.bench import heads_flops_ratio

    # the reference LVEF protocol (16 frames x 112 px, 2 segments = 2 x 392 tokens) with the reference
    # probe's attention heads: what FLOPs allow, counting the folded cross-attention the heads run
    ref = _probe_preset("attentive")
    for model in ("vitl", "vitg"):
        for depth in (1, 2, 4):
            results[f"probe_12_heads_flops_{model}_lvef_protocol_depth{depth}"] = heads_flops_ratio(
                model,
                392,
                segments=2,
                depth=depth,
                attn_heads=int(ref["head"]["num_heads"]),
                width=int(ref["width"]),
            )
    if args.sweep_world:
        from echojepa.probe.bench import sweep_cached_vs_recomputed

        results["probe_sweep_cached_vs_recomputed"] = sweep_cached_vs_recomputed(_sweep_cfg(args.sweep_world))

    if not args.skip_vitl:
        m = preset_module("vitl", "jepa")
        results["vitl_jepa_16x224_b1"] = pretrain_step_throughput(
            m, batch_size=1, warmup=1, repeat=1, device=device
        )

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, figures in results.items():
        table = Table(title=name)
        table.add_column("figure")
        table.add_column("value", justify="right")
        for k, v in figures.items():
            table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
        console.print(table)
    for table in _side_by_side(results):
        console.print(table)
    return 0


def _side_by_side(results: dict[str, dict]) -> list[Table]:
    """The precision and loader figures as two comparison tables (one row per model / input)."""
    tables = []
    native = results["device"].get("cpu_native_bf16")
    prec = Table(title=f"float32 vs bf16 autocast, median steps; CPU with native bf16: {native}")
    for col in ("model", "fp32 s", "bf16 s", "bf16 speed", "loss diff"):
        prec.add_column(col, justify="left" if col == "model" else "right")
    for name, f in results.items():
        if name.startswith("fp32_vs_bf16_"):
            prec.add_row(
                name.removeprefix("fp32_vs_bf16_"),
                f"{f['fp32_step_s']:.3g}",
                f"{f['bfloat16_step_s']:.3g}",
                f"{f['bfloat16_speedup_vs_fp32']:.2f}x",
                f"{f['bfloat16_loss_rel_diff']:.1e}",
            )
    tables.append(prec)
    loader = Table(title="pretraining loader (one worker, one thread) vs the cpu_tiny JEPA step, clips/s")
    for col in ("input", "decoding", "cached", "build s/video", "model step"):
        loader.add_column(col, justify="left" if col == "input" else "right")
    for name, f in results.items():
        if name.startswith("loader_"):
            loader.add_row(
                name.removeprefix("loader_").split("_vs_")[0],
                f"{f['decode_clips_per_s']:.1f}",
                f"{f['cached_clips_per_s']:.1f}",
                f"{f['cache_build_s_per_video']:.3f}",
                f"{f['model_step_clips_per_s']:.1f}",
            )
    if loader.row_count:
        tables.append(loader)
    return tables


if __name__ == "__main__":
    raise SystemExit(main())
