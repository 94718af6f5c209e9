"""One module a subcommand of `edgeship`: HELP, add_arguments(parser), run(args) -> exit code.

These modules stay light: each imports its stage inside run(), so `edgeship --help` loads no
TensorFlow.
"""
