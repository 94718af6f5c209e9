"""`edgeship verify` (being built)."""

HELP = "verify"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError
