"""Sparse autoencoders on ``hook_mlp_out``: loading, training, latent statistics, views
(the selectors on SAE latents are in :mod:`mechsel.selectors.sae`)."""
