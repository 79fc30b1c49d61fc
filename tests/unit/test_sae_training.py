"""SAE training: the sparse TopK step equals sae-lens's dense one; a tiny run saves, reloads and reproduces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sae_lens import StandardSAE, TopKSAE, TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.saes.sae import TrainStepInput

from mechsel.errors import ConfigError, DataError
from mechsel.sae.config import SAETrainConfig
from mechsel.sae.evaluation import evaluate_sae
from mechsel.sae.loading import check_sae_matches, load_saes
from mechsel.sae.sparse_topk import SparseTopKTrainingSAE
from mechsel.sae.training import train_sae

TEXTS = [f"sentence number {i} says {'good' if i % 2 else 'bad'} things about {i * 7 % 13}" for i in range(60)]


@pytest.mark.parametrize("rescale", [True, False])
@pytest.mark.parametrize("dead_fraction", [0.0, 0.4])
def test_sparse_topk_step_equals_sae_lens_dense_step(rescale, dead_fraction):
    cfg = TopKTrainingSAEConfig(d_in=12, d_sae=40, k=4, rescale_acts_by_decoder_norm=rescale, aux_loss_coefficient=0.5)
    dense, sparse = TopKTrainingSAE(cfg), SparseTopKTrainingSAE(cfg)
    with torch.no_grad():
        for p in dense.parameters():
            p.add_(0.2 * torch.randn_like(p))
    sparse.load_state_dict(dense.state_dict())
    x = torch.randn(24, 12) * 3
    dead = torch.rand(40) < dead_fraction
    outs = []
    for sae in (dense, sparse):
        out = sae.training_forward_pass(
            TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=dead, n_training_steps=0, is_logging_step=False)
        )
        out.loss.backward()
        outs.append(out)
    for name in outs[0].losses:
        torch.testing.assert_close(outs[1].losses[name], outs[0].losses[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outs[1].feature_acts.to_dense(), outs[0].feature_acts, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outs[1].sae_out, outs[0].sae_out, rtol=1e-5, atol=1e-5)
    for (name, a), (_, b) in zip(dense.named_parameters(), sparse.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")


def test_config_validation_teaches():
    with pytest.raises(ConfigError, match="architecture"):
        SAETrainConfig(architecture="gated")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="datasets"):
        SAETrainConfig(datasets=("imdb",))
    with pytest.raises(ConfigError, match="two batches"):
        SAETrainConfig(batch_size=1024, buffer_tokens=1500)
    with pytest.raises(ConfigError, match="duplicates"):
        SAETrainConfig(layers=(3, 3))
    assert SAETrainConfig(layers=4).layers == (4,)


def test_steps_cover_at_least_the_requested_tokens():
    assert SAETrainConfig(n_train_tokens=500_000, batch_size=256).n_steps == 1954  # 500224 tokens, not 499968
    assert SAETrainConfig(n_train_tokens=1024, batch_size=128, buffer_tokens=512).n_steps == 8
    assert SAETrainConfig(n_train_tokens=1025, batch_size=128, buffer_tokens=512).n_steps == 9


def small(tmp_path, **kw):
    base = dict(
        layers=(0, 1),
        d_sae=48,
        k=4,
        n_train_tokens=1024,
        n_eval_tokens=200,
        batch_size=128,
        buffer_tokens=512,
        lr_warm_up_steps=2,
        dead_feature_window=3,
        output_dir=str(tmp_path / "run"),
        progress=False,
        exclude=(),
        n_loss_tokens=100,
    )
    base.update(kw)
    return SAETrainConfig(**base)


def test_tiny_run_saves_sae_lens_folders_with_provenance_and_reproduces(tiny, tmp_path):
    first = train_sae(tiny, small(tmp_path), texts=TEXTS)
    assert sorted(p.name for p in first.path.iterdir()) == ["layer_0", "layer_1", "run.json"]
    loaded = load_saes(first.path)
    assert isinstance(loaded[0], TopKSAE) and loaded[1].cfg.d_sae == 48
    for layer, sae in loaded.items():
        assert check_sae_matches(sae, tiny, "mlp_out") == layer
        meta = sae.cfg.metadata.mechsel
        assert meta["layer"] == layer and meta["weight_processing"] == "none" and meta["seed"] == 0
        assert meta["n_train_tokens"] == 1024 and meta["data_hash"]
        report = json.loads((first.path / f"layer_{layer}" / "mechsel_training.json").read_text())
        assert report["metrics"] == pytest.approx(first.metrics[layer])
        assert {"fvu", "explained_variance", "l0", "dead_fraction"} <= set(report["metrics"])
        assert report["metrics"]["l0"] <= 4
    again = train_sae(tiny, small(tmp_path, output_dir=str(tmp_path / "again")), texts=TEXTS)
    for layer in (0, 1):
        for name, tensor in first.saes[layer].state_dict().items():
            torch.testing.assert_close(again.saes[layer].state_dict()[name], tensor, rtol=0, atol=0)
    other = train_sae(tiny, small(tmp_path, seed=1, n_train_tokens=1000, output_dir=str(tmp_path / "other")), texts=TEXTS)
    assert not torch.equal(other.saes[0].W_dec, first.saes[0].W_dec)
    assert other.saes[0].cfg.metadata.mechsel["n_train_tokens"] == 1024  # rounded up to whole steps


def test_standard_architecture_trains_with_sae_lens_dense_step(tiny, tmp_path):
    result = train_sae(tiny, small(tmp_path, layers=(1,), architecture="standard", l1_coefficient=0.1), texts=TEXTS)
    assert isinstance(result.saes[1], StandardSAE)
    assert result.saes[1].cfg.metadata.training_architecture == "standard"
    assert 0 < result.metrics[1]["l0"] <= 48 and result.metrics[1]["fvu"] == result.metrics[1]["fvu"]


def test_bad_training_inputs(tiny, tmp_path):
    with pytest.raises(DataError, match="lower n_train_tokens"):
        train_sae(tiny, small(tmp_path, n_train_tokens=10**6), texts=TEXTS)
    with pytest.raises(ConfigError, match="2 layers"):
        train_sae(tiny, small(tmp_path, layers=(5,)), texts=TEXTS)
    with pytest.raises(ConfigError, match="Unknown SAE training option"):
        train_sae(tiny, texts=TEXTS, d_sea=10)
    with pytest.raises(ConfigError, match=r"exclude=\['demo', 'quick'\] names experiment configs.*mechsel.train_sae"):
        train_sae(tiny, small(tmp_path, exclude=("demo", "quick")), texts=TEXTS)  # mechsel.sae does not read experiment configs


def test_evaluate_sae_against_direct_formulas():
    torch.manual_seed(0)
    sae = TopKSAE(TopKTrainingSAEConfig(d_in=6, d_sae=10, k=2).get_inference_config_class()(d_in=6, d_sae=10, k=2))
    x = torch.randn(50, 6)
    m = evaluate_sae(sae, x, baseline_mean=torch.zeros(6), batch_size=7)
    with torch.no_grad():
        f = sae.encode(x)
        r = sae.decode(f)
    x64, r64 = x.double(), r.double()
    fvu = ((x64 - r64) ** 2).sum() / ((x64 - x64.mean(0)) ** 2).sum()
    assert m["fvu"] == pytest.approx(fvu.item())
    assert m["l0"] == pytest.approx((f > 0).sum(1).double().mean().item())
    assert m["dead_fraction"] == pytest.approx(1 - (f > 0).any(0).double().mean().item())
    assert m["baseline_fvu"] == pytest.approx(((x64**2).sum() / ((x64 - x64.mean(0)) ** 2).sum()).item())


@pytest.fixture(scope="module")
def tiny_reviews(tmp_path_factory):
    """A registered classification task of 400 short reviews (train) and 40 (test); its folder."""
    import numpy as np

    from mechsel.tasks import TASKS, TaskConfig, get_task, register_task

    if "tiny_reviews" in TASKS.names():
        return Path(get_task("tiny_reviews").files["train"]).parent
    folder = tmp_path_factory.mktemp("tiny_reviews")

    words = ["fun", "dull", "great", "awful", "nice", "bad", "fine", "poor", "odd", "warm"]
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 400), ("test", 40)):
        files[split] = str(folder / f"{split}.jsonl")
        with open(files[split], "w") as fh:
            for i in range(n):
                text = " ".join(rng.choice(words, size=4)) + f" {split} {i}"
                fh.write(json.dumps({"review": text, "stars": ["bad", "good"][int(rng.integers(2))]}) + "\n")
    register_task(
        TaskConfig(
            name="tiny_reviews",
            template="R: {review}\nA:",
            input_fields=("review",),
            label_field="stars",
            label_names=("bad", "good"),
            verbalizers=("B", "G"),
            files=files,
        )
    )
    return folder


def test_demonstration_data_is_disjoint_from_the_experiments_and_carries_a_reference(tmp_path, tiny_reviews):
    import yaml

    from mechsel.experiment import load_config
    from mechsel.experiment.resources import Resources
    from mechsel.experiment.sae_glue import train_sae as train_sae_apart
    from mechsel.models import tiny_model
    from mechsel.sae.demonstrations import TRAINING_TEXTS_FILE, training_overlap
    from mechsel.sae.reference import reference_of

    experiment = {
        "model": {"name": "tiny-random"},
        "tasks": [{"name": "tiny_reviews", "n_candidates": 40, "dev_size": 10, "test_size": 20}],
        "selection": {"runs": [{"selector": "random"}, {"selector": "activation", "choose_statistic": True}], "budgets": [2]},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(experiment))
    tiny = tiny_model(n_ctx=512)
    config = small(
        tmp_path,
        layers=(1,),
        datasets=("tiny_reviews",),
        exclude=(str(tmp_path / "exp.yaml"),),
        data_format="demonstrations",
        n_eval_tokens=300,
        demos_per_prompt=2,
    )
    result = train_sae_apart(tiny, config)  # mechsel.train_sae: reads the excluded experiment config
    sae = result.saes[1]
    meta = sae.cfg.metadata.mechsel
    assert meta["format"] == "demonstrations" and meta["tasks"] == ["tiny_reviews"]
    assert meta["token_selection"] == {"mask": "full", "positions": "all", "include_template": False}
    assert meta["disjoint_from"]["overlap_found"] == 0
    splits = Resources(load_config(tmp_path / "exp.yaml")).splits("tiny_reviews")
    run_texts = [e.text() for e in splits.examples]
    assert meta["disjoint_from"]["examples_per_task"]["tiny_reviews"] == len(run_texts) == 70
    folder = result.path / "layer_1"
    assert (folder / TRAINING_TEXTS_FILE).is_file()
    assert training_overlap(folder, run_texts) == 0
    train_rows = [json.loads(line)["review"] for line in (tiny_reviews / "train.jsonl").read_text().splitlines()]
    unused = set(train_rows) - set(run_texts)
    assert training_overlap(folder, sorted(unused)) > 0  # it did train on the other train rows
    ref = reference_of(sae)
    assert ref is not None and ref.n_tokens == result.metrics[1]["n_tokens"] and len(ref.mean) == tiny.cfg.d_model
    assert {"clean_loss", "spliced_loss", "ablated_loss", "ce_loss_recovered"} <= set(result.metrics[1])


def test_demonstration_format_needs_task_names():
    with pytest.raises(ConfigError, match="task name"):
        SAETrainConfig(datasets=("texts.txt",))
    assert SAETrainConfig(datasets=("texts.txt",), data_format="plain").datasets == ("texts.txt",)
