#!/usr/bin/env python3
"""Regenerates the QUIC seed corpus in corpus/quic/ (//tests/fuzz:quic_corpus_test, tools/fuzz.sh).

The client Initial packets are protected as RFC 9001 section 5 says (Initial keys from the DCID by
HKDF, AES-128-GCM, AES header protection), around the ClientHello of RFC 9001 appendix A: the
version 1 packet is checked against appendix A.2's (so the generator is right), the version 2 one
(RFC 9369's salt, labels and type bits) against RFC 9369 appendix A.2's, and the same hello goes
out under other connection IDs.
The rest are written by hand: 0-RTT and Handshake packets, short headers whose CIDs carry a QUIC-LB
server ID (routable and not), a Retry, a Version Negotiation packet, a future version with
255-byte CIDs, and garbage. Needs python3-cryptography. It overwrites the files.
"""
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "quic")

V1, V2 = 0x00000001, 0x6B3343CF
SALT = {
    V1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),  # RFC 9001 section 5.2
    V2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),  # RFC 9369 section 3.3.1
}
LABEL = {V1: "quic", V2: "quicv2"}
INITIAL_TYPE = {V1: 0b00, V2: 0b01}  # the long-header type bits of an Initial

# RFC 9001 appendix A.2: the client's CRYPTO frame (a ClientHello for example.com).
CLIENT_HELLO_FRAME = bytes.fromhex(
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff")
RFC_DCID = bytes.fromhex("8394c8f03e515708")
# Appendix A.2's protected packet: its first 22 bytes and its AEAD tag (the last 16).
RFC_HEAD = bytes.fromhex("c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11")
RFC_TAIL = bytes.fromhex("e221af44860018ab0856972e194cd934")
# RFC 9369 appendix A.2: the same hello as a version 2 Initial, its first 32 bytes.
RFC_V2_HEAD = bytes.fromhex("d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485")


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand_label(secret, label, length):
    """TLS 1.3's HKDF-Expand-Label with an empty context (one block is enough here)."""
    full = b"tls13 " + label.encode()
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    return hmac.new(secret, info + b"\x01", hashlib.sha256).digest()[:length]


def client_keys(version, dcid):
    secret = hkdf_expand_label(hkdf_extract(SALT[version], dcid), "client in", 32)
    prefix = LABEL[version]
    return (hkdf_expand_label(secret, prefix + " key", 16), hkdf_expand_label(secret, prefix + " iv", 12),
            hkdf_expand_label(secret, prefix + " hp", 16))


def varint2(n):
    return struct.pack(">H", 0x4000 | n)


def client_initial(version, dcid, scid, payload, pn=2, token=b"", size=1200):
    """A protected client Initial with a 4-byte packet number, padded (PADDING frames) to `size`."""
    key, iv, hp = client_keys(version, dcid)
    first = 0xC0 | INITIAL_TYPE[version] << 4 | 0x03
    before_length = (bytes([first]) + struct.pack(">I", version) + bytes([len(dcid)]) + dcid +
                     bytes([len(scid)]) + scid + bytes([len(token)]) + token)
    header_size = len(before_length) + 2 + 4
    plain = payload + b"\x00" * (size - header_size - 16 - len(payload))
    header = before_length + varint2(4 + len(plain) + 16) + struct.pack(">I", pn)
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, plain, header)
    # Header protection: a mask from 16 bytes of ciphertext, 4 bytes past the packet number's start.
    sample = sealed[:16]
    mask = Cipher(algorithms.AES(hp), modes.ECB()).encryptor().update(sample)
    protected = bytearray(header)
    protected[0] ^= mask[0] & 0x0F
    for i in range(4):
        protected[len(header) - 4 + i] ^= mask[1 + i]
    return bytes(protected) + sealed


def long_header(first, version, dcid, scid, rest):
    return bytes([first]) + struct.pack(">I", version) + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid + rest


def lb_cid(config, server_id, nonce):
    """A QUIC-LB plaintext CID: 3 config-rotation bits (and 5 free bits), the server ID, a nonce."""
    return bytes([config << 5 | 0x08]) + server_id + nonce


def main():
    rfc = client_initial(V1, RFC_DCID, b"", CLIENT_HELLO_FRAME)
    assert len(rfc) == 1200 and rfc.startswith(RFC_HEAD) and rfc.endswith(RFC_TAIL), \
        "the version 1 Initial differs from RFC 9001 appendix A.2"
    rfc_v2 = client_initial(V2, RFC_DCID, b"", CLIENT_HELLO_FRAME)
    assert len(rfc_v2) == 1200 and rfc_v2.startswith(RFC_V2_HEAD), "the version 2 Initial differs from RFC 9369 A.2"
    server_cid = lb_cid(0b001, bytes.fromhex("0002"), bytes.fromhex("a1b2c3d4e5f60718"))
    sealed_junk = bytes(range(64))  # stands for an AEAD payload: a balancer never opens one
    seeds = {
        "initial_v1_rfc9001": rfc,
        "initial_v2_rfc9369": rfc_v2,
        "initial_v1_cid20_token": client_initial(V1, bytes(range(1, 21)), bytes(range(100, 120)), CLIENT_HELLO_FRAME,
                                                 pn=0, token=bytes.fromhex("a5") * 40),
        # The client's second Initial goes to the server's CID (a routable QUIC-LB one).
        "initial_v1_to_server_cid": client_initial(V1, server_cid, bytes.fromhex("c1c2c3c4"), b"\x01", pn=3),
        "zero_rtt_v1": long_header(0xD3, V1, RFC_DCID, b"", varint2(4 + len(sealed_junk)) + b"\x00\x00\x00\x01" + sealed_junk),
        "handshake_v1": long_header(0xE3, V1, server_cid, bytes.fromhex("c1c2c3c4"),
                                    varint2(4 + len(sealed_junk)) + b"\x00\x00\x00\x02" + sealed_junk),
        "short_routable": bytes([0x43]) + server_cid + b"\x00\x00\x00\x07" + sealed_junk,
        "short_unroutable": bytes([0x41]) + lb_cid(0b111, b"\x99\x99", b"\x12\x34\x56\x78") + b"\x07" + sealed_junk,
        # RFC 9001 appendix A.4: a server's Retry, as sent.
        "retry_v1_rfc9001": bytes.fromhex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba"),
        "version_negotiation": long_header(0x80, 0, bytes.fromhex("c1c2c3c4"), RFC_DCID, struct.pack(">II", V1, V2)),
        "future_version_cid255": long_header(0xC0, 0x1A2A3A4A, bytes([0xAB]) * 255, bytes([0xCD]) * 255, b"\x00" * 8),
        "cid21_v1_refused": long_header(0xC0, V1, bytes(21), b"", b"\x00" * 8),
        "dns_query_garbage": bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001"),
    }
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
