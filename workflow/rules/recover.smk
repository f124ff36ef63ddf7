# Recovering from faults when the workflow starts (main process only; a dry run reports and changes nothing):
# - a Snakemake killed with SIGKILL (or a power cut) leaves .snakemake/locks behind, and the same command again
#   would refuse to start ("Directory cannot be locked"); every run of this workflow holds an flock on
#   .snakemake/avvp.lock for its life, so one that gets it knows no other run of it is alive here and removes
#   the stale locks.
# - an unreadable output (truncated, damaged; avvp.stages.rebuildable lists them) is removed, so Snakemake makes
#   it again instead of the job that reads it stopping.
# A killed job's own leftovers need nothing here: its outputs are incomplete (profile: rerun-incomplete) and
# avvp's temporaries are removed by the next write into their folder (avvp/io.py).

import fcntl
import glob

from avvp import io as avvp_io

RUN_LOCK = []  # the open, flock-held file of this run (the kernel releases it when the process dies)


def release_stale_locks(dry_run):
    os.makedirs(".snakemake", exist_ok=True)
    fd = os.open(os.path.join(".snakemake", "avvp.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)  # another run of this workflow is alive here: its locks are real
        return
    RUN_LOCK.append(fd)
    stale = glob.glob(os.path.join(".snakemake", "locks", "*.lock"))
    if stale:
        if not dry_run:
            for lock in stale:
                os.remove(lock)
        logger.warning(f".snakemake/locks: {len(stale)} lock(s) of a killed run (no run of this workflow is alive "
                       f"here); {'a real run removes them' if dry_run else 'removed'}")


if workflow.is_main_process:
    release_stale_locks(workflow.output_settings.dryrun)
    for line in avvp_io.remove_unreadable(avvp_stages.rebuildable(), dry_run=workflow.output_settings.dryrun):
        logger.warning(line)
