"""`xscontainer`: manage the Docker containers of VMs from dom0 or an admin's machine.

Every command goes through the `xscontainer` host plugin (host.call_plugin), exactly like
Xen Orchestra and XenCenter, so it behaves the same from any host or from afar.

Exit codes: 0 success, 1 other failure, 2 bad usage, 3 VM not found / not registered /
not running, 4 VM unreachable (network, SSH login, host key), 5 Docker refused or no such
container.
"""
import json
import os
import sys

import click

from dom0_plugin import constants as C

EXIT_CODES = {
    C.ERR_INVALID_ARGUMENT: 2,
    C.ERR_NO_SUCH_VM: 3, C.ERR_VM_NOT_REGISTERED: 3, C.ERR_VM_NOT_RUNNING: 3,
    C.ERR_VM_UNREACHABLE: 4, C.ERR_AUTH_FAILED: 4, C.ERR_HOSTKEY_MISMATCH: 4,
    C.ERR_HOSTKEY_UNVERIFIED: 4,
    C.ERR_TIMEOUT: 4, C.ERR_PROTOCOL_ERROR: 4,
    C.ERR_DOCKER_ERROR: 5, C.ERR_NO_SUCH_CONTAINER: 5, C.ERR_DOCKER_UNAVAILABLE: 5,
    C.ERR_RESPONSE_TOO_LARGE: 5, C.ERR_DOCKER_API_UNSUPPORTED: 5,
}


class Failed(click.ClickException):
    def __init__(self, code, params, exit_code):
        click.ClickException.__init__(self, "%s %s" % (code, " ".join(params)))
        self.code_name = code
        self.params = params
        self.exit_code = exit_code

    def show(self, file=None):
        from dom0_plugin.errors import from_failure
        click.echo("error: %s" % from_failure([self.code_name] + self.params).message(),
                   err=True)
        click.echo("(%s %s)" % (self.code_name, json.dumps(self.params)), err=True)


