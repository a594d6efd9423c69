"""`python -m stream` (what `atp worker` runs): one stream worker until SIGINT/SIGTERM."""

from atp.startup import load_or_exit
from stream.app import run_worker

run_worker(*load_or_exit())
