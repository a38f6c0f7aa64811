"""A TCP relay the tests can freeze: ``python relay.py LISTEN_PORT TARGET_PORT``.

Bytes flow both ways between each accepted connection and a new one to the target. SIGSTOP
freezes it (a network partition: nothing arrives, nothing is reset), SIGCONT heals it.
Prints "ready" once it listens.
"""
import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(listen: int, target: int) -> None:
    async def handle(down_r, down_w):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            down_w.close()
            return
        await asyncio.gather(pipe(down_r, up_w), pipe(up_r, down_w))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
