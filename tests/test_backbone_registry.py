"""Naming a model at run time (MODULE:CALLABLE or register_model) and loading its weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models import tv_resnet
from routec.backbone.registry import (ModelError, build_model, load_weights,
                                      parse_model_flags, register_model)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch) -> str:
    """A module in the working directory, as a user's own code would be."""
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def small(num_classes=10):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, num_classes))\n"
        "def broken():\n"
        "    raise ValueError('no such depth')\n"
        "NOT_A_MODEL = 3\n")
    (tmp_path / "bad_import.py").write_text("import does_not_exist_anywhere\n")
    monkeypatch.chdir(tmp_path)
    return "my_models"


def test_module_callable_with_json_kwargs(user_module: str) -> None:
    flags = parse_model_flags(["net=my_models:small"], ['net={"num_classes": 3}'])
    model = build_model("net", flags["net"]["target"], flags["net"]["kwargs"])
    assert model(torch.zeros(2, 3, 2, 2)).shape == (2, 3)


@pytest.mark.parametrize("flag, message", [
    ("net=nowhere_at_all:small", "cannot import 'nowhere_at_all'"),
    ("net=bad_import:x", "No module named 'does_not_exist_anywhere'"),
    ("net=my_models:missing", "has no 'missing'"),
    ("net=my_models:NOT_A_MODEL", "is not callable"),
    ("net=my_models:broken", "ValueError: no such depth"),
    ("net=my_models", "MODULE:CALLABLE"),
])
def test_model_flags_fail_in_one_line(user_module: str, flag: str, message: str) -> None:
    flags = parse_model_flags([flag], None)
    with pytest.raises(ModelError) as err:
        build_model("net", flags["net"]["target"], flags["net"]["kwargs"])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_kwargs_must_be_a_json_object_for_a_named_model() -> None:
    with pytest.raises(ModelError, match="not JSON"):
        parse_model_flags(["a=m:f"], ["a={num_classes: 3}"])
    with pytest.raises(ModelError, match="JSON object"):
        parse_model_flags(["a=m:f"], ["a=[1, 2]"])
    with pytest.raises(ModelError, match="for a NAME given with --model"):
        parse_model_flags(["a=m:f"], ['b={"x": 1}'])


def test_registered_factory_and_unknown_name() -> None:
    register_model("test_resnet_registry", tv_resnet)
    assert isinstance(build_model("test_resnet_registry", kwargs={"num_classes": 4}),
                      torch.nn.Module)
    with pytest.raises(ModelError, match="register_model"):
        build_model("never_registered_here")


def test_weights_load_exactly_or_name_what_does_not_fit(tmp_path: Path) -> None:
    source = tv_resnet()
    for p in source.parameters():
        p.data.normal_()
    path = tmp_path / "w.pt"
    torch.save({"state_dict": source.state_dict()}, path)  # wrapped, as trainers save
    target = tv_resnet()
    load_weights(target, path)
    x = torch.randn(2, 3, 32, 32)
    source.eval(), target.eval()
    assert torch.equal(source(x), target(x))
    with pytest.raises(ModelError, match=r"shape of fc.weight \(10, 128\) vs \(7, 128\)"):
        load_weights(tv_resnet(num_classes=7), path)
    partial = {k: v for k, v in source.state_dict().items() if not k.startswith("layer4")}
    partial["extra.weight"] = torch.zeros(1)
    torch.save(partial, path)
    with pytest.raises(ModelError, match="missing layer4.*unexpected extra.weight"):
        load_weights(tv_resnet(), path)
    with pytest.raises(ModelError, match="no weights file"):
        load_weights(tv_resnet(), tmp_path / "absent.pt")


class Runs:
    def __reduce__(self):
        import os
        return (os.getcwd, ())


def test_weights_that_carry_code_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(1), "x": Runs()}, path)
    with pytest.raises(ModelError, match="not a weights file routec can read as data"):
        load_weights(tv_resnet(), path)


def test_safetensors_weights(tmp_path: Path) -> None:
    import safetensors.torch as safetensors
    source = tv_resnet()
    path = tmp_path / "w.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in source.state_dict().items()},
                          str(path))
    target = tv_resnet()
    load_weights(target, path)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(),
                                                 target.state_dict().values()))
