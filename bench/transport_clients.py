"""Hold N idle SSH connections, each streaming Docker events over `docker system
dial-stdio`, with one client library (run by bench/transport_choice.py under dom0's
Python 3.6). Prints "ready" once all are open, then waits to be killed."""
import sys
import time

REQUEST = (b"GET /v1.41/events HTTP/1.1\r\nHost: docker\r\n\r\n")


def with_asyncssh(user, key_path, addresses):
    import asyncio
    import asyncssh

    opened = []

    async def one(address, key):
        conn = await asyncssh.connect(address, username=user, client_keys=[key],
                                      known_hosts=None, config=None, agent_path=None)
        process = await conn.create_process("docker system dial-stdio", encoding=None)
        process.stdin.write(REQUEST)
        opened.append(conn)
        while True:
            if not await process.stdout.read(65536):
                return

    async def main():
        key = asyncssh.read_private_key(key_path)
        tasks = [asyncio.ensure_future(one(a, key)) for a in addresses]
        while len(opened) < len(addresses):
            for task in tasks:
                if task.done():
                    task.result()       # raises the failure
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        print("ready", flush=True)
        await asyncio.gather(*tasks)
    asyncio.get_event_loop().run_until_complete(main())


def with_paramiko(user, key_path, addresses):
    import paramiko
    key = paramiko.Ed25519Key.from_private_key_file(key_path)
    keep = []
    for address in addresses:
        t = paramiko.Transport((address, 22))
        t.start_client()
        t.auth_publickey(user, key)
        chan = t.open_session()
        chan.exec_command("docker system dial-stdio")
        chan.sendall(REQUEST)
        keep.append((t, chan))
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    mode, user, key_path = sys.argv[1:4]
    {"asyncssh": with_asyncssh, "paramiko": with_paramiko}[mode](user, key_path, sys.argv[4:])
