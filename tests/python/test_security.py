"""kazoo against the server's authentication and encryption, run by tests/tests/security.rs.

Environment (set by the Rust test, which starts the server and makes the certificates):
    ZK_HOSTS          plain client port, 127.0.0.1:PORT
    ZK_SECURE_HOSTS   secureClientPort (TLS), when the server has one
    ZK_CERTS          directory with ca.pem, client.pem/client.key, rogue.pem/rogue.key
    ZK_SASL           "on": SASL users jaasuser/jaas_password and super/super_secret exist
    ZK_ENFORCED       "on": the server requires SASL (sessionRequireClientSASLAuth)

The SASL cases are kazoo's own (kazoo/tests/test_sasl.py, 2.11): the legacy
auth_data=[("sasl", "user:password")] form and the current sasl_options form, each with valid
and invalid credentials, with the same assertions; invalid credentials are awaited as a state
instead of through start() (see `assert_auth_failed`).
"""

import os
import ssl
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.protocol.states import KeeperState
from kazoo.security import make_acl

TIMEOUT = 15

sasl_only = pytest.mark.skipif(
    os.environ.get("ZK_SASL") != "on" or os.environ.get("ZK_ENFORCED") == "on",
    reason="the server of this run has no SASL users",
)
enforced_only = pytest.mark.skipif(
    os.environ.get("ZK_ENFORCED") != "on", reason="SASL is not enforced in this run"
)
tls_only = pytest.mark.skipif(
    "ZK_SECURE_HOSTS" not in os.environ, reason="the server of this run has no TLS port"
)


@pytest.fixture
def clients():
    made = []

    def make(hosts=None, **options):
        options.setdefault("timeout", TIMEOUT)
        client = KazooClient(hosts or os.environ["ZK_HOSTS"], **options)
        made.append(client)
        return client

    yield make
    for client in made:
        try:
            client.stop()
            client.close()
        except Exception:  # never started, or already stopped
            pass


@pytest.fixture
def path():
    return f"/security-{uuid.uuid4().hex[:8]}"


def check_sasl_acl(clients, path, **options):
    """kazoo's test_connect_sasl_auth: a sasl ACL the SASL client passes and a plain one fails."""
    acl = make_acl("sasl", credential="jaasuser", all=True)
    client = clients(**options)
    client.start()
    plain = clients()
    plain.start()
    client.create(path, b"secret", acl=(acl,))
    time.sleep(0.1)
    with pytest.raises(NoAuthError):
        plain.get(path)
    assert client.get(path)[0] == b"secret"
    assert client.get_acls(path)[0] == [acl]
    client.delete(path)


@sasl_only
def test_legacy_sasl_auth(clients, path):
    check_sasl_acl(clients, path, auth_data=[("sasl", "jaasuser:jaas_password")])


def chrooted():
    """kazoo's harness gives every client a chroot."""
    return os.environ["ZK_HOSTS"] + "/kazootests"


def assert_auth_failed(client):
    """The server refuses the client's credentials: kazoo's connection reaches AUTH_FAILED and
    the client is left without a session.

    Not through `client.start()` raising AuthFailedError, as kazoo's own test has it: kazoo
    signals CONNECTED before it authenticates, and start() raises AuthFailedError only if its
    thread wakes on that CONNECTED before the connection thread has had the refusal and
    cleared it; if it wakes later it finds no connection and raises a time-out instead. Which
    thread runs first is the scheduler's choice, so on a loaded machine the time-out came now
    and then (kazoo's maintainers saw it too, python-zk/kazoo#547). The states the connection
    thread reports are recorded instead (through kazoo 2.11's `_session_callback`, which the
    pinned version keeps), which no ordering of the two threads changes."""
    states = []
    report = client._session_callback

    def record(state):
        report(state)
        states.append(state)  # after kazoo has acted on it

    client._session_callback = record
    client.start_async()
    deadline = time.monotonic() + TIMEOUT
    while KeeperState.AUTH_FAILED not in states:
        assert time.monotonic() < deadline, f"no AUTH_FAILED within {TIMEOUT} s: {states}"
        time.sleep(0.02)
    assert not client.connected, f"a session after the refusal: {states}"
    with pytest.raises((AuthFailedError, ConnectionClosedError)):
        client.exists("/")


@sasl_only
def test_legacy_invalid_sasl_auth(clients):
    assert_auth_failed(clients(chrooted(), auth_data=[("sasl", "baduser:badpassword")]))


@sasl_only
def test_sasl_digest_auth(clients, path):
    options = {"mechanism": "DIGEST-MD5", "username": "jaasuser", "password": "jaas_password"}
    check_sasl_acl(clients, path, sasl_options=options)


@sasl_only
def test_sasl_digest_wrong_password(clients):
    options = {"mechanism": "DIGEST-MD5", "username": "jaasuser", "password": "wrong"}
    assert_auth_failed(clients(chrooted(), sasl_options=options))


