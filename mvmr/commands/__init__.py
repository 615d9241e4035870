"""One module per ``mvmr`` sub-command: ``HELP``, ``add_arguments(parser)``, ``run(args)``."""
