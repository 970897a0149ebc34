"""Ask the kubelet's own question: a minimal CRI client (``runtime.v1``) for containerd's socket.

The kubelet decides whether to pull by calling ``runtime.v1.ImageService/ImageStatus`` over
containerd's socket: an image the CRI does not report is pulled again on every new node,
however much of it the AMI holds. This module asks the same question, on the builder.

It runs there as a program (``sudo python3 -I -S - SOCKET REF...``, its source on stdin), so it uses
the standard library only and stays Python 3.6 compatible (Amazon Linux 2023 has 3.9): gRPC
is HTTP/2 frames on the unix socket, with hand-built protobuf messages carrying upstream's
field numbers (k8s.io/cri-api ``pkg/apis/runtime/v1/api.proto``). It prints one JSON object:
``{"runtime": NAME, "version": VERSION, "images": {REF: null | {"id", "repo_tags",
"repo_digests", "pinned"}}}``; null is the CRI's "not present", the answer that makes a pull.
"""

import json
import socket
import struct
import sys

SOCKET = "/run/containerd/containerd.sock"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, PADDED, ACK = 0x1, 0x4, 0x8, 0x1


class CriError(Exception):
    pass


# --- protobuf: the few wire types these messages use ------------------------------------


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, payload):
    """A length-delimited field (string or embedded message)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _decode(buf):
    """{field number: [values]}: varints as int, length-delimited as bytes."""
    fields, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            size, i = _read_varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise CriError("unexpected protobuf wire type %d" % wire)
        fields.setdefault(number, []).append(value)
    return fields


def _read_varint(buf, i):
    shift = result = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def _text(fields, number):
    return [v.decode() for v in fields.get(number, [])]


# --- HTTP/2 and gRPC: one unary call per stream ------------------------------------------


def _hpack_literal(name, value):
    """A header as "literal without indexing, new name", no Huffman coding."""
    out = b"\x00"
    for s in (name.encode(), value.encode()):
        out += _hpack_int(len(s)) + s
    return out


def _hpack_int(n):
    if n < 127:
        return bytes([n])
    out, n = bytearray([127]), n - 127
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    return bytes(out) + bytes([n])


def _frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


class Client:
    def __init__(self, path=SOCKET, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            raise CriError("cannot connect to the CRI at %s: %s" % (path, e))
        self.sock.sendall(PREFACE + _frame(SETTINGS, 0, 0))
        self.stream = 1
        self.buf = b""

    def close(self):
        self.sock.close()

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CriError("the CRI closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _next_frame(self):
        head = self._read(9)
        length = struct.unpack(">I", b"\x00" + head[:3])[0]
        kind, flags = head[3], head[4]
        stream = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
        return kind, flags, stream, self._read(length)

    def call(self, method, request):
        """One unary gRPC call; the response message's bytes."""
        stream, self.stream = self.stream, self.stream + 2
        headers = b"".join(_hpack_literal(k, v) for k, v in (
            (":method", "POST"), (":scheme", "http"), (":path", method), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ))
        message = b"\x00" + struct.pack(">I", len(request)) + request
        self.sock.sendall(_frame(HEADERS, END_HEADERS, stream, headers) + _frame(DATA, END_STREAM, stream, message))
        body = b""
        while True:
            kind, flags, sid, payload = self._next_frame()
            if kind == SETTINGS and not flags & ACK:
                self.sock.sendall(_frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                self.sock.sendall(_frame(PING, ACK, 0, payload))
            elif kind == GOAWAY:
                raise CriError("the CRI ended the connection (GOAWAY) during %s" % method)
            elif sid != stream:
                continue
            elif kind == RST_STREAM:
                raise CriError("the CRI reset the call %s" % method)
            elif kind == DATA:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                body += payload
                if payload:  # give the connection's receive window back
                    self.sock.sendall(_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload))))
            if sid == stream and kind in (DATA, HEADERS) and flags & END_STREAM:
                break
        if len(body) < 5:
            # gRPC answers an error with trailers only (grpc-status, HPACK-coded): no message.
            raise CriError("the CRI refused %s (is containerd's CRI plugin enabled and serving runtime.v1?)" % method)
        size = struct.unpack(">I", body[1:5])[0]
        return body[5:5 + size]

    def version(self):
        """(runtime name, runtime version), e.g. ("containerd", "1.6.20~ds1")."""
        fields = _decode(self.call("/runtime.v1.RuntimeService/Version", _field(1, b"v1")))
        return (_text(fields, 2) or [""])[0], (_text(fields, 3) or [""])[0]

    def image_status(self, ref):
        """The CRI's ImageStatus for ``ref``: None when it answers "not present"."""
        request = _field(1, _field(1, ref.encode()))
        image = _decode(self.call("/runtime.v1.ImageService/ImageStatus", request)).get(1)
        if not image:
            return None
        fields = _decode(image[0])
        return {
            "id": (_text(fields, 1) or [""])[0],
            "repo_tags": _text(fields, 2),
            "repo_digests": _text(fields, 3),
            "pinned": bool((fields.get(8) or [0])[0]),
        }


def main(argv):
    path, refs = argv[0], argv[1:]
    client = Client(path)
    try:
        runtime, version = client.version()
        answer = {"runtime": runtime, "version": version, "images": {ref: client.image_status(ref) for ref in refs}}
    finally:
        client.close()
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (CriError, OSError) as e:
        sys.stderr.write("cri: %s\n" % e)
        sys.exit(1)
