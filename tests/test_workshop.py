"""Workshop mode: the scan for outputs that confuse a room, and the `slmlab workshop` command line."""

import nbformat
from typer.testing import CliRunner

from slmlab.pipeline.cli import app
from slmlab.pipeline.workshop import noisy_outputs


def test_noisy_outputs_finds_stderr_errors_and_widget_reprs(tmp_path):
    nb = nbformat.v4.new_notebook()
    out = nbformat.v4.new_output
    nb.cells = [
        nbformat.v4.new_code_cell("a", outputs=[out("stream", name="stdout", text="fine\n")]),
        nbformat.v4.new_code_cell("b", outputs=[out("stream", name="stderr", text="FutureWarning: x\n")]),
        nbformat.v4.new_code_cell(
            "c", outputs=[out("error", ename="ValueError", evalue="bad", traceback=[])]
        ),
        nbformat.v4.new_code_cell(
            "d", outputs=[out("execute_result", data={"text/plain": "VBox(children=(...))"})]
        ),
        nbformat.v4.new_code_cell(
            "e",
            outputs=[
                out(
                    "display_data",
                    data={
                        "text/plain": "VBox(children=(...))",
                        "application/vnd.jupyter.widget-view+json": {},
                    },
                )
            ],
        ),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    found = noisy_outputs(path)
    assert [f.split(":")[0] for f in found] == ["nb.ipynb cell 1", "nb.ipynb cell 2", "nb.ipynb cell 3"]
    assert (
        "FutureWarning" in found[0] and "ValueError: bad" in found[1] and "widget shown as text" in found[2]
    )


def test_workshop_command_names_the_action():
    res = CliRunner().invoke(app, ["workshop", "unpack"])
    assert res.exit_code != 0 and "prepare" in res.output
