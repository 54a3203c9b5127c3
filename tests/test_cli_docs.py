"""Every CLI command and option is explained in --help and listed in the README's command reference."""

import click
from click.testing import CliRunner
from conftest import ROOT

from annotator.cli import main


def commands(cmd=main, path=()):
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from commands(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def test_every_option_has_help_and_a_line_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("`")[1].split(" ", 1)[1]: line for line in readme.splitlines()
            if line.startswith("| `annotator ")}
    for name, cmd in commands():
        row = next((line for key, line in rows.items() if key == name or key.startswith(f"{name} ")), None)
        assert row is not None, f"annotator {name}: not in the README's command reference"
        assert cmd.help, f"annotator {name}: no help text"
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"annotator {name} {param.opts[0]}: no help text"
                longest = [o for o in param.opts if o.startswith("--")] or param.opts
                assert f"`{longest[0]}`" in row, f"annotator {name} {longest[0]}: not in the README's row"
        res = CliRunner().invoke(main, [*name.split(), "--help"])
        assert res.exit_code == 0 and all(o in res.output for p in cmd.params if isinstance(p, click.Option)
                                          for o in p.opts), name
