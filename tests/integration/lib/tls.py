"""
TLS for the cases: a private CA and certificates made with the openssl
command in the case's directory (ECDSA P-256: fast to make and to use),
and Python ssl clients of a TLS listener.

    pki = Pki(ctx)                    # ca.pem, ca.key
    pki.leaf("server", "ingestd.test")   # server.pem, server.key: DNS:NAME, IP:127.0.0.1
    pki.leaf("bad", "x.test", ca="other")   # signed by a second CA
    pki.self_signed("pinned", "pinned.test")
    pki.revoke("gone"); pki.crl()     # crl.pem
    pki.leaf("old", "old.test", expired=True)

Nothing is committed: every file is made by the case that uses it.
"""
import hashlib
import socket
import ssl
import subprocess

from .base import LOCAL4, check, tail


SERVER_NAME = "ingestd.test"


def openssl(ctx, *args):
    p = subprocess.run(["openssl"] + list(args), cwd=ctx.dir, capture_output=True, timeout=30)
    check(p.returncode == 0, f"openssl {' '.join(args[:2])}: {tail(p.stderr.decode())}")
    return p.stdout.decode()


CA_CNF = """[ ca ]
default_ca = ca_{name}
[ ca_{name} ]
dir = {dir}
database = $dir/{name}.index
serial = $dir/{name}.serial
crlnumber = $dir/{name}.crlnumber
certificate = $dir/{name}.pem
private_key = $dir/{name}.key
new_certs_dir = $dir
default_md = sha256
default_days = 2
default_crl_days = 2
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
"""


class Pki:
    """A CA (and more CAs by name) and the certificates it signs, in the case's directory."""

    def __init__(self, ctx, ca="ca"):
        self.ctx = ctx
        self.make_ca(ca)

    def path(self, name):
        return self.ctx.path(name)

    def make_ca(self, name):
        openssl(self.ctx, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN=test {name}", "-addext", "basicConstraints=critical,CA:true",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        with open(self.path(f"{name}.cnf"), "w") as f:
            f.write(CA_CNF.format(name=name, dir=self.ctx.dir))
        open(self.path(f"{name}.index"), "w").close()
        with open(self.path(f"{name}.serial"), "w") as f:
            f.write("1000\n")
        with open(self.path(f"{name}.crlnumber"), "w") as f:
            f.write("1000\n")

    def key_and_csr(self, name, cn, dns):
        sans = ",".join(f"DNS:{d}" for d in dns) + ",IP:127.0.0.1"
        openssl(self.ctx, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                "-addext", f"subjectAltName={sans}",
                "-addext", "extendedKeyUsage=serverAuth,clientAuth")

    def leaf(self, name, cn, dns=None, ca="ca", expired=False):
        """NAME.pem and NAME.key for CN=cn (and DNS names dns, default [cn]), signed by ca."""
        self.key_and_csr(name, cn, dns if dns is not None else [cn])
        dates = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] if expired else []
        openssl(self.ctx, "ca", "-batch", "-notext", "-config", f"{ca}.cnf", "-in", f"{name}.csr",
                "-out", f"{name}.pem", *dates)
        return self.path(f"{name}.pem"), self.path(f"{name}.key")

    def self_signed(self, name, cn):
        openssl(self.ctx, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}")
        return self.path(f"{name}.pem"), self.path(f"{name}.key")

    def revoke(self, name, ca="ca"):
        openssl(self.ctx, "ca", "-batch", "-config", f"{ca}.cnf", "-revoke", f"{name}.pem")

    def crl(self, ca="ca", out="crl.pem"):
        openssl(self.ctx, "ca", "-batch", "-config", f"{ca}.cnf", "-gencrl", "-out", out)
        return self.path(out)

    def fingerprint(self, name, algo="sha256"):
        """The certificate's fingerprint as permitted_peers takes it: "sha256:" and hex."""
        der = ssl.PEM_cert_to_DER_cert(open(self.path(f"{name}.pem")).read())
        return f"{algo}:" + hashlib.new(algo, der).hexdigest()


def tls_group(pki, server="server", **more):
    """A listener's tls group for the server certificate, and more settings."""
    d = {"certificate": pki.path(f"{server}.pem"), "key": pki.path(f"{server}.key")}
    d.update(more)
    return d


def client_context(pki, cert=None, ca="ca", name=SERVER_NAME, version=None):
    """A client context that verifies the server against ca, presenting cert (a name) if given."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(pki.path(f"{ca}.pem"))
    c.check_hostname = name is not None
    if name is None:
        c.verify_mode = ssl.CERT_REQUIRED
    if cert:
        c.load_cert_chain(pki.path(f"{cert}.pem"), pki.path(f"{cert}.key"))
    if version:
        c.minimum_version = c.maximum_version = version
    return c


def tls_connect(ctx, context, addr=None, port=None, timeout=5, session=None):
    """A TLS connection to the case's server (its handshake done), closed in the cleanup."""
    raw = socket.create_connection(addr or (LOCAL4, port or ctx.port), timeout=timeout)
    s = context.wrap_socket(raw, server_hostname=SERVER_NAME if context.check_hostname else None,
                            session=session)
    ctx.socks.append(s)
    return s


def handshake_result(ctx, context, record, port=None):
    """
    Connect, send record and end the session (close_notify both ways): None
    when the server admitted the client, else the error it met.  TLS 1.3
    refuses a client certificate after the client's side of the handshake
    is done: the alert then comes with the end of the session.
    """
    try:
        s = tls_connect(ctx, context, port=port)
        s.sendall(record)
        s.unwrap()
        return None
    except (ssl.SSLError, OSError) as e:
        return str(e)


def client_hello(context):
    """A ClientHello of context's, as bytes (no connection)."""
    return MemTls(None, context, sock=False).hello()


class MemTls:
    """
    A TLS client whose bytes the case sends itself (ssl.MemoryBIO): a
    ClientHello cut in half, a record byte by byte, a PROXY header in the
    same segment as the ClientHello, a close_notify in the middle of a record.
    """

    def __init__(self, ctx, context, sock=None, port=None):
        self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.inb, self.outb, server_hostname=SERVER_NAME)
        self.sock = sock if sock is not None else ctx.connect((LOCAL4, port or ctx.port), timeout=5)

    def hello(self):
        """The ClientHello's bytes (not sent)."""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outb.read()

    def handshake(self, first=b""):
        """Send first (e.g. a PROXY header) with the ClientHello, and finish the handshake."""
        self.sock.sendall(first + self.hello())
        while True:
            data = self.sock.recv(65536)
            check(data, "the server closed during the handshake")
            self.inb.write(data)
            try:
                self.obj.do_handshake()
                self.sock.sendall(self.outb.read())
                return
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outb.read())

    def seal(self, data):
        """data as the TLS records that carry it (not sent)."""
        self.obj.write(data)
        return self.outb.read()

    def close_notify(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        return self.outb.read()
