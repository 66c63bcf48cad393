"""crossent.transformers.patch against the unpatched transformers models (the reference).

Tiny randomly initialized models built from configs in code (no downloads). The vocabulary
(97) differs from every other dimension, so the guard below recognizes the head's matmul.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import torch.nn.functional as F  # noqa: E402

import crossent.transformers as cet  # noqa: E402
from crossent.transformers import _patch  # noqa: E402

VOCAB = 97
DECODER = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    pad_token_id=0, bos_token_id=1, eos_token_id=2,
)  # fmt: skip

CONFIGS = {
    "llama": lambda: transformers.LlamaConfig(**DECODER),
    "mistral": lambda: transformers.MistralConfig(**DECODER),
    "qwen2": lambda: transformers.Qwen2Config(**DECODER),
    "qwen3": lambda: transformers.Qwen3Config(**DECODER, head_dim=8),
    # a soft cap of 2 bites: the random logits reach a few units
    "gemma2": lambda: transformers.Gemma2Config(
        **DECODER, head_dim=8, final_logit_softcapping=2.0, attn_implementation="eager"
    ),
    "phi3": lambda: transformers.Phi3Config(**DECODER),
    "cohere": lambda: transformers.CohereConfig(**DECODER, logit_scale=0.5),
    "granite": lambda: transformers.GraniteConfig(**DECODER, logits_scaling=4.0),
    # a mixture of experts that adds its load-balancing loss to the labels' loss
    "mixtral": lambda: transformers.MixtralConfig(
        **DECODER,
        num_local_experts=4,
        num_experts_per_tok=2,
        output_router_logits=True,
        router_aux_loss_coef=0.5,
    ),
    "gpt2": lambda: transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64
    ),
}


def tiny(arch: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[arch]())
    return model.eval()  # no dropout: the two runs must see the same network


def batch(seed: int = 1, shape: tuple[int, int] = (3, 11)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, shape, generator=g)
    labels = ids.clone()
    labels[0, :4] = -100  # a prompt
    labels[2, -3:] = -100  # padding
    return ids, labels


def loss_and_grads(model, *args, **kwargs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(*args, **kwargs)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), grads


def assert_same(got, ref, rel: float = 1e-5) -> None:
    """Loss to rel, each parameter's gradient to rel in norm."""
    (loss, grads), (loss_ref, grads_ref) = got, ref
    assert torch.isfinite(loss_ref)
    assert abs(float(loss) - float(loss_ref)) <= rel * abs(float(loss_ref)), (loss, loss_ref)
    assert grads.keys() == grads_ref.keys()
    for name, g in grads.items():
        err = float((g - grads_ref[name]).norm())
        assert err <= rel * float(grads_ref[name].norm()) + 1e-12, (name, err)


@contextlib.contextmanager
def no_head_logits():
    """Fail if any F.linear produces vocabulary-wide outputs (the head's logits)."""
    linear = F.linear

    def guarded(x, weight, bias=None):
        assert weight.shape[0] != VOCAB, "the (batch, time, vocab) logits were computed"
        return linear(x, weight, bias)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(F, "linear", guarded)
        yield


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_loss_and_gradients_match_the_model(arch) -> None:
    model = tiny(arch)
    ids, labels = batch()
    ref = loss_and_grads(model, ids, labels=labels)
    logits_ref = model(ids).logits.detach()
    cet.patch(model, chunk_size=8)  # several chunks
    with no_head_logits():
        got = loss_and_grads(model, ids, labels=labels)
        out = model(ids, labels=labels)
    assert out.logits is None
    assert_same(got, ref)
    with no_head_logits(), pytest.raises(AssertionError, match="logits were computed"):
        model(ids)  # the guard sees the head when it runs
    # without labels: the model's own logits
    torch.testing.assert_close(model(ids).logits, logits_ref, rtol=0, atol=0)


def test_the_transforms_are_read_from_the_config() -> None:
    assert _patch._head_transform(tiny("gemma2")) == (2.0, 1.0)
    assert _patch._head_transform(tiny("cohere")) == (None, 2.0)
    assert _patch._head_transform(tiny("granite")) == (None, 4.0)
    assert _patch._head_transform(tiny("llama")) == (None, 1.0)


def test_gpt2_is_tied_and_the_tied_gradient_holds_both_uses() -> None:
    model = tiny("gpt2")
    assert model.lm_head.weight is model.transformer.wte.weight
    ids, labels = batch()
    ref = loss_and_grads(model, ids, labels=labels)
    with cet.patched(model), no_head_logits():
        assert_same(loss_and_grads(model, ids, labels=labels), ref)
    assert not cet.is_patched(model) and "forward" not in model.__dict__


def test_bias_on_the_head() -> None:
    model = tiny("llama")
    model.lm_head = torch.nn.Linear(32, VOCAB, bias=True)
    torch.nn.init.normal_(model.lm_head.bias, std=1.0)
    ids, labels = batch()
    ref = loss_and_grads(model, ids, labels=labels)
    cet.patch(model)
    with no_head_logits():
        got = loss_and_grads(model, ids, labels=labels)
    assert "lm_head.bias" in got[1]
    assert_same(got, ref)


