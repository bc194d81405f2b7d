#!/usr/bin/env python3
"""A link with delay, loss and reordering, in user space: this kernel has no sch_netem.

Two TAP devices, one in the calling namespace and one in another, joined by this process: each
Ethernet frame read from one is written to the other after `delay` ms, unless it is lost (with
probability `loss`) or reordered (with probability `reorder`, it skips the queue and goes after
`delay / 10`, overtaking the frames before it, as netem's `reorder` does).

  wire.py TAP_HERE NAMESPACE TAP_THERE DELAY_MS LOSS REORDER SEED

It creates both devices (TAP_THERE inside NAMESPACE), prints "ready" once both exist, and runs
until killed; the devices go with it. The caller gives them addresses.
"""
import ctypes
import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def enter_namespace(name):
    libc = ctypes.CDLL(None, use_errno=True)
    ns = os.open(f"/run/netns/{name}", os.O_RDONLY)
    if libc.setns(ns, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(ns)


def main():
    here, namespace, there = sys.argv[1], sys.argv[2], sys.argv[3]
    delay = float(sys.argv[4]) / 1000.0
    loss, reorder = float(sys.argv[5]), float(sys.argv[6])
    rnd = random.Random(int(sys.argv[7]))
    a = open_tap(here)
    enter_namespace(namespace)  # the descriptor opened above stays with its device
    b = open_tap(there)
    print("ready", flush=True)
    peer = {a: b, b: a}
    queue = []  # (due, sequence, fd, frame)
    seq = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 1.0
        ready, _, _ = select.select([a, b], [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            for _ in range(64):
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if rnd.random() < loss:
                    continue
                due = now + (delay / 10 if rnd.random() < reorder else delay)
                seq += 1
                heapq.heappush(queue, (due, seq, peer[fd], frame))
        while queue and queue[0][0] <= time.monotonic():
            _, _, fd, frame = heapq.heappop(queue)
            try:
                os.write(fd, frame)
            except OSError:
                pass  # the device is down or full: the frame is lost, as on a wire


if __name__ == "__main__":
    main()
