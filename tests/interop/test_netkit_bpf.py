"""`netkit.bpf.attach` on a real socket: the kernel must run the filter we hand it."""

from __future__ import annotations

import socket

import pytest

from netkit import bpf


def test_attach_installs_the_filter_on_the_socket() -> None:
    # A UDP socket takes a classic filter without privileges; "drop everything" must then keep
    # a datagram sent to it out of its queue.
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.2)
        bpf.attach(rx, [(0x06, 0, 0, 0)])
        tx.sendto(b"dropped", rx.getsockname())
        with pytest.raises(TimeoutError):
            rx.recv(64)
        bpf.attach(rx, [(0x06, 0, 0, 0xFFFF)])  # replaced atomically: accept everything
        tx.sendto(b"accepted", rx.getsockname())
        assert rx.recv(64) == b"accepted"
    finally:
        rx.close()
        tx.close()


@pytest.mark.parametrize("length", [0, bpf.BPF_MAXINSNS + 1])
def test_attach_refuses_a_program_the_kernel_would(length: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(ValueError):
        bpf.attach(sock, [(0x06, 0, 0, 0)] * length)
