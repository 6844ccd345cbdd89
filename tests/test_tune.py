"""``fdbench tune`` (issue 16): the bisection on a known monotone curve, unmet targets,
disjoint calibration and validation noise, resumable trial records, the CLI's error paths
and one end-to-end run on a tiny random-weights checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from fdbench.cache import POLICY_PRESETS, parse_policy
from fdbench.cli import main
from fdbench.sweep_points import CACHE_POINTS
from fdbench.tune.config import UNCACHED, Sampler, Setting, TuneConfig
from fdbench.tune.knobs import (
    FEWER_STEPS,
    cache_knob,
    geometric_ladder,
    steps_ladder,
    tunable_methods,
)
from fdbench.tune.runner import Tuner
from fdbench.tune.scoring import validate_score
from fdbench.tune.search import Candidate, Outcome, bisect_ladder, confirm, search_candidates
from fdbench.tune.seeds import VALIDATION_FIRST, SeedOverlapError, SeedPlan, check_fresh
from fdbench.tune.store import MixedSettingsError, TrialStore
from fdbench.tune.targets import Target, TargetError, parse_target

# ---------------------------------------------------------------- targets


def test_targets_parse_and_bad_ones_are_refused() -> None:
    assert parse_target("paired_error<=0.01") == Target("paired_error", "<=", 0.01)
    assert parse_target(" sw_ratio < 1.1 ").op == "<"
    target = parse_target("discriminative_score<=0.1")
    assert target.met(0.1) and not target.met(0.1000001) and not target.met(float("nan"))
    assert not parse_target("sw_ratio<1.1").met(1.1)
    for bad in ("paired_error", "paired_error<=abc", "paired_error>=0.01", "fid<=1",
                "paired_error<=-1", "paired_error<=inf", ""):
        with pytest.raises(TargetError):
            parse_target(bad)


# ---------------------------------------------------------------- the search, on a toy curve


def curve(slope: float, calls: list | None = None):
    """A toy trial: quality = slope * value (monotone), speedup = value."""
    def evaluate(value: float) -> Outcome:
        if calls is not None:
            calls.append(value)
        return Outcome(speedup=float(value), quality=slope * value)
    return evaluate


def test_bisection_finds_the_boundary_of_a_monotone_curve_exactly_on_integers() -> None:
    ladder = tuple(range(1, 41))
    calls: list = []
    target = Target("paired_error", "<=", 0.0205)        # boundary: 20 meets, 21 fails
    search = bisect_ladder(ladder, curve(0.001, calls), target, budget=10, probe=False)
    assert search.converged
    assert ladder[search.last_met] == 20 and ladder[search.first_failed] == 21
    assert len(calls) == len(set(calls)) <= 10
    assert search.non_monotone(target) == []
    best = search_candidates([([f"v={v}" for v in ladder], search)], target)[0]
    assert best.spec == "v=20"


@pytest.mark.parametrize("threshold", [0.013, 0.2, 1.7, 6.0])
def test_bisection_on_a_threshold_ladder_is_within_one_rung(threshold: float) -> None:
    ladder = geometric_ladder(0.005, 9.0, 1.25)
    boundary = threshold / 0.01                            # quality = 0.01 * value
    search = bisect_ladder(ladder, curve(0.01), Target("sw_ratio", "<=", threshold), budget=8)
    assert search.converged
    low = ladder[search.last_met]
    high = ladder[search.first_failed] if search.first_failed is not None else None
    assert low <= boundary and (high is None or high > boundary)
    if high is not None:                                   # tolerance: one rung
        assert high / low <= 1.25 * 1.001


def test_aggressive_end_meeting_is_one_trial_and_mild_end_failing_is_unmet() -> None:
    calls: list = []
    easy = bisect_ladder((1, 2, 3, 4), curve(0.001, calls), Target("paired_error", "<=", 1.0), 5)
    assert easy.last_met == 3 and calls == [4]
    calls.clear()
    hard = Target("paired_error", "<=", 1e-9)
    unmet = bisect_ladder((1, 2, 3, 4), curve(0.001, calls), hard, 5)
    assert unmet.last_met is None and unmet.first_failed == 0 and calls == [4, 1]
    assert search_candidates([(["a", "b", "c", "d"], unmet)], hard) == []
    assert confirm([], lambda spec: Outcome(1, 0), hard, 3) == (None, [])


def test_non_monotone_curves_are_detected_by_probes_past_the_boundary() -> None:
    def bumpy(value: float) -> Outcome:                   # fails at 5..8, meets again at 12+
        return Outcome(value, 0.0 if value <= 4 or value >= 12 else 1.0)
    target = Target("paired_error", "<=", 0.5)
    search = bisect_ladder(tuple(range(1, 21)), bumpy, target, budget=4, probe=True)
    assert search.ladder[search.last_met] == 20          # the aggressive end meets: done
    search = bisect_ladder(tuple(range(1, 16)), lambda v: Outcome(v, 0.0 if v <= 4 or 12 <= v
                                                                  <= 14 else 1.0),
                           target, budget=12, probe=True)
    assert search.non_monotone(target), "a meeting rung past a failing one must be reported"
    best = search_candidates([([str(v) for v in range(1, 16)], search)], target)[0]
    assert int(best.spec) >= 12                          # the fastest meeting rung is kept


def test_confirmation_walks_down_to_the_first_candidate_that_still_meets() -> None:
    target = Target("paired_error", "<=", 0.01)
    candidates = [Candidate("fast", Outcome(5, 0.009)), Candidate("mid", Outcome(3, 0.005)),
                  Candidate("slow", Outcome(2, 0.001))]
    full = {"fast": 0.02, "mid": 0.008, "slow": 0.002}
    pick, tried = confirm(candidates, lambda s: Outcome(0, full[s]), target, limit=3)
    assert pick.spec == "mid" and [c.spec for c in tried] == ["fast", "mid"]
    pick, tried = confirm(candidates, lambda s: Outcome(0, full[s]), target, limit=1)
    assert pick.spec == "slow" and [c.spec for c in tried] == ["fast", "slow"]
    full["slow"] = 0.0101
    pick, tried = confirm(candidates, lambda s: Outcome(0, full[s]), target, limit=1)
    assert pick is None and len(tried) == 2               # never relaxed to pass


# ---------------------------------------------------------------- knobs


def test_every_sweep_method_has_a_knob_on_the_sweeps_field_and_direction() -> None:
    assert set(tunable_methods()) == {*CACHE_POINTS, FEWER_STEPS}
    for method, points in CACHE_POINTS.items():
        knob = cache_knob(method, 187)
        values = [float(spec.partition("=")[2]) for spec in points]
        assert all(spec.split(":")[1].startswith(knob.field + "=") for spec in points)
        # the sweep's mildest point comes before its most aggressive one on the ladder
        position = [min(range(len(knob.ladder)), key=lambda i: abs(knob.ladder[i] - v))
                    for v in (values[0], values[-1])]
        assert position[0] < position[1], method
        if knob.grid_field is not None:
            assert knob.grid[0] == getattr(POLICY_PRESETS[method](187), knob.grid_field)
        for value in (knob.ladder[0], knob.ladder[-1]):
            for grid_value in knob.grid_values():
                parse_policy(knob.spec(value, grid_value), 187)   # every spec is valid
    ladder = steps_ladder(1000)
    assert ladder[0] == 1000 and ladder[-1] == 4 and list(ladder) == sorted(ladder, reverse=True)


# ---------------------------------------------------------------- seeds


def test_calibration_and_validation_noise_never_overlap() -> None:
    plan = SeedPlan(seed=3, n_calibration=64, n_validation=64)
    assert plan.calibration.keys().isdisjoint(plan.validation.keys())
    assert plan.calibration.generator_seeds().isdisjoint(plan.validation.generator_seeds())
    assert plan.validation.first == VALIDATION_FIRST
    with pytest.raises(SeedOverlapError):
        SeedPlan(seed=3, n_calibration=64, n_validation=8, validation_first=60)
    with pytest.raises(SeedOverlapError):
        check_fresh(plan.validation, plan.calibration.keys() | {(3, VALIDATION_FIRST + 5)})
    check_fresh(plan.validation, plan.calibration.keys())


# ---------------------------------------------------------------- the tuner on a fake trial


class FakeTuner(Tuner):
    """The real orchestration (search, confirm, validate) on a known curve: the paired
    error of fora at cache_interval = v is 0.001 v on the search samples, 0.0011 v on the
    full calibration set and 0.00105 v on fresh draws."""

    def trial(self, setting, noise, phase):
        self._use(noise)
        value = float(setting.spec.split("cache_interval=")[1].split(",")[0])
        scale = 0.001 if noise.count < self.config.num_samples else 0.0011
        self.calls.append((phase, setting.spec, noise.tag, noise.first, noise.count))
        return {"flop_speedup": value, "quality": scale * value, "se": None}

    def validate(self, setting):
        from fdbench.tune.seeds import check_fresh

        check_fresh(self.plan.validation, self.used)
        value = float(setting.spec.split("cache_interval=")[1].split(",")[0])
        self.calls.append(("validate", setting.spec, "validation", self.plan.validation.first,
                           self.plan.validation.count))
        met = self.target.met(0.00105 * value)
        return {"value": 0.00105 * value, "se": 0.0001, "interval": [0.0, 0.00105 * value],
                "met": met, "verdict": "met" if met else "missed", "n": 64,
                "first_index": self.plan.validation.first}


def _fake_tuner(tmp_path, threshold: float) -> FakeTuner:
    config = TuneConfig(target=Target("paired_error", "<=", threshold), budget=10)
    tuner = FakeTuner(None, config, TrialStore(tmp_path / "t.jsonl", {}), tmp_path,
                      checkpoint=tmp_path, progress=False, log=lambda line: None)
    tuner.calls = []
    return tuner


def test_tuner_picks_the_boundary_confirms_it_and_validates_on_fresh_draws(tmp_path) -> None:
    tuner = _fake_tuner(tmp_path, 0.0067)     # search: 6 meets, 7 fails; full: 6 -> 0.0066
    sampler = Sampler("em", "uniform", 1000)
    ladder = tuple(float(v) for v in range(1, 13))
    row = tuner.tune_ladders("fora", [(0, ladder, lambda v: Setting(
        sampler, f"fora:cache_interval={int(v)},warmup_steps=0", sampler))], {})
    assert row["tuned_spec"] == "fora:cache_interval=6,warmup_steps=0"
    assert row["flop_speedup"] == 6.0 and row["status"] == "met"
    validated = [c for c in tuner.calls if c[0] == "validate"]
    calibrated = [c for c in tuner.calls if c[0] != "validate"]
    assert len(validated) == 1 and all(c[2] == "calibration" for c in calibrated)
    assert all(c[3] + c[4] <= validated[0][3] for c in calibrated)


def test_tuner_reports_an_unmet_target_and_never_validates(tmp_path) -> None:
    tuner = _fake_tuner(tmp_path, 1e-6)
    sampler = Sampler("em", "uniform", 1000)
    row = tuner.tune_ladders("fora", [(0, (1.0, 2.0, 3.0), lambda v: Setting(
        sampler, f"fora:cache_interval={int(v)}", sampler))], {})
    assert row["status"] == "unmet" and "tuned_spec" not in row
    assert "no searched setting met" in row["reason"]
    assert not any(c[0] == "validate" for c in tuner.calls)


def test_validation_refuses_draws_used_for_calibration(tmp_path) -> None:
    tuner = _fake_tuner(tmp_path, 1.0)
    tuner.used |= tuner.plan.validation.keys()      # as if a bug had calibrated on them
    with pytest.raises(SeedOverlapError):        # the real validation, not the fake's
        Tuner.validate(tuner, Setting(Sampler("em", "uniform", 10), "fora:cache_interval=2",
                               Sampler("em", "uniform", 10)))


# ---------------------------------------------------------------- scoring


def test_validation_score_of_a_known_paired_error_and_its_interval() -> None:
    reference = torch.randn(32, 8, 1, generator=torch.Generator().manual_seed(0),
                            dtype=torch.float64) + 3.0
    errors = torch.linspace(0.004, 0.012, 32, dtype=torch.float64)
    samples = reference * (1 + errors)[:, None, None]     # paired error exactly errors_b
    out = validate_score(Target("paired_error", "<=", 0.01), samples, reference=reference)
    assert out["value"] == pytest.approx(0.008, rel=1e-6)
    assert out["interval"][0] < 0.008 < out["interval"][1] < 0.01
    assert out["met"] and out["verdict"] == "met"
    tight = validate_score(Target("paired_error", "<=", 0.0085), samples, reference=reference)
    assert tight["met"] and tight["verdict"] == "borderline"
    assert validate_score(Target("paired_error", "<=", 0.007), samples,
                          reference=reference)["verdict"] == "missed"
    held = torch.randn(20, 8, 1, generator=torch.Generator().manual_seed(1))
    same = validate_score(Target("sw_ratio", "<=", 1.0), reference, baseline=reference,
                          held_out=held, n_directions=50, n_boot=20)
    assert same["value"] == pytest.approx(1.0) and same["met"]


# ---------------------------------------------------------------- store


def test_store_resumes_its_own_settings_and_refuses_others(tmp_path) -> None:
    store = TrialStore(tmp_path / "trials.jsonl", {"seed": 0})
    store.add({"key": "k1", "kind": "trial", "quality": 0.1})
    again = TrialStore(tmp_path / "trials.jsonl", {"seed": 0})
    assert again.find("k1")["quality"] == 0.1 and again.find("k2") is None
    with pytest.raises(MixedSettingsError):
        TrialStore(tmp_path / "trials.jsonl", {"seed": 1})


# ---------------------------------------------------------------- the command


def _tune(*args) -> int:
    return main(["tune", *(str(a) for a in args)])


@pytest.mark.parametrize("args, message", [
    (["--method", "nope", "--target", "paired_error<=0.01"], "unknown method"),
    (["--method", "fora", "--target", "paired_error=<0.01"], "--target must look like"),
    (["--method", "fora", "--target", "fid<=0.01"], "unknown target metric"),
    (["--method", "fora", "--target", "paired_error<=0.01", "--budget", "0"], "budget"),
    (["--all", "--methods", "fora", "bogus", "--target", "sw_ratio<=1.1"], "unknown method"),
    (["--method", "fora", "--all", "--target", "sw_ratio<=1.1"], "exactly one"),
])
def test_bad_input_exits_2_with_one_line_before_loading(tmp_path, capsys, args,
                                                        message) -> None:
    missing = tmp_path / "no-such-checkpoint"      # loading it would give another error
    assert _tune("--checkpoint", missing, "--out", tmp_path / "out", *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fdbench: error:") and message in err[0]
    assert not (tmp_path / "out").exists()


def test_unwritable_out_exits_2(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _tune("--checkpoint", tmp_path / "none", "--method", "fora", "--target",
                 "paired_error<=0.01", "--out", blocker / "sub") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]


def test_tune_end_to_end_resumes_and_refuses_mixed_settings(sines_checkpoint, tmp_path,
                                                            capsys) -> None:
    out = tmp_path / "tune"
    common = ["--checkpoint", sines_checkpoint, "--steps", "10", "--num-samples", "8",
              "--search-samples", "4", "--batch-size", "4", "--budget", "4",
              "--timing-rounds", "1", "--out", out]
    assert _tune("--method", "fora", "--target", "paired_error<=0.05", *common) == 0
    printed = capsys.readouterr().out
    row = json.loads((out / "tune_fora_paired_error_le_0.05.json").read_text())["rows"][0]
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    searched = [t for t in trials if t["kind"] == "trial"]
    assert 1 <= len([t for t in searched if t["phase"] == "search"]) <= 4
    assert all(t["noise"] == "calibration" for t in searched)
    if row["status"] == "unmet":
        assert "not relaxed" in printed
    else:
        parse_policy(row["tuned_spec"], 16)           # usable as --cache SPEC
        assert row["validation"]["first_index"] >= 8 and row["wall"]["rounds"] == 1
        assert row["tuned_spec"] in printed
    assert _tune("--method", "fora", "--target", "paired_error<=0.05", *common) == 0
    again = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert len(again) == len(trials)                  # resumed: no trial ran twice
    assert "resumed" in capsys.readouterr().out
    assert _tune("--method", "fora", "--target", "paired_error<=0.05",
                 *common[:4], "--num-samples", "12", *common[6:]) == 2
    assert "other settings" in capsys.readouterr().err


def test_tune_unmet_target_is_reported_with_exit_0(sines_checkpoint, tmp_path, capsys) -> None:
    # SW to the data can never be a thousandth of the uncached sampler's
    assert _tune("--checkpoint", sines_checkpoint, "--method", "fora", "--target",
                 "sw_ratio<=0.001", "--steps", "8", "--num-samples", "4", "--batch-size",
                 "4", "--budget", "3", "--out", tmp_path / "t") == 0
    printed = capsys.readouterr().out
    assert "unmet" in printed and "not relaxed" in printed
    result = json.loads((tmp_path / "t" / "tune_fora_sw_ratio_le_0.001.json").read_text())
    assert [r["status"] for r in result["rows"]] == ["unmet"]
    assert not (tmp_path / "t" / "tune_fora_sw_ratio_le_0.001.png").exists()


def test_tune_all_writes_table_figure_and_json(sines_checkpoint, tmp_path) -> None:
    out = tmp_path / "all"
    assert _tune("--checkpoint", sines_checkpoint, "--all", "--methods", "fora", "teacache",
                 "fewer_steps", "--cache-on-solver", "--target", "sw_ratio<=1.5", "--steps",
                 "10", "--num-samples", "8", "--search-samples", "4", "--batch-size", "4",
                 "--budget", "3", "--timing-rounds", "1", "--n-boot", "20", "--out", out) == 0
    stem = "tune_all_sw_ratio_le_1.5"
    table = (out / f"{stem}.md").read_text()
    assert "| method | tuned spec | FLOP speedup | wall speedup (IQR) |" in table
    result = json.loads((out / f"{stem}.json").read_text())
    methods = [r["method"] for r in result["rows"]]
    assert methods[:2] == ["fora", "teacache"] and "fewer_steps:dpmpp_2m" in methods
    if result["best_solver"]:
        assert any(r.get("on") for r in result["rows"])
    if any(r.get("flop_speedup") for r in result["rows"]):
        assert (out / f"{stem}.png").stat().st_size > 0
    assert UNCACHED not in {r.get("tuned_spec") for r in result["rows"]
                            if not r["method"].startswith("fewer")}


def test_tune_help_states_the_targets_and_the_monotone_assumption(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "paired_error<=X" in text and "monotonically" in text and "unmet" in text
