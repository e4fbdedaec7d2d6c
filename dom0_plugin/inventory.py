"""Facts about the dom0 we run in, from /etc/xensource-inventory (as every dom0 tool reads)."""

INVENTORY = "/etc/xensource-inventory"


def read(path=INVENTORY):
    values = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip().strip("'\"")
    return values


def this_host_uuid():
    return read()["INSTALLATION_UUID"]
