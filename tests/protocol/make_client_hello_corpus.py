#!/usr/bin/env python3
"""Regenerates the ClientHello seed corpus in corpus/client_hello/ (client_hello_fuzz_corpus_test).

The real hellos come from `openssl s_client`, captured by a listener on 127.0.0.1 that keeps the
first bytes and closes; the rest are built from them (fragmented across records, truncated,
followed by data) or written by hand (garbage). Run it from anywhere; it overwrites the files.
"""
import os
import socket
import struct
import subprocess
import threading

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "client_hello")


def hello_records_end(data):
    """Bytes up to the end of the record holding the ClientHello's last byte, or None if short."""
    pos, payload = 0, b""
    while len(data) >= pos + 5:
        length = struct.unpack(">H", data[pos + 3:pos + 5])[0]
        if len(data) < pos + 5 + length:
            return None
        payload += data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if len(payload) >= 4 and len(payload) >= 4 + int.from_bytes(payload[1:4], "big"):
            return pos
    return None


def capture(args):
    """The first flight `openssl s_client <args>` sends, up to the ClientHello's end."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}"] + args,
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    conn, _ = listener.accept()
    conn.settimeout(5)
    data = b""
    while hello_records_end(data) is None:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    conn.close()
    listener.close()
    client.stdin.close()
    client.wait()
    end = hello_records_end(data)
    assert end is not None, args
    return data[:end]


def records(payload, sizes):
    """`payload` as handshake records of the given sizes (the last takes what is left)."""
    out, pos = b"", 0
    for size in sizes + [len(payload)]:
        piece = payload[pos:pos + size]
        if piece:
            out += b"\x16\x03\x01" + struct.pack(">H", len(piece)) + piece
        pos += len(piece)
    return out


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    tls13 = capture(["-servername", "www.example.com", "-alpn", "h2,http/1.1"])
    write("openssl_tls13_www.example.com", tls13)
    write("openssl_tls12_only_api.example.org",
          capture(["-tls1_2", "-servername", "api.example.org"]))
    write("openssl_tls13_only_Mixed.Case.Example.COM",
          capture(["-tls1_3", "-servername", "Mixed.Case.Example.COM"]))
    write("openssl_no_sni", capture(["-noservername"]))
    payload = tls13[5:]
    write("fragmented_3_records", records(payload, [100, 150]))
    write("fragmented_header_1_byte_records", records(payload, [1, 1, 1, 1]))
    write("followed_by_application_data", tls13 + b"\x17\x03\x03\x00\x05hello")
    write("truncated", tls13[:len(tls13) // 2])
    write("garbage_http", b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
    # An SSLv2-compatible hello: 2-byte length with the top bit set, then msg_type 1, version 3.1.
    write("garbage_sslv2_hello", bytes.fromhex("80 2e 01 03 01 00 15 00 00 00 10") +
          bytes(range(0x15 + 0x10)))


if __name__ == "__main__":
    main()
