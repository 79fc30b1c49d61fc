"""Model loading: the embedded default, any TransformerLens model, and tiny test models."""

from mechsel.models.embedded import EMBEDDED_MODEL, embedded_hf_folder
from mechsel.models.layout import transpose_friendly_layout
from mechsel.models.loading import ModelInfo, WeightProcessing, load_model, model_info, model_provenance, weight_fingerprint
from mechsel.models.precision import MatmulPrecision, PrecisionCheck, matmul_precision, measure_matmul_error
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
    "transpose_friendly_layout",
    "MatmulPrecision",
    "PrecisionCheck",
    "matmul_precision",
    "measure_matmul_error",
    "CharTokenizer",
    "tiny_model",
]