def test_num_items_in_batch_and_shift_labels_are_the_models() -> None:
    model = tiny("qwen2")
    ids, labels = batch()
    n = torch.tensor(40)
    shifted = torch.roll(labels, 2, dims=1)  # any labels already aligned with the positions
    for kwargs in ({"num_items_in_batch": n}, {"shift_labels": shifted},
                   {"shift_labels": shifted, "num_items_in_batch": 17}):  # fmt: skip
        ref = loss_and_grads(model, ids, labels=labels, **kwargs)
        with cet.patched(model):
            assert_same(loss_and_grads(model, ids, labels=labels, **kwargs), ref)


def test_logits_to_keep_scores_the_kept_positions() -> None:
    # transformers' own loss cannot take labels with logits_to_keep (shape mismatch): the
    # reference is the cross-entropy of the kept logits against their shifted labels
    model = tiny("mistral")
    ids, labels = batch()
    targets = F.pad(labels, (0, 1), value=-100)[:, 1:]
    logits = model(ids).logits
    keeps = (4, torch.tensor([0, 3, 5, 10]))
    for keep, idx in zip(keeps, (slice(-4, None), keeps[1]), strict=True):
        ref = F.cross_entropy(logits[:, idx].reshape(-1, VOCAB), targets[:, idx].reshape(-1))
        with cet.patched(model):
            loss = model(ids, labels=labels, logits_to_keep=keep).loss
        torch.testing.assert_close(loss, ref, rtol=1e-5, atol=0)


def test_return_logits_and_tuples() -> None:
    model = tiny("phi3")
    ids, labels = batch()
    ref = model(ids, labels=labels)
    cet.patch(model, return_logits=True)
    out = model(ids, labels=labels)
    torch.testing.assert_close(out.logits, ref.logits, rtol=0, atol=0)
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-5, atol=0)
    loss, logits = model(ids, labels=labels, return_dict=False, use_cache=False)
    torch.testing.assert_close(loss, ref.loss, rtol=1e-5, atol=0)
    assert logits.shape == (3, 11, VOCAB)
    cet.patch(model)  # patching again replaces the options; a tuple skips the None logits
    (loss,) = model(ids, labels=labels, return_dict=False, use_cache=False)
    torch.testing.assert_close(loss, ref.loss, rtol=1e-5, atol=0)
    cet.unpatch(model)
    torch.testing.assert_close(model(ids, labels=labels).logits, ref.logits)
    with pytest.raises(ValueError, match="not patched"):
        cet.unpatch(model)


def test_a_deep_copy_of_a_patched_model_uses_its_own_weights() -> None:
    model = cet.patch(tiny("qwen3"))
    ids, labels = batch()
    loss = model(ids, labels=labels).loss
    clone = copy.deepcopy(model)  # e.g. the frozen reference model of RL
    with torch.no_grad():
        clone.lm_head.weight.mul_(2)
    got = clone(ids, labels=labels).loss
    torch.testing.assert_close(model(ids, labels=labels).loss, loss, rtol=0, atol=0)
    cet.unpatch(clone)
    torch.testing.assert_close(got, clone(ids, labels=labels).loss, rtol=1e-5, atol=0)
    assert not torch.allclose(got, loss)


def test_generation_is_the_models() -> None:
    model = tiny("llama")
    ids, _ = batch()
    ref = model.generate(ids[:, :4], max_new_tokens=5, do_sample=False)
    with cet.patched(model):
        assert torch.equal(model.generate(ids[:, :4], max_new_tokens=5, do_sample=False), ref)


def test_all_labels_ignored_gives_zero_not_nan() -> None:
    model = cet.patch(tiny("llama"))
    ids, _ = batch()
    loss = model(ids, labels=torch.full_like(ids, -100)).loss
    assert float(loss.detach()) == 0.0


def test_autocast_bfloat16_matches_the_model() -> None:
    model = tiny("llama")
    ids, labels = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = model(ids, labels=labels).loss
        with cet.patched(model):
            loss = model(ids, labels=labels).loss
    assert loss.dtype == ref.dtype == torch.float32
    # both round the logits' inputs to bfloat16; the loss is rounded to bfloat16 once
    torch.testing.assert_close(loss, ref, rtol=1e-2, atol=0)


def test_a_bfloat16_model_gives_its_loss_to_bfloat16_rounding() -> None:
    model = tiny("gemma2").to(torch.bfloat16)
    ids, labels = batch()
    ref = model(ids, labels=labels).loss  # float32 from bfloat16 logits
    with cet.patched(model):
        loss = model(ids, labels=labels).loss
    # the fused op accumulates in float32 and returns the loss in the inputs' dtype: one
    # bfloat16 rounding (relative 2**-9) away
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ref, rtol=2**-8, atol=0)


class ScaledLlama(transformers.LlamaForCausalLM):
    """Post-processes its logits in a way no config tells (a stand-in for such models)."""

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.logits = out.logits * 3
        return out


