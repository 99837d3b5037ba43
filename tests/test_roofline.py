"""The roofline model: hand-computed cases, calibration recovering known constants, clear errors."""
import dataclasses
import json

import pandas as pd
import pytest

from shared.models import catalog
from shared.speed import calibration, roofline
from shared.speed.roofline import GB, RooflineError
from shared.machine import machine_label

BUDGET = 9 * 3600 / 1300   # a sample's share of Kaggle's 9 h for 1300 samples


def test_llama2_7b_q8_0_weights_are_7_16_gb():
    p = roofline.predict("llama-2-7b-chat", "Q8_0", "T4", input_tokens=1, output_tokens=1, budget_s=BUDGET)
    assert (p.weights_gb, p.weights_source) == (7.16, "file")          # TheBloke's Provided files: 7.16 GB
    assert "llama-2-7b-chat.Q8_0.gguf" in p.weights_file
    # the bits-per-weight estimate it replaces agrees to 0.02%
    estimate = roofline.weight_bytes(roofline.architecture("llama-2-7b-chat"), roofline.quantization("Q8_0"), 16, False)
    assert estimate == pytest.approx(6.74e9 * 8.5 / 8, rel=1e-6) and estimate / GB == pytest.approx(7.16, abs=0.01)


def test_mistral_7b_kv_cache_is_128_kib_per_token_in_fp16():
    arch = roofline.architecture("mistral-7b-instruct-v0.2")
    assert arch.kv_bytes_per_token(16) == 128 * 1024  # 2 x 32 layers x 8 KV heads x 128 x 2 bytes
    assert roofline.architecture("llama-2-7b-chat").kv_bytes_per_token(16) == 512 * 1024


def test_mixtral_reads_only_its_active_experts():
    arch = roofline.architecture("mixtral-8x7b-instruct-v0.1")
    assert arch.params_active_b == pytest.approx(12.9)
    # a type without a published file (IQ2_XS): parameters x bits per weight
    p = roofline.predict("mixtral-8x7b-instruct-v0.1", "IQ2_XS", "2xT4", input_tokens=1, output_tokens=1, budget_s=BUDGET)
    assert p.weights_source == "bpw estimate"
    assert p.weights_gb == pytest.approx(46.7e9 * 2.31 / 8 / GB, rel=1e-3)          # all experts resident
    # top-2 experts read per token; the input embedding is a row lookup, not read whole
    assert p.weights_read_gb == pytest.approx((12.9e9 - 32000 * 4096) * 2.31 / 8 / GB, rel=1e-6)
    # a published file: resident = the file, read = the file scaled by the same active share
    f = roofline.predict("mixtral-8x7b-instruct-v0.1", "Q4_K_M", "2xT4", input_tokens=1, output_tokens=1, budget_s=BUDGET)
    assert f.weights_gb == pytest.approx(28.4)
    share = (12.9e9 - 32000 * 4096) / 46.7e9
    assert f.weights_read_gb == pytest.approx(28.4 * share, rel=1e-6)


def test_bitsandbytes_keeps_the_output_matrix_in_the_compute_dtype():
    arch = roofline.architecture("llama-2-7b-chat")
    q = roofline.quantization("bnb-4bit")
    blocks = (6.74e9 - 2 * 32000 * 4096) * 4.127 / 8
    assert roofline.weight_bytes(arch, q, 16, per_token=True) == pytest.approx(blocks + 32000 * 4096 * 2)
    assert roofline.weight_bytes(arch, q, 16, per_token=False) == pytest.approx(blocks + 2 * 32000 * 4096 * 2)


def test_decode_at_the_bandwidth_roof_and_a_layer_split_adds_memory_not_speed():
    ceiling = roofline.CEILING
    one = roofline.predict("mistral-7b-instruct-v0.2", "Q8_0", "T4", input_tokens=600, output_tokens=100, budget_s=BUDGET)
    two = roofline.predict("mistral-7b-instruct-v0.2", "Q8_0", "2xT4", input_tokens=600, output_tokens=100, budget_s=BUDGET)
    kv = 128 * 1024 * 650
    # TheBloke's 7.70 GB file less the token-embedding share (at the file's mean bits per weight)
    assert one.weights_source == "file"
    assert one.bytes_per_token_gb == pytest.approx((7.70e9 * (7.24e9 - 32000 * 4096) / 7.24e9 + kv) / GB)
    assert one.decode_bound == "memory"
    assert one.decode_tok_s == pytest.approx(320e9 / (one.bytes_per_token_gb * GB))
    assert two.decode_tok_s == pytest.approx(one.decode_tok_s)
    assert (one.memory_available_gb, two.memory_available_gb) == (15.72, 15.72)  # per GPU, as llama.cpp sees it
    assert two.memory_per_gpu_gb == pytest.approx((one.memory_gb + 0.78) / 2)  # layers split, a runtime per GPU
    assert ceiling.decode_efficiency == 1


