"""The stage functions of an experiment (each ``fn(ctx) -> {name: output}``); see
:mod:`mechsel.experiment.pipeline` for how they are wired and what each reads."""