class Pool(object):
    """A XAPI session: local socket in dom0, or --server from elsewhere."""

    def __init__(self, server, user, password):
        import XenAPI
        self.XenAPI = XenAPI
        if server:
            self.session = XenAPI.Session(server)
        else:
            self.session = XenAPI.xapi_local()
        try:
            self.session.xenapi.login_with_password(user, password or "", "2.0",
                                                    "xscontainer-cli")
        except XenAPI.Failure as e:
            raise Failed(e.details[0], [str(d) for d in e.details[1:]], 1)
        except OSError as e:
            raise click.ClickException("cannot reach XAPI at %s: %s"
                                       % (server or "the local socket", e))
        self.x = self.session.xenapi

    def close(self):
        try:
            self.x.session.logout()
        except Exception:
            pass

    def vm(self, name_or_uuid):
        """A VM reference from a uuid or a unique name."""
        import re
        if re.match(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$", name_or_uuid):
            try:
                return self.x.VM.get_by_uuid(name_or_uuid)
            except self.XenAPI.Failure:
                raise Failed(C.ERR_NO_SUCH_VM, [name_or_uuid], 3)
        refs = [r for r in self.x.VM.get_by_name_label(name_or_uuid)
                if not self.x.VM.get_is_a_template(r) and not self.x.VM.get_is_a_snapshot(r)]
        if len(refs) != 1:
            raise click.UsageError("%d VMs are named %r: use its uuid"
                                   % (len(refs), name_or_uuid) if refs
                                   else "no VM named %r" % name_or_uuid)
        return refs[0]

    def host_for(self, vm_ref):
        """The VM's host when it runs there, else the pool coordinator (as XO does)."""
        if vm_ref is not None and self.x.VM.get_power_state(vm_ref) == "Running":
            return self.x.VM.get_resident_on(vm_ref)
        return self.x.pool.get_master(self.x.pool.get_all()[0])

    def call(self, fn, vm_ref=None, **args):
        if vm_ref is not None:
            args[C.ARG_VMUUID] = self.x.VM.get_uuid(vm_ref)
        args = {k: str(v) for k, v in args.items() if v is not None}
        try:
            result = self.x.host.call_plugin(self.host_for(vm_ref), C.PLUGIN_NAME, fn, args)
        except self.XenAPI.Failure as e:
            code = str(e.details[0])
            raise Failed(code, [str(d) for d in e.details[1:]], EXIT_CODES.get(code, 1))
        if not result.startswith(C.SUCCESS_PREFIX):
            raise click.ClickException("unexpected plugin answer: %r" % result[:200])
        return result[len(C.SUCCESS_PREFIX):]


pass_pool = click.make_pass_decorator(Pool)


@click.group(help=__doc__)
@click.option("--server", envvar="XSCONTAINER_SERVER", metavar="URL",
              help="XAPI URL of the pool (default: this dom0's local socket)")
@click.option("--user", "-u", envvar="XSCONTAINER_USER", default="root", show_default=True)
@click.option("--password", envvar="XSCONTAINER_PASSWORD",
              help="default: prompt when --server is given; $XSCONTAINER_PASSWORD")
@click.pass_context
def main(ctx, server, user, password):
    if server and password is None:
        password = click.prompt("Password for %s@%s" % (user, server), hide_input=True)
    ctx.obj = Pool(server, user, password)
    ctx.call_on_close(ctx.obj.close)


def _print(value, as_json, table=None):
    if as_json or table is None:
        click.echo(json.dumps(value, indent=2, sort_keys=True))
    else:
        table(value)


def _table(rows, columns):
    widths = [max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for r in rows:
        click.echo("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths))
                   .rstrip())


@main.command(help="Start managing the containers of a VM (optional --mode ssh|agent).")
@click.argument("vm")
@click.option("--mode", type=click.Choice(["ssh", "agent"]))
@pass_pool
def register(pool, vm, mode):
    pool.call(C.FN_REGISTER, pool.vm(vm), mode=mode)
    click.echo("registered %s" % vm)


@main.command(help="Stop managing a VM (its container documents are removed).")
@click.argument("vm")
@pass_pool
def deregister(pool, vm):
    pool.call(C.FN_DEREGISTER, pool.vm(vm))
    click.echo("deregistered %s" % vm)


def _lifecycle(fn):
    @click.argument("vm")
    @click.argument("container")
    @pass_pool
    def command(pool, vm, container):
        pool.call(fn, pool.vm(vm), container=container)
        click.echo("%s %s: done" % (fn, container))
    command.__name__ = fn
    return main.command(name=fn, help="%s a container (name or id)." % fn.capitalize())(command)


for _fn in C.LIFECYCLE_FNS:
    _lifecycle(_fn)


@main.command(help="List the containers of a VM.")
@click.argument("vm")
@click.option("--json", "as_json", is_flag=True)
@pass_pool
def ps(pool, vm, as_json):
    rows = json.loads(pool.call(C.FN_GET_PS, pool.vm(vm)))

    def table(rows):
        _table([dict(r, id=r["id"][:12]) for r in rows],
               ["id", "name", "image", "status", "command"])
    _print(rows, as_json, table)


@main.command(help="Docker's /info of a VM.")
@click.argument("vm")
@pass_pool
def info(pool, vm):
    _print(json.loads(pool.call(C.FN_GET_INFO, pool.vm(vm))), True)


@main.command(help="Docker's /version of a VM.")
@click.argument("vm")
@pass_pool
def version(pool, vm):
    _print(json.loads(pool.call(C.FN_GET_VERSION, pool.vm(vm))), True)


@main.command(help="Docker inspect of a container, as the XML document XenCenter reads.")
@click.argument("vm")
@click.argument("container")
@pass_pool
def inspect(pool, vm, container):
    click.echo(pool.call(C.FN_GET_INSPECT, pool.vm(vm), object=container))


@main.command(help="The processes of a container.")
@click.argument("vm")
@click.argument("container")
@click.option("--xml", is_flag=True, help="print the docker_top document as is")
@pass_pool
def top(pool, vm, container, xml):
    doc = pool.call(C.FN_GET_TOP, pool.vm(vm), object=container)
    if xml:
        click.echo(doc)
        return
    import xml.etree.ElementTree as ET
    rows = []
    for proc in ET.fromstring(doc).iter(C.PROCESS_ELEMENT):
        rows.append({(child.get("name") or child.tag): child.text or "" for child in proc})
    _table(rows, list(rows[0]) if rows else ["PID", "CMD"])


@main.command(help="The last lines of a container's logs.")
@click.argument("vm")
@click.argument("container")
@click.option("--tail", default="100", show_default=True)
@click.option("--since", default="0", help="Unix seconds")
@click.option("--json", "as_json", is_flag=True)
@pass_pool
def logs(pool, vm, container, tail, since, as_json):
    res = json.loads(pool.call(C.FN_GET_LOGS, pool.vm(vm), container=container, tail=tail,
                               since=since))
    _print(res, as_json, lambda r: click.echo(r.get("logs", ""), nl=False))


@main.command(help="One-shot CPU, memory, network and block I/O of running containers.")
@click.argument("vm")
@click.argument("container", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_pool
def stats(pool, vm, container, as_json):
    res = json.loads(pool.call(C.FN_GET_STATS, pool.vm(vm), container=container))
    _print(res, as_json, lambda r: _table(
        [dict(v, id=k[:12]) for k, v in sorted(r.items())],
        sorted({"id"} | {k for v in r.values() for k in v})))


@main.command(name="public-key", help="The pool's SSH public key line (for authorized_keys).")
@pass_pool
def public_key(pool):
    click.echo(pool.call(C.FN_GET_PUBLIC_KEY))


@main.command(help="Enrol a running VM: verify its SSH host key (shown, and asked about "
                   "as ssh does, unless --fingerprint or --yes), authorize the pool key for "
                   "USERNAME (one-time password from --password-file, "
                   "$XSCONTAINER_VM_PASSWORD or a prompt; it travels in a XAPI secret, "
                   "read once and destroyed), check Docker, pin the host key. A changed "
                   "key is re-pinned only with --fingerprint.")
@click.argument("vm")
@click.argument("username")
@click.option("--fingerprint", help="the VM's host key as its console shows it "
                                    "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)")
@click.option("--yes", is_flag=True, help="trust the key the VM shows now, without asking")
@click.option("--password-file", type=click.File("r"))
@click.option("--no-password", is_flag=True, help="the pool key is already authorized")
@click.option("--json", "as_json", is_flag=True)
@pass_pool
def prepare(pool, vm, username, fingerprint, yes, password_file, no_password, as_json):
    ref = pool.vm(vm)
    if fingerprint is None:
        fingerprint = _confirm_host_key(pool, ref, vm, username, yes)
    if no_password:
        password = None
    elif password_file:
        password = password_file.read().rstrip("\n")
    else:
        password = os.environ.get("XSCONTAINER_VM_PASSWORD") or click.prompt(
            "Password of %s in the VM" % username, hide_input=True)
    secret = None
    if password is not None:
        secret = pool.x.secret.create({"value": password})
    try:
        res = json.loads(pool.call(C.FN_PREPARE, ref, username=username,
                                   fingerprint=fingerprint,
                                   password_secret=secret and pool.x.secret.get_uuid(secret)))
    finally:
        if secret is not None:      # the plugin destroys it once read; not when it failed
            try:
                pool.x.secret.destroy(secret)
            except pool.XenAPI.Failure:
                pass
    _print(res, as_json, lambda r: click.echo(
        "prepared %s: user %s, host key %s pinned%s" % (
            vm, r["username"], r["fingerprint"], " (re-pinned)" if r["repinned"] else "")))


def _confirm_host_key(pool, ref, vm, username, yes):
    """The fingerprint to pin: the pinned one stays (None), else the key the VM shows,
    accepted by the admin (asked, as ssh does) or by --yes."""
    if pool.x.VM.get_other_config(ref).get(C.KEY_HOSTKEY):
        return None     # checked against the pin by the plugin
    try:
        pool.call(C.FN_PREPARE, ref, username=username)     # no credential: just the key
    except Failed as failure:
        if failure.code_name != C.ERR_HOSTKEY_UNVERIFIED:
            raise
        seen = failure.params[1]
    else:
        return None
    click.echo("The SSH host key of %s has fingerprint %s." % (vm, seen), err=True)
    if not yes and not click.confirm("Is this the key the VM's console shows "
                                     "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)?",
                                     err=True):
        raise click.ClickException("not prepared: the host key was not accepted")
    return seen


@main.command(name="list", help="The VMs of the pool and their registration.")
@click.option("--json", "as_json", is_flag=True)
@pass_pool
def list_vms(pool, as_json):
    rows = []
    for ref, rec in pool.x.VM.get_all_records().items():
        if rec["is_control_domain"] or rec["is_a_template"] or rec["is_a_snapshot"]:
            continue
        oc = rec["other_config"]
        rows.append({"uuid": rec["uuid"], "name": rec["name_label"],
                     "power_state": rec["power_state"],
                     "registered": oc.get(C.KEY_MONITOR, ""),
                     "mode": oc.get(C.KEY_TRANSPORT, "")})
    _print(sorted(rows, key=lambda r: r["name"]), as_json,
           lambda r: _table(r, ["name", "uuid", "power_state", "registered", "mode"]))


def run():
    """Entry point. dom0's Python 3.6 often runs without a UTF-8 locale (cron, ssh, xapi):
    click 8.0 then refuses to start. Print ASCII with escapes instead of failing."""
    import io
    if (sys.stdout.encoding or "").lower() in ("ascii", "ansi_x3.4-1968"):
        sys.stdout = io.TextIOWrapper(sys.stdout.buffer, "ascii", "backslashreplace",
                                      line_buffering=True)
        sys.stderr = io.TextIOWrapper(sys.stderr.buffer, "ascii", "backslashreplace",
                                      line_buffering=True)
        try:
            import click.core
            click.core._verify_python_env = lambda: None
        except (ImportError, AttributeError):
            pass
    main()


if __name__ == "__main__":
    run()
