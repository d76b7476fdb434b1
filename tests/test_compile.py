"""``torch.compile`` against eager on one training step of a small DS-ResNet on the CPU.

Compiled SNNs are reported to differ silently from eager, so ``train --compile`` is offered only
as far as this agrees. The MLF layers run their own kernels inside a compiled model (a graph
break, mlf_deploy/neuron.py); the rest is captured by dynamo and lowered by the backend.

* ``aot_eager`` (capture and autograd, no code generation) must agree exactly.
* ``inductor`` (the default) is not tested here: on this CPU with torch 2.13 it gives a wrong
  gradient for a shortcut conv's weight in some runs and the right one in others, and once
  aborted the process (docs/gpu.md), so no assertion about it could be stable; ``train --compile``
  warns about it and stays off by default.
"""

import copy

import pytest
import torch
from conftest import make_model, sample_input


def one_step(net, model):
    """Loss, logits and parameter gradients of one step (no optimizer: the gradients are it)."""
    x, y = sample_input(4), torch.tensor([1, 2, 3, 4])
    logits = net(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    return loss.item(), logits.detach(), {n: p.grad for n, p in model.named_parameters()}


def compare(backend):
    """Raise AssertionError where a compiled training step differs from eager."""
    base = make_model(depth=8, widths=(4, 8, 8)).train()
    eager = copy.deepcopy(base)
    loss_e, logits_e, grads_e = one_step(eager, eager)
    compiled = copy.deepcopy(base)
    loss_c, logits_c, grads_c = one_step(torch.compile(compiled, backend=backend, dynamic=False),
                                         compiled)
    assert abs(loss_c - loss_e) <= 1e-6
    assert torch.equal(logits_c.argmax(1), logits_e.argmax(1))
    torch.testing.assert_close(logits_c, logits_e, rtol=0, atol=1e-6)
    for name, grad in grads_e.items():
        torch.testing.assert_close(grads_c[name], grad, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.slow
def test_aot_eager_training_step_matches_eager():
    compare("aot_eager")
