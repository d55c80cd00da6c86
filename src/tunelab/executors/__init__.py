"""Executors turn a command into a byte stream, an exit status and a cancel handle (the port is in base.py).

The local executor (local.py) runs each command under a supervisor process of its own (supervisor.py), which owns
the pseudo-terminal, appends every byte to `runs/{run_id}/output.log` and writes `runs/{run_id}/exit.json` when the
command ends; the server only follows those files, so it can die and restart without touching a run.
"""
