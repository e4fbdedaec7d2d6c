"""``python -m lab.xapi --config CONFIG.json``: run the XAPI simulator until SIGTERM."""
import argparse
import os
import signal
import sys
import threading

from .server import make_servers
from .sim import Simulator, load_config


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lab.xapi", description=__doc__)
    p.add_argument("--config", required=True, help="JSON configuration (see lab/xapi)")
    args = p.parse_args(argv)
    config = load_config(args.config)
    sim = Simulator(config)
    servers = make_servers(sim, config.get("tcp"), config.get("unix_sockets", []))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    sim.db.start_flusher()
    threads = []
    for srv, _ in servers:
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                             daemon=True)
        t.start()
        threads.append(t)
    port_file = config.get("port_file")
    tcp = [s for s, d in servers if d.startswith("tcp")]
    if port_file and tcp:
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % tcp[0].server_address[1])
        os.replace(tmp, port_file)
    sys.stderr.write("lab.xapi: serving %s\n" % ", ".join(d for _, d in servers))
    sys.stderr.flush()
    while not stop.wait(0.5):
        pass
    for srv, desc in servers:
        srv.shutdown()
        srv.server_close()
        if desc.startswith("unix "):
            try:
                os.unlink(desc[5:])
            except OSError:
                pass
    sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
