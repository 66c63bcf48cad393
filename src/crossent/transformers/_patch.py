"""``patch(model)``: the model's loss from the fused op, with no copy of any model's forward.

How: two instance attributes. The model's ``forward`` is wrapped: when labels are given it
holds them back (calls the original forward with ``labels=None``) and leaves a request on the
patch. The output embedding's ``forward`` is wrapped too: the model's own forward calls it with
the final hidden states (already sliced by ``logits_to_keep``), and with a request pending it
computes the loss there, from the hidden states and its own weight, and returns a (..., 1)
placeholder instead of the (..., V) logits; the model's post-processing of the logits (a soft
cap, a scale) runs on the placeholder for next to nothing. Computing inside the head's call
keeps the module hooks around it (device placement, ZeRO-3 gathering the weight) in force.

The transforms the model applies to its logits after the head are read from its config
(``final_logit_softcapping``; ``logit_scale``, a multiplier; ``logits_scaling``, a divisor) and
passed to the fused op as ``softcap`` and ``temperature``; ``patch`` checks them on a probe
forward of a few tokens, so an architecture that does something else is refused by name
instead of giving a silently different loss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ..torch import linear_cross_entropy

__all__ = ["UnsupportedModelError", "is_patched", "patch", "patched", "unpatch"]

_ATTR = "_crossent_patch"
_IGNORE = -100  # transformers' ignore_index for labels


class UnsupportedModelError(TypeError):
    """The model cannot be patched generically; the message names its architecture and why."""


@dataclasses.dataclass
class _Request:
    """The labels of one call, held back from the model, and the loss computed for them."""

    labels: torch.Tensor
    shift_labels: torch.Tensor | None
    num_items_in_batch: torch.Tensor | int | None
    logits_to_keep: int | torch.Tensor
    ignore_index: int
    loss: torch.Tensor | None = None


@dataclasses.dataclass
class _Patch:
    model: Any  # a transformers PreTrainedModel and its head: attributes read duck-typed
    head: Any
    forward: Callable[..., Any]  # the model's forward before patching (bound)
    head_forward: Callable[..., Any]
    saved: dict[str, Any]  # instance attributes "forward" replaced (absent: None)
    softcap: float | None
    temperature: float
    return_logits: bool
    chunk_size: int | None
    request: _Request | None = None
    probe: list[torch.Tensor] | None = None  # the head's logits seen during the verification


def _name(model: torch.nn.Module) -> str:
    return type(model).__name__


def _text_config(model: torch.nn.Module) -> Any:
    config: Any = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _head_transform(model: torch.nn.Module) -> tuple[float | None, float]:
    """(softcap, temperature) of the model's post-processing of the head's output."""
    text = _text_config(model)
    softcap = getattr(text, "final_logit_softcapping", None)
    temperature = 1.0
    # Cohere multiplies the logits by logit_scale (kept on the model too); dividing by the
    # temperature 1 / scale is the same map
    scale = getattr(model, "logit_scale", None)
    if not isinstance(scale, int | float):
        scale = getattr(text, "logit_scale", None)
    if isinstance(scale, int | float) and scale != 1:
        temperature = 1.0 / float(scale)
    divisor = getattr(text, "logits_scaling", None)  # Granite divides the logits
    if isinstance(divisor, int | float) and divisor != 1:
        temperature *= float(divisor)
    return (None if softcap is None else float(softcap)), temperature


def _find_head(model: torch.nn.Module) -> torch.nn.Module:
    name = _name(model)
    getter = getattr(model, "get_output_embeddings", None)
    if not isinstance(model, torch.nn.Module) or getter is None:
        raise UnsupportedModelError(
            f"{name} is not a transformers model with get_output_embeddings(); "
            "crossent.transformers.patch takes a causal language model (…ForCausalLM)"
        )
    head = getter()
    weight = getattr(head, "weight", None)
    bias = getattr(head, "bias", None)
    if (
        not isinstance(head, torch.nn.Module)
        or not isinstance(weight, torch.Tensor)
        or weight.ndim != 2
        or not weight.is_floating_point()
        or (bias is not None and (not isinstance(bias, torch.Tensor) or bias.ndim != 1))
    ):
        raise UnsupportedModelError(
            f"{name}: its output embedding {type(head).__name__} is not a linear layer with a "
            "floating (vocab, hidden) weight; crossent.transformers.patch cannot fuse it"
        )
    # the labels' loss must be the causal one (shifted labels): a masked or an encoder-decoder
    # model scores its labels unshifted, and a custom loss_function would be replaced
    if getattr(model.config, "is_encoder_decoder", False):
        raise UnsupportedModelError(
            f"{name} is an encoder-decoder model; crossent.transformers.patch takes a causal "
            "language model (…ForCausalLM)"
        )
    from transformers.loss.loss_utils import ForCausalLMLoss

    loss_function = getattr(model, "loss_function", ForCausalLMLoss)
    if loss_function is not ForCausalLMLoss:
        raise UnsupportedModelError(
            f"{name}'s loss is {getattr(loss_function, '__name__', loss_function)}, not "
            "transformers' ForCausalLMLoss; crossent.transformers.patch computes only the latter"
        )
    parameters = inspect.signature(model.forward).parameters.values()
    if not any(p.name == "labels" or p.kind is p.VAR_KEYWORD for p in parameters):
        raise UnsupportedModelError(
            f"{name}.forward takes no labels: crossent.transformers.patch takes a causal "
            "language model (…ForCausalLM)"
        )
    return head


def _keep(targets: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """The targets of the positions the model keeps (its slicing of the hidden states)."""
    if isinstance(logits_to_keep, int):
        return targets if logits_to_keep == 0 else targets[..., -logits_to_keep:]
    try:  # transformers >= 5 has one function for every form (1-D, 2-D, boolean)
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:
        return targets[:, logits_to_keep]
    return slice_logits_to_keep(targets.unsqueeze(-1), logits_to_keep).squeeze(-1)


def _loss(state: _Patch, request: _Request, hidden: torch.Tensor) -> torch.Tensor:
    """transformers' ForCausalLMLoss of the head's logits, from the hidden states."""
    if request.shift_labels is not None:
        targets = request.shift_labels  # already shifted (sequence parallelism)
    else:  # position t predicts label t + 1; the last position predicts nothing
        targets = F.pad(request.labels, (0, 1), value=request.ignore_index)[..., 1:]
    targets = _keep(targets, request.logits_to_keep).to(hidden.device)
    if tuple(targets.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(
            f"{_name(state.model)}: labels give targets of shape {tuple(targets.shape)} for "
            f"hidden states of shape {tuple(hidden.shape)} (logits_to_keep="
            f"{request.logits_to_keep!r}); the labels must have the input's (batch, time) shape"
        )
    weight = state.head.weight
    bias = getattr(state.head, "bias", None)
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        # what the head's F.linear would have run in; the op then accumulates in float32
        dtype = torch.get_autocast_dtype(device)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    with torch.autocast(device, enabled=False):
        loss = linear_cross_entropy(
            hidden,
            weight,
            targets,
            bias=bias,
            ignore_index=request.ignore_index,
            softcap=state.softcap,
            temperature=state.temperature,
            normalizer=request.num_items_in_batch,
            chunk_size=state.chunk_size,
        )
    assert isinstance(loss, torch.Tensor)
    return loss.float()  # transformers' loss is float32 whatever the model's dtype


def _head_forward(state: _Patch, hidden: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    request = state.request
    if request is None:
        logits = state.head_forward(hidden, *args, **kwargs)
        if state.probe is not None:
            # the probe keeps the head's logits, taken inside the model's forward where FSDP
            # has gathered a sharded weight
            state.probe.append(logits)
        return logits
    if request.loss is not None:
        raise UnsupportedModelError(
            f"{_name(state.model)} calls its output embedding twice in one forward; "
            "crossent.transformers.patch cannot tell which call the labels belong to"
        )
    request.loss = _loss(state, request, hidden)
    if state.return_logits:
        return state.head_forward(hidden, *args, **kwargs)
    # one column instead of the vocabulary: the model's own post-processing stays cheap
    return hidden.new_zeros((*hidden.shape[:-1], 1))


def _model_forward(state: _Patch, *args: Any, **kwargs: Any) -> Any:
    signature = inspect.signature(state.forward)
    bound = signature.bind(*args, **kwargs)
    arguments = bound.arguments
    extra: dict[str, Any] = {}  # what the signature's **kwargs holds
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            extra = arguments.get(name, {})
    where = arguments if "labels" in arguments else extra
    labels = where.get("labels")
    if labels is None:
        return state.forward(*args, **kwargs)
    keep = arguments.get("logits_to_keep", extra.get("logits_to_keep", 0))
    request = _Request(
        labels=labels,
        shift_labels=extra.get("shift_labels"),
        num_items_in_batch=extra.get("num_items_in_batch"),
        logits_to_keep=0 if keep is None else keep,
        ignore_index=extra.get("ignore_index", _IGNORE),
    )
    where["labels"] = None
    # the caller's choice, wherever the signature keeps it; the call below asks for a dict
    return_dict = arguments.pop("return_dict", extra.pop("return_dict", None))
    if return_dict is None:
        return_dict = getattr(state.model.config, "return_dict", True)
    if state.request is not None:
        raise RuntimeError(f"{_name(state.model)}: a patched forward is already running")
    state.request = request
    try:
        out = state.forward(*bound.args, **bound.kwargs, return_dict=True)
    finally:
        state.request = None
    if request.loss is None:
        raise UnsupportedModelError(
            f"{_name(state.model)} did not call its output embedding "
            f"({type(state.head).__name__}) in forward; crossent.transformers.patch cannot "
            "compute its loss"
        )
    loss = request.loss
    aux = getattr(out, "aux_loss", None)
    if aux is not None:  # a mixture of experts adds its load-balancing loss when labels are given
        coef = getattr(state.model, "router_aux_loss_coef", None)
        if coef is None:
            coef = getattr(_text_config(state.model), "router_aux_loss_coef", 0.0)
        loss = loss + coef * aux.to(loss.device)
    out = dataclasses.replace(out, loss=loss, **({} if state.return_logits else {"logits": None}))
    return out if return_dict else out.to_tuple()


class _Forward:
    """The patched ``forward`` of the model or of its head (an instance attribute).

    It finds the patch on its module at each call instead of holding it, so a deep copy of a
    patched model (a reference model for RL, say) calls its own copy. ``__wrapped__`` gives
    ``inspect.signature`` (the Trainer reads it) the original's.
    """

    def __init__(self, module: torch.nn.Module, original: Callable[..., Any], head: bool):
        self.module = module
        self.__wrapped__ = original
        self.head = head

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        state: _Patch = self.module.__dict__[_ATTR]
        if self.head:
            return _head_forward(state, *args, **kwargs)
        return _model_forward(state, *args, **kwargs)


def _install(module: torch.nn.Module, state: _Patch, *, head: bool) -> None:
    original = state.head_forward if head else state.forward
    module.__dict__[_ATTR] = state
    module.__dict__["forward"] = _Forward(module, original, head)


def _restore(module: torch.nn.Module, saved: Any) -> None:
    module.__dict__.pop(_ATTR, None)
    if saved is None:
        module.__dict__.pop("forward", None)
    else:
        module.__dict__["forward"] = saved


def _verify(state: _Patch) -> None:
    """A forward of a few tokens: the head's logits, soft-capped and scaled as the fused op
    does, must be the model's; otherwise the model post-processes them in another way."""
    model, name = state.model, _name(state.model)
    vocab = state.head.weight.shape[0]
    embeddings = model.get_input_embeddings()
    device = embeddings.weight.device if embeddings is not None else state.head.weight.device
    ids = (torch.arange(6, device=device) * 7 % vocab).unsqueeze(0)
    training = model.training
    model.eval()
    state.probe = []
    try:
        with torch.no_grad():
            # through the module's __call__, so that its hooks (FSDP, device placement) run
            out = model(input_ids=ids, return_dict=True)
            logits = state.probe
            if len(logits) != 1:
                raise UnsupportedModelError(
                    f"{name} called its output embedding ({type(state.head).__name__}) "
                    f"{len(logits)} times in a forward instead of once; "
                    "crossent.transformers.patch cannot fuse its loss"
                )
            ours = logits[0].float()
            if state.softcap is not None:
                ours = state.softcap * torch.tanh(ours / state.softcap)
            ours = ours / state.temperature
    except UnsupportedModelError:
        raise
    except Exception as error:
        raise UnsupportedModelError(
            f"{name}: the probe forward that checks the patch failed ({error}); pass "
            "verify=False to patch without it"
        ) from error
    finally:
        state.probe = None
        model.train(training)
    theirs = out.logits.float()
    scale = float(theirs.abs().max()) + 1.0
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-3, atol=1e-3 * scale):
        raise UnsupportedModelError(
            f"{name} post-processes its logits in a way crossent.transformers.patch does not "
            f"know (softcap={state.softcap}, temperature={state.temperature} read from its "
            "config do not reproduce them); it cannot be patched"
        )


