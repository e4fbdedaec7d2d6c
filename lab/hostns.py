"""Runs as the first process of a host's mount namespace: sets up dom0's paths, then waits.

Usage (by lab.dom0): unshare --mount --propagation private -- python -m lab.hostns SPEC READY
"""
import json
import os
import signal
import subprocess
import sys


def mount(*args):
    subprocess.run(["mount"] + list(args), check=True)


def setup(spec):
    # order matters: binds reach the real /run before a private tmpfs covers it
    for i, lower in enumerate(spec["overlays"]):
        upper = os.path.join(spec["overlay_dir"], "%d.upper" % i)
        work = os.path.join(spec["overlay_dir"], "%d.work" % i)
        os.makedirs(upper, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        mount("-t", "overlay", "overlay", "-o",
              "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work), lower)
    for source, target, kind in spec["binds"]:
        if kind == "dir":
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                open(target, "w").close()
        mount("--bind", source, target)
    for target in spec["tmpfs"]:
        mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", target)
    for source, target in spec["symlinks"]:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)
        os.symlink(source, target)
    for path, content in spec["files"].items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)


def main():
    spec_path, ready = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    setup(spec)
    with open(ready, "w") as f:
        f.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
