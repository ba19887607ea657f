"""Names from the user's model are printed and drawn as they are: rich markup ("[/]" was
an internal MarkupError in plan, cost and run; "[bold]" vanished) and matplotlib
mathtext ("a$^$b" was a ParseSyntaxException in plan --png and cost --png) are text.
A NUL in a name, which the program's archive cannot store, is refused at compile."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import assert_user_error


def model_named(path, layer: str, output: str = "y"):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["h"], name=layer), helper.make_node("Abs", ["h"], [output], name=layer + "|abs")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float32), "W"),
                               numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_markup_and_mathtext_in_names_are_printed_as_text(cli, tmp_path):
    for layer in ("[/]", "[bold]fc[/bold]", "a$^$b"):
        path = model_named(tmp_path / "m[bold].onnx", layer)
        atp = tmp_path / "m.atp"
        assert cli("compile", path, "-o", atp, "--placer", "greedy", "-q").code == 0
        plan = cli("plan", atp, "--png", tmp_path / "plan.png")
        assert plan.code == 0, (layer, plan.err)
        assert layer in plan.out and plan.out.startswith("m[bold] on pcm3t1c-2018"), plan.out[:200]
        cost = cli("cost", atp, "--png", tmp_path / "cost.png")
        assert cost.code == 0, (layer, cost.err)
        assert layer in cost.out
        np.save(tmp_path / "x.npy", np.ones((2, 6), np.float32))
        run = cli("run", atp, "--input", tmp_path / "x.npy")
        assert run.code == 0, (layer, run.err)
        assert layer in run.out  # the programming error per layer names it
        assert (tmp_path / "plan.png").stat().st_size > 0 and (tmp_path / "cost.png").stat().st_size > 0


def test_a_nul_in_a_name_is_refused_at_compile(cli, tmp_path):
    for layer, output, what in (("a\x00b", "y", "node name 'a\\x00b'"), ("fc", "y\x00z", "graph output name 'y\\x00z'")):
        path = model_named(tmp_path / "m.onnx", layer, output)
        assert_user_error(cli("compile", path, "-o", tmp_path / "m.atp"), what, "holds a NUL character")
        assert not (tmp_path / "m.atp").exists()
        assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