def test_pytorch_fp16_on_a_pascal_p4_runs_at_its_measured_gemm_rate_not_the_native_half_rate():
    p = roofline.predict("phi-2", "fp16", "P4", budget_s=BUDGET)
    assert p.precision == "fp16_torch" and p.decode_bound == "memory"   # 4.25 TFLOP/s, not 0.089
    flops = roofline.prefill_flops(roofline.architecture("phi-2"), 600)
    assert p.prefill_s == pytest.approx(flops / 4.25e12)
    q8 = roofline.predict("phi-2", "Q8_0", "P4", budget_s=BUDGET)
    assert q8.precision == "int8" and q8.decode_bound == "memory"
    assert roofline.predict("phi-2", "Q8_0", "P100", budget_s=BUDGET).precision == "fp16"  # sm_60: no dp4a


def test_seconds_per_sample_and_largest_output_follow_the_budget():
    cal = roofline.Calibration(decode_efficiency=0.5, decode_overhead_s=0.004, prefill_efficiency=0.3)
    p = roofline.predict("llama-2-7b-chat", "Q4_K_M", "T4", input_tokens=600, output_tokens=100, calibration=cal,
                          budget_s=BUDGET)
    assert p.s_per_sample == pytest.approx(p.prefill_s + 99 / p.decode_tok_s)
    assert p.max_output_tokens == int(1 + (p.budget_s - p.prefill_s) * p.decode_tok_s)
    assert p.fast_enough == (p.s_per_sample <= p.budget_s)
    flops = 2 * (6.74e9 - 2 * 32000 * 4096) * 600 + 2 * 32000 * 4096 + 2 * 32 * 600**2 * 32 * 128
    assert p.prefill_s == pytest.approx(flops / (0.3 * 130e12))  # llama.cpp on a T4: int8 (MMQ)


def test_fit_recovers_a_known_efficiency_and_overhead():
    bandwidth, eff, overhead = 100e9, 0.6, 0.002
    x = [b / bandwidth for b in (1e9, 2e9, 4e9, 8e9)]  # seconds at the roof
    t = [xi / eff + overhead for xi in x]
    got_eff, got_c, method = calibration.fit_line(x, t, 1.0)
    assert (got_eff, got_c, method) == (pytest.approx(eff), pytest.approx(overhead), "slope and intercept")
    # one model size: the overhead comes from the family, the efficiency is fitted
    got_eff, got_c, _ = calibration.fit_line([x[0]] * 3, [t[0]] * 3, 1.0, prior_overhead=overhead)
    assert (got_eff, got_c) == (pytest.approx(eff), pytest.approx(overhead))


def _synthetic(hw: roofline.Hardware, eff: float, overhead: float, sizes_gb) -> list:
    out = []
    for i, size in enumerate(sizes_gb):
        roof = size * GB / (hw.bandwidth_gb_s * GB)
        out.append(calibration.Observation(
            dataset="published", config=f"synthetic {i}", family="llama.cpp", hardware=hw.key,
            hardware_label=hw.label, kind=hw.kind, model=f"m{i}", quantization="Q4_0", input_tokens=1,
            output_tokens=0, bytes_per_token=size * GB, bandwidth=hw.bandwidth_gb_s * GB,
            decode_tok_s=1 / (roof / eff + overhead), roofline_s=roof))
    return out


