"""Multi-process runs for the tests: one torchrun helper, torch only (the
full tier's ``conftest.torchrun`` adds DeepSpeed's CPU setting to it)."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Optional

ROOT = Path(__file__).resolve().parents[2]


def torchrun(script: Path, *args: str, nproc: int = 2, timeout: int = 600,
             env: Optional[Mapping[str, str]] = None) -> str:
    """Run a script under torchrun on this machine and return its output,
    asserting that every process exited cleanly.

    Args:
        script: The worker script.
        *args: Its arguments.
        nproc: Processes (``--nproc_per_node``).
        timeout: Seconds before the run is killed.
        env: Variables added to this process's environment.

    Returns:
        str: stdout and stderr of the run.
    """
    # One thread per process: the CI machines have 2 cores. tests/, tools/
    # and the repo on the path (the light venvs do not install the plugin),
    # before what the caller had there.
    path = [str(ROOT / 'tests'), str(ROOT / 'tools'), str(ROOT)]
    if os.environ.get('PYTHONPATH'):
        path.append(os.environ['PYTHONPATH'])
    full_env = dict(os.environ, OMP_NUM_THREADS='1')
    full_env.update(env or {})
    full_env['PYTHONPATH'] = os.pathsep.join(path)
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         f'--nproc_per_node={nproc}', str(script), *map(str, args)],
        env=full_env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def write_and_leave(found: dict, out: str) -> None:
    """In a torchrun worker: write this rank's findings to
    ``{out}.{rank}.json``, then leave the process group together with the
    other ranks (a rank that exits while another still holds the gloo group
    made it abort, "terminate called without an active exception", about
    one run in four)."""
    import json

    import torch.distributed as dist

    with open(f'{out}.{dist.get_rank()}.json', 'w') as f:
        json.dump(found, f)
    dist.barrier()
    dist.destroy_process_group()