def patch(
    model: torch.nn.Module,
    /,
    *,
    return_logits: bool = False,
    chunk_size: int | None = None,
    verify: bool = True,
) -> torch.nn.Module:
    r"""Compute a causal language model's loss with the fused linear cross-entropy.

    After ``patch(model)``, ``model(input_ids, labels=labels, ...)`` returns the loss of
    transformers' ``ForCausalLMLoss``

    .. math::

        \text{loss} = \frac{1}{D} \sum_{b,t:\, y_{b,t+1} \ne -100}
            \operatorname{CE}\big(f(h_{b,t} W^\top + c),\ y_{b,t+1}\big),

    with :math:`f` the model's post-processing of the logits (Gemma's soft cap
    :math:`s \tanh(z/s)`, Cohere's ``logit_scale``, Granite's ``logits_scaling``) and
    :math:`D` = ``num_items_in_batch`` when the Trainer passes it (gradient accumulation),
    else the count of scored labels; ``shift_labels`` replaces the shifted labels. It is
    computed by :func:`crossent.torch.linear_cross_entropy` from the decoder's last hidden
    states and the output embedding's weight (tied or not) and bias, so the (batch, time,
    vocab) logits never exist: ``out.logits`` is None unless ``return_logits``. Without
    labels the model is unchanged (generation). All-ignored labels give 0, not NaN.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal language model whose ``get_output_embeddings()`` is a linear layer that its
        forward calls once on the final hidden states. Patched in place.
    return_logits : bool, default False
        Also compute and return the logits when labels are given (the loss still comes from
        the fused op).
    chunk_size : int, optional
        Rows per chunk of the fused op (default: its own).
    verify : bool, default True
        Check on a forward of 6 tokens (in eval mode, without gradients) that the model's
        logits are the head's, post-processed as read from the config; raise
        :class:`UnsupportedModelError` naming the architecture if not.

    Returns
    -------
    The same model, patched (``unpatch(model)`` undoes it).

    Raises
    ------
    UnsupportedModelError
        The model has no linear output embedding, its forward takes no labels, or it
        transforms its logits in an unknown way.

    Examples
    --------
    >>> import torch, transformers
    >>> from crossent.transformers import patch
    >>> config = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2)
    >>> model = patch(transformers.GPT2LMHeadModel(config))
    >>> ids = torch.randint(0, 50, (2, 5))
    >>> out = model(ids, labels=ids)
    >>> out.loss.shape, out.logits
    (torch.Size([]), None)
    >>> model(ids).logits.shape  # no labels: the model's own forward
    torch.Size([2, 5, 50])
    """
    if is_patched(model):
        unpatch(model)
    head = _find_head(model)
    softcap, temperature = _head_transform(model)
    state = _Patch(
        model=model,
        head=head,
        forward=model.forward,
        head_forward=head.forward,
        saved={"model": model.__dict__.get("forward"), "head": head.__dict__.get("forward")},
        softcap=softcap,
        temperature=temperature,
        return_logits=bool(return_logits),
        chunk_size=chunk_size,
    )
    if verify:
        _install(head, state, head=True)
        try:
            _verify(state)
        except BaseException:
            _restore(head, state.saved["head"])
            raise
    _install(head, state, head=True)
    _install(model, state, head=False)
    return model


def unpatch(model: torch.nn.Module, /) -> torch.nn.Module:
    """Undo :func:`patch`: the model's own forward and loss again. Returns the model."""
    state: _Patch | None = model.__dict__.get(_ATTR)
    if state is None:
        raise ValueError(f"{_name(model)} is not patched by crossent.transformers.patch")
    _restore(model, state.saved["model"])
    _restore(state.head, state.saved["head"])
    return model


def is_patched(model: torch.nn.Module, /) -> bool:
    """Whether :func:`patch` is in force on ``model``."""
    return _ATTR in getattr(model, "__dict__", {})


@contextlib.contextmanager
def patched(model: torch.nn.Module, /, **options: Any) -> Iterator[torch.nn.Module]:
    """``with patched(model): ...``: :func:`patch` for the block, then :func:`unpatch`."""
    patch(model, **options)
    try:
        yield model
    finally:
        unpatch(model)