def test_calibrator_recovers_synthetic_rows_and_leave_one_out_is_exact():
    t4 = roofline.hardware("T4")
    obs = _synthetic(t4, 0.55, 0.003, [1, 2, 4, 7, 13])
    index = calibration.hardware_index(obs, [])
    cal = calibration.Calibrator(obs, index).calibration("llama.cpp", t4)
    assert cal.decode_efficiency == pytest.approx(0.55) and cal.decode_overhead_s == pytest.approx(0.003)
    assert "synthetic 0" in cal.decode_rows
    # a 2xT4 borrows the T4's rows (calibrate_like) and says so
    cal2 = calibration.Calibrator(obs, index).calibration("llama.cpp", roofline.hardware("2xT4"))
    assert cal2.decode_efficiency == pytest.approx(0.55) and "2xT4 unmeasured" in cal2.decode_rows
    loo = calibration.leave_one_out(obs, [])
    assert loo["decode_tok_s_err_pct"].max() < 1e-6
    acc = calibration.accuracy(loo)
    assert acc.loc[0, "configs"] == 5 and acc.loc[0, "decode_tok_s_median_err_pct"] < 1e-6


def test_unknown_hardware_lists_what_is_known():
    with pytest.raises(RooflineError) as e:
        roofline.hardware("TPU v9")
    assert "P4" in str(e.value) and "2xT4" in str(e.value) and "measured CPUs" in str(e.value)
    with pytest.raises(RooflineError, match="known"):
        roofline.quantization("Q1_Z")
    with pytest.raises(RooflineError, match="fp16"):
        roofline.hardware("P4").peak_flops("int4")


def test_a_model_without_architecture_facts_lists_what_is_missing():
    spec = dataclasses.replace(catalog.get("phi-2"), name="bare", architecture={"layers": 32})
    with pytest.raises(RooflineError) as e:
        roofline.architecture(spec)
    assert "hidden_size" in str(e.value) and "kv_heads" in str(e.value) and "layers," not in str(e.value).split("facts")[1].split(";")[0]


def test_bad_workload_is_refused_before_compute():
    with pytest.raises(RooflineError, match="output_tokens"):
        roofline.predict("phi-2", "Q8_0", "T4", output_tokens=0, budget_s=BUDGET)
    with pytest.raises(RooflineError, match="budget_s"):
        roofline.predict("phi-2", "Q8_0", "T4")
    with pytest.raises(RooflineError, match="n_ctx"):
        roofline.predict("phi-2", "Q8_0", "T4", input_tokens=600, output_tokens=100, n_ctx=512, budget_s=BUDGET)


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m", "qwen2.5-coder-1.5b-instruct"])
def test_typed_architecture_equals_the_gguf(name):
    spec = catalog.get(name)
    try:
        path = catalog.resolve(spec, verify=False)
    except catalog.ModelFileError as e:
        pytest.skip(f"{name} not installed here: {e}")
    from_file = roofline.architecture_from_gguf(path)
    typed = dict(spec.architecture)
    assert {k: v for k, v in typed.items() if k != "source"} == {k: v for k, v in from_file.items() if k != "source"}


def test_cpu_hardware_comes_from_measured_peaks():
    row = {"machine": "CPU AMD EPYC (2 cores)", "triad_gb_s": 20.0, "matmul_fp32_tflops": 0.1,
           "memory_total_gb": 25.0, "threads": 2, "timestamp": "2026-11-29T00:00:00"}
    hw = roofline.hardware("CPU AMD EPYC (2 cores)", [row])
    assert (hw.label, hw.kind, hw.bandwidth_gb_s, hw.peak_tflops) == ("AMD EPYC 2c", "cpu", 20.0, {"fp32": 0.1})
    assert roofline.hardware("AMD EPYC 2c", [row]) == hw


def test_published_rows_load_with_their_sources():
    obs = calibration.published_observations()
    assert len(obs) >= 30 and all(o.source for o in obs)
    assert all(o.hardware in roofline.hardware_table() for o in obs)


