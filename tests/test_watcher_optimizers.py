"""Several optimizers on one Watcher, and reattach(): what the training integrations rely on."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import nbweights as nbw


def two_part_model() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    first = torch.optim.SGD(model[0].parameters(), lr=0.1)
    second = torch.optim.SGD(model[2].parameters(), lr=0.1)
    return model, first, second


def step_both(model: nn.Module, first: torch.optim.Optimizer, second: torch.optim.Optimizer,
              steps: int, seed: int = 0) -> None:
    """One iteration steps the first optimizer, then (after a fresh backward) the second."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for optimizer in (first, second):
            x = torch.randn(8, 4, generator=generator)
            model.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()


def final_norms(watcher: nbw.Watcher) -> dict[str, float]:
    return {name: float(watcher.history.stats(name)["norm"][-1]) for name in watcher.history.names}


def test_with_two_optimizers_a_step_is_complete_once_both_stepped():
    model, first, second = two_part_model()
    watcher = nbw.watch(model, [first, second], every=1)
    step_both(model, first, second, steps=5)
    assert watcher.step == 5
    assert watcher.history.steps("0.weight").tolist() == [0, 1, 2, 3, 4, 5]
    # Each layer was read after its own optimizer stepped: its last norm is the model's now.
    for name, param in model.named_parameters():
        assert final_norms(watcher)[name] == pytest.approx(float(param.detach().norm()), rel=1e-5)
        assert np.all(watcher.history.stats(name)["update_ratio"][1:] > 0), name
    watcher.close()
    assert not first._optimizer_step_post_hooks and not second._optimizer_step_post_hooks


def test_reattach_to_a_new_optimizer_continues_the_history_and_frees_the_old_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    old = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher = nbw.watch(model, old, every=1, activations=True)
    step_both(model, old, old, steps=2)  # four steps of the same optimizer
    watcher.close()
    assert watcher.closed
    new = torch.optim.Adam(model.parameters(), lr=0.01)
    watcher.reattach(new)
    assert not old._optimizer_step_pre_hooks and not old._optimizer_step_post_hooks
    step_both(model, new, new, steps=1)
    assert watcher.history.steps("0.weight").tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert watcher.history.steps("1", of="activation").tolist() == [1, 2, 3, 4, 5, 6]
    assert final_norms(watcher)["2.weight"] == pytest.approx(float(model[2].weight.detach().norm()), rel=1e-5)
    watcher.close()
    assert watcher.closed and not model[1]._forward_hooks


def test_reattach_from_forward_steps_to_optimizer_steps_removes_the_forward_hook():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2))
    watcher = nbw.watch(model, every=1)  # no optimizer yet: shown ahead of training
    assert model._forward_pre_hooks
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    watcher.reattach(optimizer)
    assert not model._forward_pre_hooks
    step_both(model, optimizer, optimizer, steps=2)
    assert watcher.history.steps("0.weight").tolist() == [0, 1, 2, 3, 4]
    assert watcher.history.steps("0.weight", of="grad").tolist() == [1, 2, 3, 4]
    watcher.close()


def test_reattach_refuses_a_model_whose_parameters_were_replaced():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2))
    watcher = nbw.watch(model)
    model[0] = nn.Linear(4, 2)
    with pytest.raises(ValueError, match="watch the model anew"):
        watcher.reattach(torch.optim.SGD(model.parameters(), lr=0.1))
    watcher.close()


def test_a_list_with_something_else_than_an_optimizer_is_refused_by_name():
    model, first, _ = two_part_model()
    with pytest.raises(TypeError, match="got str"):
        nbw.watch(model, [first, "adam"])


def test_watching_with_two_optimizers_leaves_training_bit_identical():
    model, first, second = two_part_model()
    step_both(model, first, second, steps=4)
    bare = [p.detach().clone() for p in model.parameters()]
    model, first, second = two_part_model()
    with nbw.watch(model, (first, second), every=1):
        step_both(model, first, second, steps=4)
    assert all(torch.equal(a, b) for a, b in zip(bare, model.parameters()))