@sasl_only
def test_invalid_sasl_auth(clients):
    options = {"mechanism": "DIGEST-MD5", "username": "baduser", "password": "badpassword"}
    assert_auth_failed(clients(chrooted(), sasl_options=options))


@sasl_only
def test_sasl_super_user_reads_everything(clients, path):
    """zookeeper.superUser=super: the SASL user `super` passes every ACL."""
    owner = clients(auth_data=[("digest", "owner:pw")])
    owner.start()
    owner.create(path, b"x", acl=(make_acl("digest", "owner:pw", all=True),))
    root = clients(sasl_options={"mechanism": "DIGEST-MD5", "username": "super",
                                 "password": "super_secret"})
    root.start()
    assert root.get(path)[0] == b"x"
    root.delete(path)


@enforced_only
def test_enforced_sasl_refuses_a_plain_session(clients):
    client = clients(connection_retry={"max_tries": 0})
    client.start()
    with pytest.raises(SessionClosedRequireSaslError):
        client.get_children("/")


@enforced_only
def test_enforced_sasl_serves_an_authenticated_session(clients, path):
    options = {"mechanism": "DIGEST-MD5", "username": "jaasuser", "password": "jaas_password"}
    client = clients(sasl_options=options)
    client.start()
    client.create(path, b"ok")
    assert client.get(path)[0] == b"ok"
    client.delete(path)


@enforced_only
def test_enforced_sasl_wrong_password_is_not_served(clients):
    """The server answers SESSIONCLOSEDREQUIRESASLAUTH, which kazoo's connection loop does not
    handle (as against ZooKeeper either); start()'s chroot check fails."""
    options = {"mechanism": "DIGEST-MD5", "username": "jaasuser", "password": "wrong"}
    client = clients(chrooted(), sasl_options=options)
    with pytest.raises(Exception):
        client.start(timeout=5)
    assert not client.connected


def tls_options(name):
    certs = os.environ["ZK_CERTS"]
    return {
        "use_ssl": True,
        "verify_certs": True,
        "ca": os.path.join(certs, "ca.pem"),
        "certfile": os.path.join(certs, f"{name}.pem"),
        "keyfile": os.path.join(certs, f"{name}.key"),
    }


def certificate_subject(name):
    """The subject of `<name>.pem` in RFC 4514 (= RFC 2253) order, read by `cryptography`, not
    by the server: the id ZooKeeper's X509AuthenticationProvider derives (X500Principal.getName()
    prints the last RDN first)."""
    from cryptography import x509

    with open(os.path.join(os.environ["ZK_CERTS"], f"{name}.pem"), "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).subject.rfc4514_string()


@tls_only
def test_tls_client_certificate_gives_an_x509_id(clients, path):
    subject = certificate_subject("client")
    assert subject == "CN=kazoo-client,O=zkr tests", "the test certificate's subject"
    secure = clients(os.environ["ZK_SECURE_HOSTS"], **tls_options("client"))
    secure.start()
    acl = make_acl("x509", subject, all=True)
    secure.create(path, b"over tls", acl=(acl,))
    assert secure.get(path)[0] == b"over tls"
    plain = clients()
    plain.start()
    with pytest.raises(NoAuthError):
        plain.get(path)
    # the `auth` ACL scheme expands to the connection's x509 id
    secure.create(path + "-auth", b"", acl=(make_acl("auth", "", all=True),))
    assert secure.get_acls(path + "-auth")[0] == [acl]
    secure.delete(path + "-auth")
    secure.delete(path)


@tls_only
def test_tls_without_a_client_certificate_is_refused(clients):
    options = tls_options("client")
    del options["certfile"], options["keyfile"]
    client = clients(os.environ["ZK_SECURE_HOSTS"], connection_retry={"max_tries": 0},
                     **options)
    with pytest.raises(Exception):
        client.start(timeout=5)
    assert not client.connected


@tls_only
def test_tls_certificate_of_another_ca_is_refused(clients):
    client = clients(os.environ["ZK_SECURE_HOSTS"], connection_retry={"max_tries": 0},
                     **tls_options("rogue"))
    with pytest.raises(Exception):
        client.start(timeout=5)
    assert not client.connected


@tls_only
def test_tls_server_certificate_is_checked_by_the_client(clients):
    """The server's certificate chains to ca.pem and names 127.0.0.1 (hostname check on)."""
    context = ssl.create_default_context(cafile=os.path.join(os.environ["ZK_CERTS"], "ca.pem"))
    certs = os.environ["ZK_CERTS"]
    context.load_cert_chain(os.path.join(certs, "client.pem"), os.path.join(certs, "client.key"))
    host, port = os.environ["ZK_SECURE_HOSTS"].split(":")
    import socket

    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(b"ruok")
            assert tls.recv(4) == b"imok"
