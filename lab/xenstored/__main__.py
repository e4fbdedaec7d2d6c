"""Entry point: python -m lab.xenstored --dom0-socket PATH --guest-socket-dir DIR [--log FILE]"""
import argparse
import sys

from .daemon import serve


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lab.xenstored",
                                 description="The lab's xenstore daemon.")
    ap.add_argument("--dom0-socket", required=True,
                    help="Unix socket for dom0 clients (what XENSTORED_PATH points at)")
    ap.add_argument("--guest-socket-dir", required=True,
                    help="directory where INTRODUCE creates one socket per guest, named "
                         "by its domid (each stands in for that guest's /dev/xen/xenbus)")
    ap.add_argument("--log", default=None, help="log file (default: stderr)")
    args = ap.parse_args(argv)
    serve(args.dom0_socket, args.guest_socket_dir, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
