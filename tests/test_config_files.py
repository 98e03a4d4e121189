"""Every trainer reads its JSON config the same way: a missing file, broken JSON, a list instead of an object or
a misspelt key is one line on stderr that names the file and the fix, and the command exits with 2."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.cli.main import main

COMMANDS = {   # command -> (arguments before --config, the template the error points to)
    "train-vq": (["--data", "data", "--out", "out"], "training/configs/vq_builtin.json"),
    "train-evaluator": (["--data", "data", "--out", "out"], "training/configs/evaluator_builtin.json"),
    "train-llm": ([], "training/configs/llm_builtin.json"),
    "train-grpo": ([], "training/configs/grpo_builtin.json"),
}
BROKEN = {
    "missing": (None, "no such config file; start from {template}"),
    "broken JSON": ('{"lr": 1e-3,}', "not valid JSON"),
    "a list": ("[1, 2]", "a config is a JSON object of settings, got list"),
    "misspelt key": (json.dumps({"lr_rate": 1e-3}), "unknown config key 'lr_rate'; known: "),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", BROKEN)
def test_a_bad_config_file_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys, command, case):
    monkeypatch.chdir(tmp_path)
    before, template = COMMANDS[command]
    text, message = BROKEN[case]
    config = tmp_path / "my_config.json"
    if text is not None:
        config.write_text(text)
    assert main([command, *before, "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{config}: " in err and message.format(template=template) in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def config_class(name: str):
    from training.evaluator.train import TrainConfig as EvaluatorConfig
    from training.grpo.train import GRPOTrainConfig
    from training.llm.train import TrainConfig as LLMConfig
    from training.vq.train_vq import TrainConfig as VQConfig

    return {"vq": VQConfig, "evaluator": EvaluatorConfig, "llm": LLMConfig, "grpo": GRPOTrainConfig}[name.split("_")[0]]


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "training" / "configs").glob("*.json")),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    """The configs the docs and the model card point to are valid for their trainer (no stale or misspelt key)."""
    config = config_class(path.name).from_json(path)
    assert all(hasattr(config, key) for key in json.loads(path.read_text()))
