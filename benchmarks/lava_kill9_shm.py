"""How many of a Lava run's ``/dev/shm`` segments survive a ``kill -9`` of its caller.

Starts ``mlf-deploy verify CHECKPOINT --backends torch,lava-fixed``, waits until the Lava worker's
process group holds more than 20 ``psm_*`` segments, SIGKILLs the caller, waits 8 s and counts the
segments still there (then removes them: they are this experiment's). ``--tree DIR`` runs another
copy of the package (a folder holding a complete ``mlf_deploy``, e.g. an older version) as the
baseline; compare the two counts.

    python benchmarks/lava_kill9_shm.py CHECKPOINT [--tree DIR]
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlf_deploy.runtimes.lava_guard import children, group_pids, group_shm_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--tree", help="folder holding the mlf_deploy package to run instead")
    args = parser.parse_args()
    env = dict(os.environ, **({"PYTHONPATH": args.tree} if args.tree else {}))
    exe = str(Path(sys.executable).with_name("mlf-deploy"))
    caller = subprocess.Popen([exe, "verify", args.checkpoint, "--backends", "torch,lava-fixed",
                               "--samples", "8"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    worker, held, start = None, set(), time.time()
    while worker is None and time.time() - start < 900 and caller.poll() is None:
        for kid in children(caller.pid):
            files = group_shm_files(kid)
            if sum("/psm_" in f for f in files) > 20:
                worker, held = kid, files
        time.sleep(0.5)
    if worker is None:
        sys.exit("the Lava run never held shared memory; nothing measured")
    time.sleep(2)
    psm = {f for f in held | group_shm_files(worker) if "/psm_" in f}
    os.kill(caller.pid, signal.SIGKILL)
    caller.wait()
    time.sleep(8)
    left = {f for f in psm if os.path.exists(f)}
    print(f"{args.tree or 'this tree'}: {len(psm)} psm_ segments held; 8 s after kill -9 of the "
          f"caller {len(left)} remain, {len(group_pids(worker))} processes of the group left")
    for f in left:
        os.unlink(f)


if __name__ == "__main__":
    main()