def test_unsupported_models_are_refused_by_name() -> None:
    torch.manual_seed(0)
    scaled = ScaledLlama(CONFIGS["llama"]())
    with pytest.raises(cet.UnsupportedModelError, match="ScaledLlama post-processes"):
        cet.patch(scaled)
    assert not cet.is_patched(scaled) and "forward" not in scaled.lm_head.__dict__
    base = transformers.LlamaModel(CONFIGS["llama"]())
    with pytest.raises(cet.UnsupportedModelError, match="LlamaModel"):
        cet.patch(base)
    small = dict(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                 intermediate_size=32)  # fmt: skip
    with pytest.raises(cet.UnsupportedModelError, match="BertForMaskedLM's loss is ForMaskedLM"):
        cet.patch(transformers.BertForMaskedLM(transformers.BertConfig(**small)))
    t5 = transformers.T5Config(vocab_size=VOCAB, d_model=16, d_ff=32, num_layers=1, num_heads=2)
    with pytest.raises(cet.UnsupportedModelError, match="T5ForConditionalGeneration is an enc"):
        cet.patch(transformers.T5ForConditionalGeneration(t5))
    with pytest.raises(cet.UnsupportedModelError, match="Sequential"):
        cet.patch(torch.nn.Sequential(torch.nn.Linear(2, 2)))


class Rows(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(3)
        self.rows = []
        for i in range(8):
            ids = torch.randint(3, VOCAB, (12,), generator=g)
            labels = ids.clone()
            labels[: 1 + 3 * (i % 4)] = -100  # uneven counts: num_items_in_batch matters

            self.rows.append({"input_ids": ids, "labels": labels})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def train(model, tmp_path) -> tuple[list[float], dict[str, torch.Tensor]]:
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=2,
        max_steps=2, learning_rate=0.5, optim="sgd", logging_steps=1, report_to=[],
        save_strategy="no", use_cpu=True, seed=0, data_seed=0, disable_tqdm=True,
        dataloader_num_workers=0,
    )  # fmt: skip
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Rows())
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return losses, {n: p.detach().clone() for n, p in model.named_parameters()}


def test_trainer_with_gradient_accumulation(tmp_path, monkeypatch) -> None:
    ref_losses, ref_params = train(tiny("llama"), tmp_path / "ref")
    seen = []
    loss = _patch._loss
    monkeypatch.setattr(_patch, "_loss", lambda s, r, h: seen.append(r) or loss(s, r, h))
    losses, params = train(cet.patch(tiny("llama")), tmp_path / "patched")
    assert len(seen) == 4 and all(r.num_items_in_batch is not None for r in seen)
    assert len(losses) == len(ref_losses) == 2
    for got, ref in zip(losses, ref_losses, strict=True):
        assert abs(got - ref) <= 1e-5 * abs(ref), (got, ref)
    for name, p in params.items():
        assert torch.allclose(p, ref_params[name], rtol=1e-5, atol=1e-6), name


def test_import_needs_the_extra_and_crossent_does_not_import_it() -> None:
    code = (
        "import sys\n"
        "import crossent\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "sys.modules['transformers'] = None\n"
        "import crossent.transformers\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: crossent.transformers needs transformers, which is not "
        "installed: pip install 'crossent[transformers]'"
    ), proc.stderr


def _fsdp_worker(rank: int, world: int, store: str) -> None:
    """One rank of an FSDP2 (fully_shard) run: each rank its own batch; the patched model's
    loss is the unwrapped model's on that batch, and each parameter's gradient (reduce-
    scattered and averaged by FSDP) the mean of the unwrapped model's over the ranks' batches.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank,
                            world_size=world)  # fmt: skip
    try:
        mesh = init_device_mesh("cpu", (world,))
        batches = [batch(seed=10 + r) for r in range(world)]
        ref = tiny("llama")
        refs = [loss_and_grads(ref, ids, labels=labels) for ids, labels in batches]
        mean_grads = {n: sum(r[1][n] for r in refs) / world for n in refs[0][1]}
        for separate_head in (True, False):  # the head sharded on its own, or with the root
            model = tiny("llama")
            for layer in model.model.layers:
                fully_shard(layer, mesh=mesh)
            if separate_head:
                fully_shard(model.lm_head, mesh=mesh)
            fully_shard(model, mesh=mesh)
            cet.patch(model)
            ids, labels = batches[rank]
            with no_head_logits():
                out = model(ids, labels=labels)
            out.loss.backward()
            grads = {n: p.grad.full_tensor() for n, p in model.named_parameters()}
            assert_same((out.loss.detach(), grads), (refs[rank][0], mean_grads))
        dist.barrier()  # every rank done before any leaves
    except BaseException:
        dist.destroy_process_group()
        raise
    # every check passed: leave without gloo's teardown, which aborts now and then under load
    # (SIGABRT, "terminate called without an active exception"; see test_linear_parallel)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.mark.slow  # 26 s at a load average of 12: two processes import torch and transformers
def test_patch_under_fsdp2(tmp_path) -> None:
    """The loss is computed inside the head's call, where FSDP2 has gathered its weight; the
    probe forward of ``patch`` runs through the module's hooks too."""
    import torch.multiprocessing as mp

    mp.spawn(_fsdp_worker, args=(2, str(tmp_path / "store")), nprocs=2, join=True)