def test_seed_check_rules_out_a_p4_for_the_gguf_column():
    obs = calibration.published_observations()
    cal = calibration.Calibrator(obs, calibration.hardware_index(obs, []))
    check = calibration.seed_check(cal)
    p4 = check[(check["column"] == "P4 GGUF") & (check["hypothesis"] == "P4")]
    assert not p4["plausible"].all()  # Gemma 7B Q8_0 does not fit 8 GB; Llama 2 7B would need eff 0.93
    verdicts = calibration.seed_verdicts(check)
    assert not verdicts[(verdicts["column"] == "P4 GGUF") & (verdicts["hypothesis"] == "P4")]["supported"].any()
    # the labels weighed as evidence: "2xP4" names two GPUs and Kaggle's two-GPU option is T4 x2
    two = verdicts[verdicts["column"] == "bnb 4-bit 2xP4"]
    assert two.loc[two["with_labels"], "hypothesis"].tolist() == ["2xT4"]
    assert not two.loc[two["hypothesis"] == "P4", "kaggle_card"].iloc[0]


@pytest.mark.parametrize("machine,label", [
    ("CPU AMD EPYC (2 cores)", "AMD EPYC 2c"), ("CPU Intel(R) Xeon(R) Processor (2 cores)", "Xeon 2c"),
    ("2xTesla T4", "2xT4"), ("Tesla T4", "T4"), ("NVIDIA H200", "H200"), ("Tesla P100-PCIE-16GB", "P100"),
    ("NVIDIA GeForce RTX 3090", "RTX 3090"), ("Tesla P4", "P4")])
def test_short_machine_labels(machine, label):
    assert machine_label(machine) == label
    assert roofline.hardware(label).label == label if label in {h.label for h in roofline.hardware_table().values()} else True


def test_peaks_rows_prefer_the_least_contended(tmp_path):
    from shared.speed import peaks
    path = tmp_path / "machine_peaks.jsonl"
    base = {"machine": "CPU X (2 cores)", "threads": 2, "status": "ok", "matmul_fp32_tflops": 0.1}
    path.write_text("\n".join(json.dumps({**base, "triad_gb_s": bw, "load_avg_1min": load})
                              for bw, load in [(19.0, 2.1), (12.0, 8.0)]) + "\n")
    (row,) = peaks.rows(path)
    assert row["triad_gb_s"] == 19.0 and not peaks.contended(row)


def test_a_fit_margin_is_visible_capacity_minus_weights_kv_for_n_ctx_and_buffers():
    arch = roofline.architecture("llama-2-7b-chat")
    p = roofline.predict("llama-2-7b-chat", "Q4_K_M", "T4", input_tokens=600, output_tokens=20, n_ctx=4096,
                         budget_s=BUDGET)
    weights = 4.08e9                                                          # TheBloke's published file
    need = (weights + 4096 * arch.kv_bytes_per_token(16)) / GB + 0.78       # KV allocated for n_ctx, not the sample
    assert p.memory_gb == pytest.approx(need)
    assert p.memory_margin_gb == pytest.approx(15.72 - need)
    two = roofline.predict("llama-2-7b-chat", "Q4_K_M", "2xT4", input_tokens=600, output_tokens=20, n_ctx=4096,
                           budget_s=BUDGET)
    assert two.memory_margin_gb == pytest.approx(15.72 - (need - 0.78 + 2 * 0.78) / 2)


def _synthetic_on(hw: roofline.Hardware, eff: float, overhead: float, family: str = "llama.cpp") -> list:
    out = []
    for size in (1, 2, 4, 8):
        roof = size * GB / (hw.bandwidth_gb_s * GB)
        out.append(calibration.Observation(
            dataset="published", config=f"{family} {hw.label} {size} GB", family=family, hardware=hw.key,
            hardware_label=hw.label, kind=hw.kind, model=f"m{size}", quantization="Q4_0", input_tokens=1,
            output_tokens=0, bytes_per_token=size * GB, bandwidth=hw.bandwidth_gb_s * GB,
            decode_tok_s=1 / (roof / eff + overhead), roofline_s=roof, source=f"source of {hw.label}"))
    return out


