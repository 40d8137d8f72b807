"""Probe heads, the K-head bank, its trainer, and probe checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from echojepa.config import to_plain
from echojepa.paths import CONF_DIR
from echojepa.probe.bank import HeadSpec, ProbeBank, build_probe_bank, grid_specs
from echojepa.probe.bench import benchmark_heads
from echojepa.probe.checkpoint import ProbeCheckpointError, check_probe_fits, load_probe, save_probe
from echojepa.probe.fit import ProbeSchedule, predict_bank, probe_schedule, select_best_head, train_probe_bank
from echojepa.probe.heads import AttentiveProbe, LinearProbe, MLPProbe
from echojepa.probe.task import ProbeTask
from echojepa.probe.training import bank_config

D = 16
ATT = {"embed_dim": D, "out_dim": 1, "depth": 2, "num_heads": 4}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: thread hand-offs on a shared 2-core machine cost more than the math."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomise_affine(module: torch.nn.Module) -> None:
    """Non-trivial LayerNorm affines and biases, so folded algebra is really exercised."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.normal_()
                m.bias.normal_()
            if isinstance(m, torch.nn.Linear):
                m.bias.normal_()


def _reference_attentive(probe: AttentiveProbe, x: torch.Tensor) -> torch.Tensor:
    """The textbook (unfolded) attentive probe computed with plain nn layers: [B, N, D] -> [B, out]."""
    h_count = probe.config["num_heads"]
    for blk in probe.pooler.blocks:
        b, n, d = x.shape
        qkv = blk.attn.qkv(blk.norm1(x)).view(b, n, 3, h_count, d // h_count).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(b, n, d)
        x = x + blk.attn.proj(o)
        x = x + blk.mlp.fc2(F.gelu(blk.mlp.fc1(blk.norm2(x))))
    cb = probe.pooler.cross_attention_block
    b, n, d = x.shape
    q = probe.pooler.query_tokens.expand(b, -1, -1)
    qq = cb.xattn.q(q).view(b, -1, h_count, d // h_count).transpose(1, 2)
    kv = cb.xattn.kv(cb.norm1(x)).view(b, n, 2, h_count, d // h_count).permute(2, 0, 3, 1, 4)
    q = q + F.scaled_dot_product_attention(qq, kv[0], kv[1]).transpose(1, 2).reshape(b, -1, d)
    q = q + cb.mlp.fc2(F.gelu(cb.mlp.fc1(cb.norm2(q))))
    return probe.linear(q.mean(dim=1))


def _regression_batches(n_batches: int, seed: int, b: int = 8, n: int = 6, scale: float = 1.0) -> list[dict]:
    """Targets depend on the tokens (mean of channel 0), so probes can learn them."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        tokens = torch.randn(b, n, D, generator=g)
        out.append({"tokens": tokens, "mask": None, "target": 50.0 + scale * 10.0 * tokens[:, :, 0].mean(1)})
    return out


# --------------------------------------------------------------------------------------------- heads


def test_attentive_probe_matches_unfolded_reference_computation():
    torch.manual_seed(0)
    probe = AttentiveProbe(D, 3, depth=3, num_heads=4).double()
    _randomise_affine(probe)
    x = torch.randn(5, 7, D, dtype=torch.float64)
    torch.testing.assert_close(probe(x), _reference_attentive(probe, x), atol=1e-10, rtol=1e-10)


def test_attentive_probe_output_shapes_single_head_and_segments():
    probe = AttentiveProbe(D, 4, depth=2, num_heads=4, num_queries=2)
    assert probe(torch.randn(3, 10, D)).shape == (3, 4)
    # [B, S, N, D] segments are concatenated along the token axis
    seg = torch.randn(3, 2, 5, D)
    torch.testing.assert_close(probe(seg), probe(seg.flatten(1, 2)))


@pytest.mark.parametrize(
    "cls,kwargs",
    [(AttentiveProbe, {"depth": 2, "num_heads": 4}), (LinearProbe, {}), (MLPProbe, {"hidden_dim": 8})],
)
def test_padded_tokens_do_not_change_the_output(cls, kwargs):
    torch.manual_seed(1)
    probe = cls(embed_dim=D, out_dim=2, **kwargs).eval()
    real = torch.randn(2, 5, D)
    padded = torch.cat([real, torch.full((2, 3, D), float("nan"))], dim=1)  # garbage, even NaN
    padded[1, 5:] = 1e4
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, 5:] = True
    torch.testing.assert_close(probe(padded, key_padding_mask=mask), probe(real), atol=1e-5, rtol=1e-5)


def test_fully_padded_sample_is_refused():
    probe = AttentiveProbe(**ATT)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    mask[0] = True
    with pytest.raises(ValueError, match="pads every token"):
        probe(torch.randn(2, 4, D), key_padding_mask=mask)


# ---------------------------------------------------------------------------------------------- bank


def test_bank_forward_stacks_heads_in_one_pass():
    bank = ProbeBank("attentive", ATT, grid_specs([1e-3, 1e-4], [0.1], seeds=[0, 1]))
    x = torch.randn(3, 6, D)
    out = bank(x)  # [K, B, out]
    assert out.shape == (4, 3, 1)
    for k, head in enumerate(bank.heads):
        torch.testing.assert_close(out[k], head(x), atol=1e-6, rtol=1e-6)


def test_head_init_depends_on_its_seed_not_its_position():
    a = ProbeBank("attentive", ATT, [HeadSpec(1e-3, 0.1, seed=3), HeadSpec(1e-3, 0.1, seed=5)])
    b = ProbeBank("attentive", ATT, [HeadSpec(1e-2, 0.0, seed=5)])
    for (name, pa), pb in zip(a.heads[1].named_parameters(), b.heads[0].parameters()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.heads[0].linear.weight, a.heads[1].linear.weight)


def test_param_groups_carry_each_heads_lr_and_wd_without_decay_on_norms_and_biases():
    specs = grid_specs([1e-3, 1e-4], [0.01, 0.4])
    bank = ProbeBank("linear", {"embed_dim": D, "out_dim": 1}, specs)
    groups = bank.param_groups()
    assert len(groups) == 2 * len(specs)
    for k, spec in enumerate(specs):
        decay, no_decay = groups[2 * k], groups[2 * k + 1]
        assert decay["head"] == no_decay["head"] == k
        assert decay["lr"] == no_decay["lr"] == spec.lr
        assert decay["weight_decay"] == spec.wd and no_decay["weight_decay"] == 0.0
        assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    n_params = sum(p.numel() for g in groups for p in g["params"])
    assert n_params == sum(p.numel() for p in bank.parameters())


@pytest.mark.parametrize("heads_per_pass", [None, 2])
def test_k_heads_in_one_pass_equal_k_separate_runs(heads_per_pass):
    specs = [HeadSpec(3e-3, 0.01, seed=0), HeadSpec(1e-3, 0.4, seed=1), HeadSpec(5e-4, 0.1, seed=2)]
    task = ProbeTask("regression", target_mean=50.0, target_std=10.0)
    train, val = _regression_batches(10, seed=0), _regression_batches(2, seed=1)
    bank = ProbeBank("attentive", ATT, specs, heads_per_pass=heads_per_pass)
    res = train_probe_bank(bank, train, val, task, epochs=2, progress=False)  # 20 steps
    assert int(bank.trained_steps) == 20
    together = predict_bank(bank, val)
    for k, spec in enumerate(specs):
        single = ProbeBank("attentive", ATT, [spec])
        res_k = train_probe_bank(single, train, val, task, epochs=2)
        for (name, p_bank), p_single in zip(bank.heads[k].named_parameters(), single.heads[0].parameters()):
            torch.testing.assert_close(p_bank, p_single, atol=1e-6, rtol=0, msg=name)
        # compared in z units (what the head outputs): 1e-6 at EF ~ 50 would be below float32 resolution
        z_single = (predict_bank(single, val, head=0) - task.target_mean) / task.target_std
        np.testing.assert_allclose(
            (together[k] - task.target_mean) / task.target_std, z_single, atol=1e-6, rtol=0
        )
        assert res.val_metrics[k] == pytest.approx(res_k.val_metrics[0], abs=1e-5)


# ------------------------------------------------------------------------------------------- trainer


def test_min_steps_lengthens_training_on_a_small_set_in_whole_epochs():
    bank = ProbeBank("linear", {"embed_dim": D, "out_dim": 1}, grid_specs([1e-3], [0.01]))
    train, val = _regression_batches(3, seed=0), _regression_batches(1, seed=1)
    res = train_probe_bank(bank, train, val, ProbeTask("regression"), epochs=2, min_steps=10)
    assert res.steps == int(bank.trained_steps) == 12  # ceil(10 / 3) = 4 epochs of 3 batches
    assert len(res.history) == 4 and res.chosen["epochs"] == 4 and res.chosen["steps"] == 12
    # a large enough set keeps its epochs
    res = train_probe_bank(bank, train, val, ProbeTask("regression"), epochs=5, min_steps=10)
    assert res.steps == 15


def test_fewer_validation_passes_choose_the_same_head_from_the_last_epoch():
    specs = grid_specs([3e-2, 1e-3, 1e-6], [0.01])
    train, val = _regression_batches(2, seed=0), _regression_batches(1, seed=1)
    runs = {}
    for passes in (None, 3):
        bank = ProbeBank("linear", {"embed_dim": D, "out_dim": 1}, specs)
        task = ProbeTask("regression")
        runs[passes] = train_probe_bank(bank, train, val, task, epochs=7, val_passes=passes)
    validated = [h["epoch"] for h in runs[3].history if h["val"] is not None]
    assert validated == [2, 5, 6] and all(h["val"] is not None for h in runs[None].history)
    assert runs[3].best_head == runs[None].best_head
    assert runs[3].val_metrics == pytest.approx(runs[None].val_metrics)


def test_best_head_is_chosen_on_validation_even_when_another_wins_on_test():
    # head 0 learns (lr 3e-2), head 1 barely moves (lr 1e-7) and keeps predicting ~ the train mean
    specs = [HeadSpec(3e-2, 0.0, seed=0), HeadSpec(1e-7, 0.0, seed=0)]
    task = ProbeTask("regression")
    train, val = _regression_batches(8, seed=0, scale=3.0), _regression_batches(3, seed=1, scale=3.0)
    bank = ProbeBank("linear", {"embed_dim": D, "out_dim": 1}, specs)
    res = train_probe_bank(bank, train, val, task, epochs=3)
    # the test split: targets no longer follow the tokens; they sit at the train mean
    test = _regression_batches(3, seed=2)
    for batch in test:
        batch["target"] = torch.full_like(batch["target"], res.task.target_mean)
    test_mae = [np.mean(np.abs(predict_bank(bank, test, head=k) - res.task.target_mean)) for k in range(2)]
    assert int(np.argmin(test_mae)) == 1  # the test split would pick head 1 ...
    assert res.val_metrics[0] < res.val_metrics[1]
    assert res.best_head == 0  # ... but selection used validation only
    assert res.chosen == {
        "head": 0,
        "lr": 3e-2,
        "wd": 0.0,
        "val_metric": res.val_metrics[0],
        "val_name": "mae",
        "epochs": 3,
        "steps": 24,
        "probe": {**bank.describe(), "precision": "32-true"},
    }


def test_select_best_head_skips_diverged_heads_and_respects_direction():
    assert select_best_head([3.0, float("nan"), 2.0], higher_is_better=False) == 2
    assert select_best_head([0.3, float("nan"), 0.2], higher_is_better=True) == 0
    with pytest.raises(ValueError, match="diverged"):
        select_best_head([float("nan"), float("inf")], higher_is_better=False)


def test_regression_targets_z_scored_with_train_stats_and_predictions_denormalised():
    train, val = _regression_batches(4, seed=0, scale=2.0), _regression_batches(2, seed=1, scale=2.0)
    targets = torch.cat([b["target"] for b in train]).double().numpy()
    bank = ProbeBank("linear", {"embed_dim": D, "out_dim": 1}, [HeadSpec(1e-3, 0.0)])
    res = train_probe_bank(bank, train, val, ProbeTask("regression"), epochs=1)
    assert res.task.target_mean == pytest.approx(targets.mean())
    assert res.task.target_std == pytest.approx(targets.std(ddof=1))
    bank.eval()
    with torch.no_grad():
        z = torch.cat([bank(b["tokens"])[0, :, 0] for b in val]).double().numpy()
    expected = z * targets.std(ddof=1) + targets.mean()
    np.testing.assert_allclose(predict_bank(bank, val, head=0), expected, rtol=1e-5)
    task = res.task
    t = torch.tensor([40.0, 60.0])
    torch.testing.assert_close(task.denormalise(task.normalise(t)), t)


def test_smooth_l1_loss_is_in_z_units():
    task = ProbeTask("regression", target_mean=55.0, target_std=12.0, smooth_l1_beta=1.0)
    target = torch.tensor([55.0, 79.0, 43.0, 56.2])
    outputs = torch.tensor([[[0.5], [0.0], [-1.0], [0.1]], [[0.0], [2.0], [-1.0], [0.1]]])  # [K=2, B=4, 1]
    z = (target - 55.0) / 12.0
    expected = torch.stack([F.smooth_l1_loss(outputs[k, :, 0], z) for k in range(2)])
    torch.testing.assert_close(task.loss(outputs, target), expected)
    # the same errors in real units of a 10x wider target scale give the same loss
    wide = ProbeTask("regression", target_mean=550.0, target_std=120.0)
    torch.testing.assert_close(wide.loss(outputs, target * 10.0), expected)
    assert task.loss(outputs, target)[1] == pytest.approx(0.0)  # head 1 is exact in z units


def test_classification_loss_is_cross_entropy_and_predictions_are_probabilities():
    task = ProbeTask("classification", num_classes=3)
    outputs = torch.randn(2, 5, 3)
    target = torch.tensor([0, 2, 1, 1, 0])
    expected = torch.stack([F.cross_entropy(outputs[k], target) for k in range(2)])
    torch.testing.assert_close(task.loss(outputs, target), expected)
    probs = task.predictions(outputs)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5))
    assert task.val_metric == "balanced_accuracy" and task.higher_is_better


def test_classification_bank_trains_and_scores_balanced_accuracy():
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(6):
        y = torch.randint(0, 3, (8,), generator=g)
        tokens = torch.randn(8, 4, D, generator=g)
        tokens[torch.arange(8), :, y] += 3.0  # class c lights up channel c
        batches.append({"tokens": tokens, "mask": None, "target": y})
    bank = ProbeBank("mlp", {"embed_dim": D, "out_dim": 3}, grid_specs([3e-3], [0.01]))
    res = train_probe_bank(
        bank, batches[:4], batches[4:], ProbeTask("classification", num_classes=3), epochs=4
    )
    assert res.val_metric_name == "balanced_accuracy"
    assert res.val_metrics[0] > 0.6
    assert predict_bank(bank, batches[4:], head=0).shape == (16, 3)


# --------------------------------------------------------------------------------------- checkpoints


def _trained_bank() -> tuple[ProbeBank, ProbeTask, list[dict]]:
    val = _regression_batches(1, seed=1)
    bank = ProbeBank("attentive", ATT, grid_specs([1e-3, 3e-4], [0.1]))
    res = train_probe_bank(bank, _regression_batches(2, seed=0), val, ProbeTask("regression"), epochs=1)
    return bank, res.task, val


def test_probe_checkpoint_round_trip_reproduces_predictions(tmp_path):
    bank, task, val = _trained_bank()
    path = tmp_path / "probe.pt"
    save_probe(path, bank, task, {"backbone": "demo", "best_head": 1})
    loaded, loaded_task, meta = load_probe(path)
    assert meta == {"backbone": "demo", "best_head": 1}
    assert loaded_task == task
    np.testing.assert_allclose(predict_bank(loaded, val), predict_bank(bank, val), atol=1e-6)
    torch.load(path, weights_only=True)  # plain tensors and types only
    with pytest.raises(ValueError, match="meta.scale"):
        save_probe(tmp_path / "other.pt", bank, task, {"scale": np.float32(1.0)})  # would not load back


def test_load_probe_refuses_a_missing_file(tmp_path):
    with pytest.raises(ProbeCheckpointError, match="does not exist.*untrained"):
        load_probe(tmp_path / "nope.pt")


@pytest.mark.parametrize("content", [b"", b"not a torch file", None], ids=["empty", "garbage", "truncated"])
def test_load_probe_refuses_an_unreadable_file_in_one_line_without_torchs_advice(tmp_path, content):
    path = tmp_path / "probe.pt"
    if content is None:
        bank, task, _ = _trained_bank()
        save_probe(path, bank, task)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ProbeCheckpointError, match="unreadable probe checkpoint") as err:
        load_probe(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value) and "weights_only" not in str(err.value)


def test_load_probe_refuses_a_task_whose_output_size_is_not_the_heads(tmp_path):
    bank, task, _ = _trained_bank()
    path = tmp_path / "probe.pt"
    save_probe(path, bank, task)
    ckpt = torch.load(path, weights_only=True)
    ckpt["task"] = {**ckpt["task"], "kind": "classification", "num_classes": 7, "val_metric": None}
    torch.save(ckpt, path)
    with pytest.raises(ProbeCheckpointError, match="needs 7 outputs but its heads give 1"):
        load_probe(path)


def _reuse_meta(**over):
    meta = {
        "backbone": "demo", "backbone_identity": "b" * 64, "task": "rvsp", "label": "rvsp", "seed": 0,
        "train_dataset": "/data/internal", "chosen_head": 1, "chosen": {"head": 1},
    }  # fmt: skip
    return {**meta, **over}


def test_a_saved_probe_is_refused_for_another_task_label_kind_or_output_size():
    bank, task, _ = _trained_bank()  # a regression probe (1 output)
    lvef = {"backbone_identity": "b" * 64, "task": "lvef", "label": "lvef", "task_kind": "regression",
            "out_dim": 1, "probe_kind": frozenset({"attentive", "linear", "mlp"})}  # fmt: skip
    check_probe_fits("p.pt", bank, task, _reuse_meta(task="lvef", label="lvef"), lvef)  # fits
    with pytest.raises(ProbeCheckpointError, match="task 'rvsp' \\(this run needs 'lvef'\\); label 'rvsp'"):
        check_probe_fits("p.pt", bank, task, _reuse_meta(), lvef)  # an RVSP probe scoring LVEF
    view = {**lvef, "task": "rvsp", "label": "rvsp", "task_kind": "classification", "out_dim": 7}
    with pytest.raises(
        ProbeCheckpointError, match="task_kind 'regression' .*out_dim 1 \\(this run needs 7\\)"
    ):
        check_probe_fits("p.pt", bank, task, _reuse_meta(), view)
    with pytest.raises(
        ProbeCheckpointError, match="probe_kind 'attentive' \\(this run needs \\['late_fusion'"
    ):
        check_probe_fits(
            "p.pt", bank, task, _reuse_meta(), {"probe_kind": frozenset({"late_fusion", "multiview"})}
        )
    with pytest.raises(ProbeCheckpointError, match="trained on another backbone \\(demo\\)"):
        check_probe_fits("p.pt", bank, task, _reuse_meta(backbone_identity="c" * 64), lvef)
    with pytest.raises(ProbeCheckpointError, match="chosen_head 5 outside its bank of 2"):
        check_probe_fits("p.pt", bank, task, _reuse_meta(chosen_head=5), {})


def test_a_saved_probe_without_the_meta_reuse_needs_is_refused():
    bank, task, _ = _trained_bank()
    meta = _reuse_meta()
    del meta["label"], meta["train_dataset"]
    with pytest.raises(ProbeCheckpointError, match="saved without label, train_dataset in its meta"):
        check_probe_fits("p.pt", bank, task, meta, {})


def test_load_probe_refuses_keys_that_do_not_match_the_architecture(tmp_path):
    bank, task, _ = _trained_bank()
    path = tmp_path / "probe.pt"
    save_probe(path, bank, task)
    ckpt = torch.load(path, weights_only=True)
    ckpt["arch"]["head_kwargs"]["depth"] = 3  # the weights hold one self-attention block, not two
    torch.save(ckpt, path)
    with pytest.raises(ProbeCheckpointError, match="blocks.1") as err:
        load_probe(path)
    assert "\n" not in str(err.value)  # one line for the CLI


def test_load_probe_refuses_a_checkpoint_without_weights(tmp_path):
    bank, task, _ = _trained_bank()
    path = tmp_path / "probe.pt"
    save_probe(path, bank, task)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["state_dict"]
    torch.save(ckpt, path)
    with pytest.raises(ProbeCheckpointError, match="no probe weights"):
        load_probe(path)


def test_untrained_banks_are_neither_saved_nor_used_for_prediction(tmp_path):
    bank = ProbeBank("linear", {"embed_dim": D, "out_dim": 1}, [HeadSpec(1e-3, 0.0)])
    task = ProbeTask("regression", target_mean=0.0, target_std=1.0)
    with pytest.raises(ValueError, match="untrained"):
        save_probe(tmp_path / "p.pt", bank, task)
    with pytest.raises(ValueError, match="untrained"):
        predict_bank(bank, _regression_batches(1, seed=0), task=task)


# ------------------------------------------------------------------------------------ config, bench


def _probe_preset(name: str, *overrides: str) -> dict:
    """conf/probe/<name>.yaml over the probes it builds on, as echojepa-probe composes it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_plain(compose("evaluate", overrides=[f"probe={name}", *overrides]).probe)


def test_probe_configs_build_banks_with_their_grid():
    cfg = _probe_preset("attentive", "probe.grid_preset=vjepa2", "probe.head.num_heads=4")
    bank = build_probe_bank(cfg, embed_dim=D, out_dim=1)
    assert len(bank) == 20
    assert {(s.lr, s.wd) for s in bank.specs} == {
        (lr, wd) for lr in (5e-3, 3e-3, 1e-3, 3e-4, 1e-4) for wd in (0.01, 0.1, 0.4, 0.8)
    }
    assert probe_schedule(cfg).betas == (0.9, 0.999)
    rvsp = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / "rvsp.yaml"), resolve=False)
    for name in ("linear", "mlp", "multiview", "late_fusion"):
        c = _probe_preset(name)
        c["head"] = {**c["head"], **({"num_heads": 4} if "num_heads" in c["head"] else {})}
        if name in ("multiview", "late_fusion"):  # views, clips and view dropout come from the task
            c = bank_config(c, rvsp, name, list(rvsp["multiview"]["views"]))
        assert len(build_probe_bank(c, embed_dim=D, out_dim=1)) == len(c["grid"]["lr"]) * len(c["grid"]["wd"])


def test_warmup_then_cosine_schedule_reaches_the_final_lr_per_head(monkeypatch):
    bank = ProbeBank("linear", {"embed_dim": D, "out_dim": 1}, grid_specs([1e-2, 1e-3], [0.0]))
    sched = ProbeSchedule(warmup_epochs=1.0, start_lr_factor=0.0, final_lr_factor=0.1)
    seen: list[list[float]] = []
    orig_step = torch.optim.AdamW.step

    def spy(self, *a, **kw):
        seen.append([g["lr"] for g in self.param_groups[::2]])  # the weight group of each head
        return orig_step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    train, val = _regression_batches(4, 0), _regression_batches(1, 1)
    train_probe_bank(bank, train, val, ProbeTask("regression"), 3, schedule=sched)
    lrs = np.array(seen)  # [steps, heads]
    assert lrs[0] == pytest.approx([1e-2 / 4, 1e-3 / 4])  # warmup step 1 of 4
    assert lrs[3] == pytest.approx([1e-2, 1e-3])
    assert np.all(np.diff(lrs[3:, 0]) <= 1e-12)
    final = 0.1 * 1e-2 + 0.5 * 0.9 * 1e-2 * (1 + math.cos(math.pi * 7 / 8))
    assert lrs[-1, 0] == pytest.approx(final)


def test_benchmark_heads_reports_times_for_one_and_k_heads(capsys):
    out = benchmark_heads(
        num_heads=3, batch_size=2, num_tokens=8, embed_dim=D, depth=2, attn_heads=4, steps=1
    )
    assert set(out) == {"one_head_s", "k_heads_one_pass_s", "k_single_banks_s", "ratio"}
    assert "3 heads, one pass" in capsys.readouterr().out


def test_flops_floor_of_k_heads_separates_cross_attention_only_from_reference_depth():
    from echojepa.probe.bench import heads_flops_ratio

    shallow = heads_flops_ratio("vitg", tokens_per_segment=392, segments=2, depth=1)
    deep = heads_flops_ratio("vitg", tokens_per_segment=392, segments=2, depth=4)
    assert deep["backbone_gflop"] == shallow["backbone_gflop"]
    assert deep["head_gflop"] > 10 * shallow["head_gflop"]
    assert 1.0 < shallow["flops_ratio"] < 1.5 < deep["flops_ratio"] < 12.0
