"""Sparse autoencoders on ``hook_mlp_out``: loading (:mod:`~mechsel.sae.loading`), training on
demonstration segments kept apart from the experiments (:mod:`~mechsel.sae.training`,
:mod:`~mechsel.sae.demonstrations`), reconstruction as the field reports it (FVU against the
dataset mean, :mod:`~mechsel.sae.reference`; the spliced-in loss, :mod:`~mechsel.sae.splice`),
per-example latent statistics (:mod:`~mechsel.sae.statistics`), a causal test of the latents
the statistics single out (:mod:`~mechsel.sae.causal`) and views (the selectors on SAE latents
are in :mod:`mechsel.selectors.sae`)."""