def test_a_column_error_comes_only_from_its_own_cards_rows():
    t4, rtx2080 = roofline.hardware("T4"), roofline.hardware("RTX 2080")
    obs = _synthetic_on(t4, 0.5, 0.004) + _synthetic_on(rtx2080, 0.7, 0.004)
    cols = calibration.column_errors(obs, [], [t4, roofline.hardware("2xT4"), roofline.hardware("P100")],
                                     families=("llama.cpp",))
    # one T4 row out, the other three T4 rows refit the same line: the T4's own error is ~0, not the
    # RTX 2080's (a card predicted from another card would miss by tens of percent)
    assert cols.loc[0, "configs"] == 4 and cols.loc[0, "held_out_err_pct"] < 1e-6
    cross = [abs((1 / (o.roofline_s / 0.7 + 0.004)) / o.decode_tok_s - 1) * 100 for o in obs[:4]]
    assert cols.loc[0, "loso_err_pct"] == pytest.approx(float(pd.Series(cross).median()))  # its source out: the 2080's line
    assert cols.loc[1, "held_out_err_pct"] == cols.loc[0, "held_out_err_pct"]          # a 2xT4 carries its T4's rows
    assert pd.isna(cols.loc[2, "held_out_err_pct"]) and cols.loc[2, "scope"].startswith("range")  # no P100 row


def test_the_t4_llama_cpp_column_rests_on_t4_rows_and_agrees_with_the_seeds_kaggle_runs():
    obs = calibration.published_observations()
    t4_rows = [o for o in obs if o.hardware == "tesla-t4" and o.family == "llama.cpp" and o.fit]
    assert len(t4_rows) == 6 and all(o.date and o.build and "ironbar/prompt_recovery" in o.source for o in t4_rows)
    cal = calibration.Calibrator(obs, calibration.hardware_index(obs, []))
    c = cal.calibration("llama.cpp", roofline.hardware("T4"))
    assert c.calibrated and c.decode_rows.startswith("llama.cpp on T4") and "seed on Kaggle" in c.decode_rows
    assert "llama-cpp-python on Kaggle, early 2024" in c.decode_evidence
    verdicts = calibration.seed_verdicts(calibration.seed_check(cal))
    t4 = verdicts[(verdicts["column"] == "P4 GGUF") & (verdicts["hypothesis"] == "T4")].iloc[0]
    assert t4["median_factor_off"] < 1.3      # the RTX 2080's constants were 1.88x off the seed's Kaggle rows


def test_a_card_with_fewer_than_two_rows_of_its_own_is_a_labelled_range():
    obs = calibration.published_observations()
    cal = calibration.Calibrator(obs, calibration.hardware_index(obs, []))
    p100 = cal.calibration("llama.cpp", roofline.hardware("P100"))   # no P100 row: Pascal's (the P40's) range
    assert not p100.calibrated and p100.decode_rows.startswith("range") and "P40" in p100.decode_rows
    assert p100.pessimistic_efficiency < p100.decode_efficiency
    one = cal.calibration("transformers", roofline.hardware("T4"))    # one T4 row of transformers
    assert not one.calibrated and one.decode_rows.startswith("range") and "1 transformers decode row" in one.decode_rows
    p = roofline.predict("llama-2-13b-chat", "Q4_K_M", "P100", calibration=p100, budget_s=BUDGET)
    assert p.decode_tok_s_low < p.decode_tok_s and not p.calibrated


def test_a_fit_pinned_at_its_bound_is_flagged():
    rtx2080 = roofline.hardware("RTX 2080")
    (row,) = _synthetic_on(rtx2080, 1.3, 0.0)[:1]          # faster than the roofline: the fit caps efficiency at 1
    cal = calibration.Calibrator([row], calibration.hardware_index([row], []))
    fit = cal.decode[("llama.cpp", rtx2080.key)]
    assert fit.at_bound
    c = cal.calibration("llama.cpp", rtx2080)
    assert c.decode_at_bound and "bound" in c.decode_rows
    t4 = cal.calibration("llama.cpp", roofline.hardware("T4"))    # the range it hands a card of its generation says so
    assert "bound" in t4.decode_rows and not t4.calibrated


