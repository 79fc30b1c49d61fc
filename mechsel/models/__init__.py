"""Model loading: the embedded default, any TransformerLens model, and tiny test models."""

from mechsel.models.embedded import EMBEDDED_MODEL, embedded_hf_folder
from mechsel.models.loading import ModelInfo, WeightProcessing, load_model, model_info, model_provenance, weight_fingerprint
from mechsel.models.tiny import CharTokenizer, tiny_model

__all__ = [
    "EMBEDDED_MODEL",
    "embedded_hf_folder",
    "ModelInfo",
    "WeightProcessing",
    "load_model",
    "model_info",
    "model_provenance",
    "weight_fingerprint",
    "CharTokenizer",
    "tiny_model",
]
