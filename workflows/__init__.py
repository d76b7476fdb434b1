"""Use cases: what a user does end to end (load a checkpoint, export, verify, run, evaluate, the
demo and its report). The only layer below the command line; it knows no flags."""
