"""`edgeship pipeline` (being built)."""

HELP = "pipeline"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError
