"""`python -m lab up|down|status|vm-hook|restart`: bring the lab pool up and down."""
import argparse
import json
import os
import sys

from . import pool, prereqs


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = ap.add_subparsers(dest="cmd")
    sub.required = True
    p = sub.add_parser("up", help="start a lab pool and write DIR/lab.json")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--vms", type=int, default=2)
    p.add_argument("--hosts", type=int, default=2)
    p.add_argument("--agent", action="store_true", help="run the guest agent in every VM")
    p.add_argument("--no-monitor", action="store_true", help="do not start xscontainer-monitor")
    p.add_argument("--dom0-root", metavar="ROOT",
                   help="run the dom0 software installed under ROOT (e.g. by rpm --root)")
    p = sub.add_parser("down", help="remove every process, namespace, mount and file of a lab")
    p.add_argument("--state", required=True, metavar="DIR")
    p = sub.add_parser("status", help="say what runs")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("restart", help="restart one lab service (xapi, xenstored, monitor)")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("service", choices=["xapi", "xenstored", "monitor", "agent"])
    p.add_argument("--host", help="for monitor: the host name; for agent: the VM name "
                                  "(default: all)")
    p = sub.add_parser("vm-hook", help=argparse.SUPPRESS)
    p.add_argument("--state", required=True)
    p.add_argument("op", choices=["start", "stop", "reboot", "migrate"])
    p.add_argument("vm_uuid")
    p.add_argument("host_uuid")
    p.add_argument("domid")
    p.add_argument("old_domid", nargs="?")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            pool.up(args.state, vms=args.vms, hosts=args.hosts, agent=args.agent,
                    monitor=not args.no_monitor, dom0_root=args.dom0_root)
            print("lab is up: %s" % os.path.join(os.path.realpath(args.state), "lab.json"))
        elif args.cmd == "down":
            pool.down(args.state)
            print("lab is down")
        elif args.cmd == "status":
            st = pool.status(args.state)
            if args.json:
                print(json.dumps(st, indent=2, sort_keys=True))
            else:
                print(pool.format_status(st))
        elif args.cmd == "restart":
            pool.restart(args.state, args.service, args.host)
        elif args.cmd == "vm-hook":
            out = pool.vm_hook(args.state, args.op, args.vm_uuid, args.host_uuid, args.domid,
                               args.old_domid)
            if out is not None:
                print(json.dumps(out))
    except prereqs.MissingPrerequisite as e:
        sys.stderr.write("error: %s\n" % e)
        sys.exit(2)
    except pool.LabError as e:
        sys.stderr.write("error: %s\n" % e)
        sys.exit(1)