def test_prefill_is_calibrated_on_published_prompt_processing_rows():
    obs = calibration.published_observations()
    pp = [o for o in obs if o.prefill_s]
    assert {o.hardware for o in pp} >= {"tesla-p40", "rtx-2080-ti"} and all(o.source and o.date for o in pp)
    cal = calibration.Calibrator(obs, calibration.hardware_index(obs, []))
    bare = roofline.predict("mixtral-8x7b-instruct-v0.1", "Q4_K_M", "2xT4", input_tokens=600, output_tokens=16,
                            budget_s=BUDGET, samples=1300)
    c = cal.calibration("llama.cpp", roofline.hardware("2xT4"))
    p = roofline.predict("mixtral-8x7b-instruct-v0.1", "Q4_K_M", "2xT4", input_tokens=600, output_tokens=16,
                         budget_s=BUDGET, samples=1300, calibration=c)
    assert c.prefill_efficiency < 0.5 and "RTX 2080 Ti" in c.prefill_rows
    assert p.prefill_s > 4 * bare.prefill_s and p.prefill_s_high >= p.prefill_s
    # the seconds of a call are calibrated prefill + calibrated decode; calls a sample follow
    assert p.s_per_sample_high == pytest.approx(p.prefill_s_high + 15 / p.decode_tok_s_low)
    assert p.calls_per_sample == int(p.budget_net_s // p.s_per_sample_high) < bare.calls_per_sample


def test_the_largest_n_ctx_is_what_the_visible_memory_leaves_the_kv_cache():
    arch = roofline.architecture("llama-2-13b-chat")       # MHA: 40 KV heads, about 0.8 MB a token
    p = roofline.predict("llama-2-13b-chat", "Q8_0", "T4", input_tokens=600, output_tokens=16, budget_s=BUDGET)
    kv = arch.kv_bytes_per_token(16)
    assert p.max_n_ctx == int(((15.72 - 0.78) * GB - p.weights_gb * GB) // kv) and 1200 < p.max_n_ctx < 1500
    at = roofline.predict("llama-2-13b-chat", "Q8_0", "T4", input_tokens=600, output_tokens=16, budget_s=BUDGET,
                          n_ctx=p.max_n_ctx)
    over = roofline.predict("llama-2-13b-chat", "Q8_0", "T4", input_tokens=600, output_tokens=16, budget_s=BUDGET,
                            n_ctx=p.max_n_ctx + 10)
    assert at.fits_memory and not over.fits_memory
    # capped at the context the model was trained for
    assert roofline.predict("phi-2", "Q4_K_M", "2xT4", budget_s=BUDGET).max_n_ctx == catalog.get("phi-2").context_length


def test_a_row_split_reads_both_cards_and_a_layer_split_one():
    layer = roofline.predict("llama-2-13b-chat", "Q4_K_M", "2xT4", input_tokens=600, output_tokens=16, budget_s=BUDGET)
    row = roofline.predict("llama-2-13b-chat", "Q4_K_M", "2xT4", input_tokens=600, output_tokens=16, budget_s=BUDGET,
                           split="row")
    assert row.ceiling_tok_s == pytest.approx(2 * layer.ceiling_tok_s, rel=0.02) and row.hardware == "2xT4 row split"
    assert row.memory_per_gpu_gb == pytest.approx(layer.memory_per_gpu_gb)
    with pytest.raises(RooflineError, match="several GPUs"):
        roofline.predict("phi-2", "Q4_K_M", "T4", budget_s=BUDGET, split="row")


def test_a_runtime_without_rows_on_a_card_generation_is_uncalibrated_with_a_range():
    obs = calibration.published_observations()
    cal = calibration.Calibrator(obs, calibration.hardware_index(obs, []))
    p100 = roofline.hardware("P100")
    c = cal.calibration("bitsandbytes", p100)
    assert not c.calibrated and c.decode_rows.startswith("uncalibrated")
    p = roofline.predict("mistral-7b-instruct-v0.2", "bnb-4bit", p100, calibration=c, budget_s=BUDGET)
    assert p.decode_tok_s == pytest.approx(p.ceiling_tok_s)          # the range: ceiling ...
    assert p.decode_tok_s_low < p.decode_tok_s / 5                     # ... to the runtime's worst fit
    assert p.verdict != "fits"
    # on a T4 bitsandbytes has its own rows, and nothing borrows llama.cpp's
    t4 = cal.calibration("bitsandbytes", roofline.hardware("T4"))
    assert t4.calibrated and "bitsandbytes on T4" in t4.decode_rows and "Llama 7B" not in t4.decode_rows


def test_published_bitsandbytes_rows_make_nf4_slower_than_fp16_on_a_t4():
    obs = calibration.published_observations()
    cal = calibration.Calibrator(obs, calibration.hardware_index(obs, []))
    t4 = roofline.hardware("T4")
    fp16 = roofline.predict("mistral-7b-instruct-v0.2", "fp16", t4, calibration=cal.calibration("transformers", t4),
                            budget_s=BUDGET)
    nf4 = roofline.predict("mistral-7b-instruct-v0.2", "bnb-4bit", t4, calibration=cal.calibration("bitsandbytes", t4),
                           budget_s=BUDGET)
    assert nf4.decode_tok_s < fp16.decode_tok_s   # bitsandbytes benchmarking/README.md: NF4+DQ 13.6 vs FP16 25.7 tok/s


def test_excluded_rows_stay_in_the_file_with_a_reason_and_out_of_the_fit():
    obs = calibration.published_observations()
    p100 = [o for o in obs if o.hardware == "tesla-p100-12gb"]
    assert p100 and all(not o.fit and "n_batch 1" in o.exclude for o in p100)
    cal = calibration.Calibrator(obs, calibration.hardware_index(obs, []))
    assert all("tesla-p100-12gb" != h for (_, h) in cal.decode)


def test_a_gpu_plan_marks_the_configurations_that_would_not_fit_before_loading_anything():
    from shared.run import gpuplan
    section = {"models": ["mixtral-8x7b-instruct-v0.1", "mistral-7b-instruct-v0.2-q4_k_m"],
               "backends": ["transformers", "llama_cpp"], "quantizations": ["none", "4bit"], "device": "cuda",
               "input_tokens": 500, "max_new_tokens": 128, "repetitions": 1}
    table = gpuplan.plan(section, "2xT4")
    fits = {(r.model, r.backend, r.quantization): r.fits for r in table.itertuples()}
    assert fits[("mixtral-8x7b-instruct-v0.1", "transformers", "fp16")] is False    # 93 GB of weights
    assert fits[("mixtral-8x7b-instruct-v0.1", "transformers", "bnb-4bit")] is True
    assert fits[("mistral-7b-instruct-v0.2-q4_k_m", "llama_cpp", "Q4_K_M")] is True
    row = table[(table["model"] == "mixtral-8x7b-instruct-v0.1") & (table["quantization"] == "fp16")].iloc[0]
    assert row["margin_gb"] == pytest.approx(row["visible_gb"] - row["memory_per_gpu_gb"])
    assert "SKIP mixtral-8x7b-instruct-v0.1 transformers fp16" in gpuplan.describe(table, "2xT4")
    with pytest.raises(RooflineError, match="unknown hardware"):
        gpuplan.plan(section, "TPU v9")
    # make run on that GPU hands the speed notebook these, in its own configuration names, to skip
    label, unfit = gpuplan.unfit_configs(section, "2xT4")
    assert label == "2xT4" and "mixtral-8x7b-instruct-v0.1 transformers none" in unfit
    assert not any("4bit" in c or "llama_cpp" in c for c in unfit)
    assert gpuplan.unfit_configs({**section, "device": "cpu"}, "2xT4") == ("2xT4", [])


def test_published_gguf_sizes_are_used_and_a_missing_entry_falls_back():
    from shared.speed import modelfiles
    # every candidate x type with a published file predicts exactly that file's size
    for f in modelfiles.published_files():
        p = roofline.predict(f.model, f.type, "2xT4", input_tokens=1, output_tokens=1, budget_s=BUDGET)
        assert p.weights_source == "file" and p.weights_gb >= f.gb - 1e-9, (f.model, f.type)
    # a catalog GGUF entry finds the file it downloads
    q = roofline.predict("mistral-7b-instruct-v0.2-q4_k_m", "Q4_K_M", "T4", input_tokens=1, output_tokens=1,
                         budget_s=BUDGET)
    assert (q.weights_gb, q.weights_source) == (4.37, "file")
    # no published Q8_0 of gemma-7b-it and no IQ2_XS file at all: parameters x bits per weight
    for model, quant in (("gemma-7b-it", "Q8_0"), ("llama-2-70b-chat", "IQ2_XS")):
        p = roofline.predict(model, quant, "2xT4", input_tokens=1, output_tokens=1, budget_s=BUDGET)
        arch = roofline.architecture(model)
        assert p.weights_source == "bpw estimate"
        assert p.weights_gb * GB == pytest.approx(roofline.weight_bytes(arch, roofline.quantization(quant), 16, False))
    assert modelfiles.published_size("gemma-7b-it", "Q8_0") is None
    # transformers weights never come from a GGUF file
    assert roofline.predict("llama-2-7b-chat", "fp16", "T4", budget_s=BUDGET).weights_source == "parameters"


def test_where_quantizers_differ_the_larger_file_is_used_and_named(tmp_path):
    from shared.speed import modelfiles
    size, text = modelfiles.published_size("mixtral-8x7b-instruct-v0.1", "Q4_K_M")
    assert size == pytest.approx(28.4e9) and "TheBloke 26.44 GB" in text and "the larger used" in text
    # the fit uses the larger file: weights + KV for n_ctx 700 (600 + 100), split over the two T4s
    p = roofline.predict("mixtral-8x7b-instruct-v0.1", "Q4_K_M", "2xT4", budget_s=BUDGET)
    assert p.memory_per_gpu_gb == pytest.approx((28.4e9 + 700 * 128 * 1024) / GB / 2 + 0.78)
    # a recorded file of another quantizer that is smaller changes nothing; a larger one wins
    data = {"sources": {"s": "test"}, "models": {"phi-2": [
        {"type": "Q4_K_M", "gb": 1.0, "quantizer": "a", "file": "x.gguf", "source": "s"},
        {"type": "Q4_K_M", "gb": 2.5, "quantizer": "b", "file": "y.gguf", "source": "s"}]}}
    import yaml
    path = tmp_path / "gguf_files.yaml"
    path.write_text(yaml.safe_dump(data))
    size, text = modelfiles.published_size("phi-2", "Q4_K_M", path)
    assert size == 2.5e9 and text.startswith("file y.gguf 2.5 GB (b); a 1 GB")
    assert modelfiles.published_size("phi-2", "Q8_0", path) is None


def test_load_time_is_file_bytes_over_the_kaggle_read_rate_and_reproduces_the_seeds_rows():
    from shared.speed import modelfiles
    rate = modelfiles.rate_for("T4")
    assert rate.read_gb_s == pytest.approx(93 / 720)                  # the seed: 93 GB in 12 min on Kaggle
    assert modelfiles.rate_for("2xT4") is rate and modelfiles.rate_for("H200") is None
    for check in modelfiles.load_checks():                            # the seed's PC: HDD 24 min, SSD 1 min
        assert check["gb"] / check["read_gb_s"] == pytest.approx(check["seconds"], rel=0.05), check["what"]
    # the seed's own configuration reproduces its row: Mixtral read as the fp16 checkpoint
    nf4 = roofline.predict("mixtral-8x7b-instruct-v0.1", "bnb-4bit", "2xT4", budget_s=BUDGET)
    assert nf4.load_s == pytest.approx(46.7e9 * 2 / GB / (93 / 720)) and nf4.load_s == pytest.approx(720, rel=0.01)
    assert nf4.load_calibration.startswith("1 public row")
    gguf = roofline.predict("mixtral-8x7b-instruct-v0.1", "Q4_K_M", "2xT4", budget_s=BUDGET)
    assert gguf.load_s == pytest.approx(28.4 / (93 / 720)) and gguf.load_calibration.startswith("uncalibrated")
    s, why = modelfiles.load_seconds(1e9, "llama.cpp", "H200")
    assert s is None and "no public load time" in why


def test_calls_a_sample_count_what_is_left_after_one_load():
    samples, hours = 1300, 9.0
    budget = hours * 3600 / samples
    free = roofline.predict("llama-2-13b-chat", "Q4_K_M", "T4", budget_s=budget)            # no sample count
    p = roofline.predict("llama-2-13b-chat", "Q4_K_M", "T4", budget_s=budget, samples=samples)
    assert free.budget_net_s == budget and "not subtracted" in free.load_calibration
    assert p.load_s == pytest.approx(7.87 / (93 / 720))
    assert p.budget_net_s == pytest.approx(budget - p.load_s / samples)
    assert p.calls_per_sample == int(p.budget_net_s // p.s_per_sample_high)
    # a load that eats the whole budget leaves no call
    tiny = roofline.predict("mixtral-8x7b-instruct-v0.1", "bnb-4bit", "2xT4", budget_s=0.5, samples=1000)
    assert tiny.budget_net_s < 0 and tiny.calls_per_sample == 0 and not tiny.fast_enough
