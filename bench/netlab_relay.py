"""A TCP relay that gives one host's link latency, jitter and loss (bench/netlab.py starts one
per host): ``python netlab_relay.py LISTEN_HOST LISTEN_PORT TARGET_PORT CONTROL_FILE``.

This machine's kernel has no sch_netem, no tc actions and no iptables, so what a lossy link
does to TCP is made here, in user space: every chunk read in either direction is held
``delay`` seconds (plus up to ``jitter`` more, order kept), and a chunk "lost" with
probability ``loss`` is held one retransmission timeout more (TCP's own answer to a lost
segment: the bytes behind it wait, nothing is dropped from the stream). CONTROL_FILE holds
``{"delay": s, "jitter": s, "loss": p}``, read again whenever it changes. Cuts are not made here
but on the host's veth link itself (``ip link set ... down``). Prints "ready" once it listens.
"""
import asyncio
import collections
import json
import os
import random
import sys
import time

RTO_S = 0.2  # Linux's minimum retransmission timeout


class Quality:
    def __init__(self, path: str):
        self.path, self.mtime, self.delay, self.jitter, self.loss = path, None, 0.0, 0.0, 0.0

    def refresh(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime_ns
            if mtime != self.mtime:
                with open(self.path) as f:
                    q = json.load(f)
                self.mtime, self.delay, self.jitter, self.loss = mtime, q["delay"], q["jitter"], q["loss"]
        except (OSError, ValueError, KeyError):
            pass

    def hold(self, rng: random.Random) -> float:
        held = self.delay + (rng.random() * self.jitter if self.jitter else 0.0)
        return held + (RTO_S if self.loss and rng.random() < self.loss else 0.0)


async def pipe(reader, writer, quality: Quality, rng: random.Random) -> None:
    """Bytes from ``reader`` to ``writer``, each chunk delivered when its hold is over, in order."""
    queue: collections.deque = collections.deque()
    arrived = asyncio.Event()
    done = False

    async def deliver():
        last = 0.0
        while queue or not done:
            if not queue:
                arrived.clear()
                await arrived.wait()
                continue
            due, data = queue[0]
            wait = max(due, last) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            queue.popleft()
            last = max(due, last)
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    try:
        while data := await reader.read(65536):
            queue.append((time.monotonic() + quality.hold(rng), data))
            arrived.set()
    except (ConnectionError, OSError):
        pass
    finally:
        done = True
        arrived.set()
        try:
            await sender
        except (ConnectionError, OSError):
            pass
        writer.close()


async def main(host: str, listen: int, target: int, control: str) -> None:
    quality, rng = Quality(control), random.Random(listen)

    async def watch():
        while True:
            quality.refresh()
            await asyncio.sleep(0.05)

    async def handle(down_r, down_w):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            down_w.close()
            return
        await asyncio.gather(pipe(down_r, up_w, quality, rng), pipe(up_r, down_w, quality, rng))

    asyncio.ensure_future(watch())
    server = await asyncio.start_server(handle, host, listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
