# Captures the frames in proto_apache_fixtures.rs from a real Apache ZooKeeper:
#   shared/tools/apache-zookeeper start 22181 && python3 capture_apache.py; ... stop 22181
# Prints one "name hex" line per captured frame (length prefix included).
import socket, struct, sys
def conn():
    s = socket.create_connection(("127.0.0.1", 22181), timeout=5)
    return s
def send(s, payload):
    s.sendall(struct.pack(">i", len(payload)) + payload)
def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b
def recv_frame(s):
    h = recv_exact(s, 4)
    (n,) = struct.unpack(">i", h)
    return h + recv_exact(s, n)
def ustr(x):
    if x is None: return struct.pack(">i", -1)
    x = x.encode(); return struct.pack(">i", len(x)) + x
def buf(x):
    if x is None: return struct.pack(">i", -1)
    return struct.pack(">i", len(x)) + x
OPEN_ACL = struct.pack(">i", 1) + struct.pack(">i", 31) + ustr("world") + ustr("anyone")
def handshake(s):
    req = struct.pack(">iqiq", 0, 0, 30000, 0) + buf(b"\0" * 16) + b"\0"
    send(s, req)
    return recv_frame(s)
out = {}
a = conn(); b = conn()
out["connect_response"] = handshake(a)
handshake(b)
def call(s, xid, op, body):
    send(s, struct.pack(">ii", xid, op) + body)
    return recv_frame(s)
out["create_reply"] = call(a, 1, 1, ustr("/fx") + buf(b"hello") + OPEN_ACL + struct.pack(">i", 0))
out["create2_null_data_reply"] = call(a, 2, 15, ustr("/fx/n") + buf(None) + OPEN_ACL + struct.pack(">i", 0))
out["get_data_reply"] = call(a, 3, 4, ustr("/fx") + b"\x01")  # sets a data watch
out["get_data_null_reply"] = call(a, 4, 4, ustr("/fx/n") + b"\0")
out["exists_nonode_reply"] = call(a, 5, 3, ustr("/missing") + b"\0")
out["get_children2_reply"] = call(a, 6, 12, ustr("/fx") + b"\0")
def mh(t, done, err): return struct.pack(">i?i", t, done, err)
multi = (mh(1, False, -1) + ustr("/fx/m") + buf(b"") + OPEN_ACL + struct.pack(">i", 0)
         + mh(5, False, -1) + ustr("/fx/m") + buf(b"x") + struct.pack(">i", -1)
         + mh(13, False, -1) + ustr("/fx") + struct.pack(">i", 0)
         + mh(2, False, -1) + ustr("/fx/m") + struct.pack(">i", -1)
         + mh(-1, True, -1))
out["multi_reply"] = call(a, 7, 14, multi)
bad = (mh(2, False, -1) + ustr("/fx/n") + struct.pack(">i", -1)
       + mh(2, False, -1) + ustr("/nope") + struct.pack(">i", -1)
       + mh(13, False, -1) + ustr("/fx") + struct.pack(">i", 0)
       + mh(-1, True, -1))
out["multi_failed_reply"] = call(a, 8, 14, bad)
mr = (mh(4, False, -1) + ustr("/fx") + b"\0" + mh(8, False, -1) + ustr("/fx") + b"\0"
      + mh(4, False, -1) + ustr("/nope") + b"\0" + mh(-1, True, -1))
out["multi_read_reply"] = call(a, 9, 22, mr)
out["ping_reply"] = call(a, -2, 11, b"")
# Fire a's data watch from b.
call(b, 1, 5, ustr("/fx") + buf(b"bye") + struct.pack(">i", -1))
out["notification"] = recv_frame(a)
# cleanup
call(a, 10, 2, ustr("/fx/n") + struct.pack(">i", -1))
call(a, 11, 2, ustr("/fx") + struct.pack(">i", -1))
call(a, 12, -11, b""); call(b, 2, -11, b"")
for k, v in out.items():
    print(k, v.hex())
