"""One call to a student's function, made where the student's objects live.

Runs inside the sandbox (imported by ``harness.py``) and in-process for
:class:`autograder.hidden.LocalStudent`, so a hidden test sees the same thing either way.
A call has a ``mode``:

``value``
    the result, as plain data (:func:`wire.to_plain`, then the wire format).
``observe``
    ``{"value", "args", "kwargs", "aliases"}``: the result, the arguments *as they are
    after the call* (so a test sees what the function did to them) and ``aliases``, a list
    of ``[result_path, argument_path]`` pairs where the result, or a part of it, is an
    argument or a part of one, or shares its memory (``"result['Wxh']"``, ``"args[0]['Wxh']"``).
``gradients``
    runs ``backward()`` here and returns the raw record ``{"value", "grads", "params",
    "note"}``: the arguments named in ``wrt`` (positions or keyword names) are given
    ``requires_grad``; the loss is the result itself (one element) or, with ``grad_output``,
    ``sum(result * grad_output)`` over the tensors of the result; ``grads`` maps each ``wrt``
    (as a string) to its gradient or ``None``; ``params`` maps ``name`` to the gradient of each
    parameter of the object the method belongs to (a kept ``nn.Module``), ``None`` where no
    gradient reached it. ``note`` says in words why no loss could be formed, or is ``None``.

Nothing here decides a grade, and no verdict is sent: this file runs in the student's
process, which can replace any of it. Whether a call was differentiable, which arguments
changed, and whether the gradients are right are decided in the grader
(:func:`autograder.hidden.shape_result` and the hidden tests), from the data alone.
"""
from __future__ import annotations

try:
    from . import wire
except ImportError:    # inside the sandbox, next to harness.py
    import wire

MAX_ALIAS_NODES = 2000
MODES = ("value", "observe", "gradients")


def perform(function, args: list, kwargs: dict, mode: str = "value", options: dict | None = None,
            owner=None):
    """Call ``function(*args, **kwargs)`` in ``mode``; the returned value is plain data or close to it.

    Exceptions from the student's function propagate; the caller reports them.
    """
    options = options or {}
    if mode == "value":
        return wire.to_plain(function(*args, **kwargs))
    if mode == "observe":
        value = function(*args, **kwargs)
        aliases = _aliases(value, args, kwargs)
        return {"value": wire.to_plain(value), "args": wire.to_plain(list(args)),
                "kwargs": wire.to_plain(dict(kwargs)), "aliases": aliases}
    if mode == "gradients":
        return _gradients(function, list(args), dict(kwargs), options, owner)
    raise ValueError(f"unknown call mode {mode!r}")


# ----------------------------------------------------------------------------- aliases

def _nodes(value, path: str, out: list) -> None:
    """(path, object) for ``value`` and every container, array and tensor inside it."""
    if len(out) >= MAX_ALIAS_NODES or value is None or isinstance(value, (bool, int, float, str, bytes)):
        return
    out.append((path, value))
    from collections.abc import Mapping
    if isinstance(value, Mapping):
        for key, item in list(value.items())[:MAX_ALIAS_NODES]:
            _nodes(item, f"{path}[{key!r}]", out)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value[:MAX_ALIAS_NODES]):
            _nodes(item, f"{path}[{index}]", out)


def _memory(value):
    """(start, end) of the bytes an array or tensor refers to, or None."""
    import numpy as np
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        low, high = np.lib.array_utils.byte_bounds(value) if hasattr(np.lib, "array_utils") \
            else np.byte_bounds(value)
        return low, high
    if wire._is_tensor_like(value):
        try:
            storage = value.untyped_storage()
            start = storage.data_ptr()
            return (start, start + storage.nbytes()) if storage.nbytes() else None
        except Exception:   # a tensor without storage (meta, sparse): no memory to share
            return None
    return None


def _aliases(value, args, kwargs) -> list:
    results, inputs = [], []
    _nodes(value, "result", results)
    for index, arg in enumerate(args):
        _nodes(arg, f"args[{index}]", inputs)
    for key, arg in kwargs.items():
        _nodes(arg, f"kwargs[{key!r}]", inputs)
    memory = [(path, obj, _memory(obj)) for path, obj in inputs]
    found = []
    for result_path, obj in results:
        span = _memory(obj)
        for arg_path, arg, arg_span in memory:
            if obj is arg or (span and arg_span and span[0] < arg_span[1] and arg_span[0] < span[1]):
                found.append([result_path, arg_path])
                break
    return found


# --------------------------------------------------------------------------- gradients

def _gradients(function, args: list, kwargs: dict, options: dict, owner) -> dict:
    import torch
    wrt = list(options.get("wrt", []))
    leaves = {}
    for key in wrt:
        holder, slot = (args, key) if isinstance(key, int) else (kwargs, key)
        if not (0 <= slot < len(holder) if isinstance(key, int) else slot in holder):
            raise ValueError(f"gradients: no argument {key!r}")
        tensor = holder[slot]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise ValueError(f"gradients: argument {key!r} is not a float tensor")
        leaf = tensor.detach().clone().requires_grad_(True)
        holder[slot] = leaf
        leaves[str(key)] = leaf
    modules = {}
    if isinstance(owner, torch.nn.Module):
        modules[""] = owner
    for index, arg in enumerate(args):
        if isinstance(arg, torch.nn.Module):
            modules[f"args[{index}]."] = arg
    parameters = {}
    for prefix, module in modules.items():
        for name, parameter in module.named_parameters():
            parameter.grad = None
            parameters[prefix + name] = parameter
    with torch.enable_grad():
        value = function(*args, **kwargs)
        loss, reason = _loss(value, options.get("grad_output"))
        if reason is None:
            loss.backward()
    grads = {key: (leaf.grad if leaf.grad is not None else None) for key, leaf in leaves.items()}
    params = {name: p.grad for name, p in parameters.items()}
    return {"value": wire.to_plain(value), "note": reason,
            "grads": wire.to_plain(grads), "params": wire.to_plain(params)}


def _tensors(value) -> list:
    import torch
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for part in value for item in _tensors(part)]
    return [None]


def _loss(value, grad_output):
    """The scalar to call backward() on, or (None, why it cannot be differentiated)."""
    import torch
    outputs = _tensors(value)
    if grad_output is None:
        if len(outputs) != 1 or outputs[0] is None or outputs[0].numel() != 1:
            return None, "the result is not a single-number tensor"
        pairs = [(outputs[0], None)]
    else:
        targets = _tensors(grad_output)
        if len(targets) != len(outputs):
            return None, "the result does not have the tensors the test expected"
        pairs = [(out, g) for out, g in zip(outputs, targets) if g is not None]
        if any(out is None for out, _ in pairs):
            return None, "a part of the result that should be a tensor is not one"
    loss = None
    for out, g in pairs:
        if not out.requires_grad:
            return None, ("the result is not connected to its inputs for autograd (requires_grad "
                          "is False: was it detached, or computed with .item(), .numpy() or "
                          "torch.no_grad()?)")
        if g is None:
            term = out.sum()
        else:
            if tuple(g.shape) != tuple(out.shape):
                return None, f"the result has shape {tuple(out.shape)}, not {tuple(g.shape)}"
            term = (out * g.to(out.dtype)).sum()
        loss = term if loss is None else loss + term
    if loss is None:
        return None, "there is nothing to differentiate"
    return loss, None
