import pytest
import torch

from mechsel.errors import ConfigError
from mechsel.models import load_model, model_info, model_provenance, tiny_model, weight_fingerprint


def test_tiny_model_runs_and_records_info():
    model = tiny_model(n_layers=3)
    logits = model(torch.tensor([[1, 5, 6, 7]]))
    assert logits.shape == (1, 4, model.cfg.d_vocab)
    info = model_info(model)
    assert info.name == "tiny-random" and info.weight_processing == "none"
    prov = model_provenance(model, mask="full")
    assert prov.weight_hash == info.weight_hash and prov.mask == "full"


def test_fingerprint_sees_weight_changes_and_seeds():
    a, b = tiny_model(seed=0), tiny_model(seed=0)
    assert weight_fingerprint(a) == weight_fingerprint(b)
    assert weight_fingerprint(a) != weight_fingerprint(tiny_model(seed=1))
    with torch.no_grad():
        b.blocks[0].mlp.W_out[0, 0] += 1.0  # the first element is always in the strided sample
    assert weight_fingerprint(a) != weight_fingerprint(b)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"weight_processing": "fold"}, "weight_processing must be one of"),
        ({"dtype": "float8"}, "Unknown dtype"),
        ({"source": "disk"}, "source must be one of"),
        ({"name": "gpt2", "source": "embedded"}, "is embedded"),
    ],
)
def test_load_model_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_model(**kwargs)
