"""Pretraining of one run (width × seed): resumable, deterministic, checkpointed on a schedule.

Determinism is by construction: the initial weights are a pure function of the seed, the data
order a pure function of (seed, step) (`data`), the learning rate a pure function of the step
(saturation.schedule). A resumed run reloads the exact fp32 weights, optimizer moments and RNG
state of its newest checkpoint (`resume`), so on CPU it ends bit-identical to a run that was
never interrupted. Modules: `launch` (the entry point, one process or torchrun), `loop` (the
loop), `step` (one optimizer update), `speed` (the fast paths taken), `metrics_log` (the logged
curve), `signals` (stopping on SLURM's warning), `distributed` (data parallelism).
"""
