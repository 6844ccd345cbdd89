"""FourierDiffusion checkpoint import: a checkpoint built here in the documented layout
(docs/FD_CHECKPOINT.md) must give the outputs of a plain re-implementation of
the original forward (nn.TransformerEncoder with the same weights); bad files fail
clearly and unknown pickled classes are never run."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from torch import nn

from fdbench.bench import BenchConfig, run_bench
from fdbench.checkpoint import load_checkpoint
from fdbench.cli import main
from fdbench.errors import CheckpointError
from fdbench.fd_import import import_fourierdiffusion
from fdbench.model import ScoreTransformer
from fdbench.sde import VESDE, VPSDE
from fdbench.spectral import chart_lambda

D, LAYERS, HEADS, F_FF, N, M = 16, 2, 4, 64, 100, 1  # N, M of the `sines` dataset


@pytest.fixture()
def fdiff(monkeypatch):
    """A fake ``fdiff.schedulers.sde`` module whose classes pickle under that path."""
    module = types.ModuleType("fdiff.schedulers.sde")
    for name in ("VPScheduler", "VEScheduler", "Unknown"):
        cls = type(name, (), {"__module__": module.__name__})
        setattr(module, name, cls)
    for name, mod in (("fdiff", types.ModuleType("fdiff")),
                      ("fdiff.schedulers", types.ModuleType("fdiff.schedulers")),
                      ("fdiff.schedulers.sde", module)):
        monkeypatch.setitem(sys.modules, name, mod)
    return module


def make_scheduler(fdiff, kind: str = "VP", frequency: bool = True):
    scheduler = getattr(fdiff, f"{kind}Scheduler")()
    lam = chart_lambda(N) if frequency else torch.ones(N)
    scheduler.__dict__.update(noise_scaling=True, eps=1e-5, G=lam, G_matrix=torch.diag(lam),
                              timesteps=torch.linspace(1e-5, 1, 10), step_size=0.1)
    if kind == "VP":
        scheduler.__dict__.update(beta_0=0.2, beta_1=15.0)
    else:
        scheduler.__dict__.update(sigma_min=0.05, sigma_max=3.0)
    return scheduler


def make_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 0.3) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    state = {"pos_encoder.embedding.weight": r(N, D, scale=1.5),  # many rows > sqrt(d)
             "time_encoder.W": r(math.ceil(D / 2), scale=30.0),
             "time_encoder.dense.weight": r(D, D), "time_encoder.dense.bias": r(D),
             "embedder.weight": r(D, M), "embedder.bias": r(D),
             "unembedder.weight": r(M, D), "unembedder.bias": r(M)}
    for i in range(LAYERS):
        p = f"backbone.layers.{i}."
        state.update({p + "self_attn.in_proj_weight": r(3 * D, D),
                      p + "self_attn.in_proj_bias": r(3 * D),
                      p + "self_attn.out_proj.weight": r(D, D),
                      p + "self_attn.out_proj.bias": r(D),
                      p + "linear1.weight": r(F_FF, D), p + "linear1.bias": r(F_FF),
                      p + "linear2.weight": r(D, F_FF), p + "linear2.bias": r(D),
                      p + "norm1.weight": 1 + r(D), p + "norm1.bias": r(D),
                      p + "norm2.weight": 1 + r(D), p + "norm2.bias": r(D)})
    return state


def save_fd(path, fdiff, *, kind: str = "VP", frequency: bool = True, **changes):
    ckpt = {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.1.0",
            "state_dict": make_state_dict(), "loops": {}, "callbacks": {},
            "optimizer_states": [], "lr_schedulers": [], "hparams_name": "kwargs",
            "hyper_parameters": {"n_channels": M, "max_len": N,
                                 "noise_scheduler": make_scheduler(fdiff, kind, frequency),
                                 "fourier_noise_scaling": frequency, "d_model": D,
                                 "num_layers": LAYERS, "n_head": HEADS,
                                 "num_training_steps": 100, "lr_max": 1e-3,
                                 "likelihood_weighting": False}}
    ckpt.update(changes)
    torch.save(ckpt, path)
    return path


def original_forward(state: dict[str, torch.Tensor], x: torch.Tensor,
                     t: torch.Tensor) -> torch.Tensor:
    """FourierDiffusion's forward written plainly with torch's own modules."""
    layer = nn.TransformerEncoderLayer(D, HEADS, F_FF, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False).eval()
    encoder.load_state_dict({k[len("backbone."):]: v for k, v in state.items()
                             if k.startswith("backbone.")})
    pos = nn.Embedding(N, D, max_norm=math.sqrt(D))
    dense, embedder, unembedder = nn.Linear(D, D), nn.Linear(M, D), nn.Linear(D, M)
    with torch.no_grad():
        pos.weight.copy_(state["pos_encoder.embedding.weight"])
        for name, module in (("time_encoder.dense", dense), ("embedder", embedder),
                             ("unembedder", unembedder)):
            module.weight.copy_(state[name + ".weight"])
            module.bias.copy_(state[name + ".bias"])
        angles = 2 * math.pi * t[:, None] * state["time_encoder.W"][None, :]
        time = dense(torch.cat([angles.sin(), angles.cos()], dim=-1)[:, :D])
        h = embedder(x) + pos(torch.arange(N)) + time[:, None, :]
        return unembedder(encoder(h))


def test_import_matches_the_original_forward(fdiff, tmp_path) -> None:
    path = save_fd(tmp_path / "epoch=3.ckpt", fdiff)
    model = import_fourierdiffusion(path)
    assert model.network.config.layout == "chart"
    assert model.sde == VPSDE(beta_min=0.2, beta_max=15.0, eps=1e-5)
    x = torch.randn(3, N, M, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([1e-3, 0.4, 1.0])
    expected = original_forward(make_state_dict(), x, t)
    with torch.no_grad():
        got = model.network(x, t)
        again = model.network(x, t)  # renormalisation applied once, not per call
        direct = ScoreTransformer.from_fourierdiffusion(path)(x, t)
    assert (got - expected).abs().max() <= 1e-5
    assert torch.equal(got, again) and torch.equal(got, direct)
    # the renormalisation matters: the raw table gives other outputs
    raw = ScoreTransformer(model.network.config).eval()
    raw.load_state_dict(make_state_dict())
    with torch.no_grad():
        assert (raw(x, t) - expected).abs().max() > 1e-3


def test_ve_time_domain_checkpoint(fdiff, tmp_path) -> None:
    path = save_fd(tmp_path / "ve.ckpt", fdiff, kind="VE", frequency=False)
    model = import_fourierdiffusion(path, domain="time")
    assert model.network.config.layout == "time"
    assert model.sde == VESDE(sigma_min=0.05, sigma_max=3.0, eps=1e-5)


def test_cli_import_then_bench_uncached_and_e2crf(fdiff, tmp_path) -> None:
    path = save_fd(tmp_path / "m.ckpt", fdiff)
    out = tmp_path / "imported"
    assert main(["import-fd", str(path), "--out", str(out), "--data", "sines"]) == 0
    model = load_checkpoint(out)
    x, t = torch.randn(2, N, M), torch.tensor([0.1, 0.9])
    with torch.no_grad():
        assert (model.network(x, t) - original_forward(make_state_dict(), x, t)).abs().max() \
            <= 1e-5
    config = BenchConfig(policies=("e2crf",), batch_sizes=(2,), n_steps=5, num_samples=3,
                         rounds=1, warmup_steps=2, n_directions=10, n_boot=2,
                         judge_repeats=0)
    records = run_bench(out, tmp_path / "bench", config, progress=False)
    timed = {r["policy"] for r in records if r["kind"] == "timing"}
    scored = {r["policy"] for r in records if r["kind"] == "quality"}
    assert {"uncached", "e2crf"} <= timed and {"uncached", "e2crf"} <= scored


def test_unknown_pickled_class_is_refused(fdiff, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": fdiff.Unknown()}}, bad)
    with pytest.raises(CheckpointError, match=r"fdiff\.schedulers\.sde\.Unknown"):
        import_fourierdiffusion(bad)

    class Payload:  # would run print() on a plain torch.load(weights_only=False)
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, evil)
    with pytest.raises(CheckpointError, match=r"builtins\.print"):
        import_fourierdiffusion(evil)
    assert "pwned" not in capsys.readouterr().out


def test_bad_files_fail_clearly(fdiff, tmp_path, capsys) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        import_fourierdiffusion(tmp_path / "missing.ckpt")
    good = save_fd(tmp_path / "good.ckpt", fdiff).read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="cannot read"):
        import_fourierdiffusion(tmp_path / "cut.ckpt")
    torch.save({"weights": 1}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a FourierDiffusion"):
        import_fourierdiffusion(tmp_path / "other.ckpt")
    state = make_state_dict()
    state["backbone.layers.0.linear2.weight"] = torch.zeros(D, F_FF + 1)
    with pytest.raises(CheckpointError, match="wrong shapes"):
        import_fourierdiffusion(save_fd(tmp_path / "shape.ckpt", fdiff, state_dict=state))
    del state["embedder.bias"]
    with pytest.raises(CheckpointError, match="missing.*embedder.bias"):
        import_fourierdiffusion(save_fd(tmp_path / "keys.ckpt", fdiff, state_dict=state))
    assert main(["import-fd", str(tmp_path / "cut.ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert "fdbench: error: cannot read" in capsys.readouterr().err


# ---------------------------------------------------------------- edge cases (issue 15, 8)


def test_no_noise_scaling_needs_the_domain(fdiff, tmp_path) -> None:
    """fourier_noise_scaling=False is allowed in both domains by FD's train script and
    used to import silently as a time model: now train_config.yaml or --domain says."""
    run = tmp_path / "lightning_logs" / "run1"
    (run / "checkpoints").mkdir(parents=True)
    path = save_fd(run / "checkpoints" / "epoch=1-val_loss=0.5.ckpt", fdiff,
                   frequency=False)
    with pytest.raises(CheckpointError, match="state it with --domain time|frequency"):
        import_fourierdiffusion(path)
    assert import_fourierdiffusion(path, domain="time").network.config.layout == "time"
    with pytest.raises(CheckpointError, match="without noise scaling .* not supported"):
        import_fourierdiffusion(path, domain="frequency")
    config = run / "train_config.yaml"  # FD's OmegaConf.save of the hydra config
    config.write_text("random_seed: 42\nfourier_transform: true\nstandardize: true\n"
                      "datamodule:\n  fourier_transform: ${fourier_transform}\n")
    with pytest.raises(CheckpointError, match="without noise scaling .* not supported"):
        import_fourierdiffusion(path)
    config.write_text("fourier_transform: false\ndatamodule:\n  fourier_transform: "
                      "${fourier_transform}\n")
    assert import_fourierdiffusion(path).network.config.layout == "time"
    with pytest.raises(CheckpointError, match="contradicts .*train_config.yaml"):
        import_fourierdiffusion(path, domain="frequency")
    frequency = save_fd(tmp_path / "f.ckpt", fdiff)
    with pytest.raises(CheckpointError, match="--domain time contradicts"):
        import_fourierdiffusion(frequency, domain="time")


@pytest.mark.parametrize("kind", ["MLP", "LSTM"])
def test_mlp_and_lstm_score_models_are_named(fdiff, tmp_path, kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    if kind == "MLP":  # FD's MLPScoreModule: ModuleList of Sequential blocks, d_mlp
        state = {"embedder.weight": torch.randn(D, N * M, generator=g),
                 "backbone.0.0.weight": torch.randn(64, D, generator=g),
                 "backbone.0.0.bias": torch.randn(64, generator=g)}
        hparams = {"d_mlp": 64}
    else:  # FD's LSTMScoreModule: nn.LSTM layers
        state = {"embedder.weight": torch.randn(D, M, generator=g),
                 "backbone.0.weight_ih_l0": torch.randn(4 * D, D, generator=g)}
        hparams = {}
    path = tmp_path / f"{kind}.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {
        "n_channels": M, "max_len": N, "d_model": D, "num_layers": 2,
        "noise_scheduler": make_scheduler(fdiff), "fourier_noise_scaling": True,
        **hparams}}, path)
    with pytest.raises(CheckpointError, match=rf"unsupported score model \({kind}\)"):
        import_fourierdiffusion(path)


def test_plain_numpy_data_outside_the_model_does_not_block(fdiff, tmp_path, capsys) -> None:
    import numpy as np

    callbacks = {"ModelCheckpoint{'monitor': 'val/loss'}": {
        "best_model_score": np.float64(0.25), "current_score": np.float32(0.5),
        "best_k_models": {"a.ckpt": np.array([0.25, 0.3])}, "kth_value": np.int64(3)}}
    path = save_fd(tmp_path / "cb.ckpt", fdiff, callbacks=callbacks)
    model = import_fourierdiffusion(path)
    assert model.network.config.layout == "chart"

    class Payload:  # still refused wherever it sits
        def __reduce__(self):
            return (print, ("pwned",))

    evil = save_fd(tmp_path / "evil-cb.ckpt", fdiff, callbacks={"x": Payload()})
    with pytest.raises(CheckpointError, match=r"builtins\.print"):
        import_fourierdiffusion(evil)
    assert "pwned" not in capsys.readouterr().out


def test_directory_path_finds_its_ckpt(fdiff, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="is a directory with no .ckpt"):
        import_fourierdiffusion(empty)
    one = tmp_path / "one"
    (one / "checkpoints").mkdir(parents=True)
    save_fd(one / "checkpoints" / "last.ckpt", fdiff)
    assert import_fourierdiffusion(one).meta["imported_from"].endswith("last.ckpt")
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    for loss in ("0.30", "0.12", "0.50"):
        save_fd(run / f"epoch=3-val_loss={loss}.ckpt", fdiff)
    best = import_fourierdiffusion(run.parent).meta["imported_from"]
    assert best.endswith("epoch=3-val_loss=0.12.ckpt")  # FD's get_best_checkpoint rule
    save_fd(run / "last.ckpt", fdiff)
    with pytest.raises(CheckpointError, match="directory with 4 .ckpt files .* name one"):
        import_fourierdiffusion(run)


def test_out_is_not_overwritten_without_force(fdiff, tmp_path, capsys) -> None:
    path = save_fd(tmp_path / "m.ckpt", fdiff)
    out = tmp_path / "imported"
    assert main(["import-fd", str(path), "--out", str(out)]) == 0
    assert "re-import with --data" in capsys.readouterr().out
    before = (out / "config.json").read_bytes()
    assert main(["import-fd", str(path), "--out", str(out), "--data", "sines"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not empty" in err[0] and "--force" in err[0]
    assert (out / "config.json").read_bytes() == before
    assert main(["import-fd", str(path), "--out", str(out), "--data", "sines",
                 "--force"]) == 0
    assert (out / "config.json").read_bytes() != before
    (tmp_path / "afile").write_text("x")
    assert main(["import-fd", str(path), "--out", str(tmp_path / "afile")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_fd_standardisation_full_set_unbiased(fdiff, tmp_path) -> None:
    from fdbench.data import load_dataset
    from fdbench.spectral import chart

    path = save_fd(tmp_path / "m.ckpt", fdiff)
    model = import_fourierdiffusion(path, data="sines", standardise="fd")
    split = load_dataset("sines")
    x = chart(torch.cat([split.train, split.test])).double()
    assert torch.allclose(model.standardiser.mean.double(), x.mean(0), atol=1e-6)
    assert torch.allclose(model.standardiser.std.double(), x.std(0, correction=1)
                          .clamp_min(1e-6), rtol=1e-5, atol=1e-7)
    ours = import_fourierdiffusion(path, data="sines").standardiser
    assert not torch.allclose(ours.std, model.standardiser.std)  # a different rule
    assert "unbiased" in model.meta["standardiser"]


def test_kaggle_csv_with_its_label_column(fdiff, tmp_path, capsys) -> None:
    """The paper's mitbih_train.csv layout: no header, N values then the class label."""
    from fdbench.data import LoadOptions, load_dataset

    rows = torch.randn(30, N, generator=torch.Generator().manual_seed(2))
    labels = torch.randint(0, 5, (30, 1), generator=torch.Generator().manual_seed(3))
    csv = tmp_path / "mitbih_train.csv"
    csv.write_text("\n".join(",".join(f"{v:.6e}" for v in [*r.tolist(), float(lab)])
                             for r, lab in zip(rows, labels, strict=True)) + "\n")
    path = save_fd(tmp_path / "m.ckpt", fdiff)
    with pytest.raises(CheckpointError, match=r"\(101, 1\).*--label-column -1"):
        import_fourierdiffusion(path, data=str(csv))
    out = tmp_path / "imported"
    assert main(["import-fd", str(path), "--out", str(out), "--data", str(csv),
                 "--label-column", "-1"]) == 0
    meta = load_checkpoint(out).meta
    assert meta["data_source"]["options"]["label_column"] == "-1"
    split = load_dataset(str(csv), options=LoadOptions(label_column="-1"))
    assert split.n_steps == N


def test_bench_without_data_says_to_reimport(fdiff, tmp_path) -> None:
    from fdbench.data import DataSourceError, dataset_for_checkpoint

    path = save_fd(tmp_path / "m.ckpt", fdiff)
    out = tmp_path / "imported"
    assert main(["import-fd", str(path), "--out", str(out)]) == 0
    with pytest.raises(DataSourceError, match="re-import it: fdbench import-fd .*--data"):
        dataset_for_checkpoint(load_checkpoint(out).meta)
