"""`edgeship report` (being built)."""

HELP = "report"


def add_arguments(parser):
    pass


def run(args):
    raise NotImplementedError
