"""The fused linear cross-entropy inside Hugging Face ``transformers`` causal language models.

``patch(model)`` makes ``model(input_ids, labels=labels)`` compute its loss with
:func:`crossent.torch.linear_cross_entropy` from the hidden states and the output embedding,
so that the (batch, time, vocab) logits never exist when labels are given; the loss and every
parameter gradient are the model's own (``ForCausalLMLoss``: shifted labels, ``ignore_index``
-100, ``shift_labels``, ``num_items_in_batch``, final-logit soft-capping, logit scaling, tied
embeddings, a bias on the head, ``logits_to_keep``). No model's forward is copied: the model
runs its own forward with the labels held back, and the output embedding's call computes the
loss in their place. Needs the extra: ``pip install 'crossent[transformers]'``.

>>> import torch, transformers
>>> import crossent.transformers as cet
>>> config = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
>>> _ = torch.manual_seed(0)
>>> model = transformers.LlamaForCausalLM(config)
>>> ids = torch.randint(0, 64, (2, 6))
>>> reference = model(ids, labels=ids).loss
>>> cet.patch(model) is model
True
>>> out = model(ids, labels=ids)
>>> bool(torch.allclose(out.loss, reference)), out.logits is None
(True, True)
>>> cet.unpatch(model) is model
True
"""

try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ModuleNotFoundError as error:  # one line with the install hint
    raise ModuleNotFoundError(
        f"crossent.transformers needs {error.name}, which is not installed: "
        "pip install 'crossent[transformers]'",
        name=error.name,
    ) from None

from ._patch import UnsupportedModelError, is_patched, patch, patched, unpatch

__all__ = ["UnsupportedModelError", "is_patched", "patch", "patched", "unpatch"]
