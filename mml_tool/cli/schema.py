"""`schema`: the JSON Schema of the files people write, for editors and linters."""

from __future__ import annotations

import click

from mml_tool.schema_files import KINDS, schema_text


@click.command()
@click.argument("kind", type=click.Choice(list(KINDS)))
def schema(kind: str) -> None:
    """Print the JSON Schema of an inventory or a policy file, for editors and linters.

    \b
    Example:
      mml-tool schema inventory > inventory.schema.json
    The same files ship in the package (mml_tool/schemas/). In VS Code with the YAML
    extension, add `# yaml-language-server: $schema=inventory.schema.json` to the file's top.
    """
    click.echo(schema_text(kind), nl=False)
