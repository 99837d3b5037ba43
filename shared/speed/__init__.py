"""shared.speed: how fast a model runs on a machine: roofline, calibration on rows, the predictor, model files, this machine's peaks; reusable by any iteration.

roofline  the roofline model: bytes and FLOPs per token, decode and prefill time, memory, fits
calibration  the roofline's efficiencies fitted on measured and published rows; leave-one-out
predictor  the calibrated roofline for a folder of speed rows (Predictor): any model x quantization x card, CPU ladder
modelfiles  a model's files: published sizes and the seconds to read them
peaks     this machine's measured memory bandwidth and matmul FLOP/s (STREAM-like, torch)
"""
