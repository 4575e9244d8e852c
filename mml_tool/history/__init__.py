"""History of runs: what each check found and each change did, for timelines, drift since
the last run and retention. See ``store`` (the store), ``config`` (where it is), ``hooks``
(turning a command's results into rows, never failing the command).

Import from the modules (``mml_tool.history.store`` ...): the package itself imports nothing,
so the command line does not load SQLAlchemy for a command that records nothing.
"""
