"""``routec init``: from a model to a spec in one command.

The models are those of tests/models.py, named as a user names theirs
(``--model models:tv_resnet`` from the folder that holds ``models.py``). Independent
checks: the printed spec compiles with ``routec compile``, its pieces on the deepest
path cost what torch's FLOP counter counts for the whole model, and the listing's
MACs are those of ``piece_stats`` on the model cut at each point.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models import tiny_vit, tv_resnet
from routec.backbone.cut import piece_stats, resolve_cut, split, trace
from routec.backbone.supplied import supply, withdraw_all
from routec.cli import main
from routec.graph import build_graph
from routec.parse import load_spec

TESTS = Path(__file__).resolve().parent
CASES = {"resnet": ("models:tv_resnet", tv_resnet, "layer1,layer2,layer3"),
         "vit": ("models:tiny_vit", tiny_vit, "blocks.0,blocks.2")}


@pytest.fixture(autouse=True)
def from_the_users_folder(monkeypatch):
    monkeypatch.chdir(TESTS)  # where models.py is: MODULE:CALLABLE imports from here
    yield
    withdraw_all()


def init(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["init", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _flops(model: nn.Module) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_printed_spec_compiles_and_its_pieces_cost_the_whole_model(
        kind, capsys, tmp_path) -> None:
    target, make, cuts = CASES[kind]
    code, text, err = init(capsys, "--model", target, "--input", "3x32x32", "--cuts", cuts)
    assert code == 0, err
    assert text.startswith(f"# Made by: routec init --model {target} --input 3x32x32 "
                           f"--cuts {cuts}\n")
    spec = tmp_path / "routed.route"
    spec.write_text(text)
    assert main(["compile", str(spec), "--model", f"backbone={target}"]) == 0
    withdraw_all()

    supply("backbone", make())
    g = build_graph(load_spec(str(spec)))
    names = cuts.split(",")
    columns = [n.id for n in g.nodes if n.kind == "column"]
    assert columns == [f"c{k + 1}" for k in range(len(names))] + ["head"]
    assert len(g.leaves) == len(names) + 1  # an exit after every cut, and the model's own
    assert g.classes == 10  # read from the model's output
    deepest = g.path(g.leaves[-1])
    pieces = sum(g.nodes[i].macs for i in deepest if g.nodes[i].kind == "column")
    assert pieces == _flops(make())
    assert g.nodes[g.leaves[-1]].macs == 0  # exit own = logits: the model's head

    # each column's comment states what the compiler counts for it
    said = {m.group(1): int(m.group(2).replace(",", "")) for m in
            re.finditer(r"column (\w+)\s*=.*#.*?([\d,]+) MACs", text)}
    assert said == {n.id: n.macs for n in g.nodes if n.kind == "column"}
    header = " ".join(line.lstrip("# ") for line in text.splitlines() if line[:1] == "#")
    assert f"add up to the model's {pieces:,} MACs" in header


def test_the_routes_and_defaults_follow_the_cuts(capsys) -> None:
    code, text, _ = init(capsys, "--model", "models:tv_resnet", "--input", "3x32x32",
                         "--cuts", "layer2,layer4")
    assert code == 0
    body = [line.split("#")[0].rstrip() for line in text.splitlines()
            if line and not line.startswith("#")]
    assert body[0] == "network routed_tv_resnet (input = 3x32x32, classes = 10) {"
    assert "    model  backbone" in body
    assert "    router default = mlp(hidden = [16], pooled = 1)" in body
    assert "    exit   default = linear(pooled = 1)" in body
    assert "    exit   own     = logits" in body
    assert '    column c1   = backbone(to = "layer2")' in body
    assert '    column c2   = backbone(from = "layer2", to = "layer4")' in body
    assert '    column head = backbone(from = "layer4")' in body
    start = next(i for i, b in enumerate(body) if b.startswith("    route "))
    assert body[-1] == "}"
    route = " ".join(" ".join(body[start:-1]).split())
    assert route == "route c1 -> either { exit | c2 -> either { exit | head -> exit(own) } }"
    assert "# 32x4x4," in text and "# 128x1x1," in text and "# vector of 10," in text


def test_the_vit_pieces_say_they_carry_tokens(capsys) -> None:
    code, text, _ = init(capsys, "--model", "models:tiny_vit", "--input", "3x32x32",
                         "--cuts", "blocks.1")
    assert code == 0
    assert re.search(r'column c1\s+= backbone\(to = "blocks.1"\)\s+# 17x32 tokens '
                     r'\(as 32x17x1\), 413,824 MACs', text)


def test_written_with_a_name_and_kwargs(capsys, tmp_path) -> None:
    out = tmp_path / "mine.route"
    code, text, err = init(capsys, "--model", "models:tv_resnet", "--model-kwargs",
                           '{"num_classes": 7}', "--input", "3x32x32", "--cuts", "layer3",
                           "--name", "my_net", "-o", str(out))
    assert code == 0 and text == ""
    assert f"wrote {out}" in err
    spec = out.read_text()
    assert "network my_net (input = 3x32x32, classes = 7) {" in spec
    # the compile command the header gives works as given
    line = next(x for x in spec.splitlines() if x.startswith("#   routec compile"))
    argv = shlex.split(line[len("#   routec "):])
    assert argv[:2] == ["compile", str(out)]
    assert main(argv) == 0


def test_the_listing_gives_the_macs_before_each_cut(capsys) -> None:
    code, text, _ = init(capsys, "--model", "models:tv_resnet", "--input", "3x32x32")
    assert code == 0
    gm = trace(tv_resnet().eval())
    total = _flops(tv_resnet())
    row = re.compile(r"│ (\S+)\s*│ ([^│]+)│\s*([\d,]+) │\s*([\d.]+%) │")
    rows = {m.group(1): (m.group(2).strip(), int(m.group(3).replace(",", "")), m.group(4))
            for m in row.finditer(text)}
    for k, shape in zip(range(1, 5), ["16x8x8", "32x4x4", "64x2x2", "128x1x1"]):
        before = piece_stats(split(gm, [resolve_cut(gm, f"layer{k}")]), (3, 32, 32))[0]
        assert rows[f"layer{k}"] == (shape, before["macs"],
                                     f"{100 * before['macs'] / total:.1f}%")
    assert rows["(output)"][1] == total
    assert "add_1" not in rows  # node-named cuts are counted, not listed
    assert re.search(r"5 more cut points named by traced nodes \(add, add_1, .*\); --all", text)
    hint = text.splitlines()[-1].strip()
    assert hint == "routec init --model models:tv_resnet --input 3x32x32 " \
                   "--cuts layer1,layer2,layer3"
    code, spec, _ = init(capsys, *shlex.split(hint)[2:])  # the hint works as given
    assert code == 0 and 'backbone(from = "layer3")' in spec


def test_the_listing_of_a_vit_and_all_its_cuts(capsys) -> None:
    code, text, _ = init(capsys, "--model", "models:tiny_vit", "--input", "3x32x32", "--all")
    assert code == 0
    for name in ("blocks.0", "blocks.1", "blocks.2", "add_3", "patch_embed"):
        assert f"│ {name} " in text
    assert "more cut point" not in text
    assert text.splitlines()[-1].strip().endswith("--cuts blocks.0,blocks.1,blocks.2")


# the untraceable model of test_backbone_cut, importable from here as MODULE:CALLABLE
from test_backbone_cut import Branchy, Gate  # noqa: E402,F401


def _one_line_error(capsys, *argv: str) -> str:
    code, out, err = init(capsys, *argv)
    assert code == 2 and out == ""
    assert "Traceback" not in err and err.startswith("error: ")
    return err


def test_an_untraceable_model_suggests_leaf_and_leaf_makes_it_work(capsys, tmp_path) -> None:
    target = f"{__name__}:Branchy"
    err = _one_line_error(capsys, "--model", target, "--input", "3x8x8")
    assert "cannot be traced by torch.fx" in err
    assert "hint: keep the untraceable submodule whole: add --leaf gate" in err
    code, text, _ = init(capsys, "--model", target, "--input", "3x8x8", "--leaf", "gate",
                         "--cuts", "gate")
    assert code == 0
    assert 'model  backbone(leaves = ["gate"])' in text
    assert "--leaf gate --cuts gate" in text.splitlines()[0]
    spec = tmp_path / "branchy.route"
    spec.write_text(text)
    supply("backbone", Branchy(), leaves=("gate",))
    g = build_graph(load_spec(str(spec)))
    assert [n.id for n in g.nodes if n.kind == "column"] == ["c1", "head"]
    assert sum(n.macs for n in g.nodes if n.kind == "column") == 6_952  # 4·27·64 + 4·10


def test_a_spec_with_leaves_compiles_from_the_command_line(capsys, tmp_path) -> None:
    target = f"{__name__}:Branchy"
    code, text, _ = init(capsys, "--model", target, "--input", "3x8x8", "--leaf", "gate",
                         "--cuts", "gate")
    spec = tmp_path / "branchy.route"
    spec.write_text(text)
    assert main(["compile", str(spec), "--model", f"backbone={target}"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--model", "no_such_module:build", "--input", "3x32x32"],
     "cannot import 'no_such_module'"),
    (["--model", "models:no_such_callable", "--input", "3x32x32"],
     "module 'models' has no 'no_such_callable'"),
    (["--model", "models", "--input", "3x32x32"], "expects MODULE:CALLABLE"),
    (["--model", "models:tv_resnet", "--input", "3x32"], "--input '3x32': expected channels"),
    (["--model", "models:tv_resnet", "--input", "3xax32"], "--input '3xax32'"),
    (["--model", "models:tv_resnet", "--input", "3x0x32"], "each from 1 to 4096"),
    (["--model", "models:tv_resnet", "--input", "1x32x32"], "does not run on a 1x32x32 input"),
    (["--model", "models:tv_resnet", "--model-kwargs", "[1]", "--input", "3x32x32"],
     "expected a JSON object"),
    (["--model", "models:tv_resnet", "--input", "3x32x32", "--cuts", "layer1.0.conv1"],
     "as inside a residual block; valid cut points: conv1, bn1, relu, maxpool, add, layer1"),
    (["--model", "models:tv_resnet", "--input", "3x32x32", "--cuts", "layer3,layer1"],
     "in the order the model runs them"),
    (["--model", "models:tv_resnet", "--input", "3x32x32", "--cuts", "nope"],
     "no module or traced node named 'nope'"),
    (["--model", "models:tv_resnet", "--input", "3x32x32", "--cuts", ","],
     "--cuts names no cut point"),
    (["--model", "models:tv_resnet", "--input", "3x32x32", "--cuts", "layer1",
      "--classes", "5"], "--classes 5, but models:tv_resnet outputs 10 logits"),
    (["--model", "models:tv_resnet", "--input", "3x32x32", "--cuts", "layer1",
      "--name", "class"], "--name 'class'"),
    (["--model", "models:tv_resnet", "--input", "3x32x32", "--leaf", "nope"],
     "no submodule named nope"),
])
def test_errors_are_one_line(capsys, argv, message) -> None:
    assert message in _one_line_error(capsys, *argv)


class Features(nn.Module):
    """A model whose output is a feature map, not logits."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())

    def forward(self, x):
        return self.b(self.a(x))


def test_a_model_without_logits_ends_in_a_linear_exit(capsys, tmp_path) -> None:
    target = f"{__name__}:Features"
    err = _one_line_error(capsys, "--model", target, "--input", "3x16x16", "--cuts", "a")
    assert "outputs a 8x8x8 tensor, not logits: say the number of classes with --classes" in err
    code, text, _ = init(capsys, "--model", f"feats={target}", "--input", "3x16x16",
                         "--cuts", "a", "--classes", "4")
    assert code == 0
    assert "exit   own" not in text and "| head -> exit }" in text
    assert "    model  feats " in text and 'column head = feats(from = "a")' in text
    spec = tmp_path / "feats.route"
    spec.write_text(text)
    assert main(["compile", str(spec), "--model", f"feats={target}"]) == 0
    g = build_graph(load_spec(str(spec)))
    assert g.classes == 4 and len(g.leaves) == 2
