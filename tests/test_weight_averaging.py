"""Weight averaging: the model that training leaves behind holds the moving average of its weights."""

import pytest
import torch

import run_qa
from cli_errors import UserError
from trainer_qa import WeightAveraging


def step(averaging: WeightAveraging, model: torch.nn.Module, value: float) -> None:
    """Set every weight to `value` as an optimizer step would, then let the callback see the step."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(value)
    averaging.on_step_end(None, None, None, model=model)


def test_training_ends_with_the_moving_average_of_the_weights():
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
        model.bias.fill_(0.0)
    averaging = WeightAveraging(decay=0.5)
    averaging.on_train_begin(None, None, None, model=model)
    step(averaging, model, 1.0)  # step 1 decays by min(0.5, 2 / 11): average 9 / 11
    step(averaging, model, 3.0)  # step 2 decays by min(0.5, 3 / 12) = 0.25: average 0.25 * 9 / 11 + 0.75 * 3
    averaging.on_train_end(None, None, None, model=model)
    expected = 0.25 * 9 / 11 + 0.75 * 3
    assert torch.allclose(model.weight, torch.full_like(model.weight, expected))
    assert torch.allclose(model.bias, torch.full_like(model.bias, expected))


def test_frozen_parameters_and_buffers_keep_their_own_values():
    model = torch.nn.BatchNorm1d(2)
    model.bias.requires_grad_(False)
    averaging = WeightAveraging(decay=0.9)
    averaging.on_train_begin(None, None, None, model=model)
    step(averaging, model, 2.0)
    with torch.no_grad():
        model.running_mean.fill_(5.0)
    averaging.on_train_end(None, None, None, model=model)
    assert torch.equal(model.bias, torch.full((2,), 2.0)), "not trained, not averaged"
    assert torch.equal(model.running_mean, torch.full((2,), 5.0))
    assert not torch.allclose(model.weight, torch.full((2,), 2.0)), "averaged with the starting weights"


def test_the_flag_refuses_settings_that_would_undo_or_break_the_average(tmp_path):
    _, _, training_args = run_qa.parse_arguments(
        ["--model_name_or_path", "m", "--output_dir", str(tmp_path), "--weight_averaging_decay", "0.99"])
    assert training_args.weight_averaging_decay == 0.99
    with pytest.raises(UserError, match="--load_best_model_at_end"):
        run_qa.parse_arguments(["--model_name_or_path", "m", "--output_dir", str(tmp_path), "--weight_averaging_decay",
                                "0.99", "--load_best_model_at_end", "--eval_strategy", "epoch", "--save_strategy",
                                "epoch"])
    with pytest.raises(UserError, match="below 1"):
        run_qa.parse_arguments(["--model_name_or_path", "m", "--output_dir", str(tmp_path), "--weight_averaging_decay",
                                "1"])
